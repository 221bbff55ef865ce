/**
 * Where a model's weights live between forwards. Resident weights are tensors for the model's whole
 * life; streamed weights stay in JS memory (float32, or float16 to halve it) and become a tensor
 * only inside the layer that uses them, freed when that layer's `tf.tidy` ends. On wasm this is
 * what makes big checkpoints fit: XNNPACK keeps a packed copy of every live conv/matMul weight, so
 * resident filters cost several times their size in a heap with a hard ceiling
 * (docs/backends.md#memory).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../../errors.js';
import { f16ToF32, f32ToF16 } from '../../io/float16.js';
import { simdKernels, tensorFromFill } from '../../backend/wasm/index.js';

/**
 * How the weights are kept.
 * @category Backbone
 */
export interface WeightOptions {
  /**
   * `resident`: every weight is a tensor (fastest; the default on cpu, tensorflow and for models
   * under 1 GiB). `stream`: only `residentBudget` bytes of the smallest weights are tensors; the rest
   * are uploaded per layer on each forward (the default on wasm for models of 1 GiB or more, such
   * as the 256×256 ones). `auto` (default) picks by backend and size.
   */
  residency?: 'auto' | 'resident' | 'stream';
  /**
   * With streaming: float32 bytes of weights kept resident, smallest tensors first (norms, biases,
   * embeddings, then the smallest filters). On wasm the heap holds several times this for conv
   * weights (docs/backends.md#memory). Default 64 MiB.
   */
  residentBudget?: number;
  /**
   * With streaming: how streamed weights are held in JS memory. `float16` halves the memory (and
   * rounds each weight to 11 significant bits; lossless for checkpoints whose convs were saved in
   * float16, as the released `use_fp16` ones are). Default `float32`.
   */
  storage?: 'float32' | 'float16';
}

const AUTO_STREAM_BYTES = 1024 ** 3;
const DEFAULT_BUDGET = 64 * 1024 ** 2;

/** Which weights to keep resident: everything, or the smallest within the budget. */
export function planResidency(
  params: readonly (readonly [string, readonly number[]])[],
  opts: WeightOptions,
  backend: string,
): Set<string> {
  const residency = opts.residency ?? 'auto';
  if (!['auto', 'resident', 'stream'].includes(residency))
    throw new InputError(`residency must be auto, resident or stream, got "${residency}"`);
  if (opts.storage !== undefined && opts.storage !== 'float32' && opts.storage !== 'float16')
    throw new InputError(`storage must be float32 or float16, got "${opts.storage}"`);
  const budget = opts.residentBudget ?? DEFAULT_BUDGET;
  if (!(budget >= 0)) throw new InputError(`residentBudget must be a number of bytes ≥ 0, got ${opts.residentBudget}`);
  const sized = params.map(([name, shape]) => ({ name, bytes: 4 * shape.reduce((a, b) => a * b, 1) }));
  const total = sized.reduce((s, p) => s + p.bytes, 0);
  const stream = residency === 'stream' || (residency === 'auto' && backend === 'wasm' && total >= AUTO_STREAM_BYTES);
  if (!stream) return new Set(sized.map((p) => p.name));
  const keep = new Set<string>();
  let used = 0;
  for (const p of [...sized].sort((a, b) => a.bytes - b.bytes)) {
    if (used + p.bytes > budget) break;
    keep.add(p.name);
    used += p.bytes;
  }
  return keep;
}

/** The weights of one model, under their reference names, in tfjs layout. */
export class WeightStore {
  private readonly resident = new Map<string, tf.Tensor>();
  // `rows`: the array holds the weight as [last dim, product of the others] (a 3×3 filter as
  // [Cout, 9·Cin]) instead of the tfjs layout; see getRows.
  private readonly streamed = new Map<string, { shape: number[]; data: Float32Array | Uint16Array; rows: boolean }>();
  private disposed = false;
  private variables: Map<string, tf.Variable> | null = null;

  constructor(
    /** Names that become resident tensors; all others are streamed. */
    private readonly residentNames: Set<string>,
    private readonly storage: 'float32' | 'float16' = 'float32',
  ) {}

  /** Adds a weight (tfjs layout). The store owns `data` afterwards. */
  add(name: string, shape: number[], data: Float32Array): void {
    if (this.residentNames.has(name)) this.resident.set(name, tf.tensor(data, shape, 'float32'));
    else this.streamed.set(name, { shape, data: this.storage === 'float16' ? f32ToF16(data) : data, rows: false });
  }

  /** Whether the weight is a resident tensor (not streamed). */
  isResident(name: string): boolean {
    return this.resident.has(name);
  }

  /** Whether the weights are `tf.Variable`s that training updates (see {@link makeTrainable}). */
  get trainable(): boolean {
    return this.variables !== null;
  }

  /**
   * Turns every weight into a trainable `tf.Variable` in place (once; later calls return the same
   * variables), keyed by name.
   * @throws InputError when any weight is streamed: training needs every weight resident.
   */
  makeTrainable(): Map<string, tf.Variable> {
    if (this.variables) return this.variables;
    if (this.disposed) throw new InputError('the model was disposed');
    if (this.streamed.size > 0)
      throw new InputError(
        `training needs every weight resident, but ${this.streamed.size} are streamed: load the model with residency: 'resident'`,
      );
    const vars = new Map<string, tf.Variable>();
    for (const [name, t] of this.resident) {
      const v = tf.variable(t, true);
      t.dispose();
      this.resident.set(name, v);
      vars.set(name, v);
    }
    return (this.variables = vars);
  }

  /** Whether any weight is streamed. */
  get streaming(): boolean {
    return this.streamed.size > 0;
  }

  /** Bytes held as tensors and as JS arrays. */
  get bytes(): { resident: number; streamed: number } {
    let resident = 0;
    let streamed = 0;
    this.resident.forEach((t) => (resident += 4 * t.size));
    this.streamed.forEach((s) => (streamed += s.data.byteLength));
    return { resident, streamed };
  }

  /** The weight's shape in tfjs layout. */
  shapeOf(name: string): number[] {
    const r = this.resident.get(name);
    return r ? r.shape : this.entry(name).shape;
  }

  /**
   * The weight as a tensor (tfjs layout). A streamed one is a new tensor in the caller's scope: call
   * this inside `tf.tidy` (every layer does) so it is freed when the layer is done.
   */
  get(name: string): tf.Tensor {
    const r = this.resident.get(name);
    if (r) return r;
    const s = this.entry(name);
    if (!s.rows) return this.upload(s.data, s.shape);
    return tf.tidy(() => tf.reshape(tf.transpose(this.upload(s.data, rowsShape(s.shape))), s.shape));
  }

  /**
   * A streamed weight as `[last dim, product of the others]` (a HWIO 3×3 filter as `[Cout, 9·Cin]`),
   * or with `rows` `[first, count]` just those rows, a new tensor in the caller's scope. The first
   * call re-lays the weight out that way in JS memory (a one-time transpose) for layers that consume
   * it so on every forward; {@link get} and {@link read} still give the tfjs layout.
   */
  getRows(name: string, rows?: [number, number]): tf.Tensor2D {
    const s = this.entry(name);
    const shape = rowsShape(s.shape);
    const floats = s.data;
    if (!s.rows && floats instanceof Float32Array) {
      // Re-laid out straight into an upload, then copied back over the array itself: a second JS
      // array of the weight's size would raise the process's peak memory by it on the first forward.
      const t = tensorFromFill(shape, (dst) => {
        transpose2d(floats, shape[1], shape[0], dst);
        floats.set(dst);
      });
      s.rows = true;
      if (!rows) return t as tf.Tensor2D;
      t.dispose();
    }
    if (!s.rows) {
      s.data = transpose2d(s.data, shape[1], shape[0]);
      s.rows = true;
    }
    if (!rows) return this.upload(s.data, shape) as tf.Tensor2D;
    const [first, count] = rows;
    if (!(Number.isInteger(first) && Number.isInteger(count) && first >= 0 && count >= 1 && first + count <= shape[0]))
      throw new RangeError(`getRows: rows [${first}, ${first + count}) outside [0, ${shape[0]})`);
    return this.upload(s.data.subarray(first * shape[1], (first + count) * shape[1]), [count, shape[1]]) as tf.Tensor2D;
  }

  /** The weight's values (tfjs layout), as float32. */
  read(name: string): Float32Array {
    const r = this.resident.get(name);
    if (r) return r.dataSync() as Float32Array;
    const s = this.entry(name);
    const cols = s.shape[s.shape.length - 1];
    const data = s.rows ? transpose2d(s.data, cols, s.data.length / cols) : s.data;
    if (data instanceof Uint16Array) return f16ToF32(data);
    return s.rows ? data : data.slice(); // always a fresh array: the store keeps its own
  }

  private entry(name: string): { shape: number[]; data: Float32Array | Uint16Array; rows: boolean } {
    const s = this.streamed.get(name);
    if (!s) throw new InputError(this.disposed ? 'the model was disposed' : `weight "${name}" is not loaded`);
    return s;
  }

  private upload(src: Float32Array | Uint16Array, shape: number[]): tf.Tensor {
    return tensorFromFill(shape, (dst) => (src instanceof Uint16Array ? decodeHalves(src, dst) : dst.set(src)));
  }

  /** Frees the resident tensors and drops the streamed arrays. */
  dispose(): void {
    this.resident.forEach((t) => t.dispose());
    this.resident.clear();
    this.streamed.clear();
    this.variables = null;
    this.disposed = true;
  }
}

/**
 * Halves into `dst`; when `dst` lies in the wasm heap, by the SIMD kernel: the halves are copied
 * into the upper half of `dst`'s own bytes and decoded from there front to back, which never
 * overwrites a half before it is read, so no scratch memory is needed.
 */
function decodeHalves(src: Uint16Array, dst: Float32Array): void {
  const simd = simdKernels();
  const blocks = src.length >>> 3;
  if (!simd || dst.buffer !== simd.memory.buffer || blocks === 0) {
    f16ToF32(src, dst);
    return;
  }
  const upper = dst.byteOffset + 2 * src.length;
  new Uint16Array(dst.buffer, upper, src.length).set(src);
  simd.f16ToF32(upper, dst.byteOffset, blocks);
  if (8 * blocks < src.length) f16ToF32(src.subarray(8 * blocks), dst.subarray(8 * blocks));
}

function rowsShape(shape: number[]): number[] {
  const cols = shape[shape.length - 1];
  return [cols, shape.reduce((a, b) => a * b, 1) / cols];
}

/** `[rows, cols]` → `[cols, rows]` (into `dst` when given), in tiles so both sides stay in cache. */
function transpose2d<T extends Float32Array | Uint16Array>(
  src: T,
  rows: number,
  cols: number,
  dst: T = new (src.constructor as { new (n: number): T })(src.length),
): T {
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B)
    for (let c0 = 0; c0 < cols; c0 += B) {
      const r1 = Math.min(rows, r0 + B);
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c];
    }
  return dst;
}
