/**
 * Winograd 3×3 convolutions F(m×m, 3×3) built from ordinary tfjs ops, for wasm where they beat
 * `tf.conv2d` at every ADM shape (docs/backends.md#winograd, docs/tuning.md#winograd). Stride 1, padding 1, NHWC/HWIO.
 *
 * Each output tile of m×m comes from an (m+2)×(m+2) input tile: V = Bᵀ d B (input transform),
 * U = G g Gᵀ (filter transform), M = V ⊙ U summed over input channels — which is (m+2)² plain 2-D
 * matMuls `[N·tiles, Cin] × [Cin, Cout]` — and Y = Aᵀ M A (output transform).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { matMul2d, matMulRowsLeft } from '../../ops/dense.js';
import { sliceRows } from '../../backend/sliceRows.js';
import {
  heapOffset,
  heapTensor,
  heapView,
  simdKernels,
  tensorFromFill,
  wasmHeap,
  type SimdKernels,
  type WasmHeap,
} from '../../backend/wasm/index.js';
import type { RowPad } from '../../ops/conv3x3.js';

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
      for (let k = 0; k < ca; k++)
        for (let l = 0; l < cb; l++) out[(i * rb + j) * (ca * cb) + k * cb + l] = a[i][k] * b[j][l];
  return out;
}

/**
 * Transformed filters U, one `[Cin, Cout]` matrix per Winograd point ξ = (r, c), r-major. On wasm one
 * SIMD pass writes them all (see {@link SimdKernels.filters}); elsewhere, for each
 * r one matMul `(G⊗G)[rows of r] [α, 9] × g [9, Cin·Cout]` (HWIO flattens to exactly that; XNNPACK
 * packs g once for all r), then its α row blocks. Per r rather than all at once, so that splitting
 * into blocks never holds U twice (for F(4×4) of a 1536→512 filter U is 108 MiB).
 * The caller owns the result.
 */
export function winogradFilters(w: tf.Tensor4D, m: WinogradTile): tf.Tensor2D[] {
  const { alpha, g } = MATRICES[m];
  const [, , cin, cout] = w.shape;
  const bySimd = filtersBySimd(w, m, 1, [cin, cout]);
  if (bySimd) return bySimd;
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

/**
 * Transformed filters for {@link winogradConv3x3}'s left orientation, U_ξᵀ `[Cout, Cin]`, from a
 * filter as rows `[Cout, 9·Cin]` (kh, kw, cin; the layout streamed weights keep for small maps). On
 * wasm one SIMD pass reads the rows in place; elsewhere they are turned back into HWIO with the
 * channels swapped, whose U is exactly these. The caller owns the result.
 */
export function winogradFiltersRows(wT: tf.Tensor2D, m: WinogradTile): tf.Tensor2D[] {
  const [cout, cin] = [wT.shape[0], wT.shape[1] / 9];
  const bySimd = filtersBySimd(wT, m, cout, [cout, cin]);
  if (bySimd) return bySimd;
  const swapped = tf.tidy(() => tf.transpose(tf.reshape(wT, [cout, 3, 3, cin]), [1, 2, 0, 3]) as tf.Tensor4D);
  const u = winogradFilters(swapped, m);
  swapped.dispose();
  return u;
}

/**
 * Transformed filters for the left orientation made in `count` groups of output channels, one group
 * at a time, so that a conv never holds all of U (nor, with streamed weights, all of the filter) at once.
 */
export interface FilterGroups {
  readonly count: number;
  /** U_ξᵀ `[channels of group g, Cin]`, owned by the caller. */
  make(g: number): tf.Tensor2D[];
}

/**
 * {@link FilterGroups} of a filter with `cout` output channels, in about `groups` groups of a
 * multiple of 4 channels; `rows(first, count)` gives those rows of the filter as `[count, 9·Cin]`
 * (a new tensor, freed once transformed).
 */
export function winogradFilterGroups(
  rows: (first: number, count: number) => tf.Tensor2D,
  cout: number,
  m: WinogradTile,
  groups: number,
): FilterGroups {
  const size = Math.min(cout, 4 * Math.ceil(cout / groups / 4));
  return {
    count: Math.ceil(cout / size),
    make: (g) => tf.tidy(() => winogradFiltersRows(rows(g * size, Math.min(size, cout - g * size)), m)),
  };
}

// The α² transformed filters of `g`, laid out `[rows, 3, 3, cols]`, by one SIMD pass into tensors of
// `shape` (rows·cols elements); null where the kernel cannot run.
function filtersBySimd(g: tf.Tensor, m: WinogradTile, rows: number, shape: [number, number]): tf.Tensor2D[] | null {
  const heap = wasmHeap();
  const simd = heap ? simdKernels() : null;
  const cols = (shape[0] * shape[1]) / rows;
  if (!heap || !simd || cols % 4 !== 0) return null;
  const u = Array.from({ length: MATRICES[m].alpha ** 2 }, () => heapTensor(heap, shape) as tf.Tensor2D);
  simd.filters(
    m,
    heapOffset(heap, g),
    u.map((t) => heapOffset(heap, t)),
    rows,
    cols,
  );
  return u;
}

/**
 * ∂L/∂W (HWIO `[3, 3, Cin, Cout]`) of the stride-1 3×3 conv `x → dy` (rows padded by `rowPad`,
 * columns by 1), by Winograd F(m×m, 3×3): with V_ξ the input transform of x's tiles and M̄_ξ = A Ȳ Aᵀ
 * of dy's, ∂L/∂U_ξ = V_ξᵀ M̄_ξ summed over the tiles (α² matMuls, each `[Cin, tiles] × [tiles, Cout]`),
 * and ∂L/∂W = Σ_ξ (G⊗G)[ξ, ·] ∂L/∂U_ξ. About a quarter of the multiplies of the direct filter
 * gradient for F(4×4) (docs/tuning.md#training-winograd). Runs with the SIMD kernels (wasm, channel
 * counts multiples of 4); null elsewhere, where the caller keeps its own way.
 */
export function winogradFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  m: WinogradTile,
  rowPad: RowPad = [1, 1],
): tf.Tensor4D | null {
  const heap = wasmHeap();
  const simd = heap ? simdKernels() : null;
  const [n, , w, cin] = x.shape;
  const [, outH, , cout] = dy.shape;
  if (!heap || !simd || cin % 4 !== 0 || cout % 4 !== 0) return null;
  const { alpha, g } = MATRICES[m];
  const [th, tw] = [Math.ceil(outH / m), Math.ceil(w / m)];
  return tf.tidy((): tf.Tensor4D => {
    const v = inputTilesBySimd(simd, heap, x, m, rowPad[0], [th, tw]);
    const mBar = Array.from({ length: alpha ** 2 }, () => heapTensor(heap, [n * th * tw, cout]) as tf.Tensor2D);
    simd.tileGradients(
      m,
      heapOffset(heap, dy),
      mBar.map((t) => heapOffset(heap, t)),
      n,
      outH,
      w,
      cout,
      th,
      tw,
    );
    // tfjs-backend-wasm's matMul with a transposed operand is several times slower than a transpose and a plain one.
    const dU = v.map((vk, k) => {
      const vt = transposeBySimd(heap, simd, vk);
      const p = tf.matMul(vt, mBar[k]);
      tf.dispose([vk, vt, mBar[k]]);
      return p;
    });
    const ggT = tf.transpose(tf.tensor2d(kron(g, g), [alpha ** 2, 9]));
    return tf.reshape(tf.matMul(ggT, tf.reshape(tf.stack(dU), [alpha ** 2, cin * cout])), [
      3,
      3,
      cin,
      cout,
    ]) as tf.Tensor4D;
  });
}

// `[c, r]` from `[r, c]`, by the SIMD kernel where both sides are multiples of 4 (the Transpose kernel
// of wasm slows down several times on power-of-two sides).
function transposeBySimd(heap: WasmHeap, simd: SimdKernels, a: tf.Tensor2D): tf.Tensor2D {
  const [rows, cols] = a.shape;
  if (rows % 4 !== 0 || cols % 4 !== 0) return tf.transpose(a);
  const t = heapTensor(heap, [cols, rows]) as tf.Tensor2D;
  simd.transpose(heapOffset(heap, a), heapOffset(heap, t), rows, cols);
  return t;
}

// A depthwise filter that applies one row of Bᵀ to every channel along one axis. Kernels of 6 taps
// run an order of magnitude slower than 9-tap ones on wasm (docs/backends.md#winograd), so they are padded to 9.
function transformKernel(row: number[], channels: number, vertical: boolean): tf.Tensor4D {
  const taps = row.length <= 4 ? row.length : 9;
  const data = new Float32Array(taps * channels);
  row.forEach((v, k) => data.fill(v, k * channels, (k + 1) * channels));
  return tf.tensor4d(data, vertical ? [taps, 1, channels, 1] : [1, taps, channels, 1]);
}

/**
 * Which side of the α² matMuls the transformed filters go: `right` multiplies `V_ξ [tiles, Cin] ×
 * U_ξ [Cin, Cout]`; `left` computes the transposed product `U_ξᵀ [Cout, Cin] × V_ξᵀ [Cin, tiles]`.
 * On wasm XNNPACK repacks the right operand of every matMul whose weights it has not seen, a
 * single-threaded copy of it: for streamed filters on maps of few tiles that copy costs more than
 * the product, and `left` repacks the small V_ξᵀ instead.
 */
export type FilterSide = 'right' | 'left';

/**
 * 3×3 convolution, stride 1, by Winograd F(m×m, 3×3): torch's padding 1, or with `rowPad` the rows
 * of a band (see {@link RowPad}). It holds about `(α/m)²·(Cin + 2·Cout)` floats per output pixel
 * of intermediates: large maps should come in bands.
 * @param u transformed filters: for `side` `right` U_ξ from {@link winogradFilters} (cached or
 *   fresh), for `left` U_ξᵀ from {@link winogradFiltersRows}, or from {@link winogradFilterGroups}
 *   to make them a group of output channels at a time.
 */
export function winogradConv3x3(
  x: tf.Tensor4D,
  u: tf.Tensor2D[] | FilterGroups,
  bias: tf.Tensor,
  m: WinogradTile,
  rowPad: RowPad = [1, 1],
  side: FilterSide = 'right',
): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, inH, w, cin] = x.shape;
    const [padTop, outH] = [rowPad[0], inH + rowPad[0] + rowPad[1] - 2];
    const [th, tw] = [Math.ceil(outH / m), Math.ceil(w / m)];
    const heap = wasmHeap();
    const simd = heap ? simdKernels() : null;
    if (!Array.isArray(u) && side !== 'left') throw new RangeError('winogradConv3x3: filter groups need the left side');
    const multiply = side === 'left' ? multiplyLeft : multiplyRight;
    const products =
      heap && simd && cin % 4 === 0
        ? productsBySimd(simd, heap, { x, u, m, padTop, tiles: [th, tw], multiply })
        : productsByOps({ x, u, m, padTop, tiles: [th, tw], multiply });
    const out = outputTransform(heap, simd, products, bias, m, [n, th, tw], outH, w);
    tf.dispose(products);
    return out;
  });
}

/** A conv cut into tiles: the input, transformed filters, tile size, rows padded above, tile counts, the product. */
interface TiledProblem {
  x: tf.Tensor4D;
  u: tf.Tensor2D[] | FilterGroups;
  m: WinogradTile;
  padTop: number;
  tiles: [number, number];
  multiply: Multiply;
}

/**
 * The α² products V_ξ U_ξ `[N·th·tw, Cout]`, with the input transform V = Bᵀ d B as depthwise convs
 * along the rows, then the columns: one transformed row at a time and one V_ξ at a time, each freed
 * once multiplied.
 */
function productsByOps({ x, u: filters, m, padTop, tiles: [th, tw], multiply }: TiledProblem): tf.Tensor2D[] {
  const { alpha, bt } = MATRICES[m];
  // Off the SIMD path memory is not what groups are for: U is joined whole.
  const u = Array.isArray(filters) ? filters : joinGroups(filters);
  const [n, inH, w, cin] = x.shape;
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
          return multiply(tf.reshape(v, [n * th * tw, cin]), u[r * alpha + c]);
        }),
      );
    });
    rowT.dispose();
  });
  padded.dispose();
  if (u !== filters) tf.dispose(u);
  return products;
}

// All of U_ξᵀ `[Cout, Cin]` from its groups.
function joinGroups(groups: FilterGroups): tf.Tensor2D[] {
  const parts = Array.from({ length: groups.count }, (_, g) => groups.make(g));
  const u = parts[0].map((_, k) =>
    tf.concat(
      parts.map((p) => p[k]),
      0,
    ),
  );
  parts.forEach((p) => tf.dispose(p));
  return u;
}

/**
 * {@link productsByOps} with the input transform as one SIMD pass that reads the image in place
 * (no padded copy) and writes all α² V_ξ; each is freed once multiplied.
 */
function productsBySimd(
  simd: SimdKernels,
  heap: WasmHeap,
  { x, u, m, padTop, tiles: [th, tw], multiply }: TiledProblem,
): tf.Tensor2D[] {
  const v = inputTilesBySimd(simd, heap, x, m, padTop, [th, tw]);
  if (!Array.isArray(u)) return productsInGroups(v, u);
  return v.map((vk, k) => {
    const p = multiply(vk, u[k]);
    vk.dispose();
    return p;
  });
}

// The α² input transforms V_ξ `[N·th·tw, Cin]` of x's tiles (rows padded by padTop above), by one SIMD
// pass; the caller owns them.
function inputTilesBySimd(
  simd: SimdKernels,
  heap: WasmHeap,
  x: tf.Tensor4D,
  m: WinogradTile,
  padTop: number,
  [th, tw]: [number, number],
): tf.Tensor2D[] {
  const [n, inH, w, cin] = x.shape;
  const v = Array.from({ length: MATRICES[m].alpha ** 2 }, () => heapTensor(heap, [n * th * tw, cin]) as tf.Tensor2D);
  simd.tile(
    m,
    heapOffset(heap, x),
    v.map((t) => heapOffset(heap, t)),
    n,
    inH,
    w,
    cin,
    padTop,
    th,
    tw,
  );
  return v;
}

/**
 * The products V_ξ U_ξ `[tiles, Cout]` with the filters on the left, one group of output channels
 * at a time: each group's U_ξᵀ `[group, Cin]` times V_ξᵀ gives those channels' rows of (V_ξ U_ξ)ᵀ,
 * and the groups' rows joined and turned give the product. Consumes `v`.
 */
function productsInGroups(v: tf.Tensor2D[], groups: FilterGroups): tf.Tensor2D[] {
  const vt = v.map((vk) => {
    const t = tf.transpose(vk);
    vk.dispose();
    return t;
  });
  const parts: tf.Tensor2D[][] = vt.map(() => []);
  for (let g = 0; g < groups.count; g++) {
    const u = groups.make(g);
    vt.forEach((t, k) => parts[k].push(matMul2d(u[k], t)));
    tf.dispose(u);
  }
  tf.dispose(vt);
  return parts.map((ps) => {
    const p = tf.tidy(() => tf.transpose(ps.length === 1 ? ps[0] : tf.concat(ps, 0)));
    tf.dispose(ps);
    return p;
  });
}

/** One product V_ξ U_ξ `[tiles, Cout]`, from V_ξ and the filters as they are passed. */
type Multiply = (v: tf.Tensor2D, u: tf.Tensor2D) => tf.Tensor2D;

function multiplyRight(v: tf.Tensor2D, u: tf.Tensor2D): tf.Tensor2D {
  return tf.matMul(v, u);
}

// V U from Uᵀ, as (Uᵀ Vᵀ)ᵀ.
const multiplyLeft: Multiply = matMulRowsLeft;

/**
 * Y = Aᵀ M A for every tile, from the α² products `[P, Cout]` (ξ = r·α + c), plus the bias, laid out
 * as the image `[N, outH, w, Cout]`. On wasm one pass over the heap does it, reading each product
 * once and writing each output once (a SIMD kernel; a JavaScript loop where the kernel cannot run):
 * as tfjs ops it took a concat of the products, a matMul with a 4-row left operand whose huge right operand XNNPACK repacks on every call
 * (docs/tuning.md#simd-kernels), two transposes and the bias add. `heap` and
 * `simd` are the caller's, looked up once per convolution (null where unavailable).
 */
function outputTransform(
  heap: WasmHeap | null,
  simd: SimdKernels | null,
  products: tf.Tensor2D[],
  bias: tf.Tensor,
  m: WinogradTile,
  [n, th, tw]: number[],
  outH: number,
  w: number,
): tf.Tensor4D {
  const cout = products[0].shape[1];
  if (!heap || bias.size !== cout) return tf.add(outputTransformOps(products, m, [n, th, tw], outH, w), bias);
  return tensorFromFill([n, outH, w, cout], (dst) => {
    if (simd && cout % 4 === 0) {
      simd.untile(
        m,
        products.map((t) => heapOffset(heap, t)),
        heapOffset(heap, bias),
        dst.byteOffset,
        n,
        th,
        tw,
        outH,
        w,
        cout,
      );
      return;
    }
    // Views are taken after the output exists: allocating it may have grown (and moved) the heap.
    const src = products.map((t) => heapView(heap, t));
    (m === 2 ? untile2 : untile4)(src, heapView(heap, bias), dst, [n, th, tw], outH, w, cout);
  }) as tf.Tensor4D;
}

function untile2(
  s: Float32Array[],
  bias: Float32Array,
  dst: Float32Array,
  [n, th, tw]: number[],
  outH: number,
  w: number,
  cout: number,
): void {
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
          const m10 = s4[k],
            m11 = s5[k],
            m12 = s6[k],
            m13 = s7[k];
          const m20 = s8[k],
            m21 = s9[k],
            m22 = s10[k],
            m23 = s11[k];
          const t0 = s0[k] + m10 + m20,
            t1 = s1[k] + m11 + m21,
            t2 = s2[k] + m12 + m22,
            t3 = s3[k] + m13 + m23;
          const b = bias[c];
          dst[o + c] = t0 + t1 + t2 + b;
          if (right) dst[o + cout + c] = t1 - t2 - t3 + b;
          if (below) {
            const u0 = m10 - m20 - s12[k],
              u1 = m11 - m21 - s13[k],
              u2 = m12 - m22 - s14[k],
              u3 = m13 - m23 - s15[k];
            dst[o + rowStride + c] = u0 + u1 + u2 + b;
            if (right) dst[o + rowStride + cout + c] = u1 - u2 - u3 + b;
          }
        }
      }
}

// Unrolled by hand, one line per row of the transform (loops over small arrays ran slower): left as laid out.
// prettier-ignore
function untile4(s: Float32Array[], bias: Float32Array, dst: Float32Array, [n, th, tw]: number[], outH: number, w: number, cout: number): void {
  // Aᵀ rows: [1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0], [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]; with
  // a = v1 + v2, b = v1 − v2, c = v3 + v4, d = v3 − v4 they are v0 + a + c, b + 2d, a + 4c, b + 8d + v5.
  // Unrolled into scalars: with loops over small arrays this pass took twice as long.
  const [s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15, s16, s17, s18, s19, s20, s21, s22, s23, s24, s25, s26, s27, s28, s29, s30, s31, s32, s33, s34, s35] = s;
  const y = new Float32Array(16);
  const rowStride = w * cout;
  for (let e = 0; e < n; e++)
    for (let ti = 0; ti < th; ti++)
      for (let tj = 0; tj < tw; tj++) {
        const k0 = ((e * th + ti) * tw + tj) * cout;
        const rows = Math.min(4, outH - 4 * ti);
        const cols = Math.min(4, w - 4 * tj);
        const whole = rows === 4 && cols === 4;
        const o0 = ((e * outH + 4 * ti) * w + 4 * tj) * cout;
        for (let c = 0; c < cout; c++) {
          const k = k0 + c;
          // Aᵀ over the rows r, column by column: t<i><col>.
          const a0 = s6[k] + s12[k], b0 = s6[k] - s12[k], c0 = s18[k] + s24[k], d0 = s18[k] - s24[k];
          const t00 = s0[k] + a0 + c0, t10 = b0 + 2 * d0, t20 = a0 + 4 * c0, t30 = b0 + 8 * d0 + s30[k];
          const a1 = s7[k] + s13[k], b1 = s7[k] - s13[k], c1 = s19[k] + s25[k], d1 = s19[k] - s25[k];
          const t01 = s1[k] + a1 + c1, t11 = b1 + 2 * d1, t21 = a1 + 4 * c1, t31 = b1 + 8 * d1 + s31[k];
          const a2 = s8[k] + s14[k], b2 = s8[k] - s14[k], c2 = s20[k] + s26[k], d2 = s20[k] - s26[k];
          const t02 = s2[k] + a2 + c2, t12 = b2 + 2 * d2, t22 = a2 + 4 * c2, t32 = b2 + 8 * d2 + s32[k];
          const a3 = s9[k] + s15[k], b3 = s9[k] - s15[k], c3 = s21[k] + s27[k], d3 = s21[k] - s27[k];
          const t03 = s3[k] + a3 + c3, t13 = b3 + 2 * d3, t23 = a3 + 4 * c3, t33 = b3 + 8 * d3 + s33[k];
          const a4 = s10[k] + s16[k], b4 = s10[k] - s16[k], c4 = s22[k] + s28[k], d4 = s22[k] - s28[k];
          const t04 = s4[k] + a4 + c4, t14 = b4 + 2 * d4, t24 = a4 + 4 * c4, t34 = b4 + 8 * d4 + s34[k];
          const a5 = s11[k] + s17[k], b5 = s11[k] - s17[k], c5 = s23[k] + s29[k], d5 = s23[k] - s29[k];
          const t05 = s5[k] + a5 + c5, t15 = b5 + 2 * d5, t25 = a5 + 4 * c5, t35 = b5 + 8 * d5 + s35[k];
          const bc = bias[c];
          const p0 = t01 + t02, q0 = t01 - t02, r0 = t03 + t04, u0 = t03 - t04;
          const y00 = t00 + p0 + r0 + bc, y01 = q0 + 2 * u0 + bc, y02 = p0 + 4 * r0 + bc, y03 = q0 + 8 * u0 + t05 + bc;
          const p1 = t11 + t12, q1 = t11 - t12, r1 = t13 + t14, u1 = t13 - t14;
          const y10 = t10 + p1 + r1 + bc, y11 = q1 + 2 * u1 + bc, y12 = p1 + 4 * r1 + bc, y13 = q1 + 8 * u1 + t15 + bc;
          const p2 = t21 + t22, q2 = t21 - t22, r2 = t23 + t24, u2 = t23 - t24;
          const y20 = t20 + p2 + r2 + bc, y21 = q2 + 2 * u2 + bc, y22 = p2 + 4 * r2 + bc, y23 = q2 + 8 * u2 + t25 + bc;
          const p3 = t31 + t32, q3 = t31 - t32, r3 = t33 + t34, u3 = t33 - t34;
          const y30 = t30 + p3 + r3 + bc, y31 = q3 + 2 * u3 + bc, y32 = p3 + 4 * r3 + bc, y33 = q3 + 8 * u3 + t35 + bc;
          if (whole) {
            const row0 = o0 + c;
            dst[row0] = y00;
            dst[row0 + cout] = y01;
            dst[row0 + 2 * cout] = y02;
            dst[row0 + 3 * cout] = y03;
            const row1 = row0 + rowStride;
            dst[row1] = y10;
            dst[row1 + cout] = y11;
            dst[row1 + 2 * cout] = y12;
            dst[row1 + 3 * cout] = y13;
            const row2 = row0 + 2 * rowStride;
            dst[row2] = y20;
            dst[row2 + cout] = y21;
            dst[row2 + 2 * cout] = y22;
            dst[row2 + 3 * cout] = y23;
            const row3 = row0 + 3 * rowStride;
            dst[row3] = y30;
            dst[row3 + cout] = y31;
            dst[row3 + 2 * cout] = y32;
            dst[row3 + 3 * cout] = y33;
          } else {
            y.set([y00, y01, y02, y03, y10, y11, y12, y13, y20, y21, y22, y23, y30, y31, y32, y33]);
            for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) dst[o0 + (i * w + j) * cout + c] = y[4 * i + j];
          }
        }
      }
}

/** {@link outputTransform} without the bias, as tfjs ops (backends other than wasm). */
function outputTransformOps(
  products: tf.Tensor2D[],
  m: WinogradTile,
  [n, th, tw]: number[],
  outH: number,
  w: number,
): tf.Tensor4D {
  const { alpha, at } = MATRICES[m];
  const cout = products[0].shape[1];
  return tf.tidy(() => {
    // One matMul with the small Aᵀ⊗Aᵀ on the left: [m², α²] × [α², P·Cout]. The products are joined
    // along axis 0, which wasm's Concat does with one block copy per input.
    const y = tf.matMul(
      tf.tensor2d(kron(at, at), [m * m, alpha * alpha]),
      tf.reshape(tf.concat(products, 0), [alpha * alpha, n * th * tw * cout]),
    );
    // y is (i, j, tile row, tile column, Cout); the image wants (tile row, i, tile column, j, Cout).
    // Two 4-D transposes, because wasm's 5-D transpose takes a much slower generic path (docs/tuning.md#simd-kernels).
    const rowsFirst = tf.transpose(tf.reshape(y, [m, m, n * th, tw * cout]), [2, 0, 1, 3]);
    const tiles = tf.transpose(tf.reshape(rowsFirst, [n * th * m, m, tw, cout]), [0, 2, 1, 3]);
    const out = tf.reshape(tiles, [n, th * m, tw * m, cout]) as tf.Tensor4D;
    return th * m !== outH || tw * m !== w ? tf.slice(out, [0, 0, 0, 0], [n, outH, w, cout]) : out;
  });
}
