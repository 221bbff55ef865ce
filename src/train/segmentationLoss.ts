/**
 * Per-pixel cross-entropy for segmentation heads, with an ignore index (mmseg's `CrossEntropyLoss`).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { checkMasks, DEFAULT_IGNORE_INDEX, type Masks } from '../data/labels.js';
import { crossEntropy } from './loss.js';

/**
 * Options of {@link pixelCrossEntropy}.
 * @category Training
 */
export interface PixelCrossEntropyOptions {
  /** Pixels with this label add nothing (default {@link DEFAULT_IGNORE_INDEX}); outside [0, classes). */
  ignoreIndex?: number;
  /** `'mean'` over the scored pixels (default; 0 when none is) or `'sum'`. */
  reduction?: 'mean' | 'sum';
  /**
   * One weight per class, as {@link CrossEntropyOptions.classWeights}: a pixel's loss is scaled by its
   * class's weight and `'mean'` divides by the scored pixels' total weight (PyTorch's `weight`). Default: all 1.
   */
  classWeights?: ArrayLike<number>;
}

/**
 * Cross-entropy of every pixel's logits against its mask's class, averaged over the pixels that are
 * not `ignoreIndex` (PyTorch's `F.cross_entropy(logits, mask, weight=…, ignore_index=…)` on NCHW
 * logits). The same computation as {@link crossEntropy}, one row per pixel: the one definition the
 * trainer also uses when it fits a segmentation head.
 *
 * The ignore index defaults to 255 ({@link DEFAULT_IGNORE_INDEX}), as mmseg and the ADE20K pipelines:
 * a byte mask's spare value, outside any class range below 255.
 * @param logits `[N, H, W, classes]`.
 * @param masks N·H·W class ids (or the ignore index), row-major, or an int tensor `[N, H, W]`.
 * @throws InputError for masks of another side than the logits (resize one of them), a class id out
 *   of range, an ignore index equal to a class, logits that hold NaN, or bad class weights.
 * @example
 * ```ts
 * const logits = tf.randomNormal([2, 4, 4, 3]) as tf.Tensor4D; // a head's output [N, H, W, classes]
 * const masks = new Int32Array(2 * 4 * 4).fill(1); // N·H·W class ids, row-major
 * masks[0] = 255; // unlabelled: not scored
 * const loss = pixelCrossEntropy(logits, masks); // mean over the 31 labelled pixels
 * const weighted = pixelCrossEntropy(logits, masks, { classWeights: [1, 2, 0.5] });
 * ```
 * @category Training
 */
export function pixelCrossEntropy(logits: tf.Tensor4D, masks: Masks, opts: PixelCrossEntropyOptions = {}): tf.Scalar {
  if (!(logits instanceof tf.Tensor) || logits.rank !== 4)
    throw new InputError(
      `pixelCrossEntropy: logits must be [N, H, W, classes], got ${logits instanceof tf.Tensor ? `shape [${logits.shape}]` : typeof logits}`,
    );
  const [n, h, w, classes] = logits.shape;
  const reduction = opts.reduction ?? 'mean';
  if (reduction !== 'mean' && reduction !== 'sum')
    throw new InputError(`pixelCrossEntropy: reduction must be 'mean' or 'sum', got ${String(reduction)}`);
  const ignoreIndex = opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX;
  const y = checkMasks(masks, [n, h, w], classes, ignoreIndex);
  const bad = tf.tidy(() => tf.any(tf.isNaN(logits)).dataSync()[0]);
  if (bad)
    throw new InputError('pixelCrossEntropy: the logits hold NaN: check the features and lower the learning rate');
  return tf.tidy(
    () =>
      crossEntropy(tf.reshape(logits, [n * h * w, classes]), y, {
        reduction,
        ignoreIndex,
        ...(opts.classWeights !== undefined ? { classWeights: opts.classWeights } : {}),
      }) as tf.Scalar,
  );
}
