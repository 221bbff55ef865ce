/**
 * The reverse process's float64 tables, as guided-diffusion's `GaussianDiffusion` computes them
 * (posterior mean coefficients and variances), for the whole schedule or a respaced one
 * (`SpacedDiffusion`), and the stride rule of `space_timesteps(T, "ddimN")`.
 * @module
 */
import { InputError } from '../errors.js';
import type { NoiseSchedule } from '../unet/schedule.js';

/**
 * The tables the reverse process reads, in float64 like the reference's numpy arrays; index i is
 * the i-th step of this (possibly respaced) diffusion, and `timesteps[i]` is the step the model is
 * given for it.
 * @category Diffusion
 */
export interface DiffusionTables {
  /** Number of steps of this diffusion (the respaced count when respaced). */
  steps: number;
  /** The model's timestep for each index: `0..T−1`, or the kept steps when respaced. */
  timesteps: number[];
  betas: Float64Array;
  alphasCumprod: Float64Array;
  /** ᾱ of the previous index, 1 at index 0. */
  alphasCumprodPrev: Float64Array;
  /** sqrt(1/ᾱ), the x_t coefficient of x̂0. */
  sqrtRecipAlphasCumprod: Float64Array;
  /** sqrt(1/ᾱ − 1), the ε coefficient of x̂0. */
  sqrtRecipm1AlphasCumprod: Float64Array;
  /** β·(1 − ᾱ_prev)/(1 − ᾱ): the variance of q(x_{t−1} | x_t, x0). */
  posteriorVariance: Float64Array;
  /** log of the posterior variance, with index 0 (where it is 0) taking index 1's value. */
  posteriorLogVarianceClipped: Float64Array;
  /** The x̂0 coefficient of the posterior mean: β·sqrt(ᾱ_prev)/(1 − ᾱ). */
  posteriorMeanCoef1: Float64Array;
  /** The x_t coefficient of the posterior mean: (1 − ᾱ_prev)·sqrt(α)/(1 − ᾱ). */
  posteriorMeanCoef2: Float64Array;
}

/**
 * The tables of a diffusion over `schedule`, or over the kept steps `use` of it: as guided-diffusion's
 * `SpacedDiffusion`, the kept steps get betas `1 − ᾱ_k/ᾱ_prev_kept` so that their ᾱ equal the
 * full schedule's, and the model is still given the original step numbers.
 * @param use the steps to keep (any order, no repeats, each in [0, T)); all of them by default.
 * @throws InputError for fewer than 2 steps (the clipped posterior log variance needs index 1) or bad steps.
 * @category Diffusion
 */
export function diffusionTables(schedule: NoiseSchedule, use?: readonly number[]): DiffusionTables {
  const T = schedule.steps;
  const kept = use === undefined ? Array.from({ length: T }, (_, i) => i) : [...use].sort((a, b) => a - b);
  kept.forEach((k, i) => {
    if (!Number.isInteger(k) || k < 0 || k >= T)
      throw new InputError(`respaced step ${String(k)} is not an integer in [0, ${T}): keep steps of the schedule`);
    if (i > 0 && kept[i - 1] === k)
      throw new InputError(`respaced step ${k} is listed twice: list each kept step once`);
  });
  const n = kept.length;
  if (n < 2)
    throw new InputError(
      `a diffusion of ${n} step${n === 1 ? '' : 's'} cannot sample: the posterior log variance is clipped with step 1's, so at least 2 steps are needed`,
    );
  const betas = new Float64Array(n);
  let last = 1;
  kept.forEach((k, i) => {
    const ac = schedule.alphasCumprod[k];
    // Unspaced, the schedule's own betas are used, as the reference's GaussianDiffusion does.
    betas[i] = use === undefined ? schedule.betas[k] : 1 - ac / last;
    last = ac;
  });
  const bad = betas.findIndex((b) => !(b > 0 && b < 1));
  if (bad >= 0)
    throw new InputError(
      `β at step ${kept[bad]} is ${betas[bad]}, outside (0, 1): the ${schedule.kind} schedule with T = ${T} cannot be sampled${schedule.kind === 'linear' ? ' (its betas reach 20/T: use T > 20 or the cosine schedule)' : ''}`,
    );
  const t = tablesFromBetas(betas);
  return { steps: n, timesteps: kept, ...t };
}

function tablesFromBetas(betas: Float64Array): Omit<DiffusionTables, 'steps' | 'timesteps'> {
  const n = betas.length;
  const make = () => new Float64Array(n);
  const [alphasCumprod, alphasCumprodPrev, sqrtRecip, sqrtRecipm1, postVar, postLogVar, coef1, coef2] = Array.from(
    { length: 8 },
    make,
  );
  let prod = 1;
  for (let i = 0; i < n; i++) {
    alphasCumprodPrev[i] = prod;
    prod *= 1 - betas[i];
    alphasCumprod[i] = prod;
  }
  for (let i = 0; i < n; i++) {
    const ac = alphasCumprod[i];
    const prev = alphasCumprodPrev[i];
    sqrtRecip[i] = Math.sqrt(1 / ac);
    sqrtRecipm1[i] = Math.sqrt(1 / ac - 1);
    postVar[i] = (betas[i] * (1 - prev)) / (1 - ac);
    coef1[i] = (betas[i] * Math.sqrt(prev)) / (1 - ac);
    coef2[i] = ((1 - prev) * Math.sqrt(1 - betas[i])) / (1 - ac);
  }
  // The posterior variance is 0 at index 0; its log takes index 1's value there.
  for (let i = 0; i < n; i++) postLogVar[i] = Math.log(postVar[i === 0 ? 1 : i]);
  return {
    betas,
    alphasCumprod,
    alphasCumprodPrev,
    sqrtRecipAlphasCumprod: sqrtRecip,
    sqrtRecipm1AlphasCumprod: sqrtRecipm1,
    posteriorVariance: postVar,
    posteriorLogVarianceClipped: postLogVar,
    posteriorMeanCoef1: coef1,
    posteriorMeanCoef2: coef2,
  };
}

/**
 * The steps guided-diffusion's `space_timesteps(T, "ddimN")` keeps: `0, s, 2s, …` below T for the
 * smallest stride s in [1, T) that gives exactly `count` of them. Counts that no integer stride gives
 * (300 of 1000, say) are refused, as the reference refuses them.
 * @param T the schedule's number of steps.
 * @param count the number of steps wanted, in [1, T].
 * @returns the kept steps, ascending.
 * @throws InputError for a count outside [1, T] or one no stride gives, naming counts that work.
 * @category Diffusion
 */
export function spaceTimesteps(T: number, count: number): number[] {
  if (!Number.isInteger(T) || T < 1) throw new InputError(`T must be a positive integer, got ${String(T)}`);
  if (!Number.isInteger(count) || count < 1 || count > T)
    throw new InputError(`steps must be an integer in [1, ${T}] (the model's diffusion_steps), got ${String(count)}`);
  for (let stride = 1; stride < T; stride++)
    if (Math.ceil(T / stride) === count) return Array.from({ length: count }, (_, i) => i * stride);
  const possible = [...new Set(Array.from({ length: Math.max(0, T - 1) }, (_, i) => Math.ceil(T / (i + 1))))];
  const near = possible
    .sort((a, b) => Math.abs(a - count) - Math.abs(b - count) || a - b)
    .slice(0, 2)
    .sort((a, b) => a - b);
  throw new InputError(
    `no integer stride gives exactly ${count} of ${T} steps (guided-diffusion's "ddim${count}" rule)${near.length ? `: use ${near.join(' or ')} steps` : ''}`,
  );
}
