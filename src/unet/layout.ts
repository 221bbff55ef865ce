/**
 * PyTorch ↔ tfjs weight layouts. The reference stores conv filters OIHW, 1×1 conv1d filters
 * `[O, I, 1]` and linear weights `[out, in]`; tfjs wants HWIO filters and `[in, out]` matrices so
 * that every product is a plain NHWC conv or an untransposed 2-D matMul.
 * @module
 */
import { reverseAxes3, transpose2d } from '../util/reverseAxes.js';

/** Names whose 2-D weight is an embedding table (rows are looked up, never multiplied). */
const EMBEDDINGS = /(^|\.)label_emb\.weight$/;


/** The tfjs shape of a reference weight. */
export function tfjsShape(name: string, refShape: readonly number[]): number[] {
  if (refShape.length === 4) return [refShape[2], refShape[3], refShape[1], refShape[0]];
  if (refShape.length === 3) return [refShape[1], refShape[0]];
  if (refShape.length === 2 && !EMBEDDINGS.test(name)) return [refShape[1], refShape[0]];
  return [...refShape];
}

/** Reorders a reference weight into tfjs layout (a new array; the input is not touched). */
export function toTfjsLayout(name: string, refShape: readonly number[], data: Float32Array): Float32Array {
  if (refShape.length === 4) return reverseAxes3(data, [refShape[0], refShape[1], refShape[2] * refShape[3]]);
  if (refShape.length === 3) {
    if (refShape[2] !== 1) throw new RangeError(`${name}: only kernel-size-1 conv1d weights are supported, got [${refShape}]`);
    return transpose2d(data, refShape[0], refShape[1]);
  }
  if (refShape.length === 2 && !EMBEDDINGS.test(name)) return transpose2d(data, refShape[0], refShape[1]);
  return data.slice();
}

/** Inverse of {@link toTfjsLayout}: tfjs data back to the reference layout of `refShape`. */
export function toReferenceLayout(name: string, refShape: readonly number[], data: Float32Array): Float32Array {
  if (refShape.length === 4) return reverseAxes3(data, [refShape[2] * refShape[3], refShape[1], refShape[0]]);
  if (refShape.length === 3 || (refShape.length === 2 && !EMBEDDINGS.test(name))) return transpose2d(data, refShape[1], refShape[0]);
  return data.slice();
}
