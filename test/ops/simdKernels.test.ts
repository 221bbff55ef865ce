import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { f16ToF32, f32ToF16 } from '../../src/io/safetensors';
import { disableSimdKernels, simdKernels } from '../../src/ops/simdKernels';
import { heapView, wasmHeap } from '../../src/ops/wasmHeap';
import { WeightStore } from '../../src/unet/weightStore';
import { winogradConv3x3, winogradFilters } from '../../src/unet/winograd';
import { compareArrays, convCase, PARITY_BACKENDS, setBackend } from '../helpers';

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

    it('stream float16 weights of any length exactly as the JavaScript decoder does', () => {
      for (const len of [3, 8, 29, 4096 + 5]) {
        const values = Float32Array.from({ length: len }, (_, i) => Math.sin(i) * 10 ** ((i % 9) - 6));
        const store = new WeightStore(new Set(), 'float16');
        store.add('w', [len], values.slice());
        const got = store.get('w');
        expect(Array.from(got.dataSync())).toEqual(Array.from(f16ToF32(f32ToF16(values))));
        got.dispose();
        store.dispose();
      }
    });

    // Sides that are and are not multiples of the tile, several examples, 4 to 24 channels.
    for (const [n, h, w, cin, cout] of [[2, 8, 8, 16, 24], [3, 10, 6, 12, 8], [2, 7, 9, 8, 4], [1, 5, 3, 4, 12]]) {
      for (const m of [2, 4] as const) {
        it(`the output transform of F(${m}×${m},3×3) on [${n},${h},${w},${cin}] → ${cout} agrees with the JavaScript pass, without leaking`, () => {
          const { x, k, b } = convCase(n, h, w, cin, cout);
          const u = winogradFilters(k, m);
          const before = tf.memory().numTensors;
          const simd = winogradConv3x3(x, u, b, m);
          expect(tf.memory().numTensors).toBe(before + 1);
          disableSimdKernels(true);
          const js = winogradConv3x3(x, u, b, m);
          // The JavaScript pass sums in float64 and rounds once; the kernel rounds each float32 sum
          // (as XNNPACK's kernels do). Both stay within the Winograd tolerance of tf.conv2d, which
          // test/unet/winograd.test.ts checks with the kernel on.
          const d = compareArrays(simd.dataSync(), js.dataSync(), m === 2 ? 1e-6 : 1e-5, 1e-6);
          expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
          tf.dispose([x, k, b, simd, js, ...u]);
        });
      }
    }

    it('untile names bad arguments', () => {
      const k = simdKernels()!;
      expect(() => k.untile(4, [0, 0], 0, 0, 1, 1, 1, 4, 4, 4)).toThrow(/36 products expected, got 2/);
      expect(() => k.untile(2, new Array(16).fill(0), 0, 0, 1, 1, 1, 2, 2, 6)).toThrow(/cout must be a positive multiple of 4, got 6/);
    });
  });
}

describe('SIMD kernels on cpu', () => {
  beforeAll(() => setBackend('cpu'));
  it('are not available', () => {
    expect(simdKernels()).toBeNull();
  });
});
