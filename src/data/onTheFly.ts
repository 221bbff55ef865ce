/**
 * Feeding heads the way the reference does: every training step draws fresh noise and a fresh
 * augmentation (random crop of 80–100 % of the short side, horizontal flip), so no two epochs see
 * the same x_t. Deterministic all the same: every draw derives from the batch's seed, which the
 * trainer derives from the run's seed, epoch and step.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { extractFeatures, type FeatureSet } from '../features/extractFeatures.js';
import type { ADMUNet } from '../unet/admUnet.js';
import type { CropFlipOptions } from './transforms.js';
import { mixSeed, type BatchContext, type Dataset } from './dataset.js';
import { loadBatch, type ImageSource } from './images.js';
import { seededNormal } from '../util/noise.js';

/**
 * ε for a batch: one `[n, S, S, C]` tensor per t, example k of step j drawn from
 * `mixSeed(seed, k, j)`. Per-example seeds make an example's noise independent of how the
 * examples were batched.
 */
export function batchNoise(
  shape: [number, number, number, number],
  steps: number,
  seeds: ArrayLike<number>,
): tf.Tensor4D[] {
  const [n, ...rest] = shape;
  if (seeds.length !== n) throw new InputError(`batchNoise needs one seed per example (${n}), got ${seeds.length}`);
  return Array.from({ length: steps }, (_, j) =>
    tf.tidy(
      () =>
        tf.concat(
          Array.from({ length: n }, (_, k) => seededNormal<tf.Rank.R4>([1, ...rest], seeds[k], j, 0x401e)),
          0,
        ) as tf.Tensor4D,
    ),
  );
}

function stepList(t: number | number[]): number[] {
  const ts = typeof t === 'number' ? [t] : t;
  if (!Array.isArray(ts) || ts.length === 0 || !ts.every((v) => Number.isInteger(v) && v >= 0))
    throw new InputError(`t must be a non-negative integer or a non-empty array of them, got ${JSON.stringify(t)}`);
  return ts;
}

function checkSource(source: ImageSource): void {
  if (!source || typeof source.get !== 'function' || !Number.isInteger(source.size) || source.size < 1)
    throw new InputError('source must be an ImageSource: { size: positive integer, get(i) }');
}

// A batch's transformed images and the noise of each step, example k's draws seeded by (run seed, k).
async function noisedBatch(
  source: ImageSource,
  indices: number[],
  ctx: BatchContext,
  opts: CropFlipOptions & { size: number; augment?: boolean },
  steps: number,
): Promise<{ x0: tf.Tensor4D; labels: Int32Array; noise: tf.Tensor4D[] }> {
  const seeds = indices.map((_, k) => mixSeed(ctx.seed, k));
  const { x0, labels } = await loadBatch(source, indices, seeds, {
    ...opts,
    augment: ctx.training && opts.augment !== false,
  });
  try {
    return { x0, labels, noise: batchNoise(x0.shape, steps, seeds) };
  } catch (e) {
    x0.dispose();
    throw e;
  }
}

/**
 * Options of {@link onTheFlyImages}.
 * @category Data
 */
export interface OnTheFlyImagesOptions extends CropFlipOptions {
  /** Image side the model takes (its `image_size`). */
  size: number;
  /** The system's steps: one noise tensor per t, in t order. */
  t: number | number[];
  /** Augment training batches (default true); evaluation batches are always center-cropped. */
  augment?: boolean;
}

/**
 * Batches of transformed images with their noise, for a whole system that runs the U-Net itself
 * (the `fromReference(…)` system, DifFeed): the input is `x0 [n, S, S, 3]` and the batch options
 * carry `noise` (one tensor per t), which the trainer passes on as `logits(x0, { noise, training })`.
 * DifFeed can only be trained this way: its feedback changes the second U-Net pass, so its features
 * cannot be cached.
 * @category Data
 */
export function onTheFlyImages(source: ImageSource, opts: OnTheFlyImagesOptions): Dataset<tf.Tensor4D> {
  checkSource(source);
  const ts = stepList(opts?.t);
  return {
    size: source.size,
    batch: async (indices, ctx) => {
      const { x0, labels, noise } = await noisedBatch(source, indices, ctx, opts, ts.length);
      return { input: x0, labels, options: { noise } };
    },
  };
}

/**
 * Which features a data source computes, as {@link extractFeatures} takes them.
 * @category Data
 */
export interface FeatureSpec {
  /** The frozen backbone. */
  model: ADMUNet;
  /** Noise steps. */
  t: number | number[];
  /** Blocks (paper numbering). */
  b: number | number[];
  /** Adaptive-average-pool maps larger than this side (the head's `pre_pool_size`; pooling twice to the same side changes nothing). */
  pool?: number;
}

/**
 * Options of {@link onTheFlyFeatures}.
 * @category Data
 */
export interface OnTheFlyFeaturesOptions extends CropFlipOptions, FeatureSpec {
  /** Augment training batches (default true). */
  augment?: boolean;
  /** Examples per U-Net forward (default: the whole batch). */
  maxBatch?: number;
}

/**
 * Batches of U-Net feature maps computed afresh for every step (fresh noise, fresh augmentation),
 * as the reference trains its heads. The input is a {@link FeatureSet} keyed by (t, b); the trainer
 * disposes it. Same noise as {@link onTheFlyImages} for the same batch seed, so a head fed from here
 * sees exactly the x_t that a whole system fed from there would.
 * @category Data
 */
export function onTheFlyFeatures(source: ImageSource, opts: OnTheFlyFeaturesOptions): Dataset<FeatureSet> {
  checkSource(source);
  if (!opts?.model || typeof opts.model.forward !== 'function')
    throw new InputError('onTheFlyFeatures needs opts.model, an ADMUNet');
  const ts = stepList(opts.t);
  const size = opts.model.config.imageSize;
  return {
    size: source.size,
    batch: async (indices, ctx) => {
      const { x0, labels, noise } = await noisedBatch(source, indices, ctx, { ...opts, size }, ts.length);
      try {
        const input = await extractFeatures(x0, {
          model: opts.model,
          t: ts,
          b: opts.b,
          noise,
          ...(opts.pool !== undefined ? { pool: opts.pool } : {}),
          ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
        });
        return { input, labels };
      } finally {
        tf.dispose([x0, ...noise]);
      }
    },
  };
}
