import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { recordingGradients } from '../../src/backend/engine';
import { noGrad } from '../../src/ops/noGrad';
import { BACKENDS, setBackend } from '../helpers';

for (const backend of BACKENDS) {
  describe(`noGrad on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('returns what the function computes, shapes and dtypes included', () => {
      const x = tf.tensor2d([
        [1, 2],
        [3, 4],
      ]);
      const before = tf.memory().numTensors;
      const [a, b, c] = noGrad(() => [tf.mul(x, 2), tf.cast(tf.sum(x, 1), 'int32'), tf.reshape(x, [4, 1, 1])]);
      expect(a.shape).toEqual([2, 2]);
      expect(Array.from(a.dataSync())).toEqual([2, 4, 6, 8]);
      expect(b.dtype).toBe('int32');
      expect(Array.from(b.dataSync())).toEqual([3, 7]);
      expect(c.shape).toEqual([4, 1, 1]);
      expect(tf.memory().numTensors).toBe(before + 3);
      tf.dispose([a, b, c, x]);
      expect(noGrad(() => [])).toEqual([]);
    });

    it('its results are constants to a gradient around it', () => {
      const [u, w] = [tf.variable(tf.tensor1d([1, 2, 3])), tf.variable(tf.tensor1d([4, 5, 6]))];
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => {
        const [c] = noGrad(() => [tf.mul(u, 2)]);
        return tf.sum(tf.mul(c, w)) as tf.Scalar;
      }, [u, w]);
      expect(Object.keys(grads)).toEqual([w.name]); // nothing flows into u
      expect(Array.from(grads[w.name].dataSync())).toEqual([2, 4, 6]);
      expect(value.dataSync()[0]).toBe(2 * (4 + 10 + 18));
      tf.dispose([value, grads[w.name]]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([u, w]);
    });

    it('keeps nothing for the backward pass (the tape is off inside)', () => {
      const w = tf.variable(tf.ones([64]));
      const x = tf.randomNormal([64]);
      const chain = () => {
        let h: tf.Tensor = x;
        for (let i = 0; i < 20; i++) h = tf.tanh(tf.mul(h, 1.1));
        return h;
      };
      const alive = (useNoGrad: boolean) => {
        let inside = 0;
        const { value, grads } = tf.variableGrads(() => {
          const h = useNoGrad ? noGrad(() => [chain()])[0] : chain();
          inside = tf.memory().numTensors;
          return tf.sum(tf.mul(h, w)) as tf.Scalar;
        }, [w]);
        tf.dispose([value, ...Object.values(grads)]);
        return inside;
      };
      // Recorded ops keep what their gradients need (tanh keeps its output), 20+ tensors here.
      expect(alive(false) - alive(true)).toBeGreaterThanOrEqual(20);
      tf.dispose([w, x]);
    });
  });
}

describe('recordingGradients', () => {
  it('is true inside a gradient and nowhere else', () => {
    const seen: boolean[] = [recordingGradients()];
    const x = tf.ones([2]);
    const g = tf.grad((x: tf.Tensor) => {
      seen.push(recordingGradients());
      return tf.sum(tf.square(x));
    })(x);
    seen.push(recordingGradients());
    expect(seen).toEqual([false, true, false]);
    tf.dispose([g, x]);
  });
});
