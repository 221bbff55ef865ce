/**
 * Top-k accuracy, the paper's metric (top-1; kNN also reports top-5).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { checkIgnoreIndex, checkLabels, type Labels } from '../data/labels.js';

/**
 * How many examples have their label among the k highest logits, for each k asked. With fewer
 * classes than k every label is in the top k, so the count is N (what `torch.topk` with
 * `k = min(k, classes)` gives). Ties go to the lower class index, as `tf.topk` orders them.
 *
 * Counts rather than fractions so that batches add up exactly over an epoch.
 *
 * @param logits `[N, classes]`.
 * @param labels N integers in [0, classes) (or `ignoreIndex`).
 * @param ks the k values (default `[1, 5]`), positive integers.
 * @param ignoreIndex rows with this label are never counted (unlabelled pixels).
 * @returns one count per k, in the order of `ks`.
 * @throws InputError for bad shapes, labels or k.
 * @category Evaluation
 */
export function topKCorrect(
  logits: tf.Tensor2D,
  labels: Labels,
  ks: number[] = [1, 5],
  ignoreIndex?: number,
): number[] {
  if (!(logits instanceof tf.Tensor) || logits.rank !== 2)
    throw new InputError(
      `logits must be a rank-2 tensor [N, classes], got ${logits instanceof tf.Tensor ? `shape [${logits.shape}]` : typeof logits}`,
    );
  if (!Array.isArray(ks) || ks.length === 0 || !ks.every((k) => Number.isInteger(k) && k >= 1))
    throw new InputError(`ks must be a non-empty array of positive integers, got ${JSON.stringify(ks)}`);
  const [n, classes] = logits.shape;
  const ignore = ignoreIndex === undefined ? undefined : checkIgnoreIndex(ignoreIndex, classes);
  const y = checkLabels(labels, n, classes, 'labels', ignore);
  if (n === 0) return ks.map(() => 0);
  const kMax = Math.min(Math.max(...ks), classes);
  const { values, indices } = tf.topk(logits, kMax, true);
  const idx = indices.dataSync();
  tf.dispose([values, indices]);
  // rank[i] = position of the label in example i's ordering, or kMax when it is not in the top kMax.
  const rank = new Int32Array(n).fill(kMax);
  let scored = n;
  for (let i = 0; i < n; i++) {
    if (y[i] === ignore) {
      rank[i] = classes; // never within any k
      scored--;
      continue;
    }
    for (let j = 0; j < kMax; j++) {
      if (idx[i * kMax + j] === y[i]) {
        rank[i] = j;
        break;
      }
    }
  }
  return ks.map((k) => {
    if (k >= classes) return scored;
    let c = 0;
    for (let i = 0; i < n; i++) if (rank[i] < k) c++;
    return c;
  });
}

/**
 * Fraction of examples whose label is among the k highest logits (k = 1: plain accuracy).
 * @example
 * ```ts
 * topKAccuracy(tf.tensor2d([[0.1, 0.9], [0.8, 0.2]]), [1, 1], 1); // 0.5
 * ```
 * @category Evaluation
 */
export function topKAccuracy(logits: tf.Tensor2D, labels: Labels, k = 1): number {
  const [c] = topKCorrect(logits, labels, [k]);
  return c / logits.shape[0];
}
