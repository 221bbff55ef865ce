import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { f16ToF32, f32ToF16 } from '../../../src/io/float16';
import { disableSimdKernels, simdKernels } from '../../../src/backend/wasm/simdKernels';
import { heapOffset, heapView, wasmHeap } from '../../../src/backend/wasm/heap';
import { WeightStore } from '../../../src/unet/runtime/weightStore';
import { winogradConv3x3, winogradFilters, winogradFiltersRows } from '../../../src/unet/runtime/winograd';
import { compareArrays, convCase, PARITY_BACKENDS, setBackend } from '../../helpers';

for (const backend of PARITY_BACKENDS.filter((b) => b.startsWith('wasm'))) {
  describe(`SIMD kernels on ${backend}`, () => {
    beforeAll(() => setBackend(backend));
    afterEach(() => disableSimdKernels(false));

    it('are available, bound to the backend memory', () => {
      const k = simdKernels();
      expect(k).not.toBeNull();
      expect(k!.memory.buffer).toBe(wasmHeap()!.wasm.HEAPU8.buffer);
      disableSimdKernels(true);
      expect(simdKernels()).toBeNull();
    });

    it('decode every half bit for bit as f16ToF32, in place from the upper half of the output', () => {
      const n = 65536;
      const halves = new Uint16Array(n).map((_, i) => i);
      const heap = wasmHeap()!;
      const t = tf.engine().makeTensorFromTensorInfo(heap.makeOutput([n], 'float32'));
      const dst = heapView(heap, t);
      new Uint16Array(dst.buffer, dst.byteOffset + 2 * n, n).set(halves);
      simdKernels()!.f16ToF32(dst.byteOffset + 2 * n, dst.byteOffset, n / 8);
      const got = new Uint32Array(dst.buffer, dst.byteOffset, n).slice();
      t.dispose();
      const want = new Uint32Array(f16ToF32(halves).buffer);
      let bad = 0;
      for (let i = 0; i < n; i++) if (got[i] !== want[i]) bad++;
      expect(bad).toBe(0);
    });

    it('stream float16 weights of any length exactly as the JavaScript decoder does, without leaking', () => {
      for (const off of [false, true]) {
        disableSimdKernels(off);
        for (const len of [3, 8, 29, 4096 + 5]) {
          const values = Float32Array.from({ length: len }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 6));
          const store = new WeightStore(new Set(), 'float16');
          store.add('w', [len], values.slice());
          const before = tf.memory().numTensors;
          const got = store.get('w');
          expect(Array.from(got.dataSync())).toEqual(Array.from(f16ToF32(f32ToF16(values))));
          got.dispose();
          expect(tf.memory().numTensors).toBe(before);
          store.dispose();
        }
      }
    });

    // Sides that are and are not multiples of the tile, several examples, 4 to 24 channels, bands.
    const cases: [number[], [number, number]][] = [
      [
        [2, 8, 8, 16, 24],
        [1, 1],
      ],
      [
        [3, 10, 6, 12, 8],
        [1, 1],
      ],
      [
        [2, 7, 9, 8, 4],
        [1, 1],
      ],
      [
        [1, 5, 3, 4, 12],
        [1, 1],
      ],
      [
        [1, 9, 7, 8, 8],
        [0, 1],
      ],
      [
        [2, 11, 5, 8, 4],
        [0, 0],
      ],
    ];
    for (const [[n, h, w, cin, cout], rowPad] of cases) {
      for (const m of [2, 4] as const) {
        it(`F(${m}×${m},3×3) with the kernels on [${n},${h},${w},${cin}] → ${cout}, rows padded ${rowPad}, equals tf.conv2d as the JavaScript path does, without leaking`, () => {
          const { x, k, b } = convCase(n, h, w, cin, cout);
          // tf.conv2d over the band with its missing padding rows added as zeros.
          const want = tf.add(tf.conv2d(x, k, 1, [[0, 0], rowPad, [1, 1], [0, 0]]), b);
          const u = winogradFilters(k, m);
          const before = tf.memory().numTensors;
          const simd = winogradConv3x3(x, u, b, m, rowPad);
          expect(tf.memory().numTensors).toBe(before + 1);
          disableSimdKernels(true);
          const js = winogradConv3x3(x, u, b, m, rowPad);
          expect(simd.shape).toEqual(want.shape);
          const tol = m === 2 ? 2e-5 : 1e-4;
          for (const got of [simd, js]) {
            const d = compareArrays(got.dataSync(), want.dataSync(), tol, 1e-4);
            expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
          }
          // The kernels round every float32 sum (as XNNPACK's do); the JavaScript output pass sums in
          // float64 and the depthwise input pass in another order, so the two differ by rounding only.
          const d = compareArrays(simd.dataSync(), js.dataSync(), m === 2 ? 5e-6 : 3e-5, 1e-6);
          expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
          tf.dispose([x, k, b, want, simd, js, ...u]);
        });
      }
    }

    // G g Gᵀ in float64, straight from the definition, for every point ξ = (r, c): [α², cin·cout].
    const G: Record<2 | 4, number[][]> = {
      2: [
        [1, 0, 0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0, 0, 1],
      ],
      4: [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
      ],
    };
    const transformed = (g: Float32Array, m: 2 | 4, pairs: number): Float64Array[] =>
      G[m].flatMap((gr) =>
        G[m].map((gc) => {
          const u = new Float64Array(pairs);
          for (let kh = 0; kh < 3; kh++)
            for (let kw = 0; kw < 3; kw++)
              for (let p = 0; p < pairs; p++) u[p] += gr[kh] * gc[kw] * g[(kh * 3 + kw) * pairs + p];
          return u;
        }),
      );
    for (const [cin, cout] of [
      [8, 4],
      [12, 20],
      [16, 3],
      [3, 5],
    ]) {
      for (const m of [2, 4] as const) {
        it(`transform a ${cin}→${cout} filter for F(${m}×${m},3×3) as G g Gᵀ, with the kernel or without, leaking nothing`, () => {
          const k = tf.randomNormal([3, 3, cin, cout], 0, 1, 'float32', 7) as tf.Tensor4D;
          const want = transformed(k.dataSync() as Float32Array, m, cin * cout);
          const before = tf.memory().numTensors;
          const simd = winogradFilters(k, m);
          expect(tf.memory().numTensors).toBe(before + (m + 2) ** 2);
          disableSimdKernels(true);
          const ops = winogradFilters(k, m);
          for (const u of [simd, ops]) {
            expect(u.map((t) => t.shape)).toEqual(new Array((m + 2) ** 2).fill([cin, cout]));
            u.forEach((t, xi) => {
              const d = compareArrays(t.dataSync(), want[xi], 2e-6, 1e-6);
              expect(d.ok, `ξ ${xi}: max abs ${d.maxAbs}`).toBe(true);
            });
          }
          tf.dispose([k, ...simd, ...ops]);
          expect(tf.memory().numTensors).toBe(before - 1);
        });

        it(`transform a ${cin}→${cout} filter given as rows [Cout, 9·Cin] into U_ξᵀ for F(${m}×${m},3×3), with the kernel or without, leaking nothing`, () => {
          const k = tf.randomNormal([3, 3, cin, cout], 0, 1, 'float32', 9) as tf.Tensor4D;
          const want = transformed(k.dataSync() as Float32Array, m, cin * cout);
          const rows = tf.tidy(() => tf.reshape(tf.transpose(k, [3, 0, 1, 2]), [cout, 9 * cin]) as tf.Tensor2D);
          const before = tf.memory().numTensors;
          const simd = winogradFiltersRows(rows, m);
          expect(tf.memory().numTensors).toBe(before + (m + 2) ** 2);
          disableSimdKernels(true);
          const ops = winogradFiltersRows(rows, m);
          expect(tf.memory().numTensors).toBe(before + 2 * (m + 2) ** 2);
          for (const u of [simd, ops]) {
            expect(u.map((t) => t.shape)).toEqual(new Array((m + 2) ** 2).fill([cout, cin]));
            u.forEach((t, xi) => {
              const wantT = new Float64Array(cin * cout).map(
                (_, j) => want[xi][(j % cin) * cout + Math.floor(j / cin)],
              );
              const d = compareArrays(t.dataSync(), wantT, 2e-6, 1e-6);
              expect(d.ok, `ξ ${xi}: max abs ${d.maxAbs}`).toBe(true);
            });
          }
          tf.dispose([k, rows, ...simd, ...ops]);
        });
      }
    }

    for (const [rows, cols] of [
      [4, 4],
      [12, 8],
      [64, 512],
    ]) {
      it(`transpose a ${rows} × ${cols} matrix as tf.transpose does`, () => {
        const heap = wasmHeap()!;
        const a = tf.randomNormal([rows, cols], 0, 1, 'float32', 3);
        const want = tf.transpose(a);
        const got = tf.zeros([cols, rows]);
        simdKernels()!.transpose(heapOffset(heap, a), heapOffset(heap, got), rows, cols);
        expect(Array.from(heapView(heap, got))).toEqual(Array.from(want.dataSync()));
        tf.dispose([a, want, got]);
      });
    }

    it('name bad arguments', () => {
      const k = simdKernels()!;
      expect(() => k.tile(4, 0, [0], 1, 4, 4, 4, 1, 1, 1)).toThrow(/36 outputs expected, got 1/);
      expect(() => k.tile(2, 0, new Array(16).fill(0), 1, 4, 4, 3, 1, 2, 2)).toThrow(
        /cin must be a positive multiple of 4, got 3/,
      );
      expect(() => k.untile(4, [0, 0], 0, 0, 1, 1, 1, 4, 4, 4)).toThrow(/36 products expected, got 2/);
      expect(() => k.untile(2, new Array(16).fill(0), 0, 0, 1, 1, 1, 2, 2, 6)).toThrow(
        /cout must be a positive multiple of 4, got 6/,
      );
      expect(() => k.filters(4, 0, new Array(16).fill(0), 1, 8)).toThrow(/36 outputs expected, got 16/);
      expect(() => k.filters(2, 0, new Array(16).fill(0), 2, 6)).toThrow(/cols must be a multiple of 4, got 6/);
      expect(() => k.tileGradients(4, 0, new Array(16).fill(0), 1, 4, 4, 4, 1, 1)).toThrow(
        /36 outputs expected, got 16/,
      );
      expect(() => k.tileGradients(2, 0, new Array(16).fill(0), 1, 4, 4, 6, 2, 2)).toThrow(
        /cout must be a positive multiple of 4, got 6/,
      );
      expect(() => k.transpose(0, 0, 6, 4)).toThrow(/sides must be multiples of 4, got 6 × 4/);
    });
  });
}

describe('SIMD kernels on cpu', () => {
  beforeAll(() => setBackend('cpu'));
  it('are not available', () => {
    expect(simdKernels()).toBeNull();
  });
});
