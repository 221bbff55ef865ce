/**
 * Softmax cross-entropy, the loss of every head in the paper (`torch.nn.CrossEntropyLoss`).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { checkLabels, type Labels } from '../data/labels.js';

/**
 * Options of {@link crossEntropy}.
 * @category Training
 */
export interface CrossEntropyOptions {
  /** `'mean'` over the batch (PyTorch's default and the reference's), `'sum'`, or `'none'` for one loss per example. */
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Cross-entropy of integer labels under softmax(logits), from a log-softmax shifted by the row
 * maximum so large logits neither overflow nor lose the small terms.
 *
 * The gradient is written out (`(softmax − onehot) · dy`, divided by N for the mean): one fused
 * expression instead of autodiff through logSumExp, and exact where autodiff would subtract two
 * large numbers.
 *
 * @param logits `[N, classes]`, any float values.
 * @param labels N integers in [0, classes).
 * @returns a scalar, or `[N]` for `reduction: 'none'`.
 * @throws InputError for a logits tensor that is not rank 2, a label count other than N, or a label
 *   outside [0, classes).
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
  const y = checkLabels(labels, n, classes);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const onehot = tf.oneHot(tf.tensor1d(y, 'int32'), classes);
    const logp = tf.sub(x, tf.logSumExp(x, 1, true));
    const perExample = tf.neg(tf.sum(tf.mul(onehot, logp), 1));
    save([logp, onehot]);
    const value =
      reduction === 'none' ? perExample : reduction === 'sum' ? tf.sum(perExample) : tf.div(tf.sum(perExample), n);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [lp, oh] = saved;
        const g = tf.sub(tf.exp(lp), oh);
        if (reduction === 'none') return tf.mul(g, tf.reshape(dy, [n, 1]));
        return tf.mul(g, reduction === 'sum' ? dy : tf.div(dy, n));
      },
    };
  });
  return tf.tidy(() => f(logits));
}
