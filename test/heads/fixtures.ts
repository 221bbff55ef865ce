// Shared by the head, fusion, feedback and reference tests: the heads/ fixtures in our layouts.
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { readSafetensors, type ReadTensor } from '../../src/io/safetensors';
import { fromReference } from '../../src/diffsslModel';
import type { ADMUNet } from '../../src/unet/admUnet';
import { compareArrays, FIXTURES, fixtureJson, nchwToNhwc } from '../helpers';

export const headDir = (head: string) => path.join(FIXTURES, 'heads', head);
export const headWeights = (head: string) => path.join(headDir(head), 'weights.safetensors');

export interface HeadFixture {
  cfg: any;
  act: Map<string, ReadTensor>;
}

export async function headFixture(head: string): Promise<HeadFixture> {
  return {
    cfg: fixtureJson(`heads/${head}/config.json`),
    act: await readSafetensors(path.join(headDir(head), 'activations.safetensors')),
  };
}

/** A fixture tensor's values in our layout: NCHW maps → NHWC; tokens and vectors unchanged. */
export function local(t: ReadTensor): Float32Array {
  const data = t.data as Float32Array;
  return t.shape.length === 4 ? nchwToNhwc(data, t.shape).data : data;
}

/** A fixture tensor as a tfjs tensor in our layout. */
export function tensorOf(t: ReadTensor): tf.Tensor {
  if (t.shape.length === 4) {
    const { data, shape } = nchwToNhwc(t.data as Float32Array, t.shape);
    return tf.tensor4d(data, shape);
  }
  return tf.tensor(t.data as Float32Array, t.shape);
}

/** Asserts the fixture's float32 tolerance `|a − b| ≤ 1e-4 + 1e-4·|b|`; returns the max abs error. */
export function expectMatch(actual: ArrayLike<number>, expected: ReadTensor, what: string): number {
  const d = compareArrays(actual, local(expected));
  expect(d.ok, `${what}: ${d.bad} elements off (first ${d.firstBad}), max abs ${d.maxAbs}`).toBe(true);
  return d.maxAbs;
}

const INPUTS = /^(x0|t_list|t\d+\.(noise|t))$/;

/**
 * The whole reference system of a fixture through `fromReference`: logits and every recorded
 * intermediate (by tap) against the fixture, eval mode; then the memory checks. Returns the max abs
 * error of the logits and of all recorded tensors.
 */
export async function referenceParity(
  head: string,
  unet: ADMUNet,
): Promise<{ logits: number; all: number; keys: number }> {
  const { cfg, act } = await headFixture(head);
  const x0 = tensorOf(act.get('x0')!) as tf.Tensor4D;
  const noise = cfg.finetune_args.t_list.map(
    (_: number, i: number) => tensorOf(act.get(`t${i}.noise`)!) as tf.Tensor4D,
  );
  const beforeBuild = tf.memory().numTensors;
  const model = fromReference(cfg.finetune_args, unet);
  await model.loadWeights(headWeights(head));
  const owned = tf.memory().numTensors - beforeBuild;
  const got = new Map<string, Float32Array>();
  const logits = model.logits(x0, { noise, tap: (k, t) => got.set(k, t.dataSync() as Float32Array) });
  expect(logits.shape).toEqual([x0.shape[0], cfg.finetune_args.num_classes]);
  got.set('logits', logits.dataSync() as Float32Array);
  logits.dispose();
  let all = 0;
  const expected = [...act.keys()].filter((k) => !INPUTS.test(k));
  for (const key of expected) {
    expect(got.has(key), `${head}: no tap for the recorded key ${key}`).toBe(true);
    all = Math.max(all, expectMatch(got.get(key)!, act.get(key)!, `${head} ${key}`));
  }
  const logitsErr = compareArrays(got.get('logits')!, act.get('logits')!.data as Float32Array).maxAbs;
  // The U-Net may cache per-shape constants on its first pass; from the second pass on, nothing may grow.
  const mid = tf.memory().numTensors;
  model.logits(x0, { noise }).dispose();
  expect(tf.memory().numTensors).toBe(mid);
  model.dispose();
  expect(tf.memory().numTensors).toBe(mid - owned);
  tf.dispose([x0, ...noise]);
  return { logits: logitsErr, all, keys: expected.length };
}
