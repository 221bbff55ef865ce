import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { concatChannels } from '../../src/backend/concatChannels';
import { BACKENDS, setBackend } from '../helpers';

for (const backend of BACKENDS) {
  describe(`concatChannels on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('equals tf.concat along the channels, and its gradient gives each input its channels of dy', () => {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        for (const [ca, cb] of [
          [3, 5],
          [4, 4],
          [1, 2],
        ]) {
          const a = tf.randomNormal([2, 3, 4, ca], 0, 1, 'float32', 1) as tf.Tensor4D;
          const b = tf.randomNormal([2, 3, 4, cb], 0, 1, 'float32', 2) as tf.Tensor4D;
          expect(Array.from(concatChannels(a, b).dataSync())).toEqual(Array.from(tf.concat([a, b], 3).dataSync()));
          const r = tf.randomNormal([2, 3, 4, ca + cb], 0, 1, 'float32', 3);
          const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) =>
            tf.sum(tf.mul(concatChannels(x as tf.Tensor4D, y as tf.Tensor4D), r)),
          )([a, b]);
          const [wa, wb] = tf.split(r, [ca, cb], 3);
          expect(Array.from(ga.dataSync())).toEqual(Array.from(wa.dataSync()));
          expect(Array.from(gb.dataSync())).toEqual(Array.from(wb.dataSync()));
        }
      });
      expect(tf.memory().numTensors).toBe(before);
    });

    it('refuses maps of different examples or sides', () => {
      tf.tidy(() => {
        expect(() => concatChannels(tf.zeros([2, 3, 3, 1]), tf.zeros([1, 3, 3, 1]))).toThrow(RangeError);
        expect(() => concatChannels(tf.zeros([1, 3, 3, 1]), tf.zeros([1, 3, 4, 1]))).toThrow(RangeError);
      });
    });
  });
}
