import * as tf from '@tensorflow/tfjs-core';

/**
 * GroupNorm over NHWC, as `nn.GroupNorm(32, C, eps=1e-5)`: statistics per example and group over
 * (H, W, C/groups), biased variance, then the per-channel affine.
 */
export function groupNorm(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, groups = 32, eps = 1e-5): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const g = tf.reshape(x, [n, h * w, groups, c / groups]);
    const { mean, variance } = tf.moments(g, [1, 3], true);
    const normed = tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(tf.reshape(normed, [n, h, w, c]), gamma), beta);
  });
}
