import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { ensureGradients } from '../../src/backend/gradients';
import {
  adam,
  getLearningRate,
  makeOptimizer,
  momentum,
  referenceRecipe,
  setLearningRate,
  sgd,
  StepLR,
} from '../../src/train/optimizers';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

/** One update of loss = Σ c·w (gradient c, constant) and the weights after it. */
function stepOnce(opt: tf.Optimizer, w: tf.Variable, c: number[]): Float32Array {
  const g = tf.tensor1d(c);
  opt.applyGradients([{ name: w.name, tensor: g }]);
  g.dispose();
  return w.dataSync() as Float32Array;
}

for (const backend of BACKENDS) {
  describe(`optimizers on ${backend}`, () => {
    beforeAll(async () => {
      await setBackend(backend);
      await ensureGradients();
    });

    it('SGD: w ← w − lr·g, and a new lr takes effect on the next step', () => {
      const w = tf.variable(tf.tensor1d([1, 2]));
      const opt = sgd(0.5);
      expect(compareArrays(stepOnce(opt, w, [1, -2]), [0.5, 3], 1e-7, 0).ok).toBe(true);
      setLearningRate(opt, 0.1);
      expect(getLearningRate(opt)).toBe(0.1);
      expect(compareArrays(stepOnce(opt, w, [1, -2]), [0.4, 3.2], 1e-6, 0).ok).toBe(true);
      opt.dispose();
      w.dispose();
    });

    it("setting tfjs SGD's learningRate property alone does not change its step (why setLearningRate exists)", () => {
      const w = tf.variable(tf.tensor1d([0]));
      const opt = tf.train.sgd(1);
      (opt as unknown as { learningRate: number }).learningRate = 0.001;
      expect(stepOnce(opt, w, [1])[0]).toBeCloseTo(-1, 6);
      opt.dispose();
      w.dispose();
    });

    it('momentum: v ← m·v + g, w ← w − lr·v across an lr change (torch.optim.SGD semantics)', () => {
      const w = tf.variable(tf.tensor1d([1]));
      const opt = momentum(0.1, 0.9);
      stepOnce(opt, w, [2]); // v = 2, w = 1 − 0.2 = 0.8
      setLearningRate(opt, 0.01);
      const got = stepOnce(opt, w, [1]); // v = 1.8 + 1 = 2.8, w = 0.8 − 0.028
      expect(got[0]).toBeCloseTo(0.772, 6);
      const nest = momentum(0.1, 0.9, true);
      const w2 = tf.variable(tf.tensor1d([1]));
      // Nesterov: v = g = 2; w −= lr·(g + m·v) = 0.1·(2 + 1.8)
      expect(stepOnce(nest, w2, [2])[0]).toBeCloseTo(1 - 0.38, 6);
      tf.dispose([w, w2]);
      opt.dispose();
      nest.dispose();
    });

    it('Adam: bias-corrected steps with ε = 1e-8, and lr changes take effect', () => {
      const w = tf.variable(tf.tensor1d([1, -1]));
      const opt = adam(0.01);
      const [b1, b2, eps] = [0.9, 0.999, 1e-8];
      let m = [0, 0],
        v = [0, 0];
      const ref = [1, -1];
      const grads = [
        [0.5, -3],
        [0.1, 2],
        [-1, 0.3],
      ];
      const lrs = [0.01, 0.01, 0.001];
      for (let t = 1; t <= 3; t++) {
        if (lrs[t - 1] !== getLearningRate(opt)) setLearningRate(opt, lrs[t - 1]);
        const g = grads[t - 1];
        m = m.map((mi, i) => b1 * mi + (1 - b1) * g[i]);
        v = v.map((vi, i) => b2 * vi + (1 - b2) * g[i] * g[i]);
        for (let i = 0; i < 2; i++)
          ref[i] -= (lrs[t - 1] * (m[i] / (1 - b1 ** t))) / (Math.sqrt(v[i] / (1 - b2 ** t)) + eps);
        const got = stepOnce(opt, w, g);
        expect(compareArrays(got, ref, 1e-6, 1e-6).ok, `step ${t}: ${got} vs ${ref}`).toBe(true);
      }
      opt.dispose();
      w.dispose();
    });

    it('StepLR multiplies the rate by gamma every stepSize epochs and sets it on the optimizer', () => {
      const opt = makeOptimizer({ type: 'sgd', lr: 0.05 });
      const s = new StepLR(opt, { stepSize: 7, gamma: 0.1 });
      const expected = (e: number) => 0.05 * 0.1 ** Math.floor(e / 7);
      for (let e = 0; e < 28; e++) expect(s.lrAt(e)).toBeCloseTo(expected(e), 15);
      expect(s.lrAt(6)).toBeCloseTo(0.05, 15);
      expect(s.lrAt(7)).toBeCloseTo(0.005, 15);
      expect(s.lrAt(21)).toBeCloseTo(0.00005, 15);
      // torch-style stepping: after 7 step() calls the optimizer runs at 0.005.
      for (let e = 0; e < 7; e++) s.step();
      expect(s.epoch).toBe(7);
      expect(getLearningRate(opt)).toBeCloseTo(0.005, 15);
      const w = tf.variable(tf.tensor1d([0]));
      expect(stepOnce(opt, w, [1])[0]).toBeCloseTo(-0.005, 7);
      s.setEpoch(0);
      expect(stepOnce(opt, w, [1])[0]).toBeCloseTo(-0.055, 7);
      expect(() => s.lrAt(-1)).toThrow(InputError);
      expect(() => new StepLR(opt, { stepSize: 0 })).toThrow(InputError);
      w.dispose();
      opt.dispose();
    });

    it('factories reject bad hyper-parameters; the reference recipe is plain SGD', () => {
      expect(() => sgd(0)).toThrow(InputError);
      expect(() => momentum(0.1, 1)).toThrow(InputError);
      expect(() => adam(0.1, 0.9, 1.5)).toThrow(InputError);
      expect(() => makeOptimizer({ type: 'rmsprop' } as never)).toThrow(/'sgd', 'momentum' or 'adam'/);
      expect(() => setLearningRate(sgd(1), -1)).toThrow(InputError);
      expect(referenceRecipe('attention')).toMatchObject({
        optimizer: { type: 'sgd', lr: 5e-2 },
        batchSize: 32,
        epochs: 28,
        stepSize: 7,
        gamma: 0.1,
      });
      expect(referenceRecipe('difffeed')).toMatchObject({ optimizer: { type: 'sgd', lr: 1e-2 }, batchSize: 4 });
      expect(makeOptimizer({ type: 'adam', lr: 1e-3 }).getClassName()).toBe('Adam');
    });
  });
}
