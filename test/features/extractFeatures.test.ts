import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractFeatures } from '../../src/features/extractFeatures';
import { adaptiveAvgPool2d } from '../../src/ops/adaptiveAvgPool';
import { ADMUNet } from '../../src/unet/admUnet';
import { compareArrays, loadTinyUNet, setBackend, warmUp } from '../helpers';

describe('extractFeatures and FeatureSet', () => {
  let unet: ADMUNet;
  let x0: tf.Tensor4D;
  beforeAll(async () => {
    await setBackend('wasm');
    unet = await loadTinyUNet();
    x0 = tf.randomUniform([3, 32, 32, 3], -1, 1, 'float32', 11) as tf.Tensor4D;
    warmUp(unet);
  });
  afterAll(() => {
    unet?.dispose();
    x0?.dispose();
  });

  it('is the U-Net on q_sample(x0, t, ε): the same numbers as doing it by hand', async () => {
    const noise = [
      tf.randomNormal(x0.shape, 0, 1, 'float32', 1),
      tf.randomNormal(x0.shape, 0, 1, 'float32', 2),
    ] as tf.Tensor4D[];
    const feats = await extractFeatures(x0, { t: [90, 300], b: [4, 15], model: unet, noise });
    for (const [i, t] of [90, 300].entries()) {
      const xt = unet.qSample(x0, [t, t, t], noise[i]);
      const r = unet.forward(xt, [t, t, t], { capture: [4, 15] });
      for (const b of [4, 15])
        expect(compareArrays(feats.get(t, b).dataSync(), r.features.get(b)!.dataSync(), 1e-5, 1e-5).ok).toBe(true);
      r.features.forEach((f) => f.dispose());
      xt.dispose();
    }
    expect(feats.t).toEqual([90, 300]);
    expect(feats.b).toEqual([4, 15]);
    expect([...feats.entries()].map(({ t, b }) => `${t}:${b}`)).toEqual(['90:4', '90:15', '300:4', '300:15']);
    expect(feats.has(90, 4)).toBe(true);
    expect(feats.has(90, 5)).toBe(false);
    expect(() => feats.get(90, 5)).toThrow(/no feature for t=90, b=5/);
    feats.dispose();
    feats.dispose();
    expect(() => feats.get(90, 4)).toThrow(/disposed/);
    tf.dispose(noise);
  });

  it('a seed makes it reproducible; no seed draws fresh noise', async () => {
    const a = await extractFeatures(x0, { t: 150, b: 10, model: unet, seed: 5 });
    const b = await extractFeatures(x0, { t: 150, b: 10, model: unet, seed: 5 });
    const c = await extractFeatures(x0, { t: 150, b: 10, model: unet });
    expect(Array.from(a.get(150, 10).dataSync())).toEqual(Array.from(b.get(150, 10).dataSync()));
    expect(compareArrays(a.get(150, 10).dataSync(), c.get(150, 10).dataSync()).ok).toBe(false);
    [a, b, c].forEach((f) => f.dispose());
  });

  it('pool averages each map to pool × pool and leaves smaller maps alone', async () => {
    const full = await extractFeatures(x0, { t: 90, b: [2, 10], model: unet, seed: 1 });
    const pooled = await extractFeatures(x0, { t: 90, b: [2, 10], model: unet, seed: 1, pool: 16 });
    expect(pooled.get(90, 2).shape).toEqual([3, 16, 16, 32]);
    expect(pooled.get(90, 10).shape).toEqual([3, 8, 8, 32]);
    const byHand = adaptiveAvgPool2d(full.get(90, 2), 16);
    expect(compareArrays(pooled.get(90, 2).dataSync(), byHand.dataSync(), 1e-6, 1e-6).ok).toBe(true);
    tf.dispose(byHand);
    [full, pooled].forEach((f) => f.dispose());
  });

  it('maxBatch splits the work without changing the result, and reports progress', async () => {
    const seen: number[] = [];
    const one = await extractFeatures(x0, { t: [20, 40], b: 6, model: unet, seed: 2 });
    const split = await extractFeatures(x0, {
      t: [20, 40],
      b: 6,
      model: unet,
      seed: 2,
      maxBatch: 4,
      onProgress: (p) => seen.push(p.done / p.total),
    });
    expect(seen).toEqual([4 / 6, 1]);
    for (const t of [20, 40])
      expect(compareArrays(split.get(t, 6).dataSync(), one.get(t, 6).dataSync(), 1e-5, 1e-5).ok).toBe(true);
    [one, split].forEach((f) => f.dispose());
  });

  it('leaves the caller’s tensors alone and leaks nothing', async () => {
    const noise = tf.randomNormal(x0.shape, 0, 1, 'float32', 3) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const f = await unet.extractFeatures(x0, { t: 7, b: [1, 19], noise, maxBatch: 2 });
    expect(tf.memory().numTensors).toBe(before + 2);
    f.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(noise.isDisposed || x0.isDisposed).toBe(false);
    noise.dispose();
  });
});
