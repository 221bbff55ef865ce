/**
 * Reverses the axes of a row-major `[a, b, c]` array into `[c, b, a]` (a new array). With b = 1 it
 * is a 2-D transpose; with `[O, I, kh·kw]` it turns PyTorch's OIHW filters into HWIO, and back with
 * the dims reversed. Weight-layout code in the U-Net and in the heads shares this one loop.
 */
export function reverseAxes3(data: Float32Array, [a, b, c]: readonly [number, number, number]): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < a; i++)
    for (let j = 0; j < b; j++)
      for (let k = 0; k < c; k++) out[(k * b + j) * a + i] = data[(i * b + j) * c + k];
  return out;
}

/** Transpose of a row-major `[rows, cols]` matrix. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  return reverseAxes3(data, [rows, 1, cols]);
}
