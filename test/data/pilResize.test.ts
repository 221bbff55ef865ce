import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { SafetensorsReader } from '../../src/io/safetensors';
import { pilResize, resampleTaps, resizeShortSide, type ResampleFilter } from '../../src/data/pilResize';
import { centerCrop } from '../../src/data/transforms';
import { BACKENDS, compareArrays, FIXTURES, setBackend } from '../helpers';

/** PIL's resizes on mode-'F' images: `scripts/make-resize-fixture.py`. */
const FIXTURE = path.join(FIXTURES, 'resize', 'pil-resize.safetensors');

type Case =
  | { kind: 'centerCrop'; size: number; chain: [number, number][] }
  | { kind: 'resize'; target: [number, number]; filter: ResampleFilter };

interface Host {
  data: Float32Array;
  shape: [number, number, number];
}

let cases: Record<string, Case> = {};
const arrays = new Map<string, Host>();

beforeAll(async () => {
  const reader = await SafetensorsReader.open(FIXTURE);
  try {
    cases = JSON.parse(reader.metadata.cases);
    for (const key of reader.keys()) {
      const t = await reader.read(key);
      arrays.set(key, { data: t.data as Float32Array, shape: t.shape as [number, number, number] });
    }
  } finally {
    await reader.close();
  }
});

const get = (key: string): Host => {
  const a = arrays.get(key);
  if (!a) throw new Error(`fixture has no ${key}`);
  return a;
};
const tensor = (key: string) => tf.tensor3d(get(key).data, get(key).shape);

/** Checks `actual` (disposed here) against the fixture's `key`; returns the largest absolute error. */
function expectClose(actual: tf.Tensor, key: string): number {
  const want = get(key);
  expect(actual.shape).toEqual(want.shape);
  const d = compareArrays(actual.dataSync(), want.data, 1e-4, 1e-4);
  actual.dispose();
  expect(d.ok, `${key}: ${d.bad} bad, first ${d.firstBad}, max |a − b| ${d.maxAbs}`).toBe(true);
  return d.maxAbs;
}

/** The same resize on the host, straight from the taps: horizontal pass, float32 rounding, vertical pass. */
function hostResize(x: Host, [h, w]: readonly [number, number], filter: ResampleFilter): Host {
  let [H, W, C] = x.shape;
  let data = x.data;
  if (w !== W) {
    const { K, index, weight } = resampleTaps(W, w, filter);
    const out = new Float32Array(H * w * C);
    for (let y = 0; y < H; y++)
      for (let i = 0; i < w; i++)
        for (let c = 0; c < C; c++) {
          let acc = 0;
          for (let k = 0; k < K; k++) acc += weight[i * K + k] * data[(y * W + index[i * K + k]) * C + c];
          out[(y * w + i) * C + c] = acc;
        }
    [data, W] = [out, w];
  }
  if (h !== H) {
    const { K, index, weight } = resampleTaps(H, h, filter);
    const out = new Float32Array(h * W * C);
    for (let i = 0; i < h; i++)
      for (let xx = 0; xx < W; xx++)
        for (let c = 0; c < C; c++) {
          let acc = 0;
          for (let k = 0; k < K; k++) acc += weight[i * K + k] * data[(index[i * K + k] * W + xx) * C + c];
          out[(i * W + xx) * C + c] = acc;
        }
    [data, H] = [out, h];
  }
  return { data, shape: [H, W, C] };
}

describe('resampleTaps (PIL precompute_coeffs)', () => {
  it('weights sum to 1, taps stay in the image, and an unchanged size is the identity', () => {
    for (const [n, m] of [
      [37, 26],
      [12, 27],
      [21, 5],
      [5, 21],
      [7, 3],
      [64, 32],
      [1, 4],
      [4, 1],
    ])
      for (const f of ['bicubic', 'box'] as const) {
        const { K, index, weight } = resampleTaps(n, m, f);
        for (let i = 0; i < m; i++) {
          let s = 0;
          for (let k = 0; k < K; k++) {
            expect(index[i * K + k]).toBeGreaterThanOrEqual(0);
            expect(index[i * K + k]).toBeLessThan(n);
            s += weight[i * K + k];
          }
          expect(s).toBeCloseTo(1, 6);
        }
      }
    const id = resampleTaps(9, 9, 'bicubic');
    for (let i = 0; i < 9; i++) {
      // The weight each input pixel gets (padding taps repeat an index with weight 0).
      const row = new Float64Array(9);
      for (let k = 0; k < id.K; k++) row[id.index[i * id.K + k]] += id.weight[i * id.K + k];
      expect(Array.from(row, (v) => v + 0)).toEqual(Array.from(row, (_, j) => (j === i ? 1 : 0)));
    }
  });

  it('BOX to ⌊side / 2⌋ on an odd side averages 3 then 2 pixels (PIL: 5 → 2 gives [1, 3.5] on 0..4)', () => {
    const { K, index, weight } = resampleTaps(5, 2, 'box');
    expect(K).toBe(3);
    expect(Array.from(index)).toEqual([0, 1, 2, 3, 4, 3]);
    expect(Array.from(weight)).toEqual([1 / 3, 1 / 3, 1 / 3, 0.5, 0.5, 0].map(Math.fround));
    // 13 → 6: PIL's rounding at the window edges leaves input 6 out of every window (checked with Pillow 9.4).
    const skip = resampleTaps(13, 6, 'box');
    for (let t = 0; t < skip.index.length; t++) if (skip.index[t] === 6) expect(skip.weight[t]).toBe(0);
    expect(Array.from(skip.weight).filter((v) => v !== 0)).toEqual(new Array(12).fill(0.5));
    // Upscaling bicubic: output 0 of 4 → 8 has its centre at 0.25, taps 0 and 1 (cubic(0.25), cubic(1.25)).
    const up = resampleTaps(4, 8, 'bicubic');
    const [a, b] = [0.8671875, -0.0703125];
    expect(up.weight[0]).toBeCloseTo(a / (a + b), 7);
    expect(up.weight[1]).toBeCloseTo(b / (a + b), 7);
  });

  it('rejects sizes that are not positive integers and unknown filters', () => {
    expect(() => resampleTaps(0, 3)).toThrow(InputError);
    expect(() => resampleTaps(3, 1.5)).toThrow(InputError);
    expect(() => resampleTaps(3, 2, 'lanczos' as ResampleFilter)).toThrow(InputError);
  });
});

for (const backend of BACKENDS) {
  describe(`PIL resize parity on ${backend}`, () => {
    beforeAll(() => setBackend(backend));
    const errors: Record<string, number> = {};
    afterAll(() => console.log(`PIL parity on ${backend}, max |a − b|:`, errors));

    it('pilResize equals PIL resize(BICUBIC / BOX) on mode-F images, elementwise', () => {
      const before = tf.memory().numTensors;
      let n = 0;
      for (const [name, c] of Object.entries(cases)) {
        if (c.kind !== 'resize') continue;
        const x = tensor(`${name}.input`);
        errors[name] = expectClose(pilResize(x, c.target, c.filter), `${name}.output`);
        x.dispose();
        n++;
      }
      expect(n).toBe(5);
      expect(tf.memory().numTensors).toBe(before);
    });

    it("guided-diffusion's center_crop_arr: the BOX halvings and the bicubic resize, then the centre crop", () => {
      const before = tf.memory().numTensors;
      let n = 0;
      for (const [name, c] of Object.entries(cases)) {
        if (c.kind !== 'centerCrop') continue;
        const x = tensor(`${name}.input`);
        expect(get(`${name}.resized`).shape.slice(0, 2)).toEqual(c.chain[c.chain.length - 1]);
        errors[`${name}.resized`] = expectClose(
          tf.tidy(() => tf.clone(resizeShortSide(x, c.size))),
          `${name}.resized`,
        );
        errors[name] = expectClose(centerCrop(x, c.size), `${name}.output`);
        x.dispose();
        n++;
      }
      expect(n).toBe(6);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('larger images: every block, pair run and pass agrees with the same taps applied on the host', () => {
      const before = tf.memory().numTensors;
      const shapes: [[number, number, number], [number, number], ResampleFilter][] = [
        [[203, 151, 3], [101, 75], 'box'], // odd halving: pair runs around one 3-wide window
        [[41, 13, 2], [20, 6], 'box'], // pair runs with a skipped input
        [[200, 120, 2], [100, 60], 'box'], // even halving: the average pool
        [[101, 75, 3], [67, 50], 'bicubic'], // several blocks of outputs in both passes
        [[30, 200, 1], [77, 333], 'bicubic'], // upscaling
        [[90, 64, 1], [7, 40], 'bicubic'], // strong antialiasing in height
      ];
      for (const [shape, size, filter] of shapes) {
        const data = Float32Array.from({ length: shape[0] * shape[1] * shape[2] }, (_, i) => Math.sin(i * 0.37) * 2);
        const x = tf.tensor3d(data, shape);
        const want = hostResize({ data, shape }, size, filter);
        const got = pilResize(x, size, filter);
        expect(got.shape).toEqual(want.shape);
        const d = compareArrays(got.dataSync(), want.data, 1e-5, 1e-5);
        expect(d.ok, `${shape} → ${size} ${filter}: ${d.firstBad}`).toBe(true);
        tf.dispose([x, got]);
      }
      // The reference's chain on a larger image: 203 × 151 → halve (odd sides) → 101 × 75 → bicubic to short side 50.
      const data = Float32Array.from({ length: 203 * 151 * 3 }, (_, i) => Math.cos(i * 0.11));
      const x = tf.tensor3d(data, [203, 151, 3]);
      const want = hostResize(hostResize({ data, shape: [203, 151, 3] }, [101, 75], 'box'), [67, 50], 'bicubic');
      const got = tf.tidy(() => tf.clone(resizeShortSide(x, 50)));
      expect(got.shape).toEqual([67, 50, 3]);
      expect(compareArrays(got.dataSync(), want.data, 1e-5, 1e-5).ok).toBe(true);
      tf.dispose([x, got]);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('copies at an unchanged size, casts integer images, and leaks nothing when it throws', () => {
      const x = tf.tensor3d([1, 2, 3, 4, 5, 6], [2, 3, 1], 'int32');
      const before = tf.memory().numTensors;
      const same = pilResize(x, [2, 3]);
      expect(same).not.toBe(x);
      expect(same.dtype).toBe('float32');
      expect(Array.from(same.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
      const box = pilResize(x, [1, 1], 'box');
      expect(box.dataSync()[0]).toBeCloseTo(3.5, 6);
      tf.dispose([same, box]);
      expect(tf.memory().numTensors).toBe(before);
      const flat = tf.zeros([2, 2]) as unknown as tf.Tensor3D;
      const empty = tf.zeros([0, 2, 1]) as tf.Tensor3D;
      const n = tf.memory().numTensors;
      const bad: [() => unknown, string][] = [
        [() => pilResize(x, [0, 3]), 'height'],
        [() => pilResize(x, [2, 2.5]), 'width'],
        [() => pilResize(x, [2] as unknown as [number, number]), 'size'],
        [() => pilResize(x, [2, 2], 'nearest' as ResampleFilter), 'filter'],
        [() => pilResize(flat, [1, 1]), 'rank-3'],
        [() => pilResize(empty, [1, 1]), 'empty'],
        [() => centerCrop(empty, 1), 'empty'],
      ];
      for (const [f, what] of bad) expect(f).toThrow(new RegExp(what));
      for (const [f] of bad) expect(f).toThrow(InputError);
      expect(tf.memory().numTensors).toBe(n);
      tf.dispose([flat, empty]);
      x.dispose();
    });
  });
}
