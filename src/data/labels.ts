/**
 * Class labels as the training helpers take them: one integer in [0, classes) per example.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';

/**
 * Labels in any of the forms the training helpers accept. A tensor is read back (a sync point).
 * @category Data
 */
export type Labels = ArrayLike<number> | tf.Tensor1D;

/**
 * Checks labels against a batch of `n` examples and `classes` classes and returns them as an
 * Int32Array. Out-of-range labels must fail loudly: `oneHot` would silently give an all-zero row
 * and a loss that ignores the example.
 * @throws InputError naming the first bad label, or the count mismatch.
 */
export function checkLabels(
  labels: Labels,
  n: number,
  classes: number,
  what = 'labels',
  ignoreIndex?: number,
): Int32Array {
  let values: ArrayLike<number>;
  if (labels instanceof tf.Tensor) {
    if (labels.rank !== 1) throw new InputError(`${what} must be rank 1, got shape [${labels.shape}]`);
    values = labels.dataSync();
  } else if (labels != null && typeof (labels as ArrayLike<number>).length === 'number' && typeof labels !== 'string') {
    values = labels;
  } else {
    throw new InputError(
      `${what} must be an array of integers or a rank-1 tensor, got ${labels === null ? 'null' : typeof labels}`,
    );
  }
  if (values.length !== n) throw new InputError(`${what} has ${values.length} entries but the batch has ${n} examples`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === ignoreIndex) {
      out[i] = v;
      continue;
    }
    if (!Number.isInteger(v) || v < 0 || v >= classes)
      throw new InputError(
        `${what}[${i}] is ${v}; labels must be integers in [0, ${classes})${ignoreIndex === undefined ? '' : ` or the ignore index ${ignoreIndex}`}`,
      );
    out[i] = v;
  }
  return out;
}

/**
 * Checks an ignore index (a label that marks an example or pixel as unlabelled): an integer outside
 * [0, classes), so that it can never be mistaken for a class.
 * @throws InputError naming the clash and what to do.
 */
export function checkIgnoreIndex(ignoreIndex: unknown, classes: number): number {
  if (typeof ignoreIndex !== 'number' || !Number.isInteger(ignoreIndex))
    throw new InputError(`ignoreIndex must be an integer, got ${String(ignoreIndex)}`);
  if (ignoreIndex >= 0 && ignoreIndex < classes)
    throw new InputError(
      `ignoreIndex ${ignoreIndex} is a class id (classes are 0..${classes - 1}): use a value outside them, such as 255 or -1`,
    );
  return ignoreIndex;
}

/** How many of `labels` are scored: all but those equal to `ignoreIndex`. */
export function scoredCount(labels: Labels, ignoreIndex?: number): number {
  const values = labels instanceof tf.Tensor ? labels.dataSync() : labels;
  if (ignoreIndex === undefined) return values.length;
  let n = 0;
  for (let i = 0; i < values.length; i++) if (values[i] !== ignoreIndex) n++;
  return n;
}

/**
 * The label of unlabelled pixels unless told otherwise: 255, as mmseg and the ADE20K pipelines of
 * UperNet use (a byte mask's spare value).
 * @category Data
 */
export const DEFAULT_IGNORE_INDEX = 255;

/**
 * Segmentation masks as the dense helpers take them: one class id per pixel, `[N, H, W]` in row-major
 * order, as a flat array or an int tensor `[N, H, W]` (read back: a sync point).
 * @category Data
 */
export type Masks = ArrayLike<number> | tf.Tensor;

/**
 * Checks masks against logits or predictions of side `[n, h, w]` and returns them flat.
 * @throws InputError for a mask of another shape (naming both and what to do), a class id outside
 *   [0, classes) that is not the ignore index, or an ignore index that is a class.
 */
export function checkMasks(
  masks: Masks,
  shape: [number, number, number],
  classes: number,
  ignoreIndex?: number,
): Int32Array {
  const ignore = ignoreIndex === undefined ? undefined : checkIgnoreIndex(ignoreIndex, classes);
  const [n, h, w] = shape;
  const fix =
    "resize the logits to the masks' side (UperHead outputSide, or interpolateBilinear) or the masks to the logits'";
  let values: ArrayLike<number>;
  if (masks instanceof tf.Tensor) {
    const ok =
      masks.rank === 3 ? masks.shape.every((d, i) => d === shape[i]) : masks.rank === 1 && masks.size === n * h * w;
    if (!ok) throw new InputError(`masks have shape [${masks.shape}], the predictions [${shape}]: ${fix}`);
    values = masks.dataSync();
  } else if (masks != null && typeof (masks as ArrayLike<number>).length === 'number' && typeof masks !== 'string') {
    values = masks as ArrayLike<number>;
    if (values.length !== n * h * w)
      throw new InputError(
        `masks hold ${values.length} values, the predictions [${shape}] need ${n * h * w} (N·H·W): ${fix}`,
      );
  } else throw new InputError(`masks must be an array of class ids or an int tensor [N, H, W], got ${typeof masks}`);
  return checkLabels(values, n * h * w, classes, 'masks', ignore);
}
