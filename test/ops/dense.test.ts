import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { dense, matMul2d, matMulRowsLeft } from '../../src/ops/dense';
import { SeededRandom } from '../../src/util/random';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

const rnd = (shape: number[], seed: number) =>
  tf.tensor(new SeededRandom(seed).normals(shape.reduce((a, b) => a * b, 1)), shape);

/** Central differences of `f` (a scalar function of `x`'s values) at every element of x, in float64 on the JS side. */
function numericGrad(f: (x: Float32Array) => number, x: Float32Array, eps = 1e-2): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const xp = x.slice(),
      xm = x.slice();
    xp[i] += eps;
    xm[i] -= eps;
    g[i] = (f(xp) - f(xm)) / (2 * eps);
  }
  return g;
}

for (const backend of BACKENDS) {
  describe(`matMul2d and dense on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('matMulRowsLeft equals x · rowsᵀ, passes gradients to both, names bad shapes and leaks nothing', () => {
      const [x, rows] = [rnd([4, 6], 3), rnd([9, 6], 4)] as tf.Tensor2D[];
      const want = tf.tidy(() => tf.matMul(x, tf.transpose(rows)));
      const before = tf.memory().numTensors;
      const y = matMulRowsLeft(x, rows);
      expect(y.shape).toEqual([4, 9]);
      const d = compareArrays(y.dataSync(), want.dataSync(), 1e-6, 1e-6);
      expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
      y.dispose();
      expect(tf.memory().numTensors).toBe(before);
      want.dispose();
      const loss = (f: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor) => (a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.square(f(a as tf.Tensor2D, b as tf.Tensor2D)));
      const got = tf.grads(loss(matMulRowsLeft))([x, rows]);
      const wantGrads = tf.grads(loss((a, b) => tf.matMul(a, tf.transpose(b))))([x, rows]);
      got.forEach((g, i) => expect(compareArrays(g.dataSync(), wantGrads[i].dataSync(), 1e-5, 1e-5).ok).toBe(true));
      expect(() => matMulRowsLeft(x, rnd([9, 5], 5) as tf.Tensor2D)).toThrow(InputError);
      tf.dispose([x, rows, ...got, ...wantGrads]);
    });

    it('matMul2d equals tf.matMul', () => {
      const [a, b] = [rnd([7, 5], 1), rnd([5, 3], 2)] as tf.Tensor2D[];
      const d = compareArrays(matMul2d(a, b).dataSync(), tf.matMul(a, b).dataSync(), 1e-6, 1e-6);
      expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
      tf.dispose([a, b]);
    });

    it("gradients equal tf.matMul's autodiff and a numerical gradient", () => {
      const [a, b, r] = [rnd([6, 4], 3), rnd([4, 5], 4), rnd([6, 5], 5)] as tf.Tensor2D[];
      const loss = (mm: (x: tf.Tensor2D, y: tf.Tensor2D) => tf.Tensor2D) => (x: tf.Tensor, y: tf.Tensor) =>
        tf.sum(tf.mul(mm(x as tf.Tensor2D, y as tf.Tensor2D), r));
      const ours = tf.grads(loss(matMul2d))([a, b]);
      const theirs = tf.grads(loss((x, y) => tf.matMul(x, y)))([a, b]);
      for (let i = 0; i < 2; i++) {
        const d = compareArrays(ours[i].dataSync(), theirs[i].dataSync(), 1e-5, 1e-5);
        expect(d.ok, `input ${i}: max abs ${d.maxAbs}`).toBe(true);
      }
      // The loss is linear in each input, so central differences are exact up to float32 rounding.
      const [ad, bd, rd] = [a, b, r].map((t) => t.dataSync() as Float32Array);
      const f = (x: Float32Array, y: Float32Array) =>
        tf.tidy(
          () =>
            tf
              .sum(tf.mul(tf.matMul(tf.tensor2d(x, [6, 4]), tf.tensor2d(y, [4, 5])), tf.tensor2d(rd, [6, 5])))
              .dataSync()[0],
        );
      const na = numericGrad((x) => f(x, bd), ad);
      const nb = numericGrad((y) => f(ad, y), bd);
      expect(compareArrays(ours[0].dataSync(), na, 2e-3, 2e-3).ok).toBe(true);
      expect(compareArrays(ours[1].dataSync(), nb, 2e-3, 2e-3).ok).toBe(true);
      tf.dispose([a, b, r, ...ours, ...theirs]);
    });

    it('forward and gradient run plain 2-D matMuls without transpose flags', () => {
      const [a, b] = [rnd([8, 4], 6), rnd([4, 3], 7)] as tf.Tensor2D[];
      // Spy on the backend's BatchMatMul kernel: every call must be 2-D (or batch 1) without flags.
      const kernel = tf.getKernel('BatchMatMul', tf.getBackend())!;
      const orig = kernel.kernelFunc;
      const seen: { shapes: number[][]; ta: boolean; tb: boolean }[] = [];
      (kernel as { kernelFunc: tf.KernelFunc }).kernelFunc = (args) => {
        const { a: x, b: y } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
        const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
        seen.push({ shapes: [x.shape, y.shape], ta: transposeA, tb: transposeB });
        return orig(args);
      };
      try {
        tf.dispose(
          tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(matMul2d(x as tf.Tensor2D, y as tf.Tensor2D)))([a, b]),
        );
      } finally {
        (kernel as { kernelFunc: tf.KernelFunc }).kernelFunc = orig;
      }
      expect(seen.length).toBe(3); // forward, dA, dB
      for (const s of seen) {
        expect([s.ta, s.tb]).toEqual([false, false]);
        for (const sh of s.shapes) expect(sh.length === 2 || sh[0] === 1, `[${sh}]`).toBe(true);
      }
      tf.dispose([a, b]);
    });

    it('dense folds leading axes, adds the bias, and its gradients match autodiff', () => {
      const [x, w, b] = [rnd([2, 3, 4], 8), rnd([4, 5], 9), rnd([5], 10)];
      const y = dense(x as tf.Tensor3D, w as tf.Tensor2D, b as tf.Tensor1D);
      expect(y.shape).toEqual([2, 3, 5]);
      const want = tf.add(tf.reshape(tf.matMul(tf.reshape(x, [6, 4]), w as tf.Tensor2D), [2, 3, 5]), b);
      expect(compareArrays(y.dataSync(), want.dataSync(), 1e-6, 1e-6).ok).toBe(true);
      const f = (fn: (p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => tf.Tensor) =>
        tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => tf.sum(tf.square(fn(p, q, r))))([x, w, b]);
      const ours = f((p, q, r) => dense(p as tf.Tensor3D, q as tf.Tensor2D, r as tf.Tensor1D));
      const theirs = f((p, q, r) =>
        tf.add(tf.reshape(tf.matMul(tf.reshape(p, [6, 4]), q as tf.Tensor2D), [2, 3, 5]), r),
      );
      ours.forEach((g, i) =>
        expect(compareArrays(g.dataSync(), theirs[i].dataSync(), 1e-5, 1e-5).ok, `input ${i}`).toBe(true),
      );
      tf.dispose([x, w, b, y, want, ...ours, ...theirs]);
    });

    it('no tensor outlives a forward and backward pass', () => {
      const [x, w] = [rnd([3, 4], 11), rnd([4, 2], 12)];
      const before = tf.memory().numTensors;
      const g = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(dense(p, q as tf.Tensor2D)))([x, w]);
      tf.dispose(g);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, w]);
    });

    it('bad shapes are InputErrors', () => {
      const [a, b, v] = [tf.zeros([2, 3]), tf.zeros([4, 5]), tf.zeros([3])];
      expect(() => matMul2d(a as tf.Tensor2D, b as tf.Tensor2D)).toThrow(InputError);
      expect(() => matMul2d(v as unknown as tf.Tensor2D, b as tf.Tensor2D)).toThrow(/2-D/);
      expect(() => dense(a, b as tf.Tensor2D)).toThrow(/3 features/);
      expect(() => dense(a, tf.zeros([3, 2]) as tf.Tensor2D, tf.zeros([3]) as tf.Tensor1D)).toThrow(/bias/);
      tf.dispose([a, b, v]);
    });
  });
}
