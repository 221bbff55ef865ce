import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { alias, recordingGradients } from '../../src/backend/engine';
import { BACKENDS, setBackend } from '../helpers';

for (const backend of BACKENDS) {
  describe(`engine tricks on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('alias is a new tensor on the same data: no new buffer, the data outlives the original, freed with the last', () => {
      const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
      const before = tf.memory();
      const a = alias(x);
      expect(a).not.toBe(x);
      expect(a.shape).toEqual([2, 3]);
      expect(tf.memory().numTensors).toBe(before.numTensors + 1);
      expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers);
      x.dispose();
      expect(Array.from(a.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
      a.dispose();
      expect(tf.memory().numTensors).toBe(before.numTensors - 1);
      expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers - 1);
    });

    it('alias is differentiable (identity gradient)', () => {
      const x = tf.tensor1d([1, -2, 3]);
      const w = tf.tensor1d([0.5, 4, -1]);
      const before = tf.memory().numTensors;
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(alias(v), w)))(x);
      expect(Array.from(g.dataSync())).toEqual([0.5, 4, -1]);
      g.dispose();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, w]);
    });

    it('recordingGradients is true inside tf.grad and tf.variableGrads only', () => {
      const seen: [string, boolean][] = [];
      seen.push(['outside', recordingGradients()]);
      tf.tidy(() => seen.push(['tidy', recordingGradients()]));
      const x = tf.scalar(2);
      const v = tf.variable(tf.scalar(3));
      const before = tf.memory().numTensors;
      const g = tf.grad((a: tf.Tensor) => {
        seen.push(['grad', recordingGradients()]);
        return tf.square(a);
      })(x);
      const { value, grads } = tf.variableGrads(() => {
        seen.push(['variableGrads', recordingGradients()]);
        return tf.mul(v, v) as tf.Scalar;
      }, [v]);
      seen.push(['after', recordingGradients()]);
      expect(seen).toEqual([
        ['outside', false],
        ['tidy', false],
        ['grad', true],
        ['variableGrads', true],
        ['after', false],
      ]);
      tf.dispose([g, value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, v]);
    });
  });
}
