/**
 * Winograd 3×3 convolutions F(m×m, 3×3) built from ordinary tfjs ops, for wasm where they beat
 * `tf.conv2d` 1.7–4.5× at every ADM shape (BACKENDS.md §9). Stride 1, padding 1, NHWC/HWIO.
 *
 * Each output tile of m×m comes from an (m+2)×(m+2) input tile: V = Bᵀ d B (input transform),
 * U = G g Gᵀ (filter transform), M = V ⊙ U summed over input channels — which is (m+2)² plain 2-D
 * matMuls `[N·tiles, Cin] × [Cin, Cout]` — and Y = Aᵀ M A (output transform).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { sliceRows } from '../ops/sliceRows.js';
import type { RowPad } from './conv.js';

/** Tile size m of F(m×m, 3×3). */
export type WinogradTile = 2 | 4;

interface Matrices {
  /** Input tile side α = m + 2. */
  alpha: number;
  bt: number[][];
  g: number[][];
  at: number[][];
}

// Lavin & Gray's matrices with the usual interpolation points (0, ±1 for m = 2; 0, ±1, ±2 for m = 4).
const MATRICES: Record<WinogradTile, Matrices> = {
  2: {
    alpha: 4,
    bt: [
      [1, 0, -1, 0],
      [0, 1, 1, 0],
      [0, -1, 1, 0],
      [0, 1, 0, -1],
    ],
    g: [
      [1, 0, 0],
      [0.5, 0.5, 0.5],
      [0.5, -0.5, 0.5],
      [0, 0, 1],
    ],
    at: [
      [1, 1, 1, 0],
      [0, 1, -1, -1],
    ],
  },
  4: {
    alpha: 6,
    bt: [
      [4, 0, -5, 0, 1, 0],
      [0, -4, -4, 1, 1, 0],
      [0, 4, -4, -1, 1, 0],
      [0, -2, -1, 2, 1, 0],
      [0, 2, -1, -2, 1, 0],
      [0, 4, 0, -5, 0, 1],
    ],
    g: [
      [1 / 4, 0, 0],
      [-1 / 6, -1 / 6, -1 / 6],
      [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6],
      [1 / 24, -1 / 12, 1 / 6],
      [0, 0, 1],
    ],
    at: [
      [1, 1, 1, 1, 1, 0],
      [0, 1, -1, 2, -2, 0],
      [0, 1, 1, 4, 4, 0],
      [0, 1, -1, 8, -8, 1],
    ],
  },
};

/** Kronecker product of two row-major matrices. */
function kron(a: number[][], b: number[][]): Float32Array {
  const [ra, ca, rb, cb] = [a.length, a[0].length, b.length, b[0].length];
  const out = new Float32Array(ra * rb * ca * cb);
  for (let i = 0; i < ra; i++)
    for (let j = 0; j < rb; j++)
      for (let k = 0; k < ca; k++) for (let l = 0; l < cb; l++) out[(i * rb + j) * (ca * cb) + k * cb + l] = a[i][k] * b[j][l];
  return out;
}

/**
 * Transformed filters U, one `[Cin, Cout]` matrix per Winograd point ξ = (r, c), r-major: one
 * matMul `(G⊗G) [α², 9] × g [9, Cin·Cout]` (HWIO flattens to exactly that), then α² row blocks.
 * The caller owns the result.
 */
export function winogradFilters(w: tf.Tensor4D, m: WinogradTile): tf.Tensor2D[] {
  const { alpha, g } = MATRICES[m];
  const [, , cin, cout] = w.shape;
  return tf.tidy(() => {
    const u = tf.matMul(tf.tensor2d(kron(g, g), [alpha * alpha, 9]), tf.reshape(w, [9, cin * cout]));
    return Array.from({ length: alpha * alpha }, (_, xi) => tf.reshape(sliceRows(u, xi, 1), [cin, cout]) as tf.Tensor2D);
  });
}

// A depthwise filter that applies one row of Bᵀ to every channel along one axis. Kernels of 6 taps
// run an order of magnitude slower than 9-tap ones on wasm (BACKENDS.md §9), so they are padded to 9.
function transformKernel(row: number[], channels: number, vertical: boolean): tf.Tensor4D {
  const taps = row.length <= 4 ? row.length : 9;
  const data = new Float32Array(taps * channels);
  row.forEach((v, k) => data.fill(v, k * channels, (k + 1) * channels));
  return tf.tensor4d(data, vertical ? [taps, 1, channels, 1] : [1, taps, channels, 1]);
}

/**
 * 3×3 convolution, stride 1, by Winograd F(m×m, 3×3): torch's padding 1, or with `rowPad` the rows
 * of a band (see {@link RowPad}). It holds about `(α/m)²·(Cin + 2·Cout)` floats per output pixel
 * of intermediates: large maps should come in bands.
 * @param u transformed filters from {@link winogradFilters} (cached or fresh).
 */
export function winogradConv3x3(x: tf.Tensor4D, u: tf.Tensor2D[], bias: tf.Tensor, m: WinogradTile, rowPad: RowPad = [1, 1]): tf.Tensor4D {
  const [, inH, w] = x.shape;
  return tf.tidy(() => tf.add(winogradTiles(x, u, m, inH + rowPad[0] + rowPad[1] - 2, w, rowPad[0]), bias));
}

/**
 * `outH × w` output rows (without bias) from input rows `x` with `padTop` zero rows above them: 1 at
 * the top of the image (torch's padding), 0 for a band whose upper neighbour row is real data.
 */
function winogradTiles(x: tf.Tensor4D, u: tf.Tensor2D[], m: WinogradTile, outH: number, w: number, padTop: number): tf.Tensor4D {
  const { alpha, bt, at } = MATRICES[m];
  return tf.tidy(() => {
    const [n, inH, , cin] = x.shape;
    const cout = u[0].shape[1];
    const [th, tw] = [Math.ceil(outH / m), Math.ceil(w / m)];
    const taps = alpha <= 4 ? alpha : 9;
    // Pad so that padded row 0 is the row above output row 0, and enough below/right for every
    // tile and the padded taps.
    const padded = tf.pad(x, [
      [0, 0],
      [padTop, Math.max(0, (th - 1) * m + taps - inH - padTop)],
      [1, (tw - 1) * m + taps - w - 1],
      [0, 0],
    ]);
    const products: tf.Tensor2D[] = [];
    bt.forEach((rRow, r) => {
      const rowT = tf.depthwiseConv2d(padded, transformKernel(rRow, cin, true), [m, 1], 'valid');
      bt.forEach((cRow, c) => {
        products.push(
          tf.tidy(() => {
            const v = tf.depthwiseConv2d(rowT, transformKernel(cRow, cin, false), [1, m], 'valid'); // [N, th, tw, Cin]
            return tf.matMul(tf.reshape(v, [n * th * tw, cin]), u[r * alpha + c]);
          }),
        );
      });
      rowT.dispose();
    });
    // Output transform as one matMul with the small Aᵀ⊗Aᵀ on the left: [m², α²] × [α², P·Cout]. The
    // products are joined along axis 0, which wasm's Concat does with one block copy per input
    // (joining along an inner axis copies element by element in JS and cost seconds at 256²).
    const joined = tf.reshape(tf.concat(products, 0), [alpha * alpha, n * th * tw * cout]);
    tf.dispose(products);
    const y = tf.matMul(tf.tensor2d(kron(at, at), [m * m, alpha * alpha]), joined);
    joined.dispose();
    // y is (i, j, tile row, tile column, Cout); the image wants (tile row, i, tile column, j, Cout).
    // Two 4-D transposes, because wasm's 5-D transpose takes a generic path about 8× slower.
    const rowsFirst = tf.transpose(tf.reshape(y, [m, m, n * th, tw * cout]), [2, 0, 1, 3]);
    const tiles = tf.transpose(tf.reshape(rowsFirst, [n * th * m, m, tw, cout]), [0, 2, 1, 3]);
    const out = tf.reshape(tiles, [n, th * m, tw * m, cout]) as tf.Tensor4D;
    return th * m !== outH || tw * m !== w ? tf.slice(out, [0, 0, 0, 0], [n, outH, w, cout]) : out;
  });
}
