import * as tf from '@tensorflow/tfjs-core';

/** A per-example, per-channel affine applied after the norm's own: `y·(1 + scale) + shift`. */
export interface FiLM {
  /** `[N, C]` */
  scale: tf.Tensor2D;
  /** `[N, C]` */
  shift: tf.Tensor2D;
}

/**
 * GroupNorm over NHWC, as `nn.GroupNorm(32, C, eps=1e-5)`: statistics per example and group over
 * (H, W, C/groups), biased variance (two-pass, as the reference), then the per-channel affine, with
 * an optional FiLM folded into the same multiply-add (ADM's scale-shift norm).
 *
 * Why not `tf.moments`: on wasm a mean over (H, W) runs a transpose and a single-threaded reduction
 * (about 90 ms for a 256×256×256 map), while XNNPACK's average pool over the whole map takes 5 ms (a
 * `[1, H·W] × [H·W, C]` matMul would be as fast but repacks its right operand, the map, on every
 * call); and folding every affine into one per-channel scale and offset leaves two elementwise
 * passes over the map instead of six.
 */
export function groupNorm(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, film?: FiLM, groups = 32, eps = 1e-5): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, , , c] = x.shape;
    // Map-sized intermediates are freed as soon as they are used, so that no more than two exist
    // beside x (at 256×256×512 each is 128 MiB per image).
    const centred = tf.sub(x, groupMeans(x, groups));
    const squares = tf.square(centred) as tf.Tensor4D;
    const variance = groupMeans(squares, groups);
    squares.dispose();
    let scale: tf.Tensor = tf.mul(tf.rsqrt(tf.add(variance, eps)), gamma);
    let offset: tf.Tensor = beta;
    if (film) {
      const one = tf.reshape(tf.add(film.scale, 1), [n, 1, 1, c]);
      scale = tf.mul(scale, one);
      offset = tf.add(tf.mul(beta, one), tf.reshape(film.shift, [n, 1, 1, c]));
    }
    const scaled = tf.mul(centred, scale);
    centred.dispose();
    return tf.add(scaled, offset);
  });
}

/** Mean of each example's group, broadcast back to its channels: `[N, 1, 1, C]`. */
function groupMeans(x: tf.Tensor4D, groups: number): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const channelMeans = tf.avgPool(x, [h, w], 1, 'valid');
  const means = tf.mean(tf.reshape(channelMeans, [n, groups, c / groups]), 2, true);
  return tf.reshape(tf.broadcastTo(means, [n, groups, c / groups]), [n, 1, 1, c]);
}
