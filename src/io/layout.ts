/**
 * PyTorch ↔ tfjs weight layouts, defined once for the U-Net and the heads. The reference stores
 * conv filters OIHW, 1×1 filters `[O, I, 1(, 1)]` and linear weights `[out, in]`; tfjs wants HWIO
 * filters and `[in, out]` matrices so that every product is a plain NHWC conv or an untransposed
 * 2-D matMul.
 * @module
 */
import { reverseAxes3 } from '../util/reverseAxes.js';

/**
 * How a reference tensor is laid out here:
 * - `same`: unchanged (biases, norm vectors, embedding tables, the CLS token);
 * - `linear`: `nn.Linear` weight `[out, in]` ↔ `[in, out]` (so `x · w` is an untransposed matMul);
 * - `conv1x1`: a 1×1 filter `[out, in, 1, 1]` (or a kernel-1 `conv1d` `[out, in, 1]`) ↔ `[in, out]`
 *   (a dense layer over pixels);
 * - `chw`: a `[C, h, w]` LayerNorm affine ↔ `[h, w, C]` (NHWC maps);
 * - `conv`: an `nn.Conv2d` filter OIHW `[out, in, kh, kw]` ↔ HWIO `[kh, kw, in, out]`.
 * @category I/O
 */
export type Layout = 'same' | 'linear' | 'conv1x1' | 'chw' | 'conv';

/**
 * Every layout but `same` reverses the axes of the reference data grouped as these dims (tfjs
 * order is the reverse), so one loop converts both ways.
 */
function groupedDims(layout: Exclude<Layout, 'same'>, refShape: readonly number[]): [number, number, number] {
  const [a, b, c = 1, d = 1] = refShape;
  switch (layout) {
    case 'linear':
    case 'conv1x1':
      return [a, 1, b];
    case 'chw':
      return [a, 1, b * c];
    case 'conv':
      return [a, b, c * d];
  }
}

/** The tfjs shape of a reference shape in `layout`. */
export function localShape(layout: Layout, refShape: readonly number[]): number[] {
  switch (layout) {
    case 'same':
      return [...refShape];
    case 'linear':
    case 'conv1x1':
      return [refShape[1], refShape[0]];
    case 'chw':
      return [refShape[1], refShape[2], refShape[0]];
    case 'conv':
      return [refShape[2], refShape[3], refShape[1], refShape[0]];
  }
}

/** Reference-layout data → this library's layout (a new array; the input is not touched). */
export function referenceToLocal(layout: Layout, refShape: readonly number[], data: Float32Array): Float32Array {
  return layout === 'same' ? data.slice() : reverseAxes3(data, groupedDims(layout, refShape));
}

/** This library's layout → reference-layout data (a new array): the inverse of {@link referenceToLocal}. */
export function localToReference(layout: Layout, refShape: readonly number[], data: Float32Array): Float32Array {
  if (layout === 'same') return data.slice();
  const [a, b, c] = groupedDims(layout, refShape);
  return reverseAxes3(data, [c, b, a]);
}
