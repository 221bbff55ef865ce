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
}

/**
 * Cross-entropy of every pixel's logits against its mask's class, averaged over the pixels that are
 * not `ignoreIndex` (PyTorch's `F.cross_entropy(logits, mask, ignore_index=…)` on NCHW logits).
 * The same computation as {@link crossEntropy}, one row per pixel.
 * @param logits `[N, H, W, classes]`.
 * @param masks N·H·W class ids (or the ignore index), row-major, or an int tensor `[N, H, W]`.
 * @throws InputError for masks of another side than the logits (resize one of them), a class id out
 *   of range, an ignore index equal to a class, or logits that hold NaN.
 * @example
 * ```ts
 * const logits = head.forward([map8, map12], { training: true }); // [N, 28, 28, 11]
 * const loss = pixelCrossEntropy(logits, masks); // masks: N·28·28 ids, 255 where unlabelled
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
      }) as tf.Scalar,
  );
}
