import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { KernelHelpers, splitRange } from '../../../src/backend/wasm/kernelWorkers';
import { simdKernels, useSimdHelpers } from '../../../src/backend/wasm/simdKernels';
import { heapOffset, wasmHeap } from '../../../src/backend/wasm/heap';
import { setBackend } from '../../helpers';

describe('splitRange', () => {
  it('cuts a range into contiguous, aligned, non-empty parts that cover it', () => {
    for (const [total, parts, align] of [
      [10, 2, 1],
      [7, 3, 1],
      [1, 4, 1],
      [64, 3, 16],
      [40, 2, 16],
      [12, 8, 4],
    ]) {
      const r = splitRange(total, parts, align);
      expect(r.length).toBeGreaterThan(0);
      expect(r.length).toBeLessThanOrEqual(parts);
      expect(r[0][0]).toBe(0);
      expect(r.at(-1)![1]).toBe(total);
      r.forEach(([a, b], i) => {
        expect(b).toBeGreaterThan(a);
        if (i > 0) expect(a).toBe(r[i - 1][1]);
        expect(a % align).toBe(0);
      });
    }
    expect(splitRange(10, 2)).toEqual([
      [0, 5],
      [5, 10],
    ]);
  });
});

describe('SIMD kernels split over helper threads (wasm, 2 threads)', () => {
  beforeAll(() => setBackend('wasm-mt'));
  afterEach(() => {
    useSimdHelpers(true);
    vi.restoreAllMocks();
  });

  const heapTensor = (shape: number[]) =>
    tf.engine().makeTensorFromTensorInfo(wasmHeap()!.makeOutput(shape, 'float32'));
  const ptr = (t: tf.Tensor) => heapOffset(wasmHeap()!, t);
  // Indices whose bits differ (toEqual on large typed arrays takes seconds).
  const differing = (a: Uint32Array[], b: Uint32Array[]) => {
    let n = 0;
    a.forEach((x, i) => {
      if (x.length !== b[i].length) n += x.length + 1;
      else for (let j = 0; j < x.length; j++) if (x[j] !== b[i][j]) n++;
    });
    return n;
  };
  // Every case writes at least 1 MiB, the least a kernel splits. The kernel's outputs as bits, with the helpers
  // (checking that they ran) and without them.
  function bothWays(make: () => tf.Tensor[]): [Uint32Array[], Uint32Array[]] {
    const bits = (ts: tf.Tensor[]) => {
      const out = ts.map((t) => new Uint32Array(t.dataSync().slice().buffer));
      tf.dispose(ts);
      return out;
    };
    const spy = vi.spyOn(KernelHelpers.prototype, 'runParts');
    useSimdHelpers(true);
    const split = bits(make());
    expect(spy).toHaveBeenCalled();
    spy.mockClear();
    useSimdHelpers(false);
    const whole = bits(make());
    expect(spy).not.toHaveBeenCalled();
    return [split, whole];
  }

  it('give the transforms bit for bit as one thread does: one example by rows of tiles, several by examples', () => {
    const k = simdKernels()!;
    const before = tf.memory().numTensors;
    for (const [m, n, h, w, c] of [
      [4, 1, 64, 64, 64],
      [4, 3, 40, 40, 64],
      [2, 1, 66, 66, 64],
      [4, 1, 65, 33, 128],
    ] as const) {
      const [th, tw, a2] = [Math.ceil(h / m), Math.ceil(w / m), (m + 2) ** 2];
      const x = tf.randomUniform([n, h, w, c], -1, 1, 'float32', 1);
      const products = Array.from({ length: a2 }, (_, i) => tf.randomUniform([n * th * tw, c], -1, 1, 'float32', i));
      const bias = tf.randomUniform([c], -1, 1, 'float32', 99);
      const outs = () => Array.from({ length: a2 }, () => heapTensor([n * th * tw, c]));
      const cases: Record<string, () => tf.Tensor[]> = {
        tile: () => {
          const o = outs();
          k.tile(m, ptr(x), o.map(ptr), n, h, w, c, 1, th, tw);
          return o;
        },
        tileGradients: () => {
          const o = outs();
          k.tileGradients(m, ptr(x), o.map(ptr), n, h, w, c, th, tw);
          return o;
        },
        untile: () => {
          const d = heapTensor([n, h, w, c]);
          k.untile(m, products.map(ptr), ptr(bias), ptr(d), n, th, tw, h, w, c);
          return [d];
        },
      };
      for (const [name, make] of Object.entries(cases)) {
        expect(differing(...bothWays(make)), `${name} F(${m}) ${[n, h, w, c]}`).toBe(0);
      }
      tf.dispose([x, bias, ...products]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('give filter transforms and transposes bit for bit as one thread does', () => {
    const k = simdKernels()!;
    for (const [rows, cols] of [
      [1, 128 * 128],
      [128, 128],
    ]) {
      const g = tf.randomUniform([rows * 9 * cols], -1, 1, 'float32', 3);
      for (const m of [2, 4] as const) {
        const parts = bothWays(() => {
          const o = Array.from({ length: (m + 2) ** 2 }, () => heapTensor([rows, cols]));
          k.filters(m, ptr(g), o.map(ptr), rows, cols);
          return o;
        });
        expect(differing(...parts), `filters F(${m}) ${rows} × ${cols}`).toBe(0);
      }
      g.dispose();
    }
    const s = tf.randomUniform([512, 640], -1, 1, 'float32', 4);
    const [split, whole] = bothWays(() => {
      const d = heapTensor([640, 512]);
      k.transpose(ptr(s), ptr(d), 512, 640);
      return [d];
    });
    expect(differing(split, whole)).toBe(0);
    const want = tf.transpose(s);
    expect(differing(split, [new Uint32Array(want.dataSync().slice().buffer)])).toBe(0);
    want.dispose();
    s.dispose();
  });

  it('throw when a helper’s part fails, and keep working afterwards', () => {
    const k = simdKernels()!;
    // Four examples, split two and two: the last two, the helper's, lie past the end of the memory
    // (reading them traps before anything is written).
    const image = 4 * 64 * 64 * 64;
    const outs = Array.from({ length: 36 }, () => heapTensor([4 * 16 * 16, 64]));
    const x = k.memory.buffer.byteLength - 2 * image;
    expect(() => k.tile(4, x, outs.map(ptr), 4, 64, 64, 64, 1, 16, 16)).toThrow(/helper thread/);
    tf.dispose(outs);
    const img = tf.randomUniform([2, 64, 64, 32], -1, 1, 'float32', 5);
    const parts = bothWays(() => {
      const o = Array.from({ length: 36 }, () => heapTensor([2 * 256, 32]));
      k.tile(4, ptr(img), o.map(ptr), 2, 64, 64, 32, 1, 16, 16);
      return o;
    });
    expect(differing(...parts)).toBe(0);
    img.dispose();
  });
});
