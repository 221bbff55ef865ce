import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { multiHeadAttention } from '../../src/ops/multiHeadAttention';
import { SeededRandom } from '../../src/util/random';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

const rnd = (shape: number[], seed: number) =>
  tf.tensor(new SeededRandom(seed).normals(shape.reduce((a, b) => a * b, 1)), shape) as tf.Tensor as tf.Tensor3D;

/** The textbook batched form (what PyTorch's `Attention.forward` does), for comparison. */
function reference(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, heads: number): tf.Tensor {
  const [b, l, d] = q.shape;
  const split = (x: tf.Tensor) => tf.transpose(tf.reshape(x, [b, l, heads, d / heads]), [0, 2, 1, 3]) as tf.Tensor4D;
  const p = tf.softmax(tf.matMul(split(q), split(k), false, true));
  return tf.reshape(tf.transpose(tf.matMul(p, split(v)), [0, 2, 1, 3]), [b, l, d]);
}

for (const backend of BACKENDS) {
  describe(`multiHeadAttention on ${backend}`, () => {
    beforeAll(() => setBackend(backend));
    const [B, L, D, H] = [2, 5, 12, 3];

    it('equals the batched textbook form', () => {
      const [q, k, v] = [rnd([B, L, D], 1), rnd([B, L, D], 2), rnd([B, L, D], 3)];
      const d = compareArrays(multiHeadAttention(q, k, v, H).dataSync(), reference(q, k, v, H).dataSync(), 1e-5, 1e-5);
      expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
      tf.dispose([q, k, v]);
    });

    it('its hand-written gradient equals autodiff of the textbook form', () => {
      const [q, k, v, r] = [rnd([B, L, D], 4), rnd([B, L, D], 5), rnd([B, L, D], 6), rnd([B, L, D], 7)];
      const loss = (f: typeof reference) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        tf.sum(tf.mul(f(a, b, c, H), r));
      const ours = tf.grads(
        loss((a, b, c, h) => multiHeadAttention(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, h)),
      )([q, k, v]);
      const theirs = tf.grads(loss(reference))([q, k, v]);
      ours.forEach((g, i) => {
        const d = compareArrays(g.dataSync(), theirs[i].dataSync(), 1e-5, 1e-5);
        expect(d.ok, `${'qkv'[i]}: max abs ${d.maxAbs}`).toBe(true);
      });
      tf.dispose([q, k, v, r, ...ours, ...theirs]);
    });

    it('matches a numerical gradient', () => {
      const [q, k, v, r] = [rnd([1, 4, 4], 8), rnd([1, 4, 4], 9), rnd([1, 4, 4], 10), rnd([1, 4, 4], 11)];
      const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        tf.sum(tf.mul(multiHeadAttention(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, 2), r));
      const g = tf.grads(f)([q, k, v]);
      const eps = 1e-2;
      [q, k, v].forEach((x, which) => {
        const data = x.dataSync() as Float32Array;
        const analytic = g[which].dataSync();
        for (let i = 0; i < data.length; i++) {
          const at = (delta: number) => {
            const d2 = data.slice();
            d2[i] += delta;
            return tf.tidy(() => {
              const args = [q, k, v].map((t, j) => (j === which ? tf.tensor3d(d2, [1, 4, 4]) : t));
              return f(args[0], args[1], args[2]).dataSync()[0];
            });
          };
          const numeric = (at(eps) - at(-eps)) / (2 * eps);
          expect(Math.abs(numeric - analytic[i]), `${'qkv'[which]}[${i}]`).toBeLessThan(
            2e-3 + 2e-3 * Math.abs(numeric),
          );
        }
      });
      tf.dispose([q, k, v, r, ...g]);
    });

    it('forward and gradient run only 2-D matMuls without transpose flags; nothing leaks', () => {
      const [q, k, v] = [rnd([B, L, D], 12), rnd([B, L, D], 13), rnd([B, L, D], 14)];
      const kernel = tf.getKernel('BatchMatMul', tf.getBackend())!;
      const orig = kernel.kernelFunc;
      let calls = 0;
      const bad: string[] = [];
      (kernel as { kernelFunc: tf.KernelFunc }).kernelFunc = (args) => {
        const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
        const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
        calls++;
        if (transposeA || transposeB || [a, b].some((t) => t.shape.length > 2 && t.shape[0] !== 1))
          bad.push(`[${a.shape}]·[${b.shape}] ${transposeA} ${transposeB}`);
        return orig(args);
      };
      const before = tf.memory().numTensors;
      try {
        tf.dispose(
          tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
            tf.sum(tf.square(multiHeadAttention(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, H))),
          )([q, k, v]),
        );
      } finally {
        (kernel as { kernelFunc: tf.KernelFunc }).kernelFunc = orig;
      }
      expect(bad).toEqual([]);
      expect(calls).toBe(B * H * (2 + 5)); // per (example, head): q·kᵀ and p·v forward; q·kᵀ again, dO·vᵀ, dS·k, dSᵀ·q, pᵀ·dO backward
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([q, k, v]);
    });

    it('bad shapes are InputErrors', () => {
      const [a, b] = [tf.zeros([2, 5, 12]) as tf.Tensor3D, tf.zeros([2, 4, 12]) as tf.Tensor3D];
      expect(() => multiHeadAttention(a, b, a, 3)).toThrow(InputError);
      expect(() => multiHeadAttention(a, a, a, 5)).toThrow(/heads/);
      tf.dispose([a, b]);
    });
  });
}
