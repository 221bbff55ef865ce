import * as tf from '@tensorflow/tfjs-core';
import { mapSums, spatialMean } from '../ops/mapReductions.js';
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

// silu(x·scale + offset) with its gradient written out: per element g = dy·(σ + y·(1 − σ)), then
// dx = g·scale and the per-example, per-channel sums of g·x and g by average pools. tfjs's own chain
// took about twice the passes over the map plus two Sums, which transpose on wasm.
const affineSiluOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, scale, offset] = args as tf.Tensor4D[];
  const save = args[3] as tf.GradSaveFunc;
  const z = tf.add(tf.mul(x, scale), offset);
  const s = tf.sigmoid(z);
  const y = tf.mul(z, s);
  save([x, scale, s, y]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) =>
      tf.tidy(() => {
        const [xs, sc, sg, ys] = saved as tf.Tensor4D[];
        const g = tf.mul(dy as tf.Tensor4D, tf.add(sg, tf.mul(ys, tf.sub(1, sg)))) as tf.Tensor4D;
        return [tf.mul(g, sc), fitTo(mapSums(tf.mul(g, xs)), sc), fitTo(mapSums(g), sc)];
      }),
  };
});

/** A `[N, 1, 1, C]` gradient summed over the examples when the parameter it is for broadcast over them. */
function fitTo(grad: tf.Tensor4D, param: tf.Tensor4D): tf.Tensor4D {
  return param.shape[0] === 1 && grad.shape[0] !== 1 ? tf.sum(grad, 0, true) : grad;
}

/**
 * `silu(x·scale + offset)`, the normalise-and-activate step of ADM's blocks, as one differentiable
 * op with a hand-written gradient (the values are those of `silu(applyAffine(x, norm))`).
 * @param norm `[N, 1, 1, C]` or `[1, 1, 1, C]` scale and offset.
 */
export function affineSilu(x: tf.Tensor4D, { scale, offset }: NormAffine): tf.Tensor4D {
  return affineSiluOp(x, scale, offset) as tf.Tensor4D;
}

// The per-channel mean over the map of (x − μ)², μ `[N, 1, 1, C]`; gradient: dx = (x − μ)·2·dq/(H·W),
// dμ = −2·dq·(mean(x) − μ). tfjs's chain (sub, square, mean) summed over the map with a transposing Sum for dμ.
const centredSquareMeanOp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, mu] = args as tf.Tensor4D[];
  const save = args[2] as tf.GradSaveFunc;
  const [, h, w] = x.shape;
  save([x, mu]);
  return {
    value: tf.avgPool(tf.square(tf.sub(x, mu)) as tf.Tensor4D, [h, w], 1, 'valid'),
    gradFunc: (dq: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) =>
      tf.tidy(() => {
        const [xs, m] = saved as tf.Tensor4D[];
        const twice = tf.mul(dq as tf.Tensor4D, 2);
        const dx = tf.mul(tf.sub(xs, m), tf.div(twice, h * w));
        const dmu = tf.neg(tf.mul(twice, tf.sub(tf.avgPool(xs, [h, w], 1, 'valid'), m))) as tf.Tensor4D;
        return [dx, fitTo(dmu, m)];
      }),
  };
});

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
    const mean = groupAverage(channelMeans(x, rows, spatialMean), groups);
    const variance = groupAverage(
      channelMeans(x, rows, (band) => centredSquareMeanOp(band, mean) as tf.Tensor4D),
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

/** The mean over (H, W) that `bandMean` gives each band of `rows` rows, weighted by its rows: `[N, 1, 1, C]`. */
function channelMeans(x: tf.Tensor4D, rows: number, bandMean: (band: tf.Tensor4D) => tf.Tensor4D): tf.Tensor4D {
  const [, h, w] = x.shape;
  let sum: tf.Tensor4D | null = null;
  for (let top = 0; top < h; top += rows) {
    const count = Math.min(rows, h - top);
    const part = tf.tidy((): tf.Tensor4D => {
      const m = bandMean(rowSlice(x, top, count));
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
  if (c === groups) return channelMeans;
  const means = tf.mean(tf.reshape(channelMeans, [n, groups, c / groups]), 2, true);
  // A broadcasting add rather than broadcastTo: wasm's Tile costs a kernel call of its own either way, and more.
  return tf.reshape(tf.add(tf.zeros([n, groups, c / groups]), means), [n, 1, 1, c]);
}
