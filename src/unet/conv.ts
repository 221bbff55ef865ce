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

/**
 * Runs a stride-1, padding-1 3×3 convolution `forward` (direct or Winograd) whose gradient with
 * respect to its input is another stride-1 convolution with the filter turned 180° and its channels
 * swapped. That keeps backpropagation through a frozen U-Net (DifFeed) at forward speed on wasm,
 * where `Conv2DBackpropInput` is slow and the depthwise backprop that Winograd would need is missing
 * (BACKENDS.md §4). The filter is a constant: it receives no gradient.
 */
export function withFastInputGrad(x: tf.Tensor4D, w: tf.Tensor4D, forward: (x: tf.Tensor4D) => tf.Tensor4D): tf.Tensor4D {
  const f = tf.customGrad(((input: tf.Tensor4D, save: (t: tf.Tensor[]) => void) => {
    save([w]);
    return {
      value: forward(input),
      gradFunc: (dy: tf.Tensor4D, [filter]: tf.Tensor[]) =>
        tf.conv2d(dy, tf.transpose(tf.reverse(filter as tf.Tensor4D, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D, 1, 1),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor4D;
}
