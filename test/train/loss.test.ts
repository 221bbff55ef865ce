import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { crossEntropy } from '../../src/train/loss';
import { topKAccuracy, topKCorrect } from '../../src/eval/accuracy';
import { SeededRandom } from '../../src/util/random';
import { ensureGradients } from '../../src/backend/gradients';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

/** Cross-entropy of one row in float64, the textbook way with the max shift. */
function ce64(row: number[], label: number): number {
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
  return lse - row[label];
}

for (const backend of BACKENDS) {
  describe(`crossEntropy on ${backend}`, () => {
    beforeAll(async () => {
      await setBackend(backend);
      await ensureGradients();
    });

    it('matches hand-computed values for every reduction', () => {
      const rows = [
        [2, 0, -1],
        [1, 1, 1],
        [-3, 4, 0.5],
      ];
      const labels = [0, 2, 1];
      const expected = rows.map((r, i) => ce64(r, labels[i]));
      // By hand: log(e² + 1 + e⁻¹) − 2 = 0.169846…, log 3 = 1.098612…
      expect(expected[0]).toBeCloseTo(0.169846, 6);
      expect(expected[1]).toBeCloseTo(Math.log(3), 12);
      const logits = tf.tensor2d(rows);
      const mean = crossEntropy(logits, labels);
      const sum = crossEntropy(logits, labels, { reduction: 'sum' });
      const none = crossEntropy(logits, labels, { reduction: 'none' });
      expect(mean.shape).toEqual([]);
      expect(none.shape).toEqual([3]);
      expect(compareArrays(none.dataSync(), expected, 1e-6, 1e-6).ok).toBe(true);
      expect(mean.dataSync()[0]).toBeCloseTo(expected.reduce((a, b) => a + b) / 3, 5);
      expect(sum.dataSync()[0]).toBeCloseTo(
        expected.reduce((a, b) => a + b),
        5,
      );
      tf.dispose([logits, mean, sum, none]);
    });

    it('stays finite and exact for huge logits', () => {
      const logits = tf.tensor2d([
        [1000, 0, -1000],
        [50, 60, 70],
      ]);
      const l = crossEntropy(logits, [1, 2], { reduction: 'none' });
      const v = l.dataSync();
      expect(v[0]).toBeCloseTo(1000, 3);
      expect(v[1]).toBeCloseTo(ce64([50, 60, 70], 2), 5);
      const g = tf.grad((x: tf.Tensor) => crossEntropy(x as tf.Tensor2D, [1, 2]))(logits);
      expect(Array.from(g.dataSync()).every(Number.isFinite)).toBe(true);
      tf.dispose([logits, l, g]);
    });

    it('gradient equals (softmax − onehot)/N and central differences, for every reduction', () => {
      const rng = new SeededRandom(3);
      const [n, c] = [4, 5];
      const data = Array.from({ length: n }, () => Array.from({ length: c }, () => 2 * rng.normal()));
      const labels = [4, 0, 2, 2];
      for (const reduction of ['mean', 'sum', 'none'] as const) {
        // dy for 'none' weights each example differently, to catch a wrong broadcast.
        const w = reduction === 'none' ? [0.5, -1, 2, 1.5] : [1, 1, 1, 1];
        const scale = reduction === 'mean' ? 1 / n : 1;
        const f = (x: tf.Tensor) => {
          const l = crossEntropy(x as tf.Tensor2D, labels, { reduction });
          return reduction === 'none' ? tf.sum(tf.mul(l, tf.tensor1d(w))) : l;
        };
        const x = tf.tensor2d(data);
        const g = tf.grad(f)(x);
        const analytic: number[] = [];
        const numeric: number[] = [];
        const total = (d: number[][]) => d.reduce((s, r, i) => s + w[i] * scale * ce64(r, labels[i]), 0);
        for (let i = 0; i < n; i++) {
          const m = Math.max(...data[i]);
          const z = data[i].reduce((s, v) => s + Math.exp(v - m), 0);
          for (let j = 0; j < c; j++) {
            analytic.push(w[i] * scale * (Math.exp(data[i][j] - m) / z - (j === labels[i] ? 1 : 0)));
            const h = 1e-5;
            const up = data.map((r) => [...r]);
            const dn = data.map((r) => [...r]);
            up[i][j] += h;
            dn[i][j] -= h;
            numeric.push((total(up) - total(dn)) / (2 * h));
          }
        }
        const got = g.dataSync();
        expect(compareArrays(got, analytic, 1e-6, 1e-5).ok, reduction).toBe(true);
        expect(compareArrays(got, numeric, 1e-5, 1e-4).ok, reduction).toBe(true);
        tf.dispose([x, g]);
      }
    });

    it('rejects bad labels and shapes with typed errors, and leaks nothing', () => {
      const before = tf.memory().numTensors;
      const logits = tf.tensor2d([
        [1, 2, 3],
        [0, 0, 0],
      ]);
      expect(() => crossEntropy(logits, [0, 3])).toThrow(InputError);
      expect(() => crossEntropy(logits, [0, 3])).toThrow(/labels\[1\] is 3.*\[0, 3\)/);
      expect(() => crossEntropy(logits, [0, -1])).toThrow(InputError);
      expect(() => crossEntropy(logits, [0, 1.5])).toThrow(InputError);
      expect(() => crossEntropy(logits, [0])).toThrow(/1 entries but the batch has 2/);
      expect(() => crossEntropy(tf.tensor1d([1, 2]) as unknown as tf.Tensor2D, [0])).toThrow(InputError);
      expect(() => crossEntropy(logits, [0, 1], { reduction: 'avg' as 'mean' })).toThrow(InputError);
      const fromTensor = tf.tensor1d([2, 0], 'int32');
      const l = crossEntropy(logits, fromTensor);
      expect(l.dataSync()[0]).toBeCloseTo((ce64([1, 2, 3], 2) + Math.log(3)) / 2, 5);
      tf.dispose([logits, fromTensor, l]);
      // tf.tensor1d([1, 2]) above was made inside the expect: count it.
      expect(tf.memory().numTensors).toBe(before + 1);
    });
  });

  describe(`top-k accuracy on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('counts labels among the k highest logits', () => {
      const before = tf.memory().numTensors;
      const logits = tf.tensor2d([
        [0.1, 0.5, 0.2, 0.9, 0.0, 0.3], // order 3 1 5 2 0 4
        [5, 4, 3, 2, 1, 0], // order 0 1 2 3 4 5
        [0, 1, 2, 3, 4, 5], // order 5 4 3 2 1 0
      ]);
      // Labels at ranks 1 (second), 5 (sixth), 0 (first).
      const labels = [1, 5, 5];
      expect(topKCorrect(logits, labels, [1, 2, 5, 6])).toEqual([1, 2, 2, 3]);
      expect(topKAccuracy(logits, labels, 1)).toBeCloseTo(1 / 3, 12);
      expect(topKAccuracy(logits, labels, 5)).toBeCloseTo(2 / 3, 12);
      tf.dispose(logits);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('top-5 with fewer than 5 classes counts every example', () => {
      const logits = tf.tensor2d([
        [1, 0, 0],
        [0, 1, 0],
      ]);
      expect(topKCorrect(logits, [2, 2], [1, 3, 5])).toEqual([0, 2, 2]);
      expect(() => topKCorrect(logits, [2, 3])).toThrow(InputError);
      expect(() => topKCorrect(logits, [2, 2], [0])).toThrow(InputError);
      tf.dispose(logits);
    });
  });
}
