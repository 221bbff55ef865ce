/**
 * A 3×3 convolution whose filter and bias are trained: the gradients tfjs would use are missing
 * (`Conv2DBackpropFilter`) or slow (`Conv2DBackpropInput`) on wasm (docs/backends.md#gradients), so
 * both are written here from ops that are fast there.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { conv3x3, explicitPadding, turnedFilterGrad, type Conv3x3Fn, type RowPad } from './conv3x3.js';
import { channelSums } from './mapReductions.js';

/** A stride-1 3×3 conv's filter gradient (HWIO) from its input and output gradient, or null to leave it to {@link filterGrad}. */
export type FilterGradFn = (x: tf.Tensor4D, dy: tf.Tensor4D, rowPad: RowPad) => tf.Tensor4D | null;

/** Other ways a trainable stride-1 conv may run (see {@link trainableConv3x3}); stride 2 ignores them. */
export interface TrainableConvPaths {
  /** Runs the forward and the input gradient. */
  conv?: Conv3x3Fn;
  /** Computes the filter gradient. */
  filterGrad?: FilterGradFn;
}

/**
 * `conv3x3(x, w, b, stride, rowPad)` with gradients for x, w and b:
 * - x: stride 1 as a forward conv with the filter turned 180° (forward speed); stride 2 by tfjs's
 *   transposed conv;
 * - w: a convolution with the batch as channels ({@link filterGrad});
 * - b: the sum of dy over N, H and W, by an average pool ({@link channelSums}).
 *
 * `paths` may run a stride-1 conv's forward and input gradient (`conv`) and its filter gradient
 * (`filterGrad`) another way.
 */
export function trainableConv3x3(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  b: tf.Tensor1D,
  stride: 1 | 2 = 1,
  rowPad: RowPad = [1, 1],
  paths: TrainableConvPaths = {},
): tf.Tensor4D {
  const apply = stride === 1 ? paths.conv : undefined;
  const dwBy = stride === 1 ? paths.filterGrad : undefined;
  const f = tf.customGrad(((input: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D, save: tf.GradSaveFunc) => {
    save([input, filter]);
    return {
      value: apply ? apply(input, filter, bias, rowPad) : conv3x3(input, filter, bias, stride, rowPad),
      gradFunc: (dy: tf.Tensor4D, [sx, sw]: tf.Tensor[]) => {
        const xs = sx as tf.Tensor4D;
        const ws = sw as tf.Tensor4D;
        const dx =
          stride === 1
            ? turnedFilterGrad(dy, ws, rowPad, apply)
            : tf.conv2dTranspose(dy, ws, xs.shape, 2, explicitPadding(rowPad));
        return [dx, dwBy?.(xs, dy, rowPad) ?? filterGrad(xs, dy, stride, rowPad), channelSums(dy)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, w, b) as tf.Tensor4D;
}

/**
 * `∂L/∂W` in HWIO of a 3×3 conv with this input, output gradient, stride and row padding (columns
 * padded by 1), itself computed as a convolution: with the batch as channels, the input
 * `[Cin, H, W, N]` convolved (with the same padding) with the output gradient as a filter
 * `[Ho, Wo, N, Cout]` (dilated by the stride) gives `[Cin, 3, 3, Cout]`. XNNPACK reads the input in
 * place and pads it itself, where an im2col would copy it nine times and a matMul with a transposed
 * operand is slower still on wasm (docs/backends.md#gradients).
 */
export function filterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, stride: 1 | 2, rowPad: RowPad): tf.Tensor4D {
  return tf.tidy(() => {
    const images = tf.transpose(x, [3, 1, 2, 0]) as tf.Tensor4D;
    const filter = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
    let dw = tf.conv2d(images, filter, 1, explicitPadding(rowPad), 'NHWC', stride);
    // A stride-2 conv may leave rows or columns of the padded input unread: its output is then wider than 3.
    if (dw.shape[1] !== 3 || dw.shape[2] !== 3) dw = tf.slice(dw, [0, 0, 0, 0], [-1, 3, 3, -1]);
    return tf.transpose(dw, [1, 2, 0, 3]);
  });
}
