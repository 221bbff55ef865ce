import * as tf from '@tensorflow/tfjs-core';
import { alias, recordingGradients } from '../../backend/engine.js';
import { sliceRows } from '../../backend/sliceRows.js';
import { heapView, wasmHeap } from '../../backend/wasm/index.js';
import { downsampleAvg, upsampleNearest } from '../resample.js';

/**
 * A feature map that is made on demand, a band of rows at a time. The 256×256 model's decoder works
 * on 256×256×512 maps (128 MiB each): normalising, activating and resampling such a map whole before
 * its conv holds several copies at once, while in bands only one band of each exists.
 *
 * `get(0, height)` works for any batch; a band of fewer rows only for one example (`shape[0] = 1`),
 * whose rows are contiguous.
 */
export interface Rows {
  /** `[N, H, W, C]` of the whole map. */
  readonly shape: [number, number, number, number];
  /** Rows `[top, top + count)` as `[N, count, W, C]`, owned by the caller. */
  get(top: number, count: number): tf.Tensor4D;
}

/** Rows `[top, top + count)` of a map (a copy of just those rows; the map itself when all are asked for). */
export function rowSlice(x: tf.Tensor4D, top: number, count: number): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (top === 0 && count === h) return x;
  if (n !== 1) throw new RangeError(`rowSlice: a band of rows needs one example, got ${n}`);
  return tf.reshape(sliceRows(tf.reshape(x, [h, w * c]), top, count), [1, count, w, c]);
}

/** The rows of `x`, with a pointwise `f` (normalisation, activation) applied to each band as it is read. */
export function rowsOf(x: tf.Tensor4D, f?: (band: tf.Tensor4D) => tf.Tensor4D): Rows {
  return {
    shape: x.shape,
    get: (top, count) =>
      tf.tidy(() => {
        const band = rowSlice(x, top, count);
        return f ? f(band) : band === x ? alias(x) : band;
      }),
  };
}

/** `src` upsampled ×2 by nearest neighbour, band by band. */
export function upsampledRows(src: Rows): Rows {
  const [n, h, w, c] = src.shape;
  return {
    shape: [n, 2 * h, 2 * w, c],
    get: (top, count) =>
      tf.tidy(() => {
        const first = Math.floor(top / 2);
        const up = upsampleNearest(src.get(first, Math.ceil((top + count) / 2) - first));
        return up.shape[1] === count ? up : rowSlice(up, top - 2 * first, count);
      }),
  };
}

/** `src` average-pooled 2×2 with stride 2, band by band. */
export function downsampledRows(src: Rows): Rows {
  const [n, h, w, c] = src.shape;
  return {
    shape: [n, Math.floor(h / 2), Math.floor(w / 2), c],
    get: (top, count) => tf.tidy(() => downsampleAvg(src.get(2 * top, 2 * count))),
  };
}

/**
 * How many rows of a `width`-wide map go in one band when each row costs `floatsPerRow` floats of
 * intermediates and a band may hold `budget` floats: a multiple of 4 (whole Winograd tiles), at
 * least 4, or all `height` rows when they fit.
 */
export function bandRows(height: number, floatsPerRow: number, budget: number): number {
  const rows = Math.max(4, 4 * Math.floor(budget / floatsPerRow / 4));
  return rows >= height ? height : rows;
}

/**
 * Runs `band(top, count)` over bands of `rows` rows covering `height` and joins the results along
 * axis 1. On wasm, outside gradient recording, each band is copied into the output as soon as it is
 * made and freed, so the output is never held twice; elsewhere the bands are concatenated.
 */
export function mapBands(height: number, rows: number, band: (top: number, count: number) => tf.Tensor4D): tf.Tensor4D {
  if (rows >= height) return band(0, height);
  const heap = wasmHeap();
  // Gradients need the bands as ops on the tape, so while one is recorded they are concatenated.
  if (!heap || recordingGradients()) {
    const parts: tf.Tensor4D[] = [];
    for (let top = 0; top < height; top += rows) parts.push(band(top, Math.min(rows, height - top)));
    const whole = tf.concat(parts, 1);
    tf.dispose(parts);
    return whole;
  }
  let out: tf.Tensor4D | undefined;
  for (let top = 0; top < height; top += rows) {
    const part = band(top, Math.min(rows, height - top));
    try {
      const [n, , w, c] = part.shape;
      if (n !== 1) throw new RangeError(`mapBands: bands need one example, got ${n}`);
      if (!out) {
        // Allocated only once the first band tells the width and channels; owned by the caller's scope.
        out = tf.engine().makeTensorFromTensorInfo(heap.makeOutput([1, height, w, c], 'float32')) as tf.Tensor4D;
      }
      heapView(heap, out).set(heapView(heap, part), top * w * c);
    } finally {
      part.dispose();
    }
  }
  return out!;
}
