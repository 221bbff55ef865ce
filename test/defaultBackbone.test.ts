import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/errors';
import { loadFashionMNIST } from '../src/data/fashionMnist';
import { ADMUNet } from '../src/unet/admUnet';
import { DEFAULT_BACKBONE, extractFeatures, loadDefaultBackbone } from '../src/defaultBackbone';
import { setBackend } from './helpers';

const DIR = path.resolve(__dirname, '..', DEFAULT_BACKBONE.dir);
const flags = JSON.parse(fs.readFileSync(path.join(DIR, 'flags.json'), 'utf8'));

describe('the embedded default backbone', () => {
  let unet: ADMUNet;
  let images: tf.Tensor4D;
  beforeAll(async () => {
    await setBackend('wasm');
    unet = await loadDefaultBackbone();
    const test = await loadFashionMNIST({ split: 'test' });
    images = tf.slice(test.images, 0, 16);
    test.dispose();
  });
  afterAll(() => {
    unet.dispose();
    images.dispose();
  });

  it('loads through ADMUNet.load with its flags, and its block table is the one its flags build', async () => {
    const viaLoad = await ADMUNet.load(path.join(DIR, 'weights.safetensors'), flags);
    const fresh = ADMUNet.create(flags, 0);
    expect(unet.blocks).toEqual(fresh.blocks);
    expect(unet.blocks.length).toBe(19);
    expect(unet.config.imageSize).toBe(DEFAULT_BACKBONE.imageSize);
    expect(unet.config.inChannels).toBe(DEFAULT_BACKBONE.inChannels);
    expect(unet.numParameters).toBe(fresh.numParameters);
    for (const [k, v] of viaLoad.stateDict()) expect(unet.stateDict().get(k)!.data).toEqual(v.data);
    viaLoad.dispose();
    fresh.dispose();
  });

  it('has learned to denoise: its ε error on test images is far below a random-weight model’s', () => {
    const random = ADMUNet.create(flags, 0);
    const mse = (m: ADMUNet, t: number) =>
      tf.tidy(() => {
        const noise = tf.randomNormal(images.shape, 0, 1, 'float32', 3) as tf.Tensor4D;
        const ts = Array(16).fill(t);
        const out = m.forward(m.qSample(images, ts, noise), ts).output!;
        return tf.mean(tf.square(tf.sub(out, noise))).dataSync()[0];
      });
    for (const t of [50, 300, 800]) {
      const [trained, untrained] = [mse(unet, t), mse(random, t)];
      expect(trained, `t = ${t}`).toBeLessThan(0.25);
      expect(trained, `t = ${t}`).toBeLessThan(0.3 * untrained);
    }
    random.dispose();
  });

  it('extractFeatures without a model equals extractFeatures with loadDefaultBackbone(), and leaks nothing after the first load', async () => {
    const opts = { t: [50, 200], b: [6, 12], seed: 0 };
    const a = await extractFeatures(images, opts);
    a.dispose();
    const before = tf.memory().numTensors;
    const [viaDefault, viaModel] = [
      await extractFeatures(images, opts),
      await extractFeatures(images, { ...opts, model: unet }),
    ];
    for (const t of opts.t)
      for (const b of opts.b) expect(viaDefault.get(t, b).dataSync()).toEqual(viaModel.get(t, b).dataSync());
    viaDefault.dispose();
    viaModel.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('images of another side or channel count get an InputError that says what the default takes', async () => {
    const before = tf.memory().numTensors;
    for (const shape of [
      [2, 32, 32, 1],
      [2, 28, 28, 3],
    ] as [number, number, number, number][]) {
      const x = tf.zeros(shape) as tf.Tensor4D;
      await expect(extractFeatures(x, { t: 50, b: 6 })).rejects.toThrow(InputError);
      await expect(extractFeatures(x, { t: 50, b: 6 })).rejects.toThrow(/default backbone .* takes \[N, 28, 28, 1\]/);
      x.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
