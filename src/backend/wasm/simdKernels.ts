/**
 * Passes of the 256 models' forward that tfjs has no fitting kernel for, as WebAssembly SIMD
 * functions running in the wasm backend's own memory: float16 → float32 decoding of streamed
 * weights, and the Winograd filter, input and output transforms. In JavaScript the decoding and the
 * output transform were a large share of each 256 full forward (JavaScript has no SIMD and checks
 * every typed-array access; docs/tuning.md#simd-kernels); the input transform as tfjs depthwise convs pads 6-tap kernels to 9
 * (shorter ones are an order of magnitude slower there) and copies the input into a padded one first.
 *
 * The module is assembled at first use (a few hundred bytes, see {@link ./assembler}) and imports
 * the backend's `WebAssembly.Memory`, which tfjs-backend-wasm 4.22.0 exposes on its emscripten
 * module (`wasmMemory` in the threaded build, `asm.memory` otherwise). Whenever any of that is not
 * there (another backend or version, no SIMD) {@link simdKernels} is null and callers keep their
 * JavaScript paths.
 *
 * With threaded wasm in Node, {@link startSimdHelpers} gives the kernels helper threads, and the
 * transforms split their range over them and the calling thread (see {@link ./kernelWorkers}).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { assembleModule, FunctionBody, type ValType } from './assembler.js';
import { KernelHelpers, splitRange } from './kernelWorkers.js';

/** The kernels, bound to the active wasm backend's memory. Pointers are byte offsets in its heap. */
export interface SimdKernels {
  readonly memory: WebAssembly.Memory;
  /**
   * Decodes `blocks · 8` IEEE halves at `src` to float32 at `dst`, front to back, 8 at a time, each
   * block read before it is written: `src` may lie inside the output as long as `src ≥ dst + 16·blocks`.
   */
  f16ToF32(src: number, dst: number, blocks: number): void;
  /**
   * The Winograd input transform V = Bᵀ d B of F(m×m, 3×3) for every tile: `x` is the image `[n, inH,
   * w, cin]`, `outs` the α² matrices `[n·th·tw, cin]` (ξ = r·α + c); tile (ti, tj) starts at row
   * m·ti − padTop and column m·tj − 1, and what lies outside the image counts as zeros. `cin % 4 === 0`.
   */
  tile(
    m: 2 | 4,
    x: number,
    outs: number[],
    n: number,
    inH: number,
    w: number,
    cin: number,
    padTop: number,
    th: number,
    tw: number,
  ): void;
  /**
   * The Winograd output transform Y = Aᵀ M A plus bias, for F(m×m, 3×3): `products` are the α²
   * matrices `[n·th·tw, cout]` (ξ = r·α + c), `dst` the image `[n, outH, w, cout]`; `cout % 4 === 0`.
   */
  untile(
    m: 2 | 4,
    products: number[],
    bias: number,
    dst: number,
    n: number,
    th: number,
    tw: number,
    outH: number,
    w: number,
    cout: number,
  ): void;
  /**
   * The transpose of the output transform, M̄ = A Ȳ Aᵀ, for every tile of an output gradient `dy`
   * `[n, h, w, cout]` into the α² matrices `outs` `[n·th·tw, cout]` (ξ = r·α + c): tile (ti, tj) reads
   * rows m·ti … and columns m·tj … (m of each), what lies outside the map as zeros. With the input
   * transform of the conv's input, these give the filter gradient (Σ over tiles of V_ξᵀ M̄_ξ, then
   * Gᵀ · G). `cout % 4 === 0`.
   */
  tileGradients(
    m: 2 | 4,
    dy: number,
    outs: number[],
    n: number,
    h: number,
    w: number,
    cout: number,
    th: number,
    tw: number,
  ): void;
  /**
   * The transpose `[cols, rows]` at `dst` of the matrix `[rows, cols]` at `src`, 4 × 4 blocks at a
   * time (tfjs-backend-wasm's Transpose runs several times slower on power-of-two sides).
   * `rows % 4 === 0`, `cols % 4 === 0`; `dst` must not overlap `src`.
   */
  transpose(src: number, dst: number, rows: number, cols: number): void;
  /**
   * The Winograd filter transform U = G g Gᵀ of F(m×m, 3×3) for a filter `g` laid out as `[rows, 3,
   * 3, cols]`, into the α² matrices `outs`, each `[rows, cols]` (ξ = r·α + c, r along the filter's
   * rows). An HWIO filter is rows = 1, cols = Cin·Cout; one as rows `[Cout, 9·Cin]` is rows = Cout,
   * cols = Cin, which makes each output U_ξᵀ. `cols % 4 === 0`.
   */
  filters(m: 2 | 4, g: number, outs: number[], rows: number, cols: number): void;
}

interface EmscriptenModule {
  wasmMemory?: unknown;
  asm?: { memory?: unknown };
}

const cache = new WeakMap<WebAssembly.Memory, SimdKernels | null>();
let disabled = false;

/** The kernels for the active backend, or null when it is not a wasm backend they can run in. */
export function simdKernels(): SimdKernels | null {
  if (disabled || tf.getBackend() !== 'wasm') return null;
  const module = (tf.backend() as unknown as { wasm?: EmscriptenModule }).wasm;
  const memory = module?.wasmMemory ?? module?.asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return null;
  if (!cache.has(memory)) cache.set(memory, build(memory));
  return cache.get(memory) ?? null;
}

/** Turns the kernels off (true) or back on, so tests can exercise the JavaScript paths on wasm. */
export function disableSimdKernels(off: boolean): void {
  disabled = off;
}

// Below this many bytes written, a kernel runs on the calling thread alone (waking a helper costs tens of µs).
const MIN_SPLIT_BYTES = 1 << 20;

const KERNEL_BODIES: [name: string, body: () => FunctionBody][] = [
  ['f16', f16Body],
  ['untile2', () => untileBody(2)],
  ['untile4', () => untileBody(4)],
  ['tile2', () => tileBody(2)],
  ['tile4', () => tileBody(4)],
  ['tileGrad2', () => tileGradBody(2)],
  ['tileGrad4', () => tileGradBody(4)],
  ['transpose', transposeBody],
  ['filters2', () => filtersBody(2)],
  ['filters4', () => filtersBody(4)],
];

/** The kernels' module and its helper threads, per memory. */
const modules = new WeakMap<WebAssembly.Memory, { bytes: Uint8Array; helpers: KernelHelpers | null }>();
let helpersOn = true;
let lastHelpers: KernelHelpers | null = null;

/**
 * Starts `count` helper threads for the active wasm backend's kernels (Node, threaded wasm): from
 * then on the Winograd transforms split their range over them and the calling thread. Resolves to
 * the number of helpers running (0 where they cannot run). Helpers of an earlier backend stop.
 */
export async function startSimdHelpers(count: number): Promise<number> {
  const kernels = simdKernels();
  const mod = kernels && modules.get(kernels.memory);
  if (!kernels || !mod) return 0;
  if (mod.helpers) return mod.helpers.threads - 1;
  const helpers = await KernelHelpers.start(
    kernels.memory,
    mod.bytes,
    KERNEL_BODIES.map(([name]) => name),
    count,
  );
  if (!helpers) return 0;
  lastHelpers?.stop();
  lastHelpers = mod.helpers = helpers;
  return helpers.threads - 1;
}

/** Lets the kernels use their helper threads (true, the default) or keeps them on the calling thread (tests). */
export function useSimdHelpers(on: boolean): void {
  helpersOn = on;
}

function build(memory: WebAssembly.Memory): SimdKernels | null {
  try {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const bytes = assembleModule(
      KERNEL_BODIES.map(([name, body]) => ({ name, body: body() })),
      { shared },
    );
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    const fns = instance.exports as Record<string, (...args: number[]) => void>;
    const mod = { bytes, helpers: null as KernelHelpers | null };
    modules.set(memory, mod);
    // How many parts a kernel that writes `written` bytes splits into.
    const ways = (written: number) =>
      helpersOn && mod.helpers && written >= MIN_SPLIT_BYTES ? mod.helpers.threads : 1;
    const run = (name: string, parts: number[][]) => {
      if (parts.length > 1) mod.helpers!.runParts(name, fns[name], parts);
      else fns[name](...parts[0]);
    };
    // Tile kernels' ranges: several examples split by examples, one example by rows of tiles.
    // `part(e0, ne, t0, nt)` gives the arguments for examples [e0, e0 + ne) and tile rows [t0, t0 + nt).
    const tileParts = (
      n: number,
      th: number,
      written: number,
      part: (e0: number, ne: number, t0: number, nt: number) => number[],
    ): number[][] => {
      const k = ways(written);
      if (n > 1) return splitRange(n, k).map(([a, b]) => part(a, b - a, 0, th));
      return splitRange(th, k).map(([a, b]) => part(0, 1, a, b - a));
    };
    return {
      memory,
      f16ToF32: (src, dst, blocks) => {
        if (blocks > 0) fns.f16(src, dst, blocks);
      },
      untile: (m, products, bias, dst, n, th, tw, outH, w, cout) => {
        if (products.length !== (m + 2) ** 2)
          throw new RangeError(`untile${m}: ${(m + 2) ** 2} products expected, got ${products.length}`);
        if (cout % 4 !== 0 || cout < 4)
          throw new RangeError(`untile${m}: cout must be a positive multiple of 4, got ${cout}`);
        if (!(n > 0 && th > 0 && tw > 0)) return;
        const row = 4 * w * cout;
        const tiles = 4 * tw * cout;
        run(
          `untile${m}`,
          tileParts(n, th, n * outH * row, (e0, ne, t0, nt) => [
            ...products.map((p) => p + (e0 * th + t0) * tiles),
            bias,
            dst + (e0 * outH + m * t0) * row,
            ne,
            nt,
            tw,
            outH - m * t0,
            w,
            cout,
          ]),
        );
      },
      tile: (m, x, outs, n, inH, w, cin, padTop, th, tw) => {
        if (outs.length !== (m + 2) ** 2)
          throw new RangeError(`tile${m}: ${(m + 2) ** 2} outputs expected, got ${outs.length}`);
        if (cin % 4 !== 0 || cin < 4)
          throw new RangeError(`tile${m}: cin must be a positive multiple of 4, got ${cin}`);
        if (n > 0 && th > 0 && tw > 0) run(`tile${m}`, tileTransformParts(m, x, outs, n, inH, w, cin, padTop, th, tw));
      },
      tileGradients: (m, dy, outs, n, h, w, cout, th, tw) => {
        if (outs.length !== (m + 2) ** 2)
          throw new RangeError(`tileGradients${m}: ${(m + 2) ** 2} outputs expected, got ${outs.length}`);
        if (cout % 4 !== 0 || cout < 4)
          throw new RangeError(`tileGradients${m}: cout must be a positive multiple of 4, got ${cout}`);
        if (n > 0 && th > 0 && tw > 0) run(`tileGrad${m}`, tileTransformParts(m, dy, outs, n, h, w, cout, 0, th, tw));
      },
      transpose: (src, dst, rows, cols) => {
        if (rows % 4 !== 0 || cols % 4 !== 0)
          throw new RangeError(`transpose: sides must be multiples of 4, got ${rows} × ${cols}`);
        if (!(rows > 0 && cols > 0)) return;
        run(
          'transpose',
          splitRange(rows, ways(4 * rows * cols), 4).map(([a, b]) => [
            src + 4 * a * cols,
            dst + 4 * a,
            b - a,
            cols,
            4 * rows,
          ]),
        );
      },
      filters: (m, g, outs, rows, cols) => {
        if (outs.length !== (m + 2) ** 2)
          throw new RangeError(`filters${m}: ${(m + 2) ** 2} outputs expected, got ${outs.length}`);
        if (cols % 4 !== 0) throw new RangeError(`filters${m}: cols must be a multiple of 4, got ${cols}`);
        if (!(rows > 0 && cols > 0)) return;
        run(
          `filters${m}`,
          splitRange(4 * cols, ways(4 * rows * cols * (m + 2) ** 2), 16).map(([from, to]) => [
            ...outs,
            g,
            rows,
            4 * cols,
            from,
            to,
          ]),
        );
      },
    };

    // The input transform's and the output gradient's transform's parts (the same frame; tile row t0
    // starts m·t0 rows further down, which a smaller padTop says).
    function tileTransformParts(
      ...[m, x, outs, n, inH, w, c, padTop, th, tw]: Parameters<SimdKernels['tile']>
    ): number[][] {
      const tiles = 4 * tw * c;
      return tileParts(n, th, 4 * n * th * tw * c * (m + 2) ** 2, (e0, ne, t0, nt) => [
        ...outs.map((o) => o + (e0 * th + t0) * tiles),
        x + e0 * inH * 4 * w * c,
        ne,
        inH,
        w,
        c,
        padTop - m * t0,
        nt,
        tw,
      ]);
    }
  } catch {
    return null; // no SIMD, or a memory this module cannot import
  }
}

// Halves to floats, branch-free per lane: move exponent and mantissa into place and rebias the
// exponent (15 → 127); infinities and NaNs get the exponent's top value; zeros and subnormals are
// renormalised by a float subtraction of 2⁻¹⁴, which is exact.
function f16Body(): FunctionBody {
  const [src, dst, blocks] = [0, 1, 2];
  const b = new FunctionBody(['i32', 'i32', 'i32']);
  const [x, u, e] = [b.local('v128'), b.local('v128'), b.local('v128')];
  const half = (extend: string, offset: number) => {
    b.get(dst);
    b.get(x).op(extend).v128i32(splat(0x7fff)).op('v128.and').i32(13).op('i32x4.shl').tee(u);
    b.v128i32(splat(0x0f800000)).op('v128.and').set(e);
    b.get(u).v128i32(splat(0x38000000)).op('i32x4.add');
    b.get(e).v128i32(splat(0x0f800000)).op('i32x4.eq').v128i32(splat(0x38000000)).op('v128.and', 'i32x4.add').set(u);
    b.get(u)
      .v128i32(splat(0x00800000))
      .op('i32x4.add')
      .v128f32(2 ** -14)
      .op('f32x4.sub');
    b.get(u);
    b.get(e).v128i32(splat(0)).op('i32x4.eq', 'v128.bitselect');
    b.get(x).op(extend).v128i32(splat(0x8000)).op('v128.and').i32(16).op('i32x4.shl', 'v128.or');
    b.mem('v128.store', offset);
  };
  b.begin('loop');
  b.get(src).mem('v128.load').set(x);
  half('i32x4.extend_low_i16x8_u', 0);
  half('i32x4.extend_high_i16x8_u', 16);
  b.get(src).i32(16).op('i32.add').set(src);
  b.get(dst).i32(32).op('i32.add').set(dst);
  b.get(blocks).i32(1).op('i32.sub').tee(blocks).br(0, true);
  b.op('end');
  return b;
}

function splat(v: number): [number, number, number, number] {
  return [v, v, v, v];
}

/**
 * A kernel over the α² matrices of F(m×m, 3×3): its first α² parameters point at them, eight i32
 * parameters follow (`scalars`, their indices).
 */
function kernelFrame(m: 2 | 4): {
  b: FunctionBody;
  alpha: number;
  scalars: number[];
  i32s: (n: number) => number[];
  v128s: (n: number) => number[];
} {
  const alpha = m + 2;
  const np = alpha * alpha;
  const b = new FunctionBody(new Array<ValType>(np + 8).fill('i32'));
  const locals = (type: ValType) => (n: number) => Array.from({ length: n }, () => b.local(type));
  return { b, alpha, scalars: Array.from({ length: 8 }, (_, i) => np + i), i32s: locals('i32'), v128s: locals('v128') };
}

/** Closes a do-while loop: `counter += step`, and back to its start while `counter < limit`. */
function endLoop(b: FunctionBody, counter: number, step: number, limit: number): void {
  b.get(counter).i32(step).op('i32.add').tee(counter).get(limit).op('i32.lt_u').br(0, true);
  b.op('end');
}

/** Closes the tile kernels' loops over examples, tile rows, tile columns and channel bytes; kb moves one vector on. */
function endTileLoops(b: FunctionBody, kb: number, [e, ti, tj, c]: number[], [n, th, tw, cs]: number[]): void {
  b.get(kb).i32(16).op('i32.add').set(kb);
  endLoop(b, c, 16, cs);
  endLoop(b, tj, 1, tw);
  endLoop(b, ti, 1, th);
  endLoop(b, e, 1, n);
}

type Term = [coef: number, local: number];

/**
 * `dst = Σ coef·local` for each step in order, adding `bias` to the steps marked as outputs. Later
 * terms are added or subtracted, so only the first one is multiplied by a negative coefficient.
 */
function combine(b: FunctionBody, steps: [dst: number, terms: Term[], output: boolean][], bias?: number): void {
  for (const [dst, terms, output] of steps) {
    terms.forEach(([coef, local], i) => {
      b.get(local);
      const factor = i === 0 ? coef : Math.abs(coef);
      if (factor !== 1) b.v128f32(factor).op('f32x4.mul');
      if (i > 0) b.op(coef > 0 ? 'f32x4.add' : 'f32x4.sub');
    });
    if (output && bias !== undefined) b.get(bias).op('f32x4.add');
    b.set(dst);
  }
}

/**
 * Aᵀ applied to one column (or row) of α values, in a factored form that shares sums: for m = 4,
 * with a = v1 + v2, b = v1 − v2, c = v3 + v4, d = v3 − v4, the rows are v0 + a + c, b + 2d, a + 4c,
 * b + 8d + v5; for m = 2, v0 + v1 + v2 and v1 − v2 − v3.
 */
// Coefficient tables, one step per line.
// prettier-ignore
function applyAt(b: FunctionBody, m: 2 | 4, v: number[], out: number[], tmp: number[], bias?: number): void {
  if (m === 2) {
    combine(b, [[out[0], [[1, v[0]], [1, v[1]], [1, v[2]]], true], [out[1], [[1, v[1]], [-1, v[2]], [-1, v[3]]], true]], bias);
    return;
  }
  const [a, bb, c, d] = tmp;
  combine(
    b,
    [
      [a, [[1, v[1]], [1, v[2]]], false],
      [bb, [[1, v[1]], [-1, v[2]]], false],
      [c, [[1, v[3]], [1, v[4]]], false],
      [d, [[1, v[3]], [-1, v[4]]], false],
      [out[0], [[1, v[0]], [1, a], [1, c]], true],
      [out[1], [[1, bb], [2, d]], true],
      [out[2], [[1, a], [4, c]], true],
      [out[3], [[1, bb], [8, d], [1, v[5]]], true],
    ],
    bias,
  );
}

/**
 * Bᵀ applied to one column (or row) of α values. For m = 4, with p = v1 + v2, q = v3 + v4,
 * r = v1 − v2, s = v4 − v3, g = v4 − v2, h = v3 − v1, the rows are 4v0 − 5v2 + v4, q − 4p, s + 4r,
 * g + 2h, g − 2h, 4v1 − 5v3 + v5; for m = 2, v0 − v2, v1 + v2, v2 − v1, v1 − v3.
 */
// Coefficient tables, one step per line.
// prettier-ignore
function applyBt(b: FunctionBody, m: 2 | 4, v: number[], out: number[], tmp: number[]): void {
  if (m === 2) {
    combine(b, [
      [out[0], [[1, v[0]], [-1, v[2]]], true],
      [out[1], [[1, v[1]], [1, v[2]]], true],
      [out[2], [[1, v[2]], [-1, v[1]]], true],
      [out[3], [[1, v[1]], [-1, v[3]]], true],
    ]);
    return;
  }
  const [p, q, r, s, g, h] = tmp;
  combine(b, [
    [p, [[1, v[1]], [1, v[2]]], false],
    [q, [[1, v[3]], [1, v[4]]], false],
    [r, [[1, v[1]], [-1, v[2]]], false],
    [s, [[1, v[4]], [-1, v[3]]], false],
    [g, [[1, v[4]], [-1, v[2]]], false],
    [h, [[1, v[3]], [-1, v[1]]], false],
    [out[0], [[4, v[0]], [-5, v[2]], [1, v[4]]], true],
    [out[1], [[1, q], [-4, p]], true],
    [out[2], [[1, s], [4, r]], true],
    [out[3], [[1, g], [2, h]], true],
    [out[4], [[1, g], [-2, h]], true],
    [out[5], [[4, v[1]], [-5, v[3]], [1, v[5]]], true],
  ]);
}

/**
 * A (the transpose of Aᵀ, α × m) applied to one column (or row) of m values. For m = 4, with
 * p = v0 + v2, q = v1 + v3, r = v0 + 4v2, s = 2v1 + 8v3, the rows are v0, p + q, p − q, r + s, r − s,
 * v3; for m = 2, v0, v0 + v1, v0 − v1, −v1.
 */
// Coefficient tables, one step per line.
// prettier-ignore
function applyA(b: FunctionBody, m: 2 | 4, v: number[], out: number[], tmp: number[]): void {
  if (m === 2) {
    combine(b, [
      [out[0], [[1, v[0]]], true],
      [out[1], [[1, v[0]], [1, v[1]]], true],
      [out[2], [[1, v[0]], [-1, v[1]]], true],
      [out[3], [[-1, v[1]]], true],
    ]);
    return;
  }
  const [p, q, r, s] = tmp;
  combine(b, [
    [p, [[1, v[0]], [1, v[2]]], false],
    [q, [[1, v[1]], [1, v[3]]], false],
    [r, [[1, v[0]], [4, v[2]]], false],
    [s, [[2, v[1]], [8, v[3]]], false],
    [out[0], [[1, v[0]]], true],
    [out[1], [[1, p], [1, q]], true],
    [out[2], [[1, p], [-1, q]], true],
    [out[3], [[1, r], [1, s]], true],
    [out[4], [[1, r], [-1, s]], true],
    [out[5], [[1, v[3]]], true],
  ]);
}

/**
 * The input transform V = Bᵀ d B over every tile, four channels per step: the image `[n, inH, w,
 * cin]` is read once per tile it overlaps and each of the α² outputs `[n·th·tw, cin]` written once,
 * in order. Tile (ti, tj) reads rows m·ti − padTop … and columns m·tj − 1 …; those outside the
 * image read as zeros (the conv's padding), checked only in tiles that touch an edge.
 */
function tileBody(m: 2 | 4): FunctionBody {
  return transformTilesBody(m, m + 2, 1, applyBt);
}

/**
 * M̄ = A Ȳ Aᵀ over every m × m tile of an output gradient `[n, h, w, cout]` (rows m·ti …, columns m·tj
 * …; its caller passes padTop 0), four channels per step, into the α² outputs `[n·th·tw, cout]`;
 * what runs past the map's bottom or right edge reads as zeros.
 */
function tileGradBody(m: 2 | 4): FunctionBody {
  return transformTilesBody(m, m, 0, applyA);
}

/**
 * A pass over every tile of an image `[n, inH, w, c]`, four channels per step: the `side × side`
 * window of tile (ti, tj) starts at row m·ti − padTop and column m·tj − colPad (zeros outside the
 * image, checked only in tiles that touch an edge); `apply` turns `side` values into α, over each
 * column's rows and then over each row, and the α² results go to the outputs `[n·th·tw, c]`
 * (ξ = r·α + c), each written once, in order. Parameters: the α² outputs, then the image, n, inH, w,
 * c, padTop, th, tw.
 */
function transformTilesBody(
  m: 2 | 4,
  side: number,
  colPad: number,
  apply: (b: FunctionBody, m: 2 | 4, v: number[], out: number[], tmp: number[]) => void,
): FunctionBody {
  const { b, alpha, scalars, i32s, v128s } = kernelFrame(m);
  const [x, n, inH, w, cin, padTop, th, tw] = scalars;
  const [e, ti, tj, c, kb, y0, x0, base, cs, rs, inside, img] = i32s(12);
  const [rowOk, colOk, rowOff, colOff] = [i32s(side), i32s(side), i32s(side), i32s(side)];
  const col = v128s(side);
  const t = Array.from({ length: alpha }, () => v128s(side));
  const [out, tmp] = [v128s(alpha), v128s(6)];

  b.get(cin).i32(4).op('i32.mul').set(cs);
  b.get(w).get(cs).op('i32.mul').set(rs);
  for (let r = 0; r < side; r++) {
    b.get(rs).i32(r).op('i32.mul').set(rowOff[r]);
    b.get(cs).i32(r).op('i32.mul').set(colOff[r]);
  }
  b.i32(0).set(kb);
  b.i32(0).set(e);
  b.begin('loop'); // e
  b.get(x).get(e).get(inH).op('i32.mul').get(rs).op('i32.mul', 'i32.add').set(img);
  b.i32(0).set(ti);
  b.begin('loop'); // ti
  b.get(ti).i32(m).op('i32.mul').get(padTop).op('i32.sub').set(y0);
  // Row r of the tile is inside when 0 ≤ y0 + r < inH (one unsigned compare).
  rowOk.forEach((l, r) => b.get(y0).i32(r).op('i32.add').get(inH).op('i32.lt_u').set(l));
  b.i32(0).set(tj);
  b.begin('loop'); // tj
  b.get(tj).i32(m).op('i32.mul').i32(colPad).op('i32.sub').set(x0);
  colOk.forEach((l, cc) => b.get(x0).i32(cc).op('i32.add').get(w).op('i32.lt_u').set(l));
  b.get(rowOk[0])
    .get(rowOk[side - 1])
    .op('i32.and')
    .get(colOk[0])
    .op('i32.and')
    .get(colOk[side - 1])
    .op('i32.and')
    .set(inside);
  b.get(img).get(y0).get(rs).op('i32.mul', 'i32.add').get(x0).get(cs).op('i32.mul', 'i32.add').set(base);
  b.i32(0).set(c);
  b.begin('loop'); // c, in bytes
  for (let cc = 0; cc < side; cc++) {
    for (let r = 0; r < side; r++) {
      const load = () =>
        b
          .get(base)
          .get(c)
          .op('i32.add')
          .get(rowOff[r])
          .op('i32.add')
          .get(colOff[cc])
          .op('i32.add')
          .mem('v128.load')
          .set(col[r]);
      b.get(inside).begin('if');
      load();
      b.op('else');
      b.v128i32([0, 0, 0, 0]).set(col[r]);
      b.get(rowOk[r]).get(colOk[cc]).op('i32.and').begin('if');
      load();
      b.op('end', 'end');
    }
    apply(
      b,
      m,
      col,
      t.map((row) => row[cc]),
      tmp,
    );
  }
  for (let i = 0; i < alpha; i++) {
    apply(b, m, t[i], out, tmp);
    out.forEach((l, j) =>
      b
        .get(i * alpha + j)
        .get(kb)
        .op('i32.add')
        .get(l)
        .mem('v128.store'),
    );
  }
  endTileLoops(b, kb, [e, ti, tj, c], [n, th, tw, cs]);
  return b;
}

// Row-block by row-block: four rows are read in order, and each 4 × 4 block, turned by shuffles,
// goes to four rows of the output.
function transposeBody(): FunctionBody {
  const [src, dst, rows, cols, ds] = [0, 1, 2, 3, 4]; // ds: an output row, in bytes
  const b = new FunctionBody(['i32', 'i32', 'i32', 'i32', 'i32']);
  const [i, j, rs, from, to] = [b.local('i32'), b.local('i32'), b.local('i32'), b.local('i32'), b.local('i32')];
  const r = [b.local('v128'), b.local('v128'), b.local('v128'), b.local('v128')];
  const t = [b.local('v128'), b.local('v128'), b.local('v128'), b.local('v128')];
  b.get(cols).i32(4).op('i32.mul').set(rs); // a source row, in bytes
  b.i32(0).set(i);
  b.begin('loop'); // i: source rows, 4 at a time
  b.i32(0).set(j);
  b.begin('loop'); // j: source columns, 4 at a time
  b.get(src).get(i).get(rs).op('i32.mul', 'i32.add').get(j).i32(4).op('i32.mul', 'i32.add').set(from);
  b.get(dst).get(j).get(ds).op('i32.mul', 'i32.add').get(i).i32(4).op('i32.mul', 'i32.add').set(to);
  r.forEach((l, k) => b.get(from).get(rs).i32(k).op('i32.mul', 'i32.add').mem('v128.load').set(l));
  b.get(r[0]).get(r[1]).shuffle32([0, 4, 1, 5]).set(t[0]);
  b.get(r[0]).get(r[1]).shuffle32([2, 6, 3, 7]).set(t[1]);
  b.get(r[2]).get(r[3]).shuffle32([0, 4, 1, 5]).set(t[2]);
  b.get(r[2]).get(r[3]).shuffle32([2, 6, 3, 7]).set(t[3]);
  const out = (k: number, a: number, c: number, lanes: [number, number, number, number]) =>
    b.get(to).get(ds).i32(k).op('i32.mul', 'i32.add').get(t[a]).get(t[c]).shuffle32(lanes).mem('v128.store');
  out(0, 0, 2, [0, 1, 4, 5]);
  out(1, 0, 2, [2, 3, 6, 7]);
  out(2, 1, 3, [0, 1, 4, 5]);
  out(3, 1, 3, [2, 3, 6, 7]);
  endLoop(b, j, 4, cols);
  endLoop(b, i, 4, rows);
  return b;
}

/**
 * The output transform over every tile, four channels per step: the α² products are read once,
 * in order (they are `[tiles, cout]`), and each output written once. Edge tiles store only the
 * rows and columns inside the image.
 */
function untileBody(m: 2 | 4): FunctionBody {
  const { b, alpha, scalars, i32s, v128s } = kernelFrame(m);
  const [bias, dst, n, th, tw, outH, w, cout] = scalars;
  const [e, ti, tj, c, kb, rowBase, colBase, rows, cols, cs, rs, left] = i32s(12);
  const [rowAddr, colOff] = [i32s(m), i32s(m)];
  const col = v128s(alpha);
  const t = Array.from({ length: m }, () => v128s(alpha));
  const y = Array.from({ length: m }, () => v128s(m));
  const tmp = v128s(4);
  const [bv] = v128s(1);

  // Strides in bytes, and the column offsets j·cs of a tile.
  b.get(cout).i32(4).op('i32.mul').set(cs);
  b.get(w).get(cs).op('i32.mul').set(rs);
  colOff.forEach((l, j) => b.get(cs).i32(j).op('i32.mul').set(l));
  b.i32(0).set(kb);
  b.i32(0).set(e);
  b.begin('loop'); // e
  b.i32(0).set(ti);
  b.begin('loop'); // ti
  // left = outH − m·ti; rows = min(m, left); rowBase = dst + (e·outH + m·ti)·rs
  b.get(outH).get(ti).i32(m).op('i32.mul', 'i32.sub').set(left);
  b.i32(m).get(left).get(left).i32(m).op('i32.gt_u', 'select').set(rows);
  b.get(dst)
    .get(e)
    .get(outH)
    .op('i32.mul')
    .get(ti)
    .i32(m)
    .op('i32.mul', 'i32.add')
    .get(rs)
    .op('i32.mul', 'i32.add')
    .set(rowBase);
  b.i32(0).set(tj);
  b.begin('loop'); // tj
  b.get(w).get(tj).i32(m).op('i32.mul', 'i32.sub').set(left);
  b.i32(m).get(left).get(left).i32(m).op('i32.gt_u', 'select').set(cols);
  b.get(rowBase).get(tj).i32(m).op('i32.mul').get(cs).op('i32.mul', 'i32.add').set(colBase);
  b.i32(0).set(c);
  b.begin('loop'); // c, in bytes
  // Aᵀ over the rows r of each column: t[i][col].
  for (let cc = 0; cc < alpha; cc++) {
    for (let r = 0; r < alpha; r++)
      b.get(r * alpha + cc)
        .get(kb)
        .op('i32.add')
        .mem('v128.load')
        .set(col[r]);
    applyAt(
      b,
      m,
      col,
      t.map((row) => row[cc]),
      tmp,
    );
  }
  b.get(bias).get(c).op('i32.add').mem('v128.load').set(bv);
  // Then over the columns of each row, plus the bias: y[i][j].
  for (let i = 0; i < m; i++) applyAt(b, m, t[i], y[i], tmp, bv);
  rowAddr.forEach((l, i) => b.get(colBase).get(c).op('i32.add').get(rs).i32(i).op('i32.mul', 'i32.add').set(l));
  const store = (i: number, j: number) => b.get(rowAddr[i]).get(colOff[j]).op('i32.add').get(y[i][j]).mem('v128.store');
  b.get(rows)
    .get(cols)
    .op('i32.add')
    .i32(2 * m)
    .op('i32.eq')
    .begin('if');
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) store(i, j);
  b.op('else');
  for (let i = 0; i < m; i++) {
    b.get(rows).i32(i).op('i32.gt_u').begin('if');
    for (let j = 0; j < m; j++) {
      b.get(cols).i32(j).op('i32.gt_u').begin('if');
      store(i, j);
      b.op('end');
    }
    b.op('end');
  }
  b.op('end');
  endTileLoops(b, kb, [e, ti, tj, c], [n, th, tw, cs]);
  return b;
}

/**
 * G applied to one column (or row) of 3 filter taps: for m = 4 the rows of G are [1/4, 0, 0],
 * −[1, 1, 1]/6, [−1, 1, −1]/6, [1/24, 1/12, 1/6], [1/24, −1/12, 1/6], [0, 0, 1]; for m = 2 [1, 0, 0],
 * [1, 1, 1]/2, [1, −1, 1]/2, [0, 0, 1].
 */
// Coefficient tables, one step per line.
// prettier-ignore
function applyG(b: FunctionBody, m: 2 | 4, v: number[], out: number[]): void {
  if (m === 2) {
    combine(b, [
      [out[0], [[1, v[0]]], true],
      [out[1], [[0.5, v[0]], [0.5, v[1]], [0.5, v[2]]], true],
      [out[2], [[0.5, v[0]], [-0.5, v[1]], [0.5, v[2]]], true],
      [out[3], [[1, v[2]]], true],
    ]);
    return;
  }
  combine(b, [
    [out[0], [[1 / 4, v[0]]], true],
    [out[1], [[-1 / 6, v[0]], [-1 / 6, v[1]], [-1 / 6, v[2]]], true],
    [out[2], [[-1 / 6, v[0]], [1 / 6, v[1]], [-1 / 6, v[2]]], true],
    [out[3], [[1 / 24, v[0]], [1 / 12, v[1]], [1 / 6, v[2]]], true],
    [out[4], [[1 / 24, v[0]], [-1 / 12, v[1]], [1 / 6, v[2]]], true],
    [out[5], [[1, v[2]]], true],
  ]);
}

/**
 * The filter transform U = G g Gᵀ, four (input, output) channel pairs per step: the 9 taps are read
 * once and the α² outputs written once, in order. As one matMul `(G⊗G) [α², 9] × g [9, Cin·Cout]`
 * XNNPACK first repacks g and then runs a kernel built for far larger inner dimensions than 9; this
 * pass only moves the bytes, which are what it costs (U is 16/9 or 4× the filter).
 */
function filtersBody(m: 2 | 4): FunctionBody {
  const { b, alpha, scalars, i32s, v128s } = kernelFrame(m);
  const [g, rows, bytes, from, to] = scalars; // bytes: of one row of each output; [from, to): the part of it done here
  const [row, off, src, dst] = i32s(4);
  const taps = v128s(9);
  const t = Array.from({ length: alpha }, () => v128s(3));
  const u = v128s(alpha);
  b.i32(0).set(row);
  b.begin('loop'); // row
  b.get(from).set(off);
  b.begin('loop'); // off, in bytes
  // src = g + 9·row·bytes + off, dst = row·bytes + off
  b.get(row).get(bytes).op('i32.mul').get(off).op('i32.add').set(dst);
  b.get(g).get(dst).op('i32.add').get(row).get(bytes).i32(8).op('i32.mul', 'i32.mul', 'i32.add').set(src);
  taps.forEach((l, k) => b.get(src).get(bytes).i32(k).op('i32.mul', 'i32.add').mem('v128.load').set(l));
  // G over the filter's rows, one column kw at a time: t[r][kw]; then over the columns of each r.
  for (let kw = 0; kw < 3; kw++)
    applyG(
      b,
      m,
      [taps[kw], taps[3 + kw], taps[6 + kw]],
      t.map((tr) => tr[kw]),
    );
  for (let r = 0; r < alpha; r++) {
    applyG(b, m, t[r], u);
    u.forEach((l, c) =>
      b
        .get(r * alpha + c)
        .get(dst)
        .op('i32.add')
        .get(l)
        .mem('v128.store'),
    );
  }
  endLoop(b, off, 16, to);
  endLoop(b, row, 1, rows);
  return b;
}
