import type * as tf from '@tensorflow/tfjs-core';

/**
 * What layers get from the model: weights by their reference state-dict names, already in tfjs
 * layout (HWIO convs, `[in, out]` matrices), and the model's 3×3 convolution. Layers take this
 * rather than tensors so that where weights live (resident, streamed) and how a 3×3 conv is
 * computed (direct, Winograd) stay the model's business.
 */
export interface Params {
  (name: string): tf.Tensor;
  /** 3×3 conv with the weight and bias under `prefix` (`….weight`, `….bias`), torch padding 1. */
  conv3x3(x: tf.Tensor4D, prefix: string, stride?: 1 | 2): tf.Tensor4D;
}
