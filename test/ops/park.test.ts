import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { park } from '../../src/ops/park';
import { BACKENDS, setBackend } from '../helpers';

for (const backend of BACKENDS) {
  describe(`park on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('gives back the same values once, holding the tensor outside the backend on wasm while parked', () => {
      const x = tf.randomNormal([2, 8, 8, 4], 0, 1, 'float32', 3);
      const want = Array.from(x.dataSync());
      const before = tf.memory().numTensors;
      const parked = park(x);
      // On wasm the data left the heap: the tensor is gone until taken.
      expect(tf.memory().numTensors).toBe(backend === 'wasm' ? before - 1 : before);
      const back = parked.take();
      expect(back.shape).toEqual([2, 8, 8, 4]);
      expect(Array.from(back.dataSync())).toEqual(want);
      expect(() => parked.take()).toThrow(/already taken/);
      parked.dispose();
      back.dispose();
      expect(tf.memory().numTensors).toBe(before - 1);
    });

    it('keeps small tensors and tensors on a recorded tape as they are', () => {
      const x = tf.ones([4, 4]);
      const small = park(x, 1024);
      expect(small.take()).toBe(x);
      const y = tf.ones([4, 4]);
      const g = tf.grad((v: tf.Tensor) => {
        const kept = park(tf.mul(v, 2)).take();
        return tf.sum(tf.square(kept));
      })(y);
      expect(Array.from(g.dataSync())).toEqual(new Array(16).fill(8));
      tf.dispose([x, y, g]);
    });

    it('dispose frees what was never taken', () => {
      const before = tf.memory().numTensors;
      const parked = park(tf.ones([64, 64]));
      parked.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}
