/**
 * Reductions over whole maps by XNNPACK's average pool, which on wasm is many times faster than a
 * `tf.sum` or `tf.mean` over (H, W): those transpose the reduced axes innermost and reduce on one
 * thread (docs/tuning.md#group-norm).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

// The mean over a whole map by XNNPACK's average pool (fast on wasm), with the obvious gradient
// (dy / (H·W) everywhere) instead of wasm's slow AvgPoolGrad.
const mapMean = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x4 = args[0] as tf.Tensor4D;
  const [n, h, w, c] = x4.shape;
  return {
    value: tf.avgPool(x4, [h, w], 1, 'valid'),
    // A broadcasting add: wasm's Tile (broadcastTo) is far slower.
    gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.add(tf.zeros([n, h, w, c]), tf.div(dy, h * w))),
  };
});

/** The mean of each example's channels over the map, `[N, 1, 1, C]`; differentiable on every backend. */
export function spatialMean(x: tf.Tensor4D): tf.Tensor4D {
  return mapMean(x) as tf.Tensor4D;
}

/** `Σ` of `x` over rows and columns: `[N, 1, 1, C]`. Not differentiable itself (for gradient functions). */
export function mapSums(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    return tf.mul(tf.avgPool(x, [h, w], 1, 'valid'), h * w) as tf.Tensor4D;
  });
}

/** `Σ` of `x` over examples, rows and columns: `[C]` (a conv's bias gradient). Not differentiable itself. */
export function channelSums(x: tf.Tensor4D): tf.Tensor1D {
  return tf.tidy(() => tf.reshape(tf.sum(mapSums(x), [0, 1, 2]), [x.shape[3]]) as tf.Tensor1D);
}
