import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../../src/io/safetensors';
import { ADMUNet } from '../../src/unet/admUnet';
import { FIXTURES, fixtureJson, setBackend } from '../helpers';

const tinyFlags = fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args;

describe('ADMUNet weights: state dicts, random init, save and load', () => {
  let tmp: string;
  beforeAll(async () => {
    await setBackend('wasm');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-w-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('stateDict() gives back the file bit for bit', async () => {
    const file = path.join(FIXTURES, 'adm-tiny', 'weights.safetensors');
    const ref = await readSafetensors(file);
    const unet = await ADMUNet.load(file, tinyFlags);
    const state = unet.stateDict();
    expect([...state.keys()]).toEqual(
      fixtureJson('adm-tiny/config.json').state_dict_keys_in_order.map(([k]: [string]) => k),
    );
    for (const [k, v] of state) {
      expect(v.shape).toEqual(ref.get(k)!.shape);
      expect(Buffer.from(v.data.buffer).equals(Buffer.from((ref.get(k)!.data as Float32Array).buffer))).toBe(true);
    }
    unet.dispose();
  });

  it('create() is deterministic per seed, and save → load reproduces the same network', async () => {
    const a = ADMUNet.create(tinyFlags, 7);
    const b = ADMUNet.create(tinyFlags, 7);
    const c = ADMUNet.create(tinyFlags, 8);
    const w = (m: ADMUNet) => m.stateDict().get('input_blocks.4.1.qkv.weight')!.data;
    expect(w(a)).toEqual(w(b));
    expect(w(a)).not.toEqual(w(c));
    const file = path.join(tmp, 'a.safetensors');
    let seen = 0;
    await a.save(file);
    const loaded = await ADMUNet.load(file, tinyFlags, { onProgress: (p) => (seen = p.done / p.total) });
    expect(seen).toBe(1);
    const x = tf.randomNormal([1, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const [o1, o2] = [a.forward(x, [10]).output!, loaded.forward(x, [10]).output!];
    expect(Array.from(o1.dataSync())).toEqual(Array.from(o2.dataSync()));
    // Random weights keep activations O(1): a useful stand-in for real ones in benchmarks.
    const std = tf.tidy(() => tf.sqrt(tf.moments(o1).variance).dataSync()[0]);
    expect(std).toBeGreaterThan(0.05);
    expect(std).toBeLessThan(20);
    tf.dispose([x, o1, o2]);
    [a, b, c, loaded].forEach((m) => m.dispose());
  });

  it('F16 and BF16 weights load (upcast to float32)', async () => {
    const unet = ADMUNet.create(tinyFlags, 3);
    const state = unet.stateDict();
    const { serializeSafetensors } = await import('../../src/io/safetensors');
    const half = serializeSafetensors(
      new Map([...state].map(([k, v], i) => [k, { ...v, dtype: i % 2 ? 'F16' : 'BF16' } as const])),
    );
    const m = await ADMUNet.load(half, tinyFlags);
    const got = m.stateDict().get('out.2.weight')!.data;
    const want = state.get('out.2.weight')!.data;
    got.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThanOrEqual(Math.abs(want[i]) * 2 ** -7));
    [unet, m].forEach((x) => x.dispose());
  });

  it('dispose() frees every weight', () => {
    const before = tf.memory().numTensors;
    const m = ADMUNet.create(tinyFlags, 1);
    expect(tf.memory().numTensors - before).toBe(fixtureJson('adm-tiny/config.json').state_dict_keys_in_order.length);
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
