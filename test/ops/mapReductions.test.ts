import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { channelSums, spatialMean } from '../../src/ops/mapReductions';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

for (const backend of BACKENDS) {
  describe(`map reductions on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('spatialMean is the mean over rows and columns, and its gradient spreads dy / (H·W) over the map', () => {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const [N, H, W, C] = [2, 5, 6, 3];
        const x = tf.randomNormal([N, H, W, C], 0, 1, 'float32', 5) as tf.Tensor4D;
        const m = spatialMean(x);
        expect(m.shape).toEqual([N, 1, 1, C]);
        const d0 = compareArrays(m.dataSync(), tf.mean(x, [1, 2], true).dataSync(), 1e-6, 1e-5);
        expect(d0.ok, `max abs ${d0.maxAbs}`).toBe(true);
        const s = tf.randomNormal([N, 1, 1, C], 0, 1, 'float32', 7);
        const grad = tf.grad((v) => tf.sum(tf.mul(spatialMean(v as tf.Tensor4D), s)))(x);
        const want = tf.mul(tf.onesLike(x), tf.div(s, H * W));
        const d = compareArrays(grad.dataSync(), want.dataSync(), 1e-6, 1e-5);
        expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
      });
      expect(tf.memory().numTensors).toBe(before);
    });

    it('channelSums is the sum over examples, rows and columns', () => {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const x = tf.randomNormal([3, 7, 5, 4], 1, 2, 'float32', 8) as tf.Tensor4D;
        const got = channelSums(x);
        expect(got.shape).toEqual([4]);
        const d = compareArrays(got.dataSync(), tf.sum(x, [0, 1, 2]).dataSync(), 1e-4, 1e-5);
        expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
      });
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}
