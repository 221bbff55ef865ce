import * as tf from '@tensorflow/tfjs-core';

/**
 * 3×3 convolution with PyTorch's symmetric padding 1. Explicit padding matters for stride 2:
 * tfjs's 'same' pads only the bottom/right there, torch pads both sides.
 */
export function conv3x3(x: tf.Tensor4D, w: tf.Tensor, b: tf.Tensor, stride: 1 | 2 = 1): tf.Tensor4D {
  return tf.add(tf.conv2d(x, w as tf.Tensor4D, stride, 1), b);
}

/** 1×1 convolution (the ResBlock's channel-changing skip) as a matMul over pixels. */
export function conv1x1(x: tf.Tensor4D, w: tf.Tensor, b: tf.Tensor): tf.Tensor4D {
  const [n, h, wd, c] = x.shape;
  const cout = w.shape[w.rank - 1];
  return tf.reshape(tf.add(tf.matMul(tf.reshape(x, [n * h * wd, c]), tf.reshape(w, [c, cout])), b), [n, h, wd, cout]);
}
