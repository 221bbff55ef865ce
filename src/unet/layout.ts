/**
 * Which layout each U-Net weight has, told by its name and reference shape; the conversions
 * themselves are the shared ones of `io/layout` (also used by the heads).
 * @module
 */
import { localShape, localToReference, referenceToLocal, type Layout } from '../io/layout.js';

/** Names whose 2-D weight is an embedding table (rows are looked up, never multiplied). */
const EMBEDDINGS = /(^|\.)label_emb\.weight$/;

/**
 * The layout of a U-Net weight: 4-D filters `conv`, kernel-1 conv1d filters `conv1x1`, 2-D weights
 * `linear` (embedding tables excepted), everything else `same`.
 * @throws RangeError for a conv1d filter with a kernel wider than 1.
 */
export function weightLayout(name: string, refShape: readonly number[]): Layout {
  if (refShape.length === 4) return 'conv';
  if (refShape.length === 3) {
    if (refShape[2] !== 1)
      throw new RangeError(`${name}: only kernel-size-1 conv1d weights are supported, got [${refShape}]`);
    return 'conv1x1';
  }
  return refShape.length === 2 && !EMBEDDINGS.test(name) ? 'linear' : 'same';
}

/** The tfjs shape of a reference weight. */
export function tfjsShape(name: string, refShape: readonly number[]): number[] {
  return localShape(weightLayout(name, refShape), refShape);
}

/** Reorders a reference weight into tfjs layout (a new array; the input is not touched). */
export function toTfjsLayout(name: string, refShape: readonly number[], data: Float32Array): Float32Array {
  return referenceToLocal(weightLayout(name, refShape), refShape, data);
}

/** Inverse of {@link toTfjsLayout}: tfjs data back to the reference layout of `refShape`. */
export function toReferenceLayout(name: string, refShape: readonly number[], data: Float32Array): Float32Array {
  return localToReference(weightLayout(name, refShape), refShape, data);
}
