import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, InputError, WeightsError } from '../../src/errors';
import { readSafetensors, serializeSafetensors } from '../../src/io/safetensors';
import { ADMUNet } from '../../src/unet/admUnet';
import { resolveConfig } from '../../src/unet/config';
import { extractFeatures } from '../../src/features/extractFeatures';
import { FIXTURES, fixtureJson, setBackend, warmUp } from '../helpers';

const tinyFlags = fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args;
const condFlags = fixtureJson('adm-small-cond/config.json').create_model_and_diffusion_args;
const tinyWeights = path.join(FIXTURES, 'adm-tiny', 'weights.safetensors');

describe('bad input gets a typed error that names the problem', () => {
  let unet: ADMUNet;
  let cond: ADMUNet;
  let tmp: string;
  beforeAll(async () => {
    await setBackend('wasm');
    unet = await ADMUNet.load(tinyWeights, tinyFlags);
    cond = ADMUNet.create(condFlags, 1);
    warmUp(unet);
    warmUp(cond);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-err-'));
  });
  afterAll(() => {
    unet?.dispose();
    cond?.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const run =
    (x: tf.Tensor, t: number[], opts = {}) =>
    () =>
      tf.tidy(() => void unet.forward(x as tf.Tensor4D, t, opts));

  it('wrong rank, channels, side or dtype of x_t', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      expect(run(tf.zeros([2, 32, 32]), [1, 1])).toThrow(/rank 4 \(NHWC/);
      expect(run(tf.zeros([2, 32, 32, 4]), [1, 1])).toThrow(/4 channels but the model takes 3/);
      expect(run(tf.zeros([2, 3, 32, 32]), [1, 1])).toThrow(/NCHW/);
      expect(run(tf.zeros([2, 16, 16, 3]), [1, 1])).toThrow(/16×16 but this model takes 32×32/);
      expect(run(tf.zeros([2, 32, 32, 3], 'int32'), [1, 1])).toThrow(/float32/);
      expect(run(tf.zeros([2, 32, 32, 3]), [1, 1])).not.toThrow();
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('t outside [0, T), not an integer, or one per example missing', () => {
    tf.tidy(() => {
      const x = tf.zeros([2, 32, 32, 3]);
      expect(run(x, [0, 1000])).toThrow(InputError);
      expect(run(x, [0, 1000])).toThrow(/t\[1\] = 1000 is outside \[0, 1000\)/);
      expect(run(x, [-1, 3])).toThrow(/outside/);
      expect(run(x, [2.5, 3])).toThrow(/integer/);
      expect(run(x, [3])).toThrow(/1 entries but the batch has 2/);
    });
  });

  it('unknown blocks, in capture, add, extractFeatures and the block table', async () => {
    const x = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    expect(run(x, [5], { capture: [20] })).toThrow(/unknown block 20: this model has blocks 1\.\.19/);
    expect(run(x, [5], { capture: [0] })).toThrow(InputError);
    expect(run(x, [5], { add: new Map([[2, tf.zeros([1, 16, 16, 32])]]) })).toThrow(
      /block 2 must have shape \[1,32,32,32\]/,
    );
    await expect(extractFeatures(x, { t: 5, b: 40, model: unet })).rejects.toThrow(/unknown block 40/);
    await expect(extractFeatures(x, { t: 1000, b: 4, model: unet, seed: 1 })).rejects.toThrow(/outside \[0, 1000\)/);
    await expect(extractFeatures(x, { t: [5, 5], b: 4, model: unet })).rejects.toThrow(/lists 5 twice/);
    await expect(
      extractFeatures(x, { t: [5, 6], b: 4, model: unet, noise: tf.zeros([1, 32, 32, 3]) as tf.Tensor4D }),
    ).rejects.toThrow(/one ε per t/);
    await expect(extractFeatures(x, { t: 5, b: 4, model: unet, pool: 0 })).rejects.toThrow(/pool/);
    await expect(extractFeatures(x, { t: 5, b: 4 } as never)).rejects.toThrow(/opts.model/);
    expect(() => unet.block(38)).toThrow(InputError);
    expect(() => unet.mirror(10)).toThrow(/middle block/);
    expect(unet.mirror(12)).toBe(8);
    tf.dispose(x);
  });

  it('labels: required, in range and one per example for class-conditional models; refused otherwise', () => {
    tf.tidy(() => {
      const x = tf.zeros([2, 32, 32, 3]) as tf.Tensor4D;
      expect(() => cond.forward(x, [1, 2])).toThrow(/class-conditional: pass y/);
      expect(() => cond.forward(x, [1, 2], { y: [3, 1000] })).toThrow(/y\[1\] = 1000 is outside \[0, 1000\)/);
      expect(() => cond.forward(x, [1, 2], { y: [3] })).toThrow(/one label per example/);
      expect(() => unet.forward(x, [1, 2], { y: [3, 4] })).toThrow(/unconditional/);
      expect(() => cond.forward(x, [1, 2], { y: [3, 999], capture: [1] })).not.toThrow();
    });
  });

  it('corrupt, truncated or foreign weight files are CheckpointErrors', async () => {
    const bytes = fs.readFileSync(tinyWeights);
    const cut = path.join(tmp, 'cut.safetensors');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
    await expect(ADMUNet.load(cut, tinyFlags)).rejects.toBeInstanceOf(CheckpointError);
    await expect(ADMUNet.load(new Uint8Array(bytes.subarray(0, 100)), tinyFlags)).rejects.toBeInstanceOf(
      CheckpointError,
    );
    const flipped = new Uint8Array(bytes);
    flipped[20] = 0x00;
    await expect(ADMUNet.load(flipped, tinyFlags)).rejects.toBeInstanceOf(CheckpointError);
    await expect(ADMUNet.load(new Uint8Array(64).fill(7), tinyFlags)).rejects.toBeInstanceOf(CheckpointError);
    await expect(ADMUNet.load(path.join(tmp, 'absent.safetensors'), tinyFlags)).rejects.toBeInstanceOf(CheckpointError);
  });

  it('missing, mis-shaped and unexpected weights are listed together in one WeightsError', async () => {
    const state = await readSafetensors(tinyWeights);
    state.delete('out.2.bias');
    state.delete('time_embed.0.weight');
    const w = state.get('input_blocks.1.0.in_layers.2.weight')!;
    state.set('input_blocks.1.0.in_layers.2.weight', { ...w, shape: [32, 32, 9, 1] });
    state.set('extra.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    const file = serializeSafetensors(
      new Map([...state].map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }])),
    );
    const before = tf.memory().numTensors;
    const err = await ADMUNet.load(file, tinyFlags).catch((e) => e);
    expect(err).toBeInstanceOf(WeightsError);
    expect(err.missing).toEqual(['time_embed.0.weight', 'out.2.bias']);
    expect(err.unexpected).toEqual(['extra.weight']);
    expect(err.mismatched).toEqual([['input_blocks.1.0.in_layers.2.weight', [32, 32, 3, 3], [32, 32, 9, 1]]]);
    expect(err.message).toMatch(/2 missing: .*1 mis-shaped: .*1 unexpected: extra\.weight/);
    // The wrong flags for a file: every key is reported, nothing is half-loaded.
    await expect(ADMUNet.load(tinyWeights, condFlags)).rejects.toBeInstanceOf(WeightsError);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('unexpected keys pass with strict: false', async () => {
    const state = await readSafetensors(tinyWeights);
    state.set('extra.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    const file = serializeSafetensors(
      new Map([...state].map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }])),
    );
    const m = await ADMUNet.load(file, tinyFlags, { strict: false });
    expect(m.numParameters).toBe(fixtureJson('adm-tiny/config.json').model.num_parameters);
    m.dispose();
  });

  it('impossible flags and unknown presets', () => {
    expect(() => resolveConfig('256x256_diffusion_unconditional' as never)).toThrow(/unknown preset/);
    expect(() => resolveConfig({ ...tinyFlags, channel_mult: '' })).toThrow(/no default channel_mult/);
    expect(() => resolveConfig({ ...tinyFlags, num_channels: 48 })).toThrow(/multiple of 32/);
    expect(() => resolveConfig({ ...tinyFlags, noise_schedule: 'sqrt' })).toThrow(/noise_schedule/);
    expect(() => resolveConfig({ ...tinyFlags, image_size: 30 })).toThrow(InputError);
  });

  it('a disposed model refuses to run', () => {
    const m = ADMUNet.create(tinyFlags, 2);
    m.dispose();
    expect(() => tf.tidy(() => void m.forward(tf.zeros([1, 32, 32, 3]) as tf.Tensor4D, [1]))).toThrow(/disposed/);
  });
});
