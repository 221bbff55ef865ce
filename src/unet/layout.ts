/**
 * PyTorch ↔ tfjs weight layouts. The reference stores conv filters OIHW, 1×1 conv1d filters
 * `[O, I, 1]` and linear weights `[out, in]`; tfjs wants HWIO filters and `[in, out]` matrices so
 * that every product is a plain NHWC conv or an untransposed 2-D matMul.
 * @module
 */

/** Names whose 2-D weight is an embedding table (rows are looked up, never multiplied). */
const EMBEDDINGS = /(^|\.)label_emb\.weight$/;

function transpose2d(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return out;
}

/** The tfjs shape of a reference weight. */
export function tfjsShape(name: string, refShape: readonly number[]): number[] {
  if (refShape.length === 4) return [refShape[2], refShape[3], refShape[1], refShape[0]];
  if (refShape.length === 3) return [refShape[1], refShape[0]];
  if (refShape.length === 2 && !EMBEDDINGS.test(name)) return [refShape[1], refShape[0]];
  return [...refShape];
}

/** Reorders a reference weight into tfjs layout (a new array; the input is not touched). */
export function toTfjsLayout(name: string, refShape: readonly number[], data: Float32Array): Float32Array {
  if (refShape.length === 4) {
    const [o, i, kh, kw] = refShape;
    const out = new Float32Array(data.length);
    for (let oo = 0; oo < o; oo++)
      for (let ii = 0; ii < i; ii++)
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++) out[((y * kw + x) * i + ii) * o + oo] = data[((oo * i + ii) * kh + y) * kw + x];
    return out;
  }
  if (refShape.length === 3) {
    if (refShape[2] !== 1) throw new RangeError(`${name}: only kernel-size-1 conv1d weights are supported, got [${refShape}]`);
    return transpose2d(data, refShape[0], refShape[1]);
  }
  if (refShape.length === 2 && !EMBEDDINGS.test(name)) return transpose2d(data, refShape[0], refShape[1]);
  return data.slice();
}

/** Inverse of {@link toTfjsLayout}: tfjs data back to the reference layout of `refShape`. */
export function toReferenceLayout(name: string, refShape: readonly number[], data: Float32Array): Float32Array {
  if (refShape.length === 4) {
    const [o, i, kh, kw] = refShape;
    const out = new Float32Array(data.length);
    for (let oo = 0; oo < o; oo++)
      for (let ii = 0; ii < i; ii++)
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++) out[((oo * i + ii) * kh + y) * kw + x] = data[((y * kw + x) * i + ii) * o + oo];
    return out;
  }
  if (refShape.length === 3 || (refShape.length === 2 && !EMBEDDINGS.test(name))) return transpose2d(data, refShape[1], refShape[0]);
  return data.slice();
}
