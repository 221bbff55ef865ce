import * as tf from '@tensorflow/tfjs-core';

/** Nearest-neighbour ×2, `F.interpolate(scale_factor=2, mode="nearest")`. */
export function upsampleNearest(x: tf.Tensor4D): tf.Tensor4D {
  return tf.image.resizeNearestNeighbor(x, [x.shape[1] * 2, x.shape[2] * 2]);
}

/** 2×2 average pooling with stride 2, `F.avg_pool2d(kernel_size=2, stride=2)` (floors odd sides). */
export function downsampleAvg(x: tf.Tensor4D): tf.Tensor4D {
  return tf.avgPool(x, 2, 2, 'valid');
}
