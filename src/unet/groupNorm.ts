import * as tf from '@tensorflow/tfjs-core';
import { spatialMean } from './resample.js';
import { rowSlice } from './runtime/rows.js';

/** A per-example, per-channel affine applied after the norm's own: `y·(1 + scale) + shift`. */
export interface FiLM {
  /** `[N, C]` */
  scale: tf.Tensor2D;
  /** `[N, C]` */
  shift: tf.Tensor2D;
}

/** GroupNorm (with its affine and any FiLM) as one per-example, per-channel `x·scale + offset`. */
export type NormAffine = {
  /** `[N, 1, 1, C]` */
  scale: tf.Tensor4D;
  /** `[N, 1, 1, C]` */
  offset: tf.Tensor4D;
};

/**
 * GroupNorm over NHWC, as `nn.GroupNorm(32, C, eps=1e-5)`: statistics per example and group over
 * (H, W, C/groups), biased variance (two-pass, as the reference), then the per-channel affine, with
 * an optional FiLM folded into the same multiply-add (ADM's scale-shift norm).
 */
export function groupNorm(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  film?: FiLM,
  groups = 32,
  eps = 1e-5,
): tf.Tensor4D {
  return tf.tidy(() => applyAffine(x, groupNormAffine(x, gamma, beta, film, { groups, eps })));
}

/** `x·scale + offset`. */
export function applyAffine(x: tf.Tensor4D, { scale, offset }: NormAffine): tf.Tensor4D {
  return tf.add(tf.mul(x, scale), offset) as tf.Tensor4D;
}

/**
 * What {@link groupNorm} applies, without applying it: the statistics of `x` and every affine
 * folded into one scale and offset, so that the normalised map can be made band by band where it is
 * used (and folding leaves two elementwise passes over the map instead of six).
 *
 * Why not `tf.moments`: on wasm a mean over (H, W) runs a transpose and a single-threaded reduction,
 * many times slower than XNNPACK's average pool over the map (docs/tuning.md#group-norm; a
 * `[1, H·W] × [H·W, C]` matMul would be as fast but repacks its right operand, the map, on every
 * call).
 * @param rows with one example, gather the statistics over bands of this many rows, so that the
 * centred squares never exist for the whole map (default: all rows at once).
 */
export function groupNormAffine(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  film?: FiLM,
  opts: { groups?: number; eps?: number; rows?: number } = {},
): NormAffine {
  const { groups = 32, eps = 1e-5 } = opts;
  return tf.tidy(() => {
    const [n, h, , c] = x.shape;
    const rows = n === 1 ? Math.min(h, opts.rows ?? h) : h;
    const mean = groupAverage(
      channelMeans(x, rows, (band) => band),
      groups,
    );
    const variance = groupAverage(
      channelMeans(x, rows, (band) => tf.square(tf.sub(band, mean)) as tf.Tensor4D),
      groups,
    );
    let scale: tf.Tensor = tf.mul(tf.rsqrt(tf.add(variance, eps)), gamma);
    let offset: tf.Tensor = tf.sub(beta, tf.mul(mean, scale));
    if (film) {
      const one = tf.reshape(tf.add(film.scale, 1), [n, 1, 1, c]);
      scale = tf.mul(scale, one);
      offset = tf.add(tf.mul(offset, one), tf.reshape(film.shift, [n, 1, 1, c]));
    }
    return { scale: scale as tf.Tensor4D, offset: offset as tf.Tensor4D };
  });
}

/** Mean over (H, W) of `f(band)` for bands of `rows` rows: `[N, 1, 1, C]`. */
function channelMeans(x: tf.Tensor4D, rows: number, f: (band: tf.Tensor4D) => tf.Tensor4D): tf.Tensor4D {
  const [, h, w] = x.shape;
  let sum: tf.Tensor4D | null = null;
  for (let top = 0; top < h; top += rows) {
    const count = Math.min(rows, h - top);
    const part = tf.tidy((): tf.Tensor4D => {
      const m = spatialMean(f(rowSlice(x, top, count)));
      return count === h ? m : tf.mul(m, count / h);
    });
    if (sum) {
      const prev: tf.Tensor4D = sum;
      sum = tf.add(prev, part) as tf.Tensor4D;
      tf.dispose([prev, part]);
    } else sum = part;
  }
  return sum!;
}

/** Mean of each example's group of channels, broadcast back to its channels: `[N, 1, 1, C]`. */
function groupAverage(channelMeans: tf.Tensor4D, groups: number): tf.Tensor4D {
  const [n, , , c] = channelMeans.shape;
  const means = tf.mean(tf.reshape(channelMeans, [n, groups, c / groups]), 2, true);
  return tf.reshape(tf.broadcastTo(means, [n, groups, c / groups]), [n, 1, 1, c]);
}
