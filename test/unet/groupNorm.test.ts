import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { affineSilu, groupNormAffine } from '../../src/unet/groupNorm';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

// GroupNorm + FiLM + SiLU written with tfjs's plain ops (moments, broadcasting), differentiated by tfjs: the reference.
function plain(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  scale: tf.Tensor2D,
  shift: tf.Tensor2D,
  groups: number,
) {
  const [n, h, w, c] = x.shape;
  const g = tf.reshape(x, [n, h, w, groups, c / groups]);
  const { mean, variance } = tf.moments(g, [1, 2, 4], true);
  const normed = tf.reshape(tf.div(tf.sub(g, mean), tf.sqrt(tf.add(variance, 1e-5))), [n, h, w, c]);
  const y = tf.add(
    tf.mul(tf.add(tf.mul(normed, gamma), beta), tf.reshape(tf.add(scale, 1), [n, 1, 1, c])),
    tf.reshape(shift, [n, 1, 1, c]),
  );
  return tf.mul(y, tf.sigmoid(y));
}

for (const backend of BACKENDS) {
  describe(`GroupNorm with SiLU on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    for (const c of [32, 64]) {
      it(`values and gradients (x, γ, β, FiLM) equal tfjs's own ops and autodiff, ${c} channels in 32 groups`, () => {
        const before = tf.memory().numTensors;
        tf.tidy(() => {
          const n = 3;
          const x = tf.randomNormal([n, 5, 4, c], 0.5, 2, 'float32', 1) as tf.Tensor4D;
          const gamma = tf.randomNormal([c], 1, 0.3, 'float32', 2);
          const beta = tf.randomNormal([c], 0, 0.3, 'float32', 3);
          const scale = tf.randomNormal([n, c], 0, 0.3, 'float32', 4) as tf.Tensor2D;
          const shift = tf.randomNormal([n, c], 0, 0.3, 'float32', 5) as tf.Tensor2D;
          const r = tf.randomNormal(x.shape, 0, 1, 'float32', 6);
          const ours = (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor, e: tf.Tensor, f: tf.Tensor) =>
            affineSilu(
              a as tf.Tensor4D,
              groupNormAffine(a as tf.Tensor4D, b, d, { scale: e as tf.Tensor2D, shift: f as tf.Tensor2D }),
            );
          const theirs = (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor, e: tf.Tensor, f: tf.Tensor) =>
            plain(a as tf.Tensor4D, b, d, e as tf.Tensor2D, f as tf.Tensor2D, 32);
          const args = [x, gamma, beta, scale, shift];
          const v = compareArrays(
            ours(x, gamma, beta, scale, shift).dataSync(),
            theirs(x, gamma, beta, scale, shift).dataSync(),
            1e-5,
            1e-4,
          );
          expect(v.ok, `values: max abs ${v.maxAbs}`).toBe(true);
          const got = tf.grads((a, b, d, e, f) => tf.sum(tf.mul(ours(a, b, d, e, f), r)))(args);
          const want = tf.grads((a, b, d, e, f) => tf.sum(tf.mul(theirs(a, b, d, e, f), r)))(args);
          got.forEach((gr, i) => {
            expect(gr.shape).toEqual(args[i].shape);
            const d = compareArrays(gr.dataSync(), want[i].dataSync(), 1e-4, 1e-3);
            expect(d.ok, `gradient ${i}: max abs ${d.maxAbs}`).toBe(true);
          });
        });
        expect(tf.memory().numTensors).toBe(before);
      });
    }

    it('affineSilu takes a scale and offset shared by every example, and sums their gradients over the examples', () => {
      tf.tidy(() => {
        const x = tf.randomNormal([2, 3, 3, 4], 0, 1, 'float32', 7) as tf.Tensor4D;
        const scale = tf.randomNormal([1, 1, 1, 4], 1, 0.2, 'float32', 8) as tf.Tensor4D;
        const offset = tf.randomNormal([1, 1, 1, 4], 0, 0.2, 'float32', 9) as tf.Tensor4D;
        const f = (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) =>
          affineSilu(a as tf.Tensor4D, { scale: b as tf.Tensor4D, offset: d as tf.Tensor4D });
        const g = (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) => {
          const z = tf.add(tf.mul(a, b), d);
          return tf.mul(z, tf.sigmoid(z));
        };
        const got = tf.grads((a, b, d) => tf.sum(tf.square(f(a, b, d))))([x, scale, offset]);
        const want = tf.grads((a, b, d) => tf.sum(tf.square(g(a, b, d))))([x, scale, offset]);
        got.forEach((gr, i) => {
          expect(gr.shape).toEqual(want[i].shape);
          const d = compareArrays(gr.dataSync(), want[i].dataSync(), 1e-5, 1e-4);
          expect(d.ok, `gradient ${i}: max abs ${d.maxAbs}`).toBe(true);
        });
      });
    });
  });
}
