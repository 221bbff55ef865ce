/**
 * Linear probing of frozen features: multinomial logistic regression on standardised features, the
 * usual yardstick of a representation (the accuracy a linear classifier reaches on it).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { checkLabels, type Labels } from '../data/labels.js';
import { positiveInt } from '../util/checks.js';

/**
 * Options of {@link linearProbe}.
 * @category Evaluation
 */
export interface LinearProbeOptions {
  /** Full-batch Adam steps (default 300). */
  steps?: number;
  /** Adam's learning rate (default 0.01). */
  lr?: number;
  /**
   * L2 penalty `λ/2·‖W‖²` on the weights, or several to choose from: each is fitted on the training
   * features less a held-out tenth (every tenth example) and the best there is refitted on all of
   * them (default `[1e-4, 1e-3, 1e-2]`).
   */
  weightDecay?: number | number[];
}

/**
 * What {@link linearProbe} returns.
 * @category Evaluation
 */
export interface LinearProbeResult {
  /** Top-1 accuracy on the test features, in [0, 1]. */
  accuracy: number;
  /** Top-1 accuracy on the training features. */
  trainAccuracy: number;
  /** The L2 penalty used (the one chosen on held-out training examples when several were given). */
  weightDecay: number;
  /** The predicted class of every test row (for per-class scores such as a segmentation's mean IoU). */
  testPredictions: Int32Array;
}

/**
 * Fits a linear classifier on `trainX` (standardised with the training mean and deviation) by
 * minimising the mean cross-entropy plus an L2 penalty with full-batch Adam from zero weights (a
 * convex problem: no seed, the same numbers every time), and scores it on `testX`.
 * @param trainX `[N, D]` features, one row per example (pool maps first, e.g. with `poolFeatures`).
 * @param testX `[M, D]`.
 * @example
 * ```ts
 * const { accuracy } = await linearProbe(trainX, trainLabels, testX, testLabels, { weightDecay: 1e-3 });
 * ```
 * @throws InputError for mismatched shapes, bad labels or options.
 * @category Evaluation
 */
export async function linearProbe(
  trainX: tf.Tensor2D,
  trainY: Labels,
  testX: tf.Tensor2D,
  testY: Labels,
  opts: LinearProbeOptions = {},
): Promise<LinearProbeResult> {
  for (const [x, what] of [
    [trainX, 'trainX'],
    [testX, 'testX'],
  ] as const)
    if (!(x instanceof tf.Tensor) || x.rank !== 2)
      throw new InputError(`linearProbe: ${what} must be a 2-D [N, D] tensor`);
  if (trainX.shape[1] !== testX.shape[1])
    throw new InputError(`linearProbe: trainX has ${trainX.shape[1]} features per row, testX ${testX.shape[1]}`);
  const ytr = checkLabels(trainY, trainX.shape[0], Number.MAX_SAFE_INTEGER, 'trainY');
  const classes = Math.max(...ytr) + 1;
  const yte = checkLabels(testY, testX.shape[0], Number.MAX_SAFE_INTEGER, 'testY');
  const steps = positiveInt(opts.steps ?? 300, 'steps');
  const lr = opts.lr ?? 0.01;
  if (!(typeof lr === 'number' && lr > 0)) throw new InputError(`linearProbe: lr must be a positive number, got ${lr}`);
  const decays = Array.isArray(opts.weightDecay) ? opts.weightDecay : [opts.weightDecay ?? [1e-4, 1e-3, 1e-2]].flat();
  if (decays.length === 0 || decays.some((d) => !(typeof d === 'number' && d >= 0)))
    throw new InputError(`linearProbe: weightDecay must be numbers ≥ 0, got ${JSON.stringify(opts.weightDecay)}`);

  const [a, b] = standardised(trainX, testX);
  try {
    let weightDecay = decays[0];
    if (decays.length > 1) {
      const held = Array.from(ytr, (_, i) => i % 10 === 9);
      const fitIdx = held.flatMap((h, i) => (h ? [] : [i]));
      const valIdx = held.flatMap((h, i) => (h ? [i] : []));
      const [fitX, valX] = [gatherRows(a, fitIdx), gatherRows(a, valIdx)];
      try {
        let best = -1;
        for (const d of decays) {
          const acc = await fitAndScore(fitX, pick(ytr, fitIdx), valX, pick(ytr, valIdx), classes, steps, lr, d);
          if (acc.test > best) [best, weightDecay] = [acc.test, d];
        }
      } finally {
        tf.dispose([fitX, valX]);
      }
    }
    const acc = await fitAndScore(a, ytr, b, yte, classes, steps, lr, weightDecay);
    return { accuracy: acc.test, trainAccuracy: acc.train, weightDecay, testPredictions: acc.testPredictions };
  } finally {
    tf.dispose([a, b]);
  }
}

// Both sets standardised with the training set's per-feature mean and deviation (constant features stay 0).
function standardised(train: tf.Tensor2D, test: tf.Tensor2D): [tf.Tensor2D, tf.Tensor2D] {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(train, 0);
    const inv = tf.div(1, tf.sqrt(tf.add(variance, 1e-6)));
    return [tf.mul(tf.sub(train, mean), inv), tf.mul(tf.sub(test, mean), inv)] as [tf.Tensor2D, tf.Tensor2D];
  });
}

const gatherRows = (x: tf.Tensor2D, idx: number[]) => tf.tidy(() => tf.gather(x, tf.tensor1d(idx, 'int32')));
const pick = (y: Int32Array, idx: number[]) => Int32Array.from(idx, (i) => y[i]);

// Full-batch Adam on mean cross-entropy + λ/2‖W‖², the gradient written out (softmax − one-hot),
// as plain 2-D matMuls with the transpose made once.
async function fitAndScore(
  x: tf.Tensor2D,
  y: Int32Array,
  xTest: tf.Tensor2D,
  yTest: Int32Array,
  classes: number,
  steps: number,
  lr: number,
  decay: number,
): Promise<{ train: number; test: number; testPredictions: Int32Array }> {
  const [n, d] = x.shape;
  const xT = tf.transpose(x);
  const onehot = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(y, 'int32'), classes), 'float32'));
  let w: tf.Tensor2D = tf.zeros([d, classes]);
  let bias: tf.Tensor1D = tf.zeros([classes]);
  let state: tf.Tensor[] = [tf.zerosLike(w), tf.zerosLike(w), tf.zerosLike(bias), tf.zerosLike(bias)];
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  try {
    for (let step = 1; step <= steps; step++) {
      const next = tf.tidy(() => {
        const p = tf.softmax(tf.add(tf.matMul(x, w), bias));
        const g = tf.div(tf.sub(p, onehot), n);
        const gw = tf.add(tf.matMul(xT, g), tf.mul(w, decay));
        const gb = tf.sum(g, 0);
        const c1 = 1 - b1 ** step;
        const c2 = Math.sqrt(1 - b2 ** step);
        const adam = (param: tf.Tensor, grad: tf.Tensor, m0: tf.Tensor, v0: tf.Tensor) => {
          const m = tf.add(tf.mul(m0, b1), tf.mul(grad, 1 - b1));
          const v = tf.add(tf.mul(v0, b2), tf.mul(tf.square(grad), 1 - b2));
          return [tf.sub(param, tf.mul(tf.div(m, tf.add(tf.div(tf.sqrt(v), c2), eps)), lr / c1)), m, v];
        };
        return [...adam(w, gw, state[0], state[1]), ...adam(bias, gb, state[2], state[3])];
      });
      tf.dispose([w, bias, ...state]);
      [w, bias] = [next[0] as tf.Tensor2D, next[3] as tf.Tensor1D];
      state = [next[1], next[2], next[4], next[5]];
      if (step % 50 === 0) await tf.nextFrame(); // let the event loop breathe on long probes
    }
    const predict = (xs: tf.Tensor2D) =>
      tf.tidy(() => Int32Array.from(tf.argMax(tf.add(tf.matMul(xs, w), bias), 1).dataSync()));
    const accuracy = (pred: Int32Array, ys: Int32Array) => {
      let right = 0;
      ys.forEach((label, i) => (right += pred[i] === label ? 1 : 0));
      return right / ys.length;
    };
    const testPredictions = predict(xTest);
    return { train: accuracy(predict(x), y), test: accuracy(testPredictions, yTest), testPredictions };
  } finally {
    tf.dispose([xT, onehot, w, bias, ...state]);
  }
}
