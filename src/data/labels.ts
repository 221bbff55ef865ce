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
export function checkLabels(labels: Labels, n: number, classes: number, what = 'labels'): Int32Array {
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
    if (!Number.isInteger(v) || v < 0 || v >= classes)
      throw new InputError(`${what}[${i}] is ${v}; labels must be integers in [0, ${classes})`);
    out[i] = v;
  }
  return out;
}
