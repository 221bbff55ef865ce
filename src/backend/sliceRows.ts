import * as tf from '@tensorflow/tfjs-core';
import { alias } from './engine.js';
import { heapView, tensorFromFill, wasmHeap } from './wasm/heap.js';

/**
 * Rows `[start, start + count)` along axis 0: a contiguous block. On wasm this copies only that
 * block (the stock `slice` kernel first reads the whole input back to JS, so k slices of one
 * tensor cost k full copies); elsewhere it is `tf.slice`. Differentiable: the gradient pads dy
 * back to the input's rows.
 */
export function sliceRows<T extends tf.Tensor>(x: T, start: number, count: number): T {
  const rows = x.shape[0];
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > rows)
    throw new RangeError(`sliceRows: rows [${start}, ${start + count}) outside [0, ${rows})`);
  if (start === 0 && count === rows) return alias(x);
  const shape = [count, ...x.shape.slice(1)];
  const rowSize = x.size / rows;
  const f = tf.customGrad(((input: tf.Tensor) => {
    const heap = x.dtype === 'float32' ? wasmHeap() : null;
    const value = heap
      ? tensorFromFill(shape, (dst) =>
          dst.set(heapView(heap, input).subarray(start * rowSize, (start + count) * rowSize)),
        )
      : tf.slice(input, start, count);
    const gradFunc = (dy: tf.Tensor) =>
      tf.pad(dy, [[start, rows - start - count], ...x.shape.slice(1).map((): [number, number] => [0, 0])]);
    return { value, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as T;
}
