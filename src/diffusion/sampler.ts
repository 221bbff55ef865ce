/**
 * The reverse process of guided-diffusion's `GaussianDiffusion` for ε-prediction models: the
 * posterior q(x_{t−1} | x_t, x0), the model's p(x_{t−1} | x_t) (`p_mean_variance`), one ancestral
 * (`p_sample`) or DDIM (`ddim_sample`) step, and the seeded sampling loops over them.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import type { ADMUNet } from '../unet/admUnet.js';
import { checkClassLabels } from '../unet/inputChecks.js';
import { checkSeed, seededNormal } from '../util/noise.js';
import { progressClock, type ProgressCallback, type SampleProgressInfo } from '../util/progress.js';
import { diffusionTables, spaceTimesteps, type DiffusionTables } from './tables.js';

/**
 * Where the variance of p(x_{t−1} | x_t) comes from, as guided-diffusion's `ModelVarianceType`:
 * `learned` interpolates log β_t and the clipped log posterior variance with the model's second
 * half of channels (`learn_sigma` models), `fixedlarge` is β_t (index 0 taking the posterior
 * variance of index 1), `fixedsmall` is the posterior variance.
 * @category Diffusion
 */
export type VarianceKind = 'learned' | 'fixedlarge' | 'fixedsmall';

/**
 * The network a sampler runs: an {@link ADMUNet} or anything with its config, schedule and forward.
 * @category Diffusion
 */
export type DenoisingModel = Pick<ADMUNet, 'config' | 'schedule' | 'forward'>;

/**
 * Options of {@link pMeanVariance} and the single steps.
 * @category Diffusion
 */
export interface ModelStepOptions {
  /** Clip x̂0 to [-1, 1] before the posterior mean (default true, as the reference's sampling scripts). */
  clipDenoised?: boolean;
  /** Default `learned` for `learn_sigma` models (output of 2·C channels), `fixedlarge` for others. */
  variance?: VarianceKind;
  /** Class labels, one per example: required by class-conditional models, refused by others. */
  y?: number[];
  /** The diffusion's tables (default: the model's whole schedule); pass respaced ones for DDIM. */
  tables?: DiffusionTables;
}

/**
 * The mean and variance of a Gaussian over images; `[N, 1, 1, 1]` variances are per example.
 * @category Diffusion
 */
export interface MeanVariance {
  mean: tf.Tensor4D;
  variance: tf.Tensor4D;
  logVariance: tf.Tensor4D;
}

/**
 * What {@link pMeanVariance} returns; the caller owns every tensor.
 * @category Diffusion
 */
export interface ModelMeanVariance extends MeanVariance {
  /** x̂0 from the predicted ε, clipped when `clipDenoised`. */
  predXstart: tf.Tensor4D;
  /** The predicted ε, the first C channels of the model's output. */
  eps: tf.Tensor4D;
}

// Float64 table entries at the given indices, cast to float32 as the reference's `_extract_into_tensor`.
function extract(table: Float64Array, index: readonly number[]): tf.Tensor4D {
  return tf.tensor4d(
    Float32Array.from(index, (i) => table[i]),
    [index.length, 1, 1, 1],
  );
}

// 1 for every example but those at index 0, where the reference adds no noise.
function nonzeroMask(t: readonly number[]): tf.Tensor4D {
  return tf.tensor4d(
    t.map((i) => (i === 0 ? 0 : 1)),
    [t.length, 1, 1, 1],
  );
}

function checkIndices(index: readonly number[], tables: DiffusionTables, n: number): void {
  if (!Array.isArray(index) || index.length !== n)
    throw new InputError(`t must list one step index per example (${n}), got ${JSON.stringify(index)}`);
  index.forEach((i, k) => {
    if (!Number.isInteger(i) || i < 0 || i >= tables.steps)
      throw new InputError(
        `t[${k}] = ${JSON.stringify(i)} is not a step index of this diffusion, in [0, ${tables.steps})`,
      );
  });
}

/**
 * The posterior q(x_{t−1} | x_t, x0) of guided-diffusion's `q_posterior_mean_variance`:
 * mean `coef1·x0 + coef2·x_t`, variance and clipped log variance per example.
 * @param t one index into `tables` per example.
 * @returns new tensors, owned by the caller.
 * @throws InputError for mismatched shapes or indices outside the tables.
 * @category Diffusion
 */
export function qPosteriorMeanVariance(
  tables: DiffusionTables,
  x0: tf.Tensor4D,
  xt: tf.Tensor4D,
  t: readonly number[],
): MeanVariance {
  if (
    !(x0 instanceof tf.Tensor) ||
    !(xt instanceof tf.Tensor) ||
    !tf.util.arraysEqual(x0.shape, xt.shape) ||
    x0.rank !== 4
  )
    throw new InputError('x0 and xt must be rank-4 tensors of one shape [N, H, W, C]');
  checkIndices(t, tables, x0.shape[0]);
  return tf.tidy(() => ({
    mean: tf.add(
      tf.mul(extract(tables.posteriorMeanCoef1, t), x0),
      tf.mul(extract(tables.posteriorMeanCoef2, t), xt),
    ) as tf.Tensor4D,
    variance: extract(tables.posteriorVariance, t),
    logVariance: extract(tables.posteriorLogVarianceClipped, t),
  }));
}

/** The variance kind a model samples with, checked against its output channels. */
function varianceKind(model: DenoisingModel, kind: VarianceKind | undefined): VarianceKind {
  const learnSigma = model.config.outChannels === 2 * model.config.inChannels;
  if (kind === undefined) return learnSigma ? 'learned' : 'fixedlarge';
  if (kind !== 'learned' && kind !== 'fixedlarge' && kind !== 'fixedsmall')
    throw new InputError(`unknown variance "${String(kind)}": use learned, fixedlarge or fixedsmall`);
  if (kind === 'learned' && !learnSigma)
    throw new InputError(
      'variance "learned" needs a learn_sigma model (2·C output channels); this one predicts ε only: use fixedlarge or fixedsmall',
    );
  return kind;
}

/**
 * The model's p(x_{t−1} | x_t) for ε-prediction, as guided-diffusion's `p_mean_variance`:
 * x̂0 = sqrt(1/ᾱ_t)·x_t − sqrt(1/ᾱ_t − 1)·ε (optionally clipped to [-1, 1]), the posterior mean
 * at x̂0, and the variance of `opts.variance`. The model is given `tables.timesteps[t]`.
 * @param t one index into the tables per example.
 * @returns new tensors, owned by the caller (per-example variances for the fixed kinds, per-pixel for `learned`).
 * @throws InputError for a bad batch, index, label or variance kind.
 * @category Diffusion
 */
export function pMeanVariance(
  model: DenoisingModel,
  xt: tf.Tensor4D,
  t: readonly number[],
  opts: ModelStepOptions = {},
): ModelMeanVariance {
  const tables = opts.tables ?? diffusionTables(model.schedule);
  const kind = varianceKind(model, opts.variance);
  if (!(xt instanceof tf.Tensor) || xt.rank !== 4) throw new InputError('xt must be a rank-4 NHWC tensor');
  checkIndices(t, tables, xt.shape[0]);
  const C = model.config.inChannels;
  return tf.tidy(() => {
    const { output } = model.forward(
      xt,
      t.map((i) => tables.timesteps[i]),
      opts.y ? { y: opts.y } : {},
    );
    const eps = output!.shape[3] > C ? tf.slice(output!, [0, 0, 0, 0], [-1, -1, -1, C]) : output!;
    let x0 = tf.sub(
      tf.mul(extract(tables.sqrtRecipAlphasCumprod, t), xt),
      tf.mul(extract(tables.sqrtRecipm1AlphasCumprod, t), eps),
    );
    if (opts.clipDenoised !== false) x0 = tf.clipByValue(x0, -1, 1);
    const mean = tf.add(
      tf.mul(extract(tables.posteriorMeanCoef1, t), x0),
      tf.mul(extract(tables.posteriorMeanCoef2, t), xt),
    ) as tf.Tensor4D;
    let variance: tf.Tensor4D;
    let logVariance: tf.Tensor4D;
    if (kind === 'learned') {
      const v = tf.slice(output!, [0, 0, 0, C], [-1, -1, -1, C]);
      const minLog = extract(tables.posteriorLogVarianceClipped, t);
      const maxLog = extract(tables.betas.map(Math.log), t);
      const frac = tf.div(tf.add(v, 1), 2);
      logVariance = tf.add(tf.mul(frac, maxLog), tf.mul(tf.sub(1, frac), minLog));
      variance = tf.exp(logVariance);
    } else if (kind === 'fixedlarge') {
      // β_t, with index 0 taking the posterior variance of index 1 (the reference's choice).
      const large = tables.betas.map((b, i) => (i === 0 ? tables.posteriorVariance[1] : b));
      variance = extract(large, t);
      logVariance = extract(large.map(Math.log), t);
    } else {
      variance = extract(tables.posteriorVariance, t);
      logVariance = extract(tables.posteriorLogVarianceClipped, t);
    }
    return { mean, variance, logVariance, predXstart: x0 as tf.Tensor4D, eps: eps as tf.Tensor4D };
  });
}

/**
 * One ancestral step, guided-diffusion's `p_sample`: `mean + exp(½·log variance)·noise`, with no
 * noise where the index is 0.
 * @param noise standard-normal noise of x_t's shape.
 * @returns x_{t−1}, owned by the caller.
 * @category Diffusion
 */
export function ddpmStep(
  model: DenoisingModel,
  xt: tf.Tensor4D,
  t: readonly number[],
  noise: tf.Tensor4D,
  opts: ModelStepOptions = {},
): tf.Tensor4D {
  checkNoise(noise, xt);
  return tf.tidy(() => {
    const out = pMeanVariance(model, xt, t, opts);
    return tf.add(out.mean, tf.mul(nonzeroMask(t), tf.mul(tf.exp(tf.mul(0.5, out.logVariance)), noise)));
  });
}

/**
 * One DDIM step, guided-diffusion's `ddim_sample`: ε re-derived from the (clipped) x̂0, then
 * `x̂0·sqrt(ᾱ_prev) + sqrt(1 − ᾱ_prev − σ²)·ε + σ·noise` with
 * σ = η·sqrt((1 − ᾱ_prev)/(1 − ᾱ))·sqrt(1 − ᾱ/ᾱ_prev), and no noise where the index is 0.
 * @param noise standard-normal noise of x_t's shape (unused when η = 0).
 * @returns the next x, owned by the caller.
 * @category Diffusion
 */
export function ddimStep(
  model: DenoisingModel,
  xt: tf.Tensor4D,
  t: readonly number[],
  noise: tf.Tensor4D,
  opts: ModelStepOptions & { eta?: number } = {},
): tf.Tensor4D {
  const eta = checkEta(opts.eta);
  checkNoise(noise, xt);
  const tables = opts.tables ?? diffusionTables(model.schedule);
  return tf.tidy(() => {
    const { predXstart } = pMeanVariance(model, xt, t, { ...opts, tables });
    const eps = tf.div(
      tf.sub(tf.mul(extract(tables.sqrtRecipAlphasCumprod, t), xt), predXstart),
      extract(tables.sqrtRecipm1AlphasCumprod, t),
    );
    const ab = extract(tables.alphasCumprod, t);
    const prev = extract(tables.alphasCumprodPrev, t);
    // σ = η·sqrt((1 − ᾱ_prev)/(1 − ᾱ))·sqrt(1 − ᾱ/ᾱ_prev), in float32 from the cast tables as the reference.
    const sig = tf.mul(
      eta,
      tf.mul(tf.sqrt(tf.div(tf.sub(1, prev), tf.sub(1, ab))), tf.sqrt(tf.sub(1, tf.div(ab, prev)))),
    );
    const meanPred = tf.add(
      tf.mul(predXstart, tf.sqrt(prev)),
      tf.mul(tf.sqrt(tf.sub(tf.sub(1, prev), tf.square(sig))), eps),
    );
    return tf.add(meanPred, tf.mul(nonzeroMask(t), tf.mul(sig, noise)));
  });
}

function checkNoise(noise: tf.Tensor4D, xt: tf.Tensor4D): void {
  if (!(noise instanceof tf.Tensor) || !(xt instanceof tf.Tensor) || !tf.util.arraysEqual(noise.shape, xt.shape))
    throw new InputError(
      `noise must have the shape of xt [${xt instanceof tf.Tensor ? xt.shape : '?'}], got ${noise instanceof tf.Tensor ? `[${noise.shape}]` : typeof noise}`,
    );
}

function checkEta(eta: number | undefined): number {
  if (eta === undefined) return 0;
  if (typeof eta !== 'number' || !Number.isFinite(eta) || eta < 0)
    throw new InputError(
      `eta must be a finite number ≥ 0 (0 is deterministic DDIM, 1 is DDPM-like), got ${String(eta)}`,
    );
  return eta;
}

/**
 * Options of {@link sampleDDPM}.
 * @category Diffusion
 */
export interface SampleOptions {
  /** Number of images; may be omitted when `xT` is given. */
  batch?: number;
  /** Seed of x_T and of every step's noise (any safe integer, 0 included); undefined draws fresh noise. */
  seed?: number;
  /** Start from this x_T `[N, S, S, C]` instead of drawing it (not consumed); steps' noise still comes from `seed`. */
  xT?: tf.Tensor4D;
  /** Clip x̂0 to [-1, 1] at every step (default true). */
  clipDenoised?: boolean;
  /** See {@link VarianceKind}; default `learned` for `learn_sigma` models, `fixedlarge` for others. */
  variance?: VarianceKind;
  /** Class labels, one per image: required by class-conditional models, refused by others. */
  y?: number[];
  /** Called after every step. A callback that throws stops sampling. */
  onProgress?: ProgressCallback<SampleProgressInfo>;
}

/**
 * Options of {@link sampleDDIM}.
 * @category Diffusion
 */
export interface DDIMOptions extends SampleOptions {
  /** Number of steps, respaced by guided-diffusion's `"ddimN"` stride rule (see {@link spaceTimesteps}). */
  steps: number;
  /** η: 0 (default) is deterministic given x_T; 1 adds as much noise as DDPM's posterior. */
  eta?: number;
}

// Noise streams of the sampler: x_T and each step's noise, keyed by the model's timestep.
const SAMPLE_STREAM = 0x5a3;
const X_T = -1;

/**
 * The noise the samplers draw from `seed`: x_T for `t = -1`, else the step noise of model timestep `t`.
 * @internal
 */
export function samplerNoise(
  shape: [number, number, number, number],
  seed: number | undefined,
  t: number,
): tf.Tensor4D {
  // Three stream entries, so never one of the two-entry (t, repeat) streams of the features' step noise.
  return seededNormal<tf.Rank.R4>(shape, seed, SAMPLE_STREAM, t, 0);
}

interface Plan {
  shape: [number, number, number, number];
  y?: number[];
}

function plan(model: DenoisingModel, opts: SampleOptions): Plan {
  if (opts === null || typeof opts !== 'object') throw new InputError('sampling options must be an object');
  if (opts.seed !== undefined) checkSeed(opts.seed);
  const { imageSize: S, inChannels: C } = model.config;
  let n = opts.batch;
  if (n !== undefined && (!Number.isInteger(n) || n < 1))
    throw new InputError(`batch must be a positive integer, got ${String(n)}`);
  if (opts.xT !== undefined) {
    const x = opts.xT;
    if (!(x instanceof tf.Tensor) || x.rank !== 4 || x.shape[1] !== S || x.shape[2] !== S || x.shape[3] !== C)
      throw new InputError(
        `xT must be a tensor [N, ${S}, ${S}, ${C}] for this model, got ${x instanceof tf.Tensor ? `[${x.shape}]` : typeof x}`,
      );
    if (x.isDisposed) throw new InputError('xT was disposed: pass a live tensor (the sampler only reads it)');
    if (n !== undefined && n !== x.shape[0])
      throw new InputError(`batch is ${n} but xT holds ${x.shape[0]} images: give one or make them agree`);
    n = x.shape[0];
  }
  if (n === undefined) throw new InputError('give batch (the number of images) or xT');
  checkClassLabels(opts.y, n, model.config.numClasses);
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function')
    throw new InputError('onProgress must be a function');
  return { shape: [n, S, S, C], y: opts.y };
}

// Runs `step` from the last index of `tables` down to 0, starting from x_T.
function loop(
  model: DenoisingModel,
  opts: SampleOptions,
  tables: DiffusionTables,
  step: (x: tf.Tensor4D, t: number[], noise: tf.Tensor4D) => tf.Tensor4D,
): tf.Tensor4D {
  const { shape } = plan(model, opts);
  const clock = progressClock();
  let x = opts.xT ? opts.xT.clone() : samplerNoise(shape, opts.seed, X_T);
  try {
    for (let i = tables.steps - 1; i >= 0; i--) {
      const t = tables.timesteps[i];
      const next = tf.tidy(() => step(x, new Array<number>(shape[0]).fill(i), samplerNoise(shape, opts.seed, t)));
      x.dispose();
      x = next;
      opts.onProgress?.({ kind: 'sample', ...clock(tables.steps - i, tables.steps), t });
    }
    const out = tf.clipByValue(x, -1, 1);
    x.dispose();
    return out;
  } catch (e) {
    x.dispose();
    throw e;
  }
}

/**
 * Ancestral sampling, guided-diffusion's `p_sample_loop`: x_T ~ N(0, I), then
 * {@link ddpmStep} for t = T−1 … 0 (no noise at t = 0). With a seed, x_T and every step's noise
 * come from it, so the same seed gives the same images on every call.
 * @param model an ε-prediction U-Net; its schedule is the diffusion's.
 * @returns images `[N, S, S, C]` clipped to [-1, 1], owned by the caller.
 * @throws InputError for bad options (batch, xT, y, seed, variance).
 *
 * @example
 * ```ts
 * const images = sampleDDPM(unet, { batch: 16, seed: 0 });
 * await writeSamplesGrid('samples.png', images, { columns: 4 });
 * images.dispose();
 * ```
 * @category Diffusion
 */
export function sampleDDPM(model: DenoisingModel, opts: SampleOptions): tf.Tensor4D {
  const tables = diffusionTables(model.schedule);
  const stepOpts = stepOptions(model, opts, tables);
  return loop(model, opts, tables, (x, t, noise) => ddpmStep(model, x, t, noise, stepOpts));
}

/**
 * DDIM sampling, guided-diffusion's `ddim_sample_loop`, over `steps` of the model's T steps kept by
 * the `"ddimN"` stride rule ({@link spaceTimesteps}: 0, s, 2s, … for the stride s that gives exactly
 * `steps`), with the respaced diffusion's tables. η = 0 is deterministic given x_T.
 * @returns images `[N, S, S, C]` clipped to [-1, 1], owned by the caller.
 * @throws InputError for steps outside [1, T] or not given by a stride, η < 0, and the options of {@link sampleDDPM}.
 * @category Diffusion
 */
export function sampleDDIM(model: DenoisingModel, opts: DDIMOptions): tf.Tensor4D {
  if (opts === null || typeof opts !== 'object') throw new InputError('sampling options must be an object');
  const eta = checkEta(opts.eta);
  const tables = diffusionTables(model.schedule, spaceTimesteps(model.schedule.steps, opts.steps));
  const stepOpts = stepOptions(model, opts, tables);
  return loop(model, opts, tables, (x, t, noise) => ddimStep(model, x, t, noise, { ...stepOpts, eta }));
}

function stepOptions(model: DenoisingModel, opts: SampleOptions, tables: DiffusionTables): ModelStepOptions {
  if (opts === null || typeof opts !== 'object') throw new InputError('sampling options must be an object');
  return {
    clipDenoised: opts.clipDenoised,
    variance: varianceKind(model, opts.variance),
    tables,
    ...(opts.y ? { y: opts.y } : {}),
  };
}
