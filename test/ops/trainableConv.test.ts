import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { trainableConv3x3, type TrainableConvPaths } from '../../src/ops/trainableConv';
import { winogradConv3x3, winogradFilterGrad, winogradFilters } from '../../src/unet/runtime/winograd';
import type { RowPad } from '../../src/ops/conv3x3';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

// Shapes [n, h, w, cin, cout], stride and row padding: plain maps, bands of a larger map, stride 2 on even and odd sides.
const CASES: [number[], 1 | 2, RowPad][] = [
  [[2, 6, 5, 4, 3], 1, [1, 1]],
  [[1, 7, 6, 3, 5], 1, [0, 1]],
  [[1, 6, 6, 3, 2], 1, [0, 0]],
  [[2, 8, 8, 3, 4], 2, [1, 1]],
  [[1, 7, 5, 2, 3], 2, [1, 1]],
  [[2, 9, 7, 8, 12], 1, [1, 1]],
  [[1, 10, 6, 4, 8], 1, [0, 1]],
  [[1, 8, 9, 12, 4], 1, [0, 0]],
];

// The Winograd paths the U-Net gives its trained convs (the filter gradient falls back where the SIMD kernels cannot run).
const winogradPaths = (m: 2 | 4): TrainableConvPaths => ({
  conv: (x, w, b, rowPad) => tf.tidy(() => winogradConv3x3(x, winogradFilters(w, m), b, m, rowPad)),
  filterGrad: (x, dy, rowPad) => winogradFilterGrad(x, dy, m, rowPad),
});
const PATHS: [string, TrainableConvPaths][] = [
  ['tf.conv2d', {}],
  ['Winograd F(2×2)', winogradPaths(2)],
  ['Winograd F(4×4)', winogradPaths(4)],
];

interface Case {
  x: Float32Array;
  w: Float32Array;
  b: Float32Array;
  r: Float32Array;
  grads: Float32Array[];
}

// Inputs and tfjs's own gradients of Σ conv·r (cpu has every conv gradient), the reference.
function reference([n, h, w, cin, cout]: number[], stride: 1 | 2, rowPad: RowPad): Case {
  const made: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T) => (made.push(t), t);
  try {
    const x = keep(tf.randomNormal([n, h, w, cin], 0, 1, 'float32', 1) as tf.Tensor4D);
    const k = keep(tf.randomNormal([3, 3, cin, cout], 0, 0.5, 'float32', 2) as tf.Tensor4D);
    const b = keep(tf.randomNormal([cout], 0, 1, 'float32', 3) as tf.Tensor1D);
    const pad: [[number, number], [number, number], [number, number], [number, number]] = [
      [0, 0],
      [rowPad[0], rowPad[1]],
      [1, 1],
      [0, 0],
    ];
    const r = keep(tf.randomNormal(keep(tf.conv2d(x, k, stride, pad)).shape, 0, 1, 'float32', 4));
    const grads = tf.grads((a, c, d) =>
      tf.sum(tf.mul(tf.add(tf.conv2d(a as tf.Tensor4D, c as tf.Tensor4D, stride, pad), d), r)),
    )([x, k, b]);
    made.push(...grads);
    return {
      x: x.dataSync(),
      w: k.dataSync(),
      b: b.dataSync(),
      r: r.dataSync(),
      grads: grads.map((g) => g.dataSync()),
    } as Case;
  } finally {
    tf.dispose(made);
  }
}

const refs: Case[] = [];

beforeAll(async () => {
  await setBackend('cpu');
  for (const [shape, stride, rowPad] of CASES) refs.push(reference(shape, stride, rowPad));
});

for (const backend of BACKENDS) {
  describe(`trainableConv3x3 on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    CASES.forEach(([[n, h, w, cin, cout], stride, rowPad], i) =>
      PATHS.forEach(([label, paths]) =>
        it(`input, filter and bias gradients by ${label} equal tfjs's conv2d gradients: [${n},${h},${w},${cin}] → ${cout}, stride ${stride}, rows padded ${rowPad}`, () => {
          const before = tf.memory().numTensors;
          const ref = refs[i];
          tf.tidy(() => {
            const x = tf.tensor4d(ref.x, [n, h, w, cin]);
            const k = tf.tensor4d(ref.w, [3, 3, cin, cout]);
            const b = tf.tensor1d(ref.b);
            const y = trainableConv3x3(x, k, b, stride, rowPad, paths);
            const r = tf.tensor(ref.r, y.shape);
            const got = tf.grads((a, c, d) =>
              tf.sum(
                tf.mul(
                  trainableConv3x3(a as tf.Tensor4D, c as tf.Tensor4D, d as tf.Tensor1D, stride, rowPad, paths),
                  r,
                ),
              ),
            )([x, k, b]);
            got.forEach((g, j) => {
              const d = compareArrays(g.dataSync(), ref.grads[j], 1e-4, 1e-4);
              expect(d.ok, `${['x', 'w', 'b'][j]}: max abs ${d.maxAbs}`).toBe(true);
            });
          });
          expect(tf.memory().numTensors).toBe(before);
        }),
      ),
    );
  });
}
