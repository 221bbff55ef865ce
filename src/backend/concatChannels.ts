import * as tf from '@tensorflow/tfjs-core';
import { heapTensor, heapView, wasmHeap, type WasmHeap } from './wasm/heap.js';

/**
 * `tf.concat([a, b], 3)` for NHWC maps of the same examples and side (a U-Net decoder block joining
 * its input with a skip). Differentiable: the gradient gives each its channels of dy. On wasm both
 * directions are one pass in the heap: the stock SplitV (the gradient) took about twice as long
 * everywhere, the stock Concat up to twice on the default backbone's training maps and as long on
 * the 256 model's (docs/training.md#where-a-steps-time-goes).
 */
export function concatChannels(a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, ca] = a.shape;
  const cb = b.shape[3];
  if (b.shape[0] !== n || b.shape[1] !== h || b.shape[2] !== w)
    throw new RangeError(`concatChannels: maps of shapes [${a.shape}] and [${b.shape}] differ before the channels`);
  const f = tf.customGrad(((x: tf.Tensor4D, y: tf.Tensor4D) => {
    const heap = x.dtype === 'float32' && y.dtype === 'float32' ? wasmHeap() : null;
    const value = heap ? interleave(heap, [x, y]) : tf.concat([x, y], 3);
    const gradFunc = (dy: tf.Tensor4D) => (heap ? deinterleave(heap, dy, [ca, cb]) : tf.split(dy, [ca, cb], 3));
    return { value, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(a, b) as tf.Tensor4D;
}

/** The pixels of `parts` side by side along the last axis, in a new heap tensor. */
function interleave(heap: WasmHeap, parts: tf.Tensor4D[]): tf.Tensor4D {
  const [n, h, w] = parts[0].shape;
  const widths = parts.map((p) => p.shape[3]);
  const c = widths.reduce((s, x) => s + x, 0);
  const out = heapTensor(heap, [n, h, w, c]) as tf.Tensor4D;
  const dst = heapView(heap, out);
  let offset = 0;
  parts.forEach((p, k) => {
    copyChannels(heapView(heap, p), widths[k], 0, dst, c, offset, widths[k], n * h * w);
    offset += widths[k];
  });
  return out;
}

/** `x`'s channels cut into consecutive groups of `widths`, each a new heap tensor. */
function deinterleave(heap: WasmHeap, x: tf.Tensor4D, widths: number[]): tf.Tensor4D[] {
  const [n, h, w, c] = x.shape;
  const outs = widths.map((width) => heapTensor(heap, [n, h, w, width]) as tf.Tensor4D);
  // Views are made after every allocation: a heap that grows detaches earlier ones.
  const src = heapView(heap, x);
  let offset = 0;
  outs.forEach((o, k) => {
    copyChannels(src, c, offset, heapView(heap, o), widths[k], 0, widths[k], n * h * w);
    offset += widths[k];
  });
  return outs;
}

/** For each of `pixels` pixels, `width` channels from `src` (pixel stride, first channel) to `dst` (the same). */
function copyChannels(
  src: Float32Array,
  srcStride: number,
  srcOffset: number,
  dst: Float32Array,
  dstStride: number,
  dstOffset: number,
  width: number,
  pixels: number,
): void {
  // A typed-array copy per pixel pays from 64 channels; below that the plain loop is faster.
  if (width >= 64)
    for (let px = 0; px < pixels; px++) {
      const i = px * srcStride + srcOffset;
      dst.set(src.subarray(i, i + width), px * dstStride + dstOffset);
    }
  else
    for (let px = 0; px < pixels; px++)
      for (let i = px * srcStride + srcOffset, j = px * dstStride + dstOffset, end = i + width; i < end;)
        dst[j++] = src[i++];
}
