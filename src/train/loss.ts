/**
 * Softmax cross-entropy, the loss of every head in the paper (`torch.nn.CrossEntropyLoss`).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { checkIgnoreIndex, checkLabels, type Labels } from '../data/labels.js';

/**
 * Options of {@link crossEntropy}.
 * @category Training
 */
export interface CrossEntropyOptions {
  /** `'mean'` over the batch (PyTorch's default and the reference's), `'sum'`, or `'none'` for one loss per example. */
  reduction?: 'mean' | 'sum' | 'none';
  /**
   * Rows whose label is this value are not scored (the unlabelled pixels of a segmentation mask): they
   * add nothing to the loss or its gradient, and `'mean'` divides by the rows that are scored (0 when
   * none is, where PyTorch gives NaN). Must lie outside [0, classes). Default: every row is scored.
   */
  ignoreIndex?: number;
  /**
   * One weight per class (PyTorch's `weight`): row i's loss is multiplied by `classWeights[label_i]`, and
   * `'mean'` divides by the sum of the scored rows' weights instead of their count (0 when that sum is 0,
   * where PyTorch gives NaN). Non-negative finite numbers, `classes` of them. Default: all 1.
   */
  classWeights?: ArrayLike<number>;
}

/** Checks class weights: `classes` finite non-negative numbers. */
function checkClassWeights(weights: unknown, classes: number): Float64Array {
  if (weights == null || typeof (weights as ArrayLike<number>).length !== 'number' || typeof weights === 'string')
    throw new InputError(`classWeights must be an array of ${classes} numbers, one per class, got ${typeof weights}`);
  const w = weights as ArrayLike<number>;
  if (w.length !== classes)
    throw new InputError(
      `classWeights has ${w.length} entries but the logits have ${classes} classes: give one per class`,
    );
  const out = new Float64Array(classes);
  for (let j = 0; j < classes; j++) {
    const v = w[j];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      throw new InputError(`classWeights[${j}] is ${v}; class weights must be finite and non-negative`);
    out[j] = v;
  }
  return out;
}

/**
 * Cross-entropy of integer labels under softmax(logits), from a log-softmax shifted by the row
 * maximum so large logits neither overflow nor lose the small terms.
 *
 * The gradient is written out (`(softmax − onehot) · w · dy`, divided by the scored rows' total
 * weight for the mean; w is the row's class weight, 0 for an ignored row): one fused
 * expression instead of autodiff through logSumExp, and exact where autodiff would subtract two
 * large numbers.
 *
 * @param logits `[N, classes]`, any float values.
 * @param labels N integers in [0, classes) (or `ignoreIndex`).
 * @returns a scalar, or `[N]` for `reduction: 'none'` (0 for ignored rows).
 * @throws InputError for a logits tensor that is not rank 2, a label count other than N, a label
 *   outside [0, classes) that is not the ignore index, an ignore index that is a class, or class
 *   weights that are not `classes` finite non-negative numbers.
 *
 * @example
 * ```ts
 * const loss = crossEntropy(tf.tensor2d([[2, 0, -1]]), [0]); // −log softmax(…)[0] ≈ 0.1698
 * ```
 * @category Training
 */
export function crossEntropy(logits: tf.Tensor2D, labels: Labels, opts: CrossEntropyOptions = {}): tf.Tensor {
  if (!(logits instanceof tf.Tensor) || logits.rank !== 2)
    throw new InputError(
      `logits must be a rank-2 tensor [N, classes], got ${logits instanceof tf.Tensor ? `shape [${logits.shape}]` : typeof logits}`,
    );
  const [n, classes] = logits.shape;
  if (n === 0 || classes === 0)
    throw new InputError(`logits must have at least one example and one class, got shape [${logits.shape}]`);
  const reduction = opts.reduction ?? 'mean';
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none')
    throw new InputError(`reduction must be 'mean', 'sum' or 'none', got ${String(reduction)}`);
  const ignore = opts.ignoreIndex === undefined ? undefined : checkIgnoreIndex(opts.ignoreIndex, classes);
  const y = checkLabels(labels, n, classes, 'labels', ignore);
  const weights = opts.classWeights === undefined ? undefined : checkClassWeights(opts.classWeights, classes);
  // Each row's weight: 0 for an ignored row, classWeights[label] (or 1) for a scored one. `'mean'` divides
  // by their sum, summed here in float64.
  let rowWeights: Float32Array | undefined;
  let divisor = n;
  if (ignore !== undefined || weights) {
    rowWeights = new Float32Array(n);
    divisor = 0;
    for (let i = 0; i < n; i++) {
      const wi = y[i] === ignore ? 0 : weights ? weights[y[i]] : 1;
      rowWeights[i] = wi;
      divisor += wi;
    }
    if (!weights && divisor === n) rowWeights = undefined; // nothing ignored: the plain path
  }
  if (!(divisor > 0)) divisor = 1; // nothing scored: a loss of 0
  // An ignored row's one-hot row is all zeros (oneHot of −1); its weight masks the softmax term below.
  const rowsY = ignore === undefined ? y : y.map((v) => (v === ignore ? -1 : v));
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const onehot = tf.oneHot(tf.tensor1d(rowsY, 'int32'), classes);
    const keep = rowWeights ? tf.tensor2d(rowWeights, [n, 1]) : undefined;
    const logp = tf.sub(x, tf.logSumExp(x, 1, true));
    let perExample = tf.neg(tf.sum(tf.mul(onehot, logp), 1));
    if (keep && weights) perExample = tf.mul(perExample, tf.reshape(keep, [n]));
    save(keep ? [logp, onehot, keep] : [logp, onehot]);
    const value =
      reduction === 'none'
        ? perExample
        : reduction === 'sum'
          ? tf.sum(perExample)
          : tf.div(tf.sum(perExample), divisor);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [lp, oh, kept] = saved;
        let g = tf.sub(tf.exp(lp), oh);
        if (kept) g = tf.mul(g, kept);
        if (reduction === 'none') return tf.mul(g, tf.reshape(dy, [n, 1]));
        return tf.mul(g, reduction === 'sum' ? dy : tf.div(dy, divisor));
      },
    };
  });
  return tf.tidy(() => f(logits));
}
