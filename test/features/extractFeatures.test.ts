import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { extractFeatures, type FeatureSet } from '../../src/features/extractFeatures';
import { seededNormal } from '../../src/util/noise';
import { adaptiveAvgPool2d } from '../../src/ops/adaptiveAvgPool';
import { interpolateBilinear } from '../../src/ops/interpolate';
import { ADMUNet } from '../../src/unet/admUnet';
import { compareArrays, loadTinyUNet, setBackend, warmUp } from '../helpers';

const bits = (m: tf.Tensor) => Array.from(new Uint32Array(new Float32Array(m.dataSync()).buffer));

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

  it('dense resizes every block to one side as F.interpolate(bilinear) per batch; concat joins blocks per pixel', async () => {
    const full = await extractFeatures(x0, { t: [90, 150], b: [2, 10, 15], model: unet, seed: 1 });
    const before = tf.memory().numTensors;
    const dense = await extractFeatures(x0, {
      t: [90, 150],
      b: [2, 10, 15],
      model: unet,
      seed: 1,
      dense: 32,
      maxBatch: 2,
    });
    for (const t of [90, 150])
      for (const b of [2, 10, 15]) {
        const m = dense.get(t, b);
        expect(m.shape.slice(0, 3)).toEqual([3, 32, 32]);
        const byHand = interpolateBilinear(full.get(t, b), 32);
        const d = compareArrays(m.dataSync(), byHand.dataSync(), 1e-6, 1e-6);
        expect(d.ok, `t ${t} b ${b}: ${d.maxAbs}`).toBe(true);
        byHand.dispose();
      }
    const cat = dense.concat(150);
    const channels = [2, 10, 15].map((b) => full.get(150, b).shape[3]);
    expect(cat.shape).toEqual([3, 32, 32, channels.reduce((a, c) => a + c, 0)]);
    // the last channels of a pixel are block 15's
    const tail = tf.slice(cat, [0, 0, 0, channels[0] + channels[1]], [-1, -1, -1, -1]);
    expect(bits(tail)).toEqual(bits(dense.get(150, 15)));
    expect(() => full.concat(90)).toThrow(/dense: side/);
    expect(() => dense.concat(90, [2, 99])).toThrow(InputError);
    tf.dispose([cat, tail]);
    dense.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await expect(extractFeatures(x0, { t: 90, b: 2, model: unet, dense: 16, pool: 4 })).rejects.toThrow(
      /exclude each other/,
    );
    await expect(extractFeatures(x0, { t: 90, b: 2, model: unet, dense: 0 })).rejects.toThrow(
      /dense must be a positive integer/,
    );
    expect(tf.memory().numTensors).toBe(before);
    full.dispose();
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
  describe('ensemble', () => {
    const ts = [90, 300];
    const bs = [4, 15];
    // Draw k of step t, as the seed streams define it: seededNormal(x0's shape, seed, t, k).
    const draw = (seed: number, k: number) => ts.map((t) => seededNormal<tf.Rank.R4>(x0.shape, seed, t, k));

    it('ensemble 1 is the single draw of stream (t, 0), bit for bit, as before', async () => {
      const noise = draw(4, 0);
      const byNoise = await extractFeatures(x0, { t: ts, b: bs, model: unet, noise });
      const seeded = await extractFeatures(x0, { t: ts, b: bs, model: unet, seed: 4 });
      const one = await extractFeatures(x0, { t: ts, b: bs, model: unet, seed: 4, ensemble: 1 });
      for (const { t, b, map } of byNoise.entries()) {
        expect(bits(seeded.get(t, b))).toEqual(bits(map));
        expect(bits(one.get(t, b))).toEqual(bits(map));
      }
      [byNoise, seeded, one].forEach((f) => f.dispose());
      tf.dispose(noise);
    });

    it('ensemble K is ((f0 + f1) + f2) / K over K single-draw extractions with streams (t, k), for any maxBatch', async () => {
      const K = 3;
      const noises = Array.from({ length: K }, (_, k) => draw(7, k));
      const singles: FeatureSet[] = [];
      for (const noise of noises) singles.push(await extractFeatures(x0, { t: ts, b: bs, model: unet, noise }));
      const byHand = new Map<string, tf.Tensor>();
      for (const t of ts)
        for (const b of bs)
          byHand.set(
            `${t}:${b}`,
            tf.tidy(() => tf.div(tf.add(tf.add(singles[0].get(t, b), singles[1].get(t, b)), singles[2].get(t, b)), K)),
          );
      // maxBatch 2 < K splits an example's draws over forwards; 7 holds two examples' draws; default holds all.
      for (const maxBatch of [undefined, 2, 7]) {
        const seen: number[] = [];
        const ens = await extractFeatures(x0, {
          t: ts,
          b: bs,
          model: unet,
          seed: 7,
          ensemble: K,
          ...(maxBatch ? { maxBatch } : {}),
          onProgress: (p) => seen.push(p.done / p.total),
        });
        for (const { t, b, map } of ens.entries()) {
          expect(map.shape).toEqual(singles[0].get(t, b).shape);
          expect(bits(map), `maxBatch ${maxBatch} t ${t} b ${b}`).toEqual(bits(byHand.get(`${t}:${b}`)!));
        }
        expect(seen.at(-1)).toBe(1);
        ens.dispose();
      }
      // Explicit noise: one tensor per (t, draw), t-major.
      const flat = ts.flatMap((_, i) => noises.map((n) => n[i]));
      const ens = await extractFeatures(x0, { t: ts, b: bs, model: unet, noise: flat, ensemble: K });
      for (const { t, b, map } of ens.entries()) expect(bits(map)).toEqual(bits(byHand.get(`${t}:${b}`)!));
      ens.dispose();
      // Pooling applies to the mean.
      const pooled = await extractFeatures(x0, { t: ts, b: 4, model: unet, seed: 7, ensemble: K, pool: 8 });
      const want = adaptiveAvgPool2d(byHand.get('90:4') as tf.Tensor4D, 8);
      expect(bits(pooled.get(90, 4))).toEqual(bits(want));
      tf.dispose(want);
      pooled.dispose();
      singles.forEach((f) => f.dispose());
      tf.dispose([...byHand.values(), ...noises.flat()]);
    });

    it('rejects a bad K and noise of the wrong count; leaks nothing', async () => {
      for (const ensemble of [0, -1, 1.5, NaN, '2' as unknown as number])
        await expect(extractFeatures(x0, { t: 90, b: 4, model: unet, seed: 0, ensemble })).rejects.toThrow(InputError);
      await expect(extractFeatures(x0, { t: 90, b: 4, model: unet, seed: 0, ensemble: 0 })).rejects.toThrow(
        /ensemble must be a positive integer, got 0/,
      );
      const noise = tf.randomNormal(x0.shape, 0, 1, 'float32', 3) as tf.Tensor4D;
      await expect(
        extractFeatures(x0, { t: [90, 300], b: 4, model: unet, noise: [noise, noise], ensemble: 2 }),
      ).rejects.toThrow(/ensemble 2 × 2 steps need 4: give one ε per \(t, draw\)/);
      const before = tf.memory().numTensors;
      const f = await extractFeatures(x0, { t: [90, 300], b: [4, 15], model: unet, seed: 1, ensemble: 2, maxBatch: 3 });
      expect(tf.memory().numTensors).toBe(before + 4);
      f.dispose();
      expect(tf.memory().numTensors).toBe(before);
      noise.dispose();
    });
  });
});
