import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disposeBatch } from '../../src/data/dataset';
import { batchNoise, onTheFlyImages } from '../../src/data/onTheFly';
import { fromReference, type FinetuneArgs } from '../../src/diffsslModel';
import { InputError } from '../../src/errors';
import { extractFeatures } from '../../src/features/extractFeatures';
import { ADMUNet } from '../../src/unet/admUnet';
import { seededNormal, stepNoise } from '../../src/util/noise';
import { fixtureJson, loadTinyUNet, setBackend } from '../helpers';

const same = (a: tf.Tensor, b: tf.Tensor) => expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
const differ = (a: tf.Tensor, b: tf.Tensor) => expect(Array.from(a.dataSync())).not.toEqual(Array.from(b.dataSync()));

describe('seeded noise: every seed reproduces, 0 and negative ones included', () => {
  let unet: ADMUNet;
  let x0: tf.Tensor4D;
  beforeAll(async () => {
    await setBackend('wasm');
    unet = await loadTinyUNet();
    x0 = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 11) as tf.Tensor4D;
  });
  afterAll(() => {
    unet?.dispose();
    x0?.dispose();
  });

  it('seededNormal: the same (seed, stream) twice is the same; other seeds and streams differ', () => {
    for (const seed of [0, -1, 1, 2 ** 40]) {
      const [a, b, c] = [seededNormal([64], seed), seededNormal([64], seed), seededNormal([64], seed, 1)];
      same(a, b);
      differ(a, c);
      tf.dispose([a, b, c]);
    }
    // (seed, step) pairs whose XOR agrees still differ.
    const [s0t1, s1t0] = [seededNormal([64], 0, 1), seededNormal([64], 1, 0)];
    differ(s0t1, s1t0);
    tf.dispose([s0t1, s1t0]);
    const [z, m, big] = [seededNormal([64], 0), seededNormal([64], -1), seededNormal([64], 2 ** 32)];
    differ(z, m);
    differ(z, big);
    tf.dispose([z, m, big]);
    const before = tf.memory().numTensors;
    expect(() => seededNormal([4], 0.5)).toThrow(InputError);
    expect(() => stepNoise([4], [10, 0.5], 0)).toThrow(/stream\[0\]/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('extractFeatures: seed 0 gives the same features twice, and each t the same whatever the order of t', async () => {
    const a = await extractFeatures(x0, { t: [10, 90], b: 4, model: unet, seed: 0 });
    const b = await extractFeatures(x0, { t: [10, 90], b: 4, model: unet, seed: 0 });
    const c = await extractFeatures(x0, { t: [90, 10], b: 4, model: unet, seed: 0 });
    const d = await extractFeatures(x0, { t: 10, b: 4, model: unet, seed: -3 });
    for (const t of [10, 90]) {
      same(a.get(t, 4), b.get(t, 4));
      same(a.get(t, 4), c.get(t, 4));
    }
    differ(a.get(10, 4), d.get(10, 4));
    [a, b, c, d].forEach((f) => f.dispose());
    await expect(extractFeatures(x0, { t: 10, b: 4, model: unet, seed: 1.5 })).rejects.toThrow(
      /seed must be an integer/,
    );
  });

  it('DiffSSLModel.logits: seed 0 gives the same logits twice, and each t the same x_t whatever the order of t_list', () => {
    const args: FinetuneArgs = { ...fixtureJson('heads/attention/config.json').finetune_args, t_list: [10, 90] };
    const run = (t_list: number[]) => {
      const model = fromReference({ ...args, t_list }, unet);
      const taps = new Map<string, tf.Tensor>();
      const logits = model.logits(x0, {
        seed: 0,
        tap: (k, v) => k.endsWith('.x_t') && taps.set(k, tf.keep(v.clone())),
      });
      model.dispose();
      return { logits, taps };
    };
    const [a, b, c] = [run([10, 90]), run([10, 90]), run([90, 10])];
    same(a.logits, b.logits);
    same(a.taps.get('t0.x_t')!, c.taps.get('t1.x_t')!);
    same(a.taps.get('t1.x_t')!, c.taps.get('t0.x_t')!);
    for (const r of [a, b, c]) tf.dispose([r.logits, ...r.taps.values()]);
  });

  it('batchNoise (on-the-fly and cached features): per-example seed 0 reproduces', () => {
    const [a, b] = [batchNoise([2, 4, 4, 3], 2, [0, 0]), batchNoise([2, 4, 4, 3], 2, [0, 0])];
    a.forEach((e, j) => same(e, b[j]));
    differ(a[0], a[1]);
    tf.dispose([...a, ...b]);
  });

  it('onTheFlyImages: a batch of a run with seed 0 gets the same noise twice', async () => {
    const images = tf.randomUniform([3, 32, 32, 3], -1, 1, 'float32', 8) as tf.Tensor4D;
    const source = {
      size: 3,
      get: (i: number) => ({ image: tf.squeeze(tf.slice(images, i, 1), [0]) as tf.Tensor3D, label: i }),
    };
    const data = onTheFlyImages(source, { size: 32, t: [10, 90] });
    const ctx = { training: false, seed: 0, epoch: 0, step: 0 };
    const [a, b] = [await data.batch([0, 2], ctx), await data.batch([0, 2], ctx)];
    const [na, nb] = [a.options!.noise as tf.Tensor4D[], b.options!.noise as tf.Tensor4D[]];
    na.forEach((e, j) => same(e, nb[j]));
    for (const batch of [a, b]) disposeBatch(batch);
    images.dispose();
  });
});
