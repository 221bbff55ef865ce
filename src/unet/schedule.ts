/**
 * Noise schedules and the forward (noising) process `q_sample`, as in guided-diffusion's
 * `GaussianDiffusion`: tables in float64, coefficients cast to float32 at use.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';

/**
 * Schedule tables of length T, in float64 like the reference's numpy arrays.
 * @category Backbone
 */
export interface NoiseSchedule {
  /** Number of diffusion steps T; valid t are the integers 0..T−1. */
  steps: number;
  kind: 'linear' | 'cosine';
  betas: Float64Array;
  alphasCumprod: Float64Array;
  sqrtAlphasCumprod: Float64Array;
  sqrtOneMinusAlphasCumprod: Float64Array;
}

function linearBetas(T: number): Float64Array {
  // numpy.linspace: start + i·step, with the last value set to stop exactly.
  const scale = 1000 / T;
  const start = scale * 0.0001;
  const stop = scale * 0.02;
  const out = new Float64Array(T);
  const step = T > 1 ? (stop - start) / (T - 1) : 0;
  for (let i = 0; i < T; i++) out[i] = i * step + start;
  if (T > 1) out[T - 1] = stop;
  return out;
}

function cosineBetas(T: number): Float64Array {
  const alphaBar = (s: number) => Math.cos(((s + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const out = new Float64Array(T);
  for (let i = 0; i < T; i++) out[i] = Math.min(1 - alphaBar((i + 1) / T) / alphaBar(i / T), 0.999);
  return out;
}

/**
 * Builds the schedule tables of guided-diffusion's `get_named_beta_schedule`.
 * @param kind `linear` (betas from 1e-4·1000/T to 0.02·1000/T) or `cosine` (Nichol & Dhariwal).
 * @param steps T, the number of diffusion steps.
 * @category Backbone
 */
export function noiseSchedule(kind: 'linear' | 'cosine', steps = 1000): NoiseSchedule {
  if (!Number.isInteger(steps) || steps < 1) throw new InputError(`steps must be a positive integer, got ${steps}`);
  if (kind !== 'linear' && kind !== 'cosine')
    throw new InputError(`unknown noise schedule "${String(kind)}" (linear or cosine)`);
  const betas = kind === 'linear' ? linearBetas(steps) : cosineBetas(steps);
  const alphasCumprod = new Float64Array(steps);
  const sqrtAlphasCumprod = new Float64Array(steps);
  const sqrtOneMinusAlphasCumprod = new Float64Array(steps);
  let prod = 1;
  for (let i = 0; i < steps; i++) {
    prod *= 1 - betas[i];
    alphasCumprod[i] = prod;
    sqrtAlphasCumprod[i] = Math.sqrt(prod);
    sqrtOneMinusAlphasCumprod[i] = Math.sqrt(1 - prod);
  }
  return { steps, kind, betas, alphasCumprod, sqrtAlphasCumprod, sqrtOneMinusAlphasCumprod };
}

/**
 * Checks that `t` holds one integer in [0, T) per example.
 * @throws InputError naming the bad entry.
 */
export function checkTimesteps(t: readonly number[], steps: number, batch: number, what = 't'): void {
  if (!Array.isArray(t)) throw new InputError(`${what} must be an array of integers, one per example`);
  if (t.length !== batch) throw new InputError(`${what} has ${t.length} entries but the batch has ${batch} examples`);
  t.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v))
      throw new InputError(
        `${what}[${i}] = ${JSON.stringify(v)} is not an integer: t must be an integer step index in [0, ${steps})`,
      );
    if (v < 0 || v >= steps)
      throw new InputError(`${what}[${i}] = ${v} is outside [0, ${steps}): t must be an integer step index`);
  });
}

/**
 * The largest magnitude {@link checkImageRange} lets through. Clean images live in [-1, 1]; the
 * margin leaves room for resampling overshoot while still catching [0, 255] pixels and
 * mean/std-normalised images.
 * @category Backbone
 */
export const IMAGE_RANGE_LIMIT = 1.5;

/**
 * Checks that clean images are finite and scaled for the model: every value within
 * ±{@link IMAGE_RANGE_LIMIT}. Images in [0, 1] pass (they cannot be told apart from bright images in
 * [-1, 1]) but are off by a shift: rescale them with `x * 2 - 1`. Reads two numbers back from the
 * backend. Not for x_t, which noise takes outside [-1, 1].
 * @param what the argument's name, for the message.
 * @throws InputError naming the argument, saying how to rescale, and how to opt out (`checkRange: false`).
 * @category Backbone
 */
export function checkImageRange(x: tf.Tensor, what = 'x0'): void {
  // x·0 is 0 for finite values and NaN for NaN and ±Inf, so its sum flags any non-finite value.
  const stats = tf.tidy(() => tf.stack([tf.max(tf.abs(x)), tf.sum(tf.mul(x, 0))]));
  const [maxAbs, nonFinite] = stats.dataSync();
  stats.dispose();
  const optOut = 'pass checkRange: false if these values are meant';
  if (Number.isNaN(nonFinite)) {
    const nan = tf.tidy(() => tf.sum(tf.cast(tf.notEqual(x, x), 'int32')));
    const count = nan.dataSync()[0];
    nan.dispose();
    throw new InputError(
      `${what} holds ${count > 0 ? `${count} NaN value${count === 1 ? '' : 's'}` : 'infinite values'}: images must be finite numbers in [-1, 1] (check how they were decoded and scaled); ${optOut}`,
    );
  }
  if (maxAbs > IMAGE_RANGE_LIMIT)
    throw new InputError(
      `${what} holds values as large as ${maxAbs} in magnitude, but the model takes images in [-1, 1]: rescale 8-bit pixels with x / 127.5 - 1 (and [0, 1] images with x * 2 - 1); ${optOut}`,
    );
}

/**
 * The forward process: `x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·noise`, per example, with the
 * coefficients taken from the float64 tables and cast to float32 as the reference does.
 * @param x0 clean images `[N, H, W, C]` in [-1, 1].
 * @param t one integer step per example.
 * @param noise ε with the shape of `x0`.
 * @returns x_t, owned by the caller.
 * @category Backbone
 */
export function qSample(
  schedule: NoiseSchedule,
  x0: tf.Tensor4D,
  t: readonly number[],
  noise: tf.Tensor4D,
): tf.Tensor4D {
  if (!(x0 instanceof tf.Tensor) || x0.rank !== 4)
    throw new InputError(
      `x0 must be a rank-4 NHWC tensor, got ${x0 instanceof tf.Tensor ? `rank ${x0.rank}` : typeof x0}`,
    );
  if (!(noise instanceof tf.Tensor) || !tf.util.arraysEqual(noise.shape, x0.shape))
    throw new InputError(
      `noise must have the shape of x0 [${x0.shape}], got ${noise instanceof tf.Tensor ? `[${noise.shape}]` : typeof noise}`,
    );
  checkTimesteps(t, schedule.steps, x0.shape[0]);
  return tf.tidy(() => {
    const c1 = tf.tensor4d(
      Float32Array.from(t, (i) => schedule.sqrtAlphasCumprod[i]),
      [t.length, 1, 1, 1],
    );
    const c2 = tf.tensor4d(
      Float32Array.from(t, (i) => schedule.sqrtOneMinusAlphasCumprod[i]),
      [t.length, 1, 1, 1],
    );
    return tf.add(tf.mul(c1, x0), tf.mul(c2, noise));
  });
}
