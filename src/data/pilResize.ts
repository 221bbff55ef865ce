/**
 * PIL's resampling (`Image.resize` with `BICUBIC` or `BOX`, Pillow's `libImaging/Resample.c`) as tfjs ops, so
 * that it runs on any backend: the reference's preprocessing halves with `BOX` and resizes with `BICUBIC`.
 *
 * PIL's resize is separable, horizontal pass first, then vertical. Along one axis, `in → out` with
 * `scale = in / out`: output pixel `i` has its centre at `(i + ½)·scale` in input coordinates; the filter
 * (support 2 for bicubic, ½ for box) is stretched by `max(scale, 1)` (antialiasing when downscaling); the taps
 * are the input pixels `j` from `⌊centre − support + ½⌋` up to, not including, `⌊centre + support + ½⌋`, clipped
 * to the image; each has the weight `filter((j + ½ − centre) / max(scale, 1))`, and the weights of an output
 * pixel are normalised to sum 1. Bicubic is the cubic convolution kernel with `a = −½`; box is 1 on `(−½, ½]`.
 * An axis whose size does not change is not resampled (as PIL's, whose weights would be the identity there).
 *
 * Here the weights are computed on the host in double precision and stored as float32; a pass is a few
 * float32 matMuls, each of a block of output pixels' weights with the band of input pixels they read (halving an
 * even side with BOX is a 2-wide average pool). PIL on float images (mode `F`) sums in double and
 * stores float32 between the passes, so the results agree to float32 rounding (≈1e-7 relative). On 8-bit
 * images PIL also rounds the weights to fixed point and rounds and clips every pass to 0–255; that is not
 * reproduced.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { sliceRows } from '../backend/sliceRows.js';
import { InputError } from '../errors.js';

/** The PIL filters implemented: `BICUBIC` and `BOX`. */
export type ResampleFilter = 'bicubic' | 'box';

const FILTERS: Record<ResampleFilter, { support: number; weight: (x: number) => number }> = {
  bicubic: {
    support: 2,
    weight(x) {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  box: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
};

/**
 * The taps of a resize along one axis: output pixel `i` is `Σ_k weight[i·K + k] · input[index[i·K + k]]`.
 * Rows with fewer than `K` taps are padded with weight 0 on their first tap.
 */
export interface ResampleTaps {
  /** Taps per output pixel (the most any output pixel has). */
  K: number;
  /** `[out·K]` input indices. */
  index: Int32Array;
  /** `[out·K]` normalised weights (double precision rounded to float32). */
  weight: Float32Array;
}

function checkSide(name: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new InputError(`${name} must be a positive integer, got ${n}`);
}

/**
 * PIL's `precompute_coeffs`: the taps and weights of a resize from `inSize` to `outSize` pixels along one axis.
 * @throws InputError for a size that is not a positive integer or an unknown filter.
 */
export function resampleTaps(inSize: number, outSize: number, filter: ResampleFilter = 'bicubic'): ResampleTaps {
  checkSide('the input size', inSize);
  checkSide('the output size', outSize);
  const f = Object.prototype.hasOwnProperty.call(FILTERS, filter) ? FILTERS[filter] : undefined;
  if (!f) throw new InputError(`filter must be 'bicubic' or 'box', got ${String(filter)}`);
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = f.support * filterScale;
  const inv = 1 / filterScale;
  const bounds = new Int32Array(2 * outSize);
  let K = 1;
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    // C's (int) cast truncates toward zero; a negative start is clipped to 0 anyway.
    const lo = Math.max(0, Math.trunc(centre - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(centre + support + 0.5));
    bounds[2 * i] = lo;
    bounds[2 * i + 1] = hi;
    K = Math.max(K, hi - lo);
  }
  const index = new Int32Array(outSize * K);
  const weight = new Float32Array(outSize * K);
  const w = new Float64Array(K);
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const lo = bounds[2 * i];
    const n = bounds[2 * i + 1] - lo;
    let sum = 0;
    for (let k = 0; k < n; k++) {
      w[k] = f.weight((k + lo - centre + 0.5) * inv);
      sum += w[k];
    }
    for (let k = 0; k < K; k++) {
      index[i * K + k] = k < n ? lo + k : lo;
      weight[i * K + k] = k < n ? (sum !== 0 ? w[k] / sum : w[k]) : 0;
    }
  }
  return { K, index, weight };
}

/** Output rows per matMul of a pass: the band of input rows it reads is about 32 + the filter's width. */
function blockRows(scale: number): number {
  return Math.max(8, Math.round(32 / Math.max(scale, 1)));
}

/** A run of output rows computed one way: `pair`s average rows `start + 2r, start + 2r + 1`; `band`s multiply. */
interface Segment {
  kind: 'pair' | 'band';
  i0: number;
  i1: number;
  start: number;
}

/** Splits the outputs into runs of ½-½ pairs of consecutive rows (as BOX halving makes) and blocks of the rest. */
function segments(outSize: number, { K, index, weight }: ResampleTaps, B: number): Segment[] {
  const pairStart = (i: number): number => {
    let start = -1,
      n = 0;
    for (let k = 0; k < K; k++) {
      const w = weight[i * K + k];
      if (w === 0) continue;
      if (w !== 0.5 || (n === 1 && index[i * K + k] !== start + 1)) return -1;
      if (n++ === 0) start = index[i * K + k];
    }
    return n === 2 ? start : -1;
  };
  const out: Segment[] = [];
  for (let i = 0; i < outSize; i++) {
    const start = pairStart(i);
    const last = out[out.length - 1];
    if (start >= 0) {
      if (last?.kind === 'pair' && last.i1 === i && last.start + 2 * (i - last.i0) === start) last.i1++;
      else out.push({ kind: 'pair', i0: i, i1: i + 1, start });
    } else if (last?.kind === 'band' && last.i1 === i && i - last.i0 < B) last.i1++;
    else out.push({ kind: 'band', i0: i, i1: i + 1, start: 0 });
  }
  return out;
}

/**
 * Resamples the rows of `[n, cols]` to `outSize` rows. Runs of outputs that average two consecutive rows with
 * weights ½, ½ (BOX halving) are a 2-row average pool of the rows they read; the others go in blocks, each a
 * dense matMul of its weights (`[block, band]`, built on the host) with the band of input rows it reads. Every
 * run reads a contiguous slice, and the runs are concatenated.
 */
function resampleRows(x: tf.Tensor2D, outSize: number, filter: ResampleFilter): tf.Tensor2D {
  const [n, cols] = x.shape;
  const taps = resampleTaps(n, outSize, filter);
  const { K, index, weight } = taps;
  const rows = (lo: number, count: number): tf.Tensor2D => (lo === 0 && count === n ? x : sliceRows(x, lo, count));
  return tf.tidy(() => {
    const parts = segments(outSize, taps, blockRows(n / outSize)).map(({ kind, i0, i1, start }): tf.Tensor2D => {
      const m = i1 - i0;
      if (kind === 'pair') {
        const pairs = tf.reshape(rows(start, 2 * m), [2 * m, cols, 1]) as tf.Tensor3D;
        return tf.reshape(tf.avgPool(pairs, [2, 1], [2, 1], 'valid'), [m, cols]) as tf.Tensor2D;
      }
      let lo = n,
        hi = 0;
      for (let t = i0 * K; t < i1 * K; t++)
        if (weight[t] !== 0) {
          lo = Math.min(lo, index[t]);
          hi = Math.max(hi, index[t] + 1);
        }
      if (hi <= lo) return tf.zeros([m, cols]) as tf.Tensor2D;
      const band = hi - lo;
      const A = new Float32Array(m * band);
      for (let i = i0; i < i1; i++)
        for (let k = 0; k < K; k++)
          if (weight[i * K + k] !== 0) A[(i - i0) * band + index[i * K + k] - lo] += weight[i * K + k];
      return tf.matMul(tf.tensor2d(A, [m, band]), rows(lo, band)) as tf.Tensor2D;
    });
    return parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor2D);
  });
}

/**
 * One pass along `axis` (0: rows, 1: columns) of a float32 HWC image. Returns `x` itself when the size stays.
 * BOX to exactly half an even side is a 2-wide average pool, as PIL's weights are ½, ½ there (and in float32,
 * `(a + b) / 2` rounds as PIL's double `a·½ + b·½` stored to float32).
 */
function resampleAxis(x: tf.Tensor3D, axis: 0 | 1, outSize: number, filter: ResampleFilter): tf.Tensor3D {
  const [h, w, c] = x.shape;
  const inSize = x.shape[axis];
  if (inSize === outSize) return x;
  return tf.tidy(() => {
    if (filter === 'box' && inSize === 2 * outSize) {
      const win: [number, number] = axis === 0 ? [2, 1] : [1, 2];
      return tf.avgPool(x, win, win, 'valid');
    }
    if (axis === 0)
      return tf.reshape(resampleRows(tf.reshape(x, [h, w * c]) as tf.Tensor2D, outSize, filter), [outSize, w, c]);
    const t = tf.reshape(tf.transpose(x, [1, 0, 2]), [w, h * c]) as tf.Tensor2D;
    return tf.transpose(tf.reshape(resampleRows(t, outSize, filter), [outSize, h, c]), [1, 0, 2]);
  });
}

/** Both passes, horizontal first; the intermediate is disposed. Returns `x` itself when the size stays. */
function resample2d(x: tf.Tensor3D, h: number, w: number, filter: ResampleFilter): tf.Tensor3D {
  const mid = resampleAxis(x, 1, w, filter);
  const out = resampleAxis(mid, 0, h, filter);
  if (mid !== x && mid !== out) mid.dispose();
  return out;
}

function checkImage(image: tf.Tensor3D): void {
  if (!(image instanceof tf.Tensor) || image.rank !== 3)
    throw new InputError(
      `an image must be a rank-3 HWC tensor, got ${image instanceof tf.Tensor ? `shape [${image.shape}]` : typeof image}`,
    );
  if (image.size === 0) throw new InputError(`an image must not be empty, got shape [${image.shape}]`);
}

/**
 * PIL's `image.resize((w, h), filter)` on an HWC float image, every channel alike: the horizontal pass, then the
 * vertical one, in float32.
 * @param image `[H, W, C]`; an integer dtype is cast to float32.
 * @param size `[h, w]`, the output's height and width.
 * @returns `[h, w, C]` float32, a new tensor (a copy when the size does not change).
 * @throws InputError for an image that is not a non-empty rank-3 tensor, a size that is not two positive
 *   integers, or an unknown filter.
 */
export function pilResize(
  image: tf.Tensor3D,
  size: readonly [number, number],
  filter: ResampleFilter = 'bicubic',
): tf.Tensor3D {
  checkImage(image);
  if (!Array.isArray(size) || size.length !== 2)
    throw new InputError(`size must be [height, width], got ${JSON.stringify(size)}`);
  checkSide('the output height', size[0]);
  checkSide('the output width', size[1]);
  if (!Object.prototype.hasOwnProperty.call(FILTERS, filter))
    throw new InputError(`filter must be 'bicubic' or 'box', got ${String(filter)}`);
  return tf.tidy(() => {
    const x = image.dtype === 'float32' ? image : (tf.cast(image, 'float32') as tf.Tensor3D);
    const y = resample2d(x, size[0], size[1], filter);
    return y === image ? tf.clone(y) : y;
  });
}

/** Python's `round`: halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The resize of guided-diffusion's `center_crop_arr` / `random_crop_arr`: while the short side is ≥ 2·`short`,
 * PIL `BOX` resize to `⌊side / 2⌋` (on an odd side the windows are pairs and one triple, or at some sizes, such as
 * 13 → 6, pairs that leave one pixel out, as PIL's rounding falls: never a dropped last row); then PIL `BICUBIC`
 * resize of the sides to `round(side · short / min(H, W))` (Python's rounding), so the short side is `short`. Call inside `tf.tidy`: the result may be `image` itself (no resize needed).
 * @param image float32 `[H, W, C]`, checked by the caller.
 * @param short a positive integer.
 */
export function resizeShortSide(image: tf.Tensor3D, short: number): tf.Tensor3D {
  let x = image.dtype === 'float32' ? image : (tf.cast(image, 'float32') as tf.Tensor3D);
  const drop = (t: tf.Tensor3D, keep: tf.Tensor3D) => t !== image && t !== keep && t.dispose();
  while (Math.min(x.shape[0], x.shape[1]) >= 2 * short) {
    const [h, w] = x.shape;
    const halved = resample2d(x, Math.floor(h / 2), Math.floor(w / 2), 'box');
    drop(x, halved);
    x = halved;
  }
  const [h, w] = x.shape;
  const scale = short / Math.min(h, w);
  const out = resample2d(x, roundHalfEven(h * scale), roundHalfEven(w * scale), 'bicubic');
  drop(x, out);
  return out;
}
