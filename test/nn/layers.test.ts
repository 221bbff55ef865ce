import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { BatchNorm2d, gelu, LayerNorm } from '../../src/nn/layers';
import { SeededRandom } from '../../src/util/random';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

/** erf by its Maclaurin series (exact to ~1e-15 for |x| ≤ 3 in float64). */
function erf(x: number): number {
  let sum = 0,
    term = x;
  for (let n = 0; n < 200; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

for (const backend of BACKENDS) {
  describe(`head layers on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('gelu is the exact erf form, not the tanh approximation', () => {
      const xs = Array.from({ length: 61 }, (_, i) => -3 + i * 0.1);
      const got = tf.tidy(() => gelu(tf.tensor1d(xs)).dataSync());
      const exact = xs.map((x) => 0.5 * x * (1 + erf(x / Math.SQRT2)));
      const tanhForm = xs.map((x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))));
      expect(compareArrays(got, exact, 1e-6, 1e-6).ok).toBe(true);
      expect(compareArrays(got, tanhForm, 1e-6, 1e-6).ok).toBe(false); // they differ by up to ~5e-4
    });

    it('LayerNorm normalises the last axis with biased variance, eps 1e-5', () => {
      const ln = new LayerNorm(4);
      const x = tf.tensor2d([
        [1, 2, 3, 4],
        [0, 0, 0, 1e-3],
      ]);
      const y = ln.apply(x).dataSync();
      const want = [
        [1, 2, 3, 4],
        [0, 0, 0, 1e-3],
      ].flatMap((r) => {
        const m = r.reduce((a, b) => a + b) / 4;
        const v = r.reduce((a, b) => a + (b - m) ** 2, 0) / 4;
        return r.map((e) => (e - m) / Math.sqrt(v + 1e-5));
      });
      expect(compareArrays(y, want, 1e-5, 1e-5).ok).toBe(true);
      tf.dispose(x);
      tf.dispose(
        ln
          .state()
          .map((e) => (e.kind === 'float' ? e.variable : null))
          .filter((v): v is tf.Variable => v !== null),
      );
    });

    describe('BatchNorm2d', () => {
      const rng = new SeededRandom(3);
      const [n, h, w, c] = [3, 4, 5, 2];
      const data = rng.normals(n * h * w * c, 0.5, 2);
      const perChannel = (k: number) => Array.from({ length: n * h * w }, (_, i) => data[i * c + k]);
      const setup = () => {
        const bn = new BatchNorm2d(c);
        bn.weight.variable.assign(tf.tensor1d([1.5, 0.5]));
        bn.bias.variable.assign(tf.tensor1d([0.1, -0.2]));
        bn.runningMean.variable.assign(tf.tensor1d([0.3, -0.4]));
        bn.runningVar.variable.assign(tf.tensor1d([0.8, 1.2]));
        bn.numBatchesTracked = 100;
        return bn;
      };
      const free = (bn: BatchNorm2d) => bn.state().forEach((e) => e.kind === 'float' && e.variable.dispose());

      it('eval: running statistics, nothing updated', () => {
        const bn = setup();
        const x = tf.tensor4d(data, [n, h, w, c]);
        const y = bn.apply(x, false).dataSync();
        for (let k = 0; k < c; k++) {
          const [g, b, m, v] = [[1.5, 0.5][k], [0.1, -0.2][k], [0.3, -0.4][k], [0.8, 1.2][k]];
          const want = perChannel(k).map((e) => ((e - m) / Math.sqrt(v + 1e-5)) * g + b);
          const gotK = Array.from({ length: n * h * w }, (_, i) => y[i * c + k]);
          expect(compareArrays(gotK, want, 1e-5, 1e-5).ok, `channel ${k}`).toBe(true);
        }
        expect(Array.from(bn.runningMean.variable.dataSync())).toEqual([0.30000001192092896, -0.4000000059604645]);
        expect(bn.numBatchesTracked).toBe(100);
        x.dispose();
        free(bn);
      });

      it('train: batch statistics (biased), running stats move by momentum 0.1 (unbiased variance), the batch is counted', () => {
        const bn = setup();
        const x = tf.tensor4d(data, [n, h, w, c]);
        const before = tf.memory().numTensors;
        const y = bn.apply(x, true);
        expect(tf.memory().numTensors).toBe(before + 1);
        const yd = y.dataSync();
        const cnt = n * h * w;
        for (let k = 0; k < c; k++) {
          const vals = perChannel(k);
          const mean = vals.reduce((a, b) => a + b) / cnt;
          const varB = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / cnt;
          const [g, b] = [[1.5, 0.5][k], [0.1, -0.2][k]];
          const want = vals.map((e) => ((e - mean) / Math.sqrt(varB + 1e-5)) * g + b);
          const gotK = Array.from({ length: cnt }, (_, i) => yd[i * c + k]);
          expect(compareArrays(gotK, want, 1e-5, 1e-5).ok, `channel ${k}`).toBe(true);
          expect(bn.runningMean.variable.dataSync()[k]).toBeCloseTo(0.9 * [0.3, -0.4][k] + 0.1 * mean, 5);
          expect(bn.runningVar.variable.dataSync()[k]).toBeCloseTo(
            0.9 * [0.8, 1.2][k] + 0.1 * varB * (cnt / (cnt - 1)),
            5,
          );
        }
        expect(bn.numBatchesTracked).toBe(101);
        tf.dispose([x, y]);
        free(bn);
      });

      it('train mode inside a gradient: the gradient flows through the batch statistics', () => {
        const bn = setup();
        const x = tf.tensor4d(data, [n, h, w, c]);
        const r = tf.tensor4d(new SeededRandom(4).normals(data.length), [n, h, w, c]);
        const { grads, value } = tf.variableGrads(
          () => tf.sum(tf.mul(bn.apply(x, true), r)) as tf.Scalar,
          [bn.weight.variable, bn.bias.variable],
        );
        // d/dbias = Σ r per channel; d/dweight = Σ r·x̂ per channel
        const rd = r.dataSync();
        for (let k = 0; k < c; k++)
          expect(grads[bn.bias.variable.name].dataSync()[k]).toBeCloseTo(
            Array.from({ length: n * h * w }, (_, i) => rd[i * c + k]).reduce((a, b) => a + b),
            4,
          );
        tf.dispose([x, r, value, ...Object.values(grads)]);
        free(bn);
      });

      it('training needs more than one value per channel; channels must match', () => {
        const bn = new BatchNorm2d(2);
        expect(() => bn.apply(tf.zeros([1, 1, 1, 2]) as tf.Tensor4D, true)).toThrow(InputError);
        expect(() => bn.apply(tf.zeros([1, 2, 2, 3]) as tf.Tensor4D, false)).toThrow(/channels/);
        free(bn);
      });
    });
  });
}
