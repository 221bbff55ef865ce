import * as tf from '@tensorflow/tfjs-core';
import { heapView, tensorFromFill, wasmHeap } from '../backend/wasm/index.js';

/**
 * Zero rows a stride-1 3×3 conv adds above and below its input: `[1, 1]` is torch's padding 1. A
 * band of a larger map carries its neighbours' rows instead, so it is padded only at the map's edges
 * (`[0, 1]` for the last band, `[0, 0]` inside); columns are always padded by 1. The output has
 * `inputRows + top + bottom − 2` rows.
 */
export type RowPad = readonly [top: number, bottom: number];

/**
 * A stride-1 3×3 conv with bias, rows padded by `rowPad` and columns by 1: another way to run what
 * {@link conv3x3} does (the U-Net passes Winograd for trained convs whose batch is large enough to
 * pay, docs/tuning.md#training-winograd).
 */
export type Conv3x3Fn = (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor, rowPad: RowPad) => tf.Tensor4D;

/**
 * 3×3 convolution with PyTorch's symmetric padding 1. Explicit padding matters for stride 2:
 * tfjs's 'same' pads only the bottom/right there, torch pads both sides.
 */
export function conv3x3(
  x: tf.Tensor4D,
  w: tf.Tensor,
  b: tf.Tensor,
  stride: 1 | 2 = 1,
  rowPad: RowPad = [1, 1],
): tf.Tensor4D {
  // The fused op adds the bias inside XNNPACK's kernel on wasm instead of in another pass.
  return tf.fused.conv2d({ x, filter: w as tf.Tensor4D, strides: stride, pad: padding(rowPad), bias: b });
}

/** NHWC padding of a 3×3 conv's input: `rowPad` rows above and below, one column either side. */
export type Padding4D = [[number, number], [number, number], [number, number], [number, number]];

/** {@link Padding4D} for `rowPad`. */
export function explicitPadding(rowPad: RowPad): Padding4D {
  return [
    [0, 0],
    [rowPad[0], rowPad[1]],
    [1, 1],
    [0, 0],
  ];
}

function padding(rowPad: RowPad): number | Padding4D {
  return rowPad[0] === 1 && rowPad[1] === 1 ? 1 : explicitPadding(rowPad);
}

/**
 * Stride-1, padding-1 3×3 convolution as one matMul with the filter on the left:
 * `outᵀ [Cout, P] = wᵀ [Cout, 9·Cin] × im2colᵀ [9·Cin, P]` for P = N·H·W pixels. On wasm XNNPACK
 * repacks (and transposes) the right operand of every matMul and conv whose weights it has not seen;
 * for a streamed 3×3×1024×1024 filter on a 16×16 or 8×8 map that repacking costs several times the
 * convolution, while the few pixels here are cheap to pack. Only worth it for small P.
 * @param wT the filter as `[Cout, 9·Cin]`, rows ordered (kh, kw, cin) like HWIO.
 */
export function conv3x3Gemm(x: tf.Tensor4D, wT: tf.Tensor2D, b: tf.Tensor, rowPad: RowPad = [1, 1]): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, inH, w, cin] = x.shape;
    const cout = wT.shape[0];
    const h = inH + rowPad[0] + rowPad[1] - 2;
    const padded = tf.pad(x, explicitPadding(rowPad));
    const taps: tf.Tensor[] = [];
    for (let kh = 0; kh < 3; kh++)
      for (let kw = 0; kw < 3; kw++)
        taps.push(tf.reshape(tf.slice(padded, [0, kh, kw, 0], [n, h, w, cin]), [n * h * w, cin]));
    const outT = tf.matMul(wT, tf.transpose(tf.concat(taps, 1)));
    return tf.reshape(tf.add(tf.transpose(outT), b), [n, h, w, cout]);
  });
}

/** A `[Cout, 9·Cin]` filter (see {@link conv3x3Gemm}) back in HWIO. */
export function hwioFromRows(wT: tf.Tensor2D): tf.Tensor4D {
  const [cout, k] = wT.shape;
  return tf.reshape(tf.transpose(wT), [3, 3, k / 9, cout]);
}

/**
 * Runs a stride-1 3×3 convolution `forward` (direct, GEMM or Winograd; rows padded by `rowPad`,
 * columns by 1) whose gradient with respect to its input is another stride-1 convolution with the
 * filter turned 180°, its channels swapped and the padding mirrored (`2 − pad`). That keeps backpropagation through a frozen U-Net (DifFeed) at forward speed on wasm,
 * where `Conv2DBackpropInput` is slow and the depthwise backprop that Winograd would need is missing
 * (docs/backends.md#gradients). The filter is a constant: it receives no gradient.
 * @param w the filter, HWIO or `[Cout, 9·Cin]`.
 */
export function withFastInputGrad(
  x: tf.Tensor4D,
  w: tf.Tensor4D | tf.Tensor2D,
  forward: (x: tf.Tensor4D) => tf.Tensor4D,
  rowPad: RowPad = [1, 1],
): tf.Tensor4D {
  const f = tf.customGrad(((input: tf.Tensor4D, save: (t: tf.Tensor[]) => void) => {
    save([w]);
    return {
      value: forward(input),
      gradFunc: (dy: tf.Tensor4D, [saved]: tf.Tensor[]) =>
        turnedFilterGrad(dy, saved.rank === 2 ? hwioFromRows(saved as tf.Tensor2D) : (saved as tf.Tensor4D), rowPad),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor4D;
}

/**
 * `∂L/∂x` of a stride-1 3×3 conv (rows padded by `rowPad`, columns by 1) with HWIO `filter`: the
 * output gradient convolved with the filter turned 180°, its channels swapped, the padding mirrored;
 * by `conv` when given (without bias), else `tf.conv2d`.
 */
export function turnedFilterGrad(dy: tf.Tensor4D, filter: tf.Tensor4D, rowPad: RowPad, conv?: Conv3x3Fn): tf.Tensor4D {
  return tf.tidy(() => {
    const pad: RowPad = [2 - rowPad[0], 2 - rowPad[1]];
    const turned = turnedFilter(filter);
    return conv ? conv(dy, turned, tf.zeros([filter.shape[2]]), pad) : tf.conv2d(dy, turned, 1, padding(pad));
  });
}

/**
 * An HWIO 3×3 filter turned 180° with its channels swapped, `[3, 3, Cout, Cin]`. On wasm one pass in
 * the heap: its Reverse kernel took about 2 ms for a 3×3×64×64 filter, as long as the conv it feeds.
 */
export function turnedFilter(filter: tf.Tensor4D): tf.Tensor4D {
  const heap = wasmHeap();
  if (!heap) return tf.tidy(() => tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]));
  const [, , cin, cout] = filter.shape;
  return tensorFromFill([3, 3, cout, cin], (dst) => {
    const src = heapView(heap, filter);
    for (let tap = 0; tap < 9; tap++) {
      const from = (8 - tap) * cin * cout;
      const to = tap * cin * cout;
      for (let i = 0; i < cin; i++) for (let o = 0; o < cout; o++) dst[to + o * cin + i] = src[from + i * cout + o];
    }
  }) as tf.Tensor4D;
}
