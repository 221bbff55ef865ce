import * as tf from '@tensorflow/tfjs-core';

// tfjs-backend-cpu's ResizeNearestNeighborGrad is wrong for batches of more than one image, so the
// gradient is written here: each input pixel receives the sum of its 2×2 block.
const upsample2 = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x4 = args[0] as tf.Tensor4D;
  return {
    value: tf.image.resizeNearestNeighbor(x4, [x4.shape[1] * 2, x4.shape[2] * 2]),
    gradFunc: (dy: tf.Tensor) => tf.mul(tf.avgPool(dy as tf.Tensor4D, 2, 2, 'valid'), 4),
  };
});

/** Nearest-neighbour ×2, `F.interpolate(scale_factor=2, mode="nearest")`. Differentiable on every backend. */
export function upsampleNearest(x: tf.Tensor4D): tf.Tensor4D {
  return upsample2(x) as tf.Tensor4D;
}

// wasm's AvgPoolGrad is slow (docs/backends.md#gradients): each input pixel gets a quarter of its
// block's output gradient, by a nearest-neighbour upsample; a floored odd row or column gets zero.
const downsample2 = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x4 = args[0] as tf.Tensor4D;
  const [, h, w] = x4.shape;
  return {
    value: tf.avgPool(x4, 2, 2, 'valid'),
    gradFunc: (dy: tf.Tensor) =>
      tf.tidy(() => {
        const up = tf.mul(
          tf.image.resizeNearestNeighbor(dy as tf.Tensor4D, [dy.shape[1]! * 2, dy.shape[2]! * 2]),
          0.25,
        );
        return h % 2 || w % 2
          ? tf.pad(up, [
              [0, 0],
              [0, h % 2],
              [0, w % 2],
              [0, 0],
            ])
          : up;
      }),
  };
});

/** 2×2 average pooling with stride 2, `F.avg_pool2d(kernel_size=2, stride=2)` (floors odd sides). Differentiable on every backend. */
export function downsampleAvg(x: tf.Tensor4D): tf.Tensor4D {
  return downsample2(x) as tf.Tensor4D;
}
