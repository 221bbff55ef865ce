/**
 * What the trainer reads: a dataset of `size` examples that builds a batch from example indices.
 * The trainer owns the order (a seeded shuffle per epoch) and hands every batch a seed, so a run is
 * a pure function of its seed: that is what makes checkpoint-and-resume exact.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { mixSeed, SeededRandom } from '../util/random.js';
import { checkIgnoreIndex, checkLabels, DEFAULT_IGNORE_INDEX } from './labels.js';

/**
 * Where a batch sits in a run; sources use `seed` for every random choice (noise, augmentation).
 * @category Data
 */
export interface BatchContext {
  /** True for training batches (augment, fresh noise), false for evaluation (deterministic transform). */
  training: boolean;
  /** A 32-bit seed unique to this batch of this run. */
  seed: number;
  /** 0-based epoch (evaluation: the epoch just trained). */
  epoch: number;
  /** 0-based batch index within the epoch (or the evaluation pass). */
  step: number;
}

/**
 * One batch: the model's input, one label per example, and extra options for `model.logits`.
 * @category Data
 */
export interface Batch<I> {
  input: I;
  labels: ArrayLike<number>;
  /** Merged into the options of `model.logits(input, { ...options, training })`, e.g. `{ noise }`. */
  options?: Record<string, unknown>;
  /**
   * Frees the batch's tensors. Without it the trainer calls `tf.dispose` on `input` and `options`
   * (or `input.dispose()` when the input has one, as a FeatureSet does).
   */
  dispose?(): void;
}

/**
 * A dataset the trainer can batch: `size` examples, any of which {@link Dataset.batch} loads.
 * @category Data
 */
export interface Dataset<I> {
  readonly size: number;
  /** Builds the batch of the examples `indices` (each in [0, size)); the trainer frees it. */
  batch(indices: number[], ctx: BatchContext): Batch<I> | Promise<Batch<I>>;
}

/** Frees a batch as {@link Batch.dispose} describes. */
export function disposeBatch(batch: Batch<unknown>): void {
  if (typeof batch.dispose === 'function') {
    batch.dispose();
    return;
  }
  const input = batch.input as { dispose?: () => void } | tf.TensorContainer;
  if (input && !(input instanceof tf.Tensor) && typeof (input as { dispose?: unknown }).dispose === 'function')
    (input as { dispose: () => void }).dispose();
  else tf.dispose(input as tf.TensorContainer);
  if (batch.options)
    tf.dispose(
      Object.values(batch.options).filter((v) => v instanceof tf.Tensor || Array.isArray(v)) as tf.TensorContainer[],
    );
}

// Defined beside SeededRandom so that seeded noise can use it without reaching into the data layer.
export { mixSeed } from '../util/random.js';

/** The example order of one epoch: `0..size-1`, Fisher–Yates shuffled from `mixSeed(seed, epoch)` when asked. */
export function epochOrder(size: number, seed: number, epoch: number, shuffle = true): Int32Array {
  const order = new Int32Array(size);
  for (let i = 0; i < size; i++) order[i] = i;
  if (!shuffle) return order;
  const rng = new SeededRandom(mixSeed(seed, epoch, 0x5eed));
  for (let i = size - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/** Batches of an epoch's order: full batches, plus the remainder unless `dropLast` (the reference drops it). */
export function batchesOf(order: Int32Array, batchSize: number, dropLast: boolean): number[][] {
  const out: number[][] = [];
  for (let s = 0; s < order.length; s += batchSize) {
    if (s + batchSize > order.length && dropLast) break;
    out.push(Array.from(order.subarray(s, Math.min(order.length, s + batchSize))));
  }
  return out;
}

/**
 * A dataset over tensors already in memory: rows of `inputs` (first axis) with their labels. The
 * tensor stays the caller's; batches are gathered copies.
 * @example
 * ```ts
 * const data = tensorDataset(features, labels); // features [N, D]
 * await train(head, data, { epochs: 10, batchSize: 32, optimizer: sgd(0.01) });
 * ```
 * @category Data
 */
export function tensorDataset<T extends tf.Tensor>(inputs: T, labels: ArrayLike<number>, classes?: number): Dataset<T> {
  if (!(inputs instanceof tf.Tensor) || inputs.rank < 1)
    throw new InputError('tensorDataset: inputs must be a tensor with examples on the first axis');
  const n = inputs.shape[0];
  const y = checkLabels(labels, n, classes ?? Number.MAX_SAFE_INTEGER);
  return {
    size: n,
    batch: (indices) => ({
      input: tf.tidy(() => tf.gather(inputs, tf.tensor1d(indices, 'int32'))) as T,
      labels: Int32Array.from(indices, (i) => y[i]),
    }),
  };
}

/**
 * Options of {@link segmentationDataset}.
 * @category Data
 */
export interface SegmentationDatasetOptions {
  classes: number;
  /** Mask value of unlabelled pixels (default 255). */
  ignoreIndex?: number;
}

/**
 * A dataset of per-image inputs (one tensor, or one per block as a {@link UperHead} takes them) and
 * their masks, for segmentation heads: a batch's labels are its images' masks, flattened in row-major
 * pixel order, one per row of the head's `logits`. The tensors stay the caller's; batches are gathered
 * copies.
 * @param masks N·H·W class ids (or the ignore index), H×W being the side of the head's logits.
 * @throws InputError for inputs of different example counts, masks that do not split into N equal
 *   images, a class id out of range or an ignore index that is a class.
 * @example
 * ```ts
 * const maps = [tf.zeros([8, 14, 14, 64]), tf.zeros([8, 7, 7, 64])] as tf.Tensor4D[]; // two blocks' maps of 8 images
 * const masks = new Int32Array(8 * 28 * 28); // one class id per pixel of the logits (28×28), 255 where unlabelled
 * const data = segmentationDataset(maps, masks, { classes: 11 });
 * await train(new UperHead({ channels: [64, 64], classes: 11, outputSide: 28 }), data, { epochs: 5, batchSize: 4, optimizer: adam(1e-3) });
 * ```
 * @category Data
 */
export function segmentationDataset<T extends tf.Tensor | tf.Tensor[]>(
  inputs: T,
  masks: ArrayLike<number>,
  opts: SegmentationDatasetOptions,
): Dataset<T> {
  const list = (Array.isArray(inputs) ? inputs : [inputs]) as tf.Tensor[];
  if (list.length === 0 || !list.every((t) => t instanceof tf.Tensor && t.rank >= 1))
    throw new InputError(
      'segmentationDataset: inputs must be a tensor or a list of tensors with examples on the first axis',
    );
  const n = list[0].shape[0];
  list.forEach((t, i) => {
    if (t.shape[0] !== n)
      throw new InputError(`segmentationDataset: input ${i} has ${t.shape[0]} examples, input 0 has ${n}`);
  });
  const classes = opts?.classes;
  const ignore = checkIgnoreIndex(opts?.ignoreIndex ?? DEFAULT_IGNORE_INDEX, classes);
  if (masks == null || typeof masks.length !== 'number' || n === 0 || masks.length % n !== 0 || masks.length === 0)
    throw new InputError(
      `segmentationDataset: masks hold ${masks?.length} values, which do not split into the ${n} images' pixels`,
    );
  const pixels = masks.length / n;
  const y = checkLabels(masks, masks.length, classes, 'masks', ignore);
  return {
    size: n,
    batch: (indices) => {
      const labels = new Int32Array(indices.length * pixels);
      indices.forEach((i, k) => labels.set(y.subarray(i * pixels, (i + 1) * pixels), k * pixels));
      const gathered = tf.tidy(() => {
        const at = tf.tensor1d(indices, 'int32');
        return list.map((t) => tf.gather(t, at));
      });
      return { input: (Array.isArray(inputs) ? gathered : gathered[0]) as T, labels };
    },
  };
}
