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
import { heapView, tensorFromFill, wasmHeap } from '../ops/wasmHeap.js';
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
 * Transformed filters U, one `[Cin, Cout]` matrix per Winograd point ξ = (r, c), r-major: for each
 * r one matMul `(G⊗G)[rows of r] [α, 9] × g [9, Cin·Cout]` (HWIO flattens to exactly that; XNNPACK
 * packs g once for all r), then its α row blocks. Per r rather than all at once, so that splitting
 * into blocks never holds U twice (for F(4×4) of a 1536→512 filter U is 108 MiB).
 * The caller owns the result.
 */
export function winogradFilters(w: tf.Tensor4D, m: WinogradTile): tf.Tensor2D[] {
  const { alpha, g } = MATRICES[m];
  const [, , cin, cout] = w.shape;
  const gg = kron(g, g);
  return tf.tidy(() => {
    const taps = tf.reshape(w, [9, cin * cout]);
    return Array.from({ length: alpha }, (_, r) =>
      tf.tidy(() => {
        const u = tf.matMul(tf.tensor2d(gg.subarray(r * alpha * 9, (r + 1) * alpha * 9), [alpha, 9]), taps);
        return Array.from({ length: alpha }, (_, c) => tf.reshape(sliceRows(u, c, 1), [cin, cout]) as tf.Tensor2D);
      }),
    ).flat();
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
  const { alpha, bt } = MATRICES[m];
  return tf.tidy(() => {
    const [n, inH, w, cin] = x.shape;
    const [padTop, outH] = [rowPad[0], inH + rowPad[0] + rowPad[1] - 2];
    const cout = u[0].shape[1];
    const [th, tw] = [Math.ceil(outH / m), Math.ceil(w / m)];
    const taps = alpha <= 4 ? alpha : 9;
    // Pad so that padded row 0 is the row above output row 0 (a zero row at the image's top, real data
    // for a band inside it), and enough below/right for every tile and the padded taps.
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
    const out = outputTransform(products, bias, m, [n, th, tw], outH, w);
    tf.dispose(products);
    return out;
  });
}

/**
 * Y = Aᵀ M A for every tile, from the α² products `[P, Cout]` (ξ = r·α + c), plus the bias, laid out
 * as the image `[N, outH, w, Cout]`. On wasm a loop over the heap does it in one pass that reads
 * each product once and writes each output once: as tfjs ops it took a concat of the products, a
 * matMul with a 4-row left operand whose huge right operand XNNPACK repacks on every call (about
 * 2 GFLOP/s; 11 % of the 256 model's full pass), two transposes and the bias add.
 */
function outputTransform(products: tf.Tensor2D[], bias: tf.Tensor, m: WinogradTile, [n, th, tw]: number[], outH: number, w: number): tf.Tensor4D {
  const cout = products[0].shape[1];
  const heap = wasmHeap();
  if (!heap || bias.size !== cout) return tf.add(outputTransformOps(products, m, [n, th, tw], outH, w), bias);
  return tensorFromFill([n, outH, w, cout], (dst) => {
    // Views are taken after the output exists: allocating it may have grown (and moved) the heap.
    const src = products.map((t) => heapView(heap, t));
    (m === 2 ? untile2 : untile4)(src, heapView(heap, bias), dst, [n, th, tw], outH, w, cout);
  }) as tf.Tensor4D;
}

function untile2(s: Float32Array[], bias: Float32Array, dst: Float32Array, [n, th, tw]: number[], outH: number, w: number, cout: number): void {
  const [s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15] = s;
  const rowStride = w * cout;
  for (let e = 0; e < n; e++)
    for (let ti = 0; ti < th; ti++)
      for (let tj = 0; tj < tw; tj++) {
        const k0 = ((e * th + ti) * tw + tj) * cout;
        const o = ((e * outH + 2 * ti) * w + 2 * tj) * cout;
        const right = 2 * tj + 1 < w;
        const below = 2 * ti + 1 < outH;
        for (let c = 0; c < cout; c++) {
          const k = k0 + c;
          // Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]], over the rows r, then over the columns.
          const m10 = s4[k], m11 = s5[k], m12 = s6[k], m13 = s7[k];
          const m20 = s8[k], m21 = s9[k], m22 = s10[k], m23 = s11[k];
          const t0 = s0[k] + m10 + m20, t1 = s1[k] + m11 + m21, t2 = s2[k] + m12 + m22, t3 = s3[k] + m13 + m23;
          const b = bias[c];
          dst[o + c] = t0 + t1 + t2 + b;
          if (right) dst[o + cout + c] = t1 - t2 - t3 + b;
          if (below) {
            const u0 = m10 - m20 - s12[k], u1 = m11 - m21 - s13[k], u2 = m12 - m22 - s14[k], u3 = m13 - m23 - s15[k];
            dst[o + rowStride + c] = u0 + u1 + u2 + b;
            if (right) dst[o + rowStride + cout + c] = u1 - u2 - u3 + b;
          }
        }
      }
}

function untile4(s: Float32Array[], bias: Float32Array, dst: Float32Array, [n, th, tw]: number[], outH: number, w: number, cout: number): void {
  // Aᵀ rows: [1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0], [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]; with
  // a = v1 + v2, b = v1 − v2, c = v3 + v4, d = v3 − v4 they are v0 + a + c, b + 2d, a + 4c, b + 8d + v5.
  const t = new Float64Array(24); // Aᵀ over the rows: t[i·6 + column]
  const y = new Float64Array(16);
  for (let e = 0; e < n; e++)
    for (let ti = 0; ti < th; ti++)
      for (let tj = 0; tj < tw; tj++) {
        const k0 = ((e * th + ti) * tw + tj) * cout;
        const rows = Math.min(4, outH - 4 * ti);
        const cols = Math.min(4, w - 4 * tj);
        const o0 = ((e * outH + 4 * ti) * w + 4 * tj) * cout;
        for (let c = 0; c < cout; c++) {
          const k = k0 + c;
          for (let col = 0; col < 6; col++) {
            const v0 = s[col][k], v1 = s[6 + col][k], v2 = s[12 + col][k], v3 = s[18 + col][k], v4 = s[24 + col][k], v5 = s[30 + col][k];
            const pa = v1 + v2, pb = v1 - v2, pc = v3 + v4, pd = v3 - v4;
            t[col] = v0 + pa + pc;
            t[6 + col] = pb + 2 * pd;
            t[12 + col] = pa + 4 * pc;
            t[18 + col] = pb + 8 * pd + v5;
          }
          const b = bias[c];
          for (let i = 0; i < 4; i++) {
            const r = 6 * i;
            const pa = t[r + 1] + t[r + 2], pb = t[r + 1] - t[r + 2], pc = t[r + 3] + t[r + 4], pd = t[r + 3] - t[r + 4];
            y[4 * i] = t[r] + pa + pc + b;
            y[4 * i + 1] = pb + 2 * pd + b;
            y[4 * i + 2] = pa + 4 * pc + b;
            y[4 * i + 3] = pb + 8 * pd + t[r + 5] + b;
          }
          for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) dst[o0 + (i * w + j) * cout + c] = y[4 * i + j];
        }
      }
}

/** {@link outputTransform} without the bias, as tfjs ops (backends other than wasm). */
function outputTransformOps(products: tf.Tensor2D[], m: WinogradTile, [n, th, tw]: number[], outH: number, w: number): tf.Tensor4D {
  const { alpha, at } = MATRICES[m];
  const cout = products[0].shape[1];
  return tf.tidy(() => {
    // One matMul with the small Aᵀ⊗Aᵀ on the left: [m², α²] × [α², P·Cout]. The products are joined
    // along axis 0, which wasm's Concat does with one block copy per input.
    const y = tf.matMul(tf.tensor2d(kron(at, at), [m * m, alpha * alpha]), tf.reshape(tf.concat(products, 0), [alpha * alpha, n * th * tw * cout]));
    // y is (i, j, tile row, tile column, Cout); the image wants (tile row, i, tile column, j, Cout).
    // Two 4-D transposes, because wasm's 5-D transpose takes a generic path about 8× slower.
    const rowsFirst = tf.transpose(tf.reshape(y, [m, m, n * th, tw * cout]), [2, 0, 1, 3]);
    const tiles = tf.transpose(tf.reshape(rowsFirst, [n * th * m, m, tw, cout]), [0, 2, 1, 3]);
    const out = tf.reshape(tiles, [n, th * m, tw * m, cout]) as tf.Tensor4D;
    return th * m !== outH || tw * m !== w ? tf.slice(out, [0, 0, 0, 0], [n, outH, w, cout]) : out;
  });
}
