import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';

/**
 * `out[n, i, j, c] = Σ_a Σ_b mh[i, a] · mw[j, b] · x[n, a, b, c]`: a linear map of the rows and one of the
 * columns of an NHWC map, as two plain 2-D matMuls (fast and differentiable on every backend). Pooling and
 * resizing matrices plug in here.
 * @param mh `[oh, H]` row-major; `mw` `[ow, W]`.
 */
export function applyAxisMatrices(
  x: tf.Tensor4D,
  mh: Float32Array,
  oh: number,
  mw: Float32Array,
  ow: number,
): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  return tf.tidy((): tf.Tensor4D => {
    // H first: [H, N·W·C] on the right of a matMul, then W the same way.
    const byH = tf.reshape(tf.transpose(x, [1, 0, 2, 3]), [h, n * w * c]);
    const ph = tf.reshape(tf.matMul(tf.tensor2d(mh, [oh, h]), byH), [oh, n, w, c]);
    const byW = tf.reshape(tf.transpose(ph, [2, 0, 1, 3]), [w, oh * n * c]);
    const pw = tf.reshape(tf.matMul(tf.tensor2d(mw, [ow, w]), byW), [ow, oh, n, c]);
    return tf.transpose(pw, [2, 1, 0, 3]) as tf.Tensor4D;
  });
}

/**
 * The output side `[oh, ow]` of a resize or pool of NHWC `x` to `size`, after checking both.
 * @param who names the op in the errors.
 * @throws InputError for a tensor that is not rank 4, or a size that is not positive integers.
 */
export function outputSize(x: tf.Tensor4D, size: number | [number, number], who: string): [number, number] {
  const [oh, ow] = typeof size === 'number' ? [size, size] : size;
  if (!(x instanceof tf.Tensor) || x.rank !== 4) throw new InputError(`${who}: x must be a rank-4 NHWC tensor`);
  if (![oh, ow].every((v) => Number.isInteger(v) && v > 0))
    throw new InputError(`${who}: size must be positive integers, got ${String(size)}`);
  return [oh, ow];
}
