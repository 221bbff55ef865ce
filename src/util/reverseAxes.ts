/**
 * Reverses the axes of a row-major `[a, b, c]` array into `[c, b, a]` (a new array). With b = 1 it
 * is a 2-D transpose; with `[O, I, kh·kw]` it turns PyTorch's OIHW filters into HWIO, and back with
 * the dims reversed. The weight layouts of `io/layout` (U-Net and heads) all run through this one loop.
 */
export function reverseAxes3(data: Float32Array, [a, b, c]: readonly [number, number, number]): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < a; i++)
    for (let j = 0; j < b; j++) for (let k = 0; k < c; k++) out[(k * b + j) * a + i] = data[(i * b + j) * c + k];
  return out;
}
