import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  winogradConv3x3,
  winogradFilterGrad,
  winogradFilterGroups,
  winogradFilters,
  winogradFiltersRows,
} from '../../../src/unet/runtime/winograd';
import { leftFilterGroups } from '../../../src/unet/runtime/convAlgorithm';
import { sliceRows } from '../../../src/backend/sliceRows';
import { withFastInputGrad } from '../../../src/ops/conv3x3';
import { filterGrad } from '../../../src/ops/trainableConv';
import { BACKENDS, compareArrays, convCase, setBackend } from '../../helpers';

for (const backend of BACKENDS) {
  describe(`Winograd 3×3 convolution on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    // Shapes that exercise a large map, several examples, and sides that are not multiples of the tile.
    for (const [n, h, w, cin, cout] of [
      [2, 8, 8, 16, 24],
      [1, 96, 96, 160, 8],
      [3, 10, 6, 12, 5],
      [2, 7, 9, 8, 4],
    ]) {
      for (const [m, side] of [
        [2, 'right'],
        [4, 'right'],
        [2, 'left'],
        [4, 'left'],
      ] as const) {
        it(`F(${m}×${m},3×3), filters on the ${side}, equals tf.conv2d with padding 1 on [${n},${h},${w},${cin}] → ${cout}`, () => {
          const before = tf.memory().numTensors;
          tf.tidy(() => {
            const { x, k, b, want } = convCase(n, h, w, cin, cout);
            const rows = tf.reshape(tf.transpose(k, [3, 0, 1, 2]), [cout, 9 * cin]) as tf.Tensor2D;
            const u = side === 'left' ? winogradFiltersRows(rows, m) : winogradFilters(k, m);
            const got = winogradConv3x3(x, u, b, m, [1, 1], side);
            expect(got.shape).toEqual(want.shape);
            const d = compareArrays(got.dataSync(), want.dataSync(), m === 2 ? 2e-5 : 1e-4, 1e-4);
            expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
            if (side === 'left') {
              // Filters made a group of output channels at a time give the same conv.
              const groups = winogradFilterGroups((first, count) => sliceRows(rows, first, count), cout, m, 3);
              if (cout >= 8) expect(groups.count).toBeGreaterThan(1);
              const grouped = winogradConv3x3(x, groups, b, m, [1, 1], 'left');
              const g = compareArrays(grouped.dataSync(), got.dataSync(), 1e-6, 1e-6);
              expect(g.ok, `max abs ${g.maxAbs}`).toBe(true);
            }
          });
          expect(tf.memory().numTensors).toBe(before);
        });
      }
    }

    // Maps with partial tiles, bands (rows padded on one side or none), channels multiples of 4 or not.
    for (const [[n, h, w, cin, cout], rowPad] of [
      [
        [2, 9, 7, 8, 12],
        [1, 1],
      ],
      [
        [1, 10, 6, 4, 8],
        [0, 1],
      ],
      [
        [1, 8, 9, 12, 4],
        [0, 0],
      ],
      [
        [2, 6, 5, 3, 4],
        [1, 0],
      ],
    ] as [number[], [number, number]][]) {
      for (const m of [2, 4] as const) {
        it(`F(${m}×${m},3×3) filter gradient equals the conv-based one on [${n},${h},${w},${cin}] → ${cout}, rows padded ${rowPad}`, () => {
          const before = tf.memory().numTensors;
          tf.tidy(() => {
            const x = tf.randomNormal([n, h, w, cin], 0, 1, 'float32', 11) as tf.Tensor4D;
            const dy = tf.randomNormal([n, h + rowPad[0] + rowPad[1] - 2, w, cout], 0, 1, 'float32', 12) as tf.Tensor4D;
            // The conv-based filter gradient, itself checked against tfjs's own (test/ops/trainableConv.test.ts).
            const want = filterGrad(x, dy, 1, rowPad);
            const got = winogradFilterGrad(x, dy, m, rowPad);
            // Only the SIMD kernels compute it; elsewhere the caller keeps its own way.
            const runs = backend.startsWith('wasm') && cin % 4 === 0 && cout % 4 === 0;
            expect(got === null).toBe(!runs);
            if (!got) return;
            expect(got.shape).toEqual([3, 3, cin, cout]);
            const d = compareArrays(got.dataSync(), want.dataSync(), 1e-4, 1e-4);
            expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
          });
          expect(tf.memory().numTensors).toBe(before);
        });
      }
    }

    it('the fast input gradient equals autodiff of tf.conv2d', () => {
      const x = tf.randomNormal([2, 6, 5, 4], 0, 1, 'float32', 7) as tf.Tensor4D;
      const k = tf.randomNormal([3, 3, 4, 3], 0, 0.3, 'float32', 8) as tf.Tensor4D;
      const loss = (f: (v: tf.Tensor4D) => tf.Tensor4D) => (v: tf.Tensor) => tf.sum(tf.square(f(v as tf.Tensor4D)));
      const auto = tf.grad(loss((v) => tf.conv2d(v, k, 1, 1)))(x);
      const fast = tf.grad(
        loss((v) => withFastInputGrad(v, k, (z) => winogradConv3x3(z, winogradFilters(k, 2), tf.zeros([3]), 2))),
      )(x);
      expect(compareArrays(fast.dataSync(), auto.dataSync(), 1e-4, 1e-4).ok).toBe(true);
      tf.dispose([x, k, auto, fast]);
    });
  });
}

describe('filter groups of left-side convs', () => {
  it('keep the transformed filters of one group near 64 MiB, and make one group where they fit', () => {
    expect(leftFilterGroups(4, 2048, 1024)).toBe(5); // U is 288 MiB
    expect(leftFilterGroups(2, 2048, 1024)).toBe(2); // 128 MiB
    expect(leftFilterGroups(4, 256, 256)).toBe(1);
  });
});
