import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { sliceRows } from '../../src/backend/sliceRows';
import { tensorFromFill } from '../../src/backend/wasm/heap';
import { BACKENDS, setBackend } from '../helpers';

for (const backend of BACKENDS) {
  describe(`sliceRows on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('equals tf.slice along axis 0, for any rank', () => {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const x = tf.randomNormal([7, 3, 5], 0, 1, 'float32', 4);
        for (const [s, c] of [
          [0, 1],
          [2, 3],
          [6, 1],
          [0, 7],
        ])
          expect(Array.from(sliceRows(x, s, c).dataSync())).toEqual(Array.from(tf.slice(x, s, c).dataSync()));
      });
      expect(tf.memory().numTensors).toBe(before);
      expect(() => sliceRows(tf.zeros([3, 2]), 2, 2)).toThrow(RangeError);
    });

    it('passes gradients back to the rows it took', () => {
      const x = tf.randomNormal([5, 4], 0, 1, 'float32', 2);
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(sliceRows(v, 1, 3), 2)))(x);
      expect(Array.from(g.dataSync())).toEqual([0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0]);
      tf.dispose([x, g]);
    });

    it('tensorFromFill writes the values it is given', () => {
      const t = tensorFromFill([2, 3], (d) => d.set([1, 2, 3, 4, 5, 6]));
      expect(Array.from(t.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
      t.dispose();
    });
  });
}
