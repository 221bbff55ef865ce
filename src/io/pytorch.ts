/**
 * Reader for `torch.save` state dicts, in both layouts PyTorch writes:
 * - zip (the default since 1.6): `<archive>/data.pkl` plus one stored entry per storage under
 *   `<archive>/data/<key>`;
 * - legacy (`_use_new_zipfile_serialization=False`): five consecutive pickles (magic number,
 *   protocol version, system info, the object, the storage keys), then for each storage an 8-byte
 *   element count and its raw bytes.
 *
 * The pickle goes through the restricted unpickler with an allow-list of exactly what a state
 * dict needs; storages are located, checked against the file, and read one tensor at a time at
 * their offsets (views, strides and shared storages honoured). Pure I/O: knows no model.
 * @module
 */
import { CheckpointError, InputError } from '../errors.js';
import { isCount } from '../util/checks.js';
import type { HostTensor } from '../util/hostTensor.js';
import { type ByteSource } from './byteRange.js';
import { LITTLE_ENDIAN_HOST, openByteSource, swapBytes } from './byteSource.js';
import type { FileInput } from './webSource.js';
import { formatOf } from './format.js';
import {
  describe,
  PickleNeedsMoreBytes,
  PyGlobal,
  PyTuple,
  unpickle,
  type PyCallable,
  type UnpickleHost,
} from './pickle.js';
import { bf16ToF32, f16ToF32 } from './float16.js';
import { TensorFileReader } from './tensorFileReader.js';
import { ZipArchive } from './zip.js';

/**
 * Element types of torch storages.
 * @category I/O
 */
export type TorchDtype =
  'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/**
 * What the checkpoint says about one tensor, known without reading its data.
 * @category I/O
 */
export interface TorchTensorInfo {
  name: string;
  dtype: TorchDtype;
  /** Shape as saved (PyTorch layout). */
  shape: number[];
  /** Strides in elements, as saved: a view need not be contiguous. */
  stride: number[];
  /** Offset of element 0 in its storage, in elements. */
  storageOffset: number;
  /** The storage's key; tensors with the same key share memory in PyTorch. */
  storage: string;
  /** Bytes the tensor's values take once read (elements × item size). */
  byteLength: number;
}

/**
 * A tensor read contiguously (row-major) in its own dtype; float16/bfloat16 arrive as float32.
 * @category I/O
 */
export interface TorchTensor extends HostTensor {
  /** The storage's dtype as saved. */
  dtype: TorchDtype;
}

/**
 * Options of {@link TorchCheckpointReader.open}.
 * @category I/O
 */
export interface TorchOpenOptions {
  /** Largest pickle accepted, in bytes (default 256 MiB; a state dict's is ~100 bytes per tensor). */
  maxPickleBytes?: number;
}

const ITEM_SIZE: Record<TorchDtype, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};
const STORAGE_TYPES: Record<string, TorchDtype> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};
/** The legacy format's first pickle. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
const DEFAULT_MAX_PICKLE = 256 * 1024 * 1024;

/** A storage as a persistent id declares it: a `numel`-element root, or a view of one (legacy). */
class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: TorchDtype,
    /** Elements the root storage declares. */
    readonly numel: number,
    /** Where this (view of the) storage starts in the root, and how many elements it spans. */
    readonly base: number,
    readonly length: number,
  ) {}
}

/** A tensor as `_rebuild_tensor_v2` describes it; the offset is absolute in the root storage. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly numel: number,
  ) {}
}

/** Where a storage's bytes are in the file. */
interface Located {
  offset: number;
}

/** What parsing either layout yields. */
interface Parsed {
  tensors: Map<string, TensorRef>;
  located: Map<string, Located>;
  bigEndian: boolean;
}

class StorageType implements PyCallable {
  constructor(readonly dtype: TorchDtype) {}
  call(): never {
    throw new Error('storage types cannot be called');
  }
}

/**
 * A `torch.save` checkpoint opened for reading: the state dict's keys, shapes and dtypes are
 * known after {@link TorchCheckpointReader.open}; each tensor's bytes are read only when asked
 * for, by offset (a path is never read into one buffer).
 *
 * @example
 * ```ts
 * const ckpt = await TorchCheckpointReader.open('256x256_diffusion_uncond.pt');
 * const w = await ckpt.readFloat32('out.2.weight'); // float16 storages come back as float32
 * await ckpt.close();
 * ```
 * @category I/O
 */
export class TorchCheckpointReader extends TensorFileReader<TensorRef> {
  private scratchBuffer?: Uint8Array;

  private constructor(
    private readonly src: ByteSource,
    /** Which of PyTorch's two layouts the file has. */
    readonly layout: 'zip' | 'legacy',
    tensors: Map<string, TensorRef>,
    private readonly located: Map<string, Located>,
    /** True for checkpoints written on a big-endian machine (bytes are swapped on read). */
    readonly bigEndian: boolean,
  ) {
    super('torch checkpoint', tensors);
  }

  /** The path, or `'<bytes>'`. */
  get label(): string {
    return this.src.label;
  }

  /**
   * Opens a path (keeping the descriptor until {@link close}) or wraps bytes; parses the pickle
   * and checks every tensor's storage range against the file.
   * @throws CheckpointError for a refused global, a corrupt, truncated or unsupported file.
   */
  static async open(source: FileInput | ByteSource, opts: TorchOpenOptions = {}): Promise<TorchCheckpointReader> {
    if (!LITTLE_ENDIAN_HOST) throw new CheckpointError('reading torch checkpoints needs a little-endian host');
    const maxPickle = opts.maxPickleBytes ?? DEFAULT_MAX_PICKLE;
    if (!Number.isSafeInteger(maxPickle) || maxPickle <= 0)
      throw new InputError(`maxPickleBytes must be a positive integer, got ${maxPickle}`);
    const src = await openByteSource(source);
    try {
      const format = formatOf(await src.read(0, Math.min(16, src.size)));
      if (format !== 'pytorch-zip' && format !== 'pytorch-legacy')
        throw new CheckpointError(`${src.label} is not a torch.save checkpoint (neither a zip archive nor a pickle)`);
      const isZip = format === 'pytorch-zip';
      const p = isZip ? await parseZip(src, maxPickle) : await parseLegacy(src, maxPickle);
      return new TorchCheckpointReader(src, isZip ? 'zip' : 'legacy', p.tensors, p.located, p.bigEndian);
    } catch (e) {
      await src.close();
      throw e;
    }
  }

  /** Dtype, shape, strides and storage of one tensor, without reading it. */
  info(name: string): TorchTensorInfo {
    const t = this.entry(name);
    return {
      name,
      dtype: t.storage.dtype,
      shape: [...t.shape],
      stride: [...t.stride],
      storageOffset: t.offset,
      storage: t.storage.key,
      byteLength: t.numel * ITEM_SIZE[t.storage.dtype],
    };
  }

  /**
   * The tensor's values as contiguous row-major little-endian bytes in the stored dtype: what a
   * converter writes out unchanged.
   * @param into a buffer to fill instead of allocating one (at least `info(name).byteLength`
   * bytes, aligned to the item size up to 4), e.g. one scratch buffer reused for every tensor:
   * touching fresh memory is much of what reading costs. The result is then a view of it.
   */
  async readBytes(name: string, into?: Uint8Array): Promise<Uint8Array> {
    const t = this.entry(name);
    const size = ITEM_SIZE[t.storage.dtype];
    const n = t.numel * size;
    if (
      into !== undefined &&
      (!(into instanceof Uint8Array) || into.length < n || into.byteOffset % Math.min(size, 4) !== 0)
    ) {
      throw new InputError(
        `readBytes("${name}"): the buffer to read into must be a Uint8Array of at least ${n} bytes, aligned to ${Math.min(size, 4)}`,
      );
    }
    const out = into ? into.subarray(0, n) : new Uint8Array(n);
    if (n === 0) return out;
    const start = this.located.get(t.storage.key)!.offset;
    if (isContiguous(t)) {
      await this.src.readInto(start + t.offset * size, out);
    } else {
      // Read the span the view touches, then gather its elements in row-major order.
      const last = t.offset + t.shape.reduce((s, d, i) => s + (d - 1) * t.stride[i], 0);
      gather(await this.src.read(start + t.offset * size, (last - t.offset + 1) * size), t, size, out);
    }
    if (this.bigEndian && size > 1) swapBytes(out, size);
    return out;
  }

  /** The tensor decoded: float16/bfloat16 upcast to Float32Array, others in their own typed array. */
  async read(name: string): Promise<TorchTensor> {
    const { dtype, shape } = this.info(name);
    if (dtype === 'float16' || dtype === 'bfloat16') return { dtype, shape, data: await this.readFloat32(name) };
    const raw = await this.readBytes(name);
    const { buffer } = raw;
    const n = raw.length / ITEM_SIZE[dtype];
    const data = {
      float32: () => new Float32Array(buffer, 0, n),
      float64: () => new Float64Array(buffer, 0, n),
      int64: () => new BigInt64Array(buffer, 0, n),
      int32: () => new Int32Array(buffer, 0, n),
      int16: () => new Int16Array(buffer, 0, n),
      int8: () => new Int8Array(buffer, 0, n),
      uint8: () => raw,
      bool: () => raw,
    }[dtype]();
    return { dtype, shape, data };
  }

  /**
   * The tensor as float32 (float16, bfloat16 and float64 converted; the raw values of those pass
   * through a scratch buffer the reader keeps until {@link close}).
   * @param into an array to fill instead of allocating one (at least as long as the tensor); the
   * result is then a view of it.
   * @throws CheckpointError for an integer or bool tensor (e.g. BatchNorm's `num_batches_tracked`).
   */
  async readFloat32(name: string, into?: Float32Array): Promise<Float32Array> {
    const { dtype, byteLength } = this.info(name);
    if (!/^(b?float)/.test(dtype))
      throw new CheckpointError(
        `${this.label}: tensor "${name}" has dtype ${dtype}; a float type (float32, float16, bfloat16, float64) is needed`,
      );
    const n = byteLength / ITEM_SIZE[dtype];
    if (into !== undefined && (!(into instanceof Float32Array) || into.length < n)) {
      throw new InputError(
        `readFloat32("${name}"): the array to read into must be a Float32Array of at least ${n} values`,
      );
    }
    const out = into ? into.subarray(0, n) : new Float32Array(n);
    if (dtype === 'float32') {
      // Straight into the result: no intermediate copy.
      await this.readBytes(name, new Uint8Array(out.buffer, out.byteOffset, byteLength));
      return out;
    }
    const raw = await this.readBytes(name, this.scratch(byteLength));
    if (dtype === 'float64') {
      const f64 = new Float64Array(raw.buffer, raw.byteOffset, n);
      for (let i = 0; i < n; i++) out[i] = f64[i];
    } else {
      (dtype === 'float16' ? f16ToF32 : bf16ToF32)(new Uint16Array(raw.buffer, raw.byteOffset, n), out);
    }
    return out;
  }

  /**
   * Drops the scratch buffer and closes the file.
   * @internal
   */
  protected async release(): Promise<void> {
    this.scratchBuffer = undefined;
    await this.src.close();
  }

  /** A buffer reused for raw values that are decoded into another array; grows to the largest. */
  private scratch(bytes: number): Uint8Array {
    if (!this.scratchBuffer || this.scratchBuffer.length < bytes) this.scratchBuffer = new Uint8Array(bytes);
    return this.scratchBuffer;
  }
}

/** The allow-list, and the storages the persistent ids declare (filled while unpickling). */
function stateDictHost(label: string) {
  const storages = new Map<string, StorageRef>();
  const fail = (why: string) => new CheckpointError(`${label}: ${why}`);
  const globals = new Map<string, PyCallable>([
    [
      'collections.OrderedDict',
      {
        call: (args) => {
          if (args.length !== 0) throw fail('OrderedDict is only accepted empty (its items are set afterwards)');
          return new Map();
        },
      },
    ],
    [
      'torch._utils._rebuild_tensor_v2',
      {
        call: (args) => {
          if (args.length < 6 || args.length > 7)
            throw fail(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
          if (typeof args[4] !== 'boolean') throw fail(`_rebuild_tensor_v2: requires_grad is ${describe(args[4])}`);
          return rebuildTensor(args, fail);
        },
      },
    ],
    [
      'torch._utils._rebuild_tensor',
      {
        call: (args) => {
          if (args.length !== 4) throw fail(`_rebuild_tensor takes 4 arguments, got ${args.length}`);
          return rebuildTensor(args, fail);
        },
      },
    ],
    // A Parameter is its data; requires_grad and hooks mean nothing to a reader.
    [
      'torch._utils._rebuild_parameter',
      {
        call: (args) => {
          if (args.length !== 3 || !(args[0] instanceof TensorRef))
            throw fail('_rebuild_parameter expects (tensor, requires_grad, hooks)');
          return args[0];
        },
      },
    ],
    ...Object.entries(STORAGE_TYPES).map(([name, dtype]): [string, PyCallable] => [
      `torch.${name}`,
      new StorageType(dtype),
    ]),
  ]);
  const host: UnpickleHost = {
    findGlobal: (module, name) => globals.get(`${module}.${name}`),
    persistentLoad: (pid) => {
      // ('storage', storage_type, key, location, numel[, view_metadata])
      if (!(pid instanceof PyTuple) || pid.items.length < 5 || pid.items.length > 6)
        throw fail(`unexpected persistent id ${describe(pid)}`);
      const [kind, type, key, location, numel, view] = pid.items;
      if (kind !== 'storage') throw fail(`persistent id of kind ${describe(kind)}; only storages are read`);
      if (!(type instanceof PyGlobal) || !(type.target instanceof StorageType))
        throw fail(`storage of type ${describe(type)}`);
      if (typeof key !== 'string' || typeof location !== 'string')
        throw fail('storage key and location must be strings');
      if (!isCount(numel)) throw fail(`storage "${key}" declares ${describe(numel)} elements`);
      const dtype = type.target.dtype;
      const known = storages.get(key);
      if (known && (known.dtype !== dtype || known.numel !== numel)) {
        throw fail(
          `storage "${key}" is declared twice, differently (${known.dtype}×${known.numel} and ${dtype}×${numel})`,
        );
      }
      const root = known ?? new StorageRef(key, dtype, numel, 0, numel);
      storages.set(key, root);
      if (view === undefined || view === null) return root;
      // Legacy storage views: (view_key, offset, size) in elements of the root.
      if (!(view instanceof PyTuple) || view.items.length !== 3 || !isCount(view.items[1]) || !isCount(view.items[2])) {
        throw fail(`storage "${key}" has a malformed view ${describe(view)}`);
      }
      const [base, length] = [view.items[1] as number, view.items[2] as number];
      if (base + length > numel)
        throw fail(`a view of storage "${key}" spans elements ${base}..${base + length} of ${numel}`);
      return new StorageRef(key, dtype, numel, base, length);
    },
  };
  return { host, storages };
}

/** `(storage, storage_offset, size, stride, ...)` → a tensor view, checked against its storage. */
function rebuildTensor(args: readonly unknown[], fail: (why: string) => CheckpointError): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw fail(`a tensor is built on ${describe(storage)}, not a storage`);
  if (!isCount(offset)) throw fail(`a tensor has storage offset ${describe(offset)}`);
  const shape = counts(size),
    strides = counts(stride);
  if (!shape || !strides || shape.length !== strides.length)
    throw fail(`a tensor has size ${describe(size)} and stride ${describe(stride)}`);
  const limit = storage.length;
  let numel = 1;
  for (const d of shape) {
    numel *= d;
    if (numel > limit) break;
  }
  if (numel > limit) {
    throw fail(
      `a tensor of size [${shape}] needs more elements than its storage "${storage.key}" has (${limit}); overlapping or broadcast views are not read`,
    );
  }
  if (numel > 0) {
    let last = offset;
    for (let i = 0; i < shape.length && last < limit; i++) last += (shape[i] - 1) * strides[i];
    if (last >= limit) {
      throw fail(
        `a tensor of size [${shape}], stride [${strides}] at offset ${offset} runs past the ${limit} elements of storage "${storage.key}"`,
      );
    }
  }
  return new TensorRef(storage, storage.base + offset, shape, strides, numel);
}

async function parseZip(src: ByteSource, maxPickle: number): Promise<Parsed> {
  const zip = await ZipArchive.open(src);
  const fail = (why: string) => new CheckpointError(`${src.label}: ${why}`);
  const candidates = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (candidates.length !== 1)
    throw fail(
      candidates.length
        ? `holds ${candidates.length} data.pkl records`
        : 'is a zip archive without <archive>/data.pkl: not a torch.save checkpoint',
    );
  const prefix = candidates[0].slice(0, -'data.pkl'.length);
  const version = zip.entry(`${prefix}version`) ?? zip.entry(`${prefix}.data/version`);
  if (version) {
    const text = new TextDecoder().decode(await zip.readEntry(version, 64)).trim();
    if (!/^\d+$/.test(text)) throw fail(`has a malformed version record ${JSON.stringify(text)}`);
  }
  let bigEndian = false;
  const order = zip.entry(`${prefix}byteorder`);
  if (order) {
    const text = new TextDecoder().decode(await zip.readEntry(order, 16)).trim();
    if (text !== 'little' && text !== 'big') throw fail(`has a malformed byteorder record ${JSON.stringify(text)}`);
    bigEndian = text === 'big';
  }
  const pkl = await zip.readEntry(zip.entry(candidates[0])!, maxPickle);
  const { host, storages } = stateDictHost(src.label);
  const { value } = unpickle(pkl, { label: `${src.label} (${candidates[0]})`, host });
  const tensors = stateDict(value, src.label);
  const located = new Map<string, Located>();
  for (const s of usedStorages(tensors, storages)) {
    const entry = zip.entry(`${prefix}data/${s.key}`);
    if (!entry) throw fail(`tensors use storage "${s.key}" but the archive has no ${prefix}data/${s.key}`);
    if (entry.method !== 0)
      throw fail(`storage "${s.key}" is compressed (method ${entry.method}); torch.save stores storages uncompressed`);
    const need = s.numel * ITEM_SIZE[s.dtype];
    if (entry.size !== entry.compressedSize || entry.size < need) {
      throw fail(
        `storage "${s.key}" declares ${s.numel} ${s.dtype} elements (${need} bytes) but its archive entry holds ${entry.size}`,
      );
    }
    located.set(s.key, { offset: await zip.dataOffset(entry) });
  }
  return { tensors, located, bigEndian };
}

async function parseLegacy(src: ByteSource, maxPickle: number): Promise<Parsed> {
  const fail = (why: string) => new CheckpointError(`${src.label}: ${why}`);
  // The pickles' total length is unknown until they are parsed: read a prefix, grow it when a pickle runs past it.
  let chunk = await src.read(0, Math.min(src.size, maxPickle, 1 << 20));
  const next = async (start: number, host: UnpickleHost, what: string) => {
    for (;;) {
      try {
        return unpickle(chunk, { label: `${src.label} (${what})`, host, start, complete: chunk.length === src.size });
      } catch (e) {
        if (!(e instanceof PickleNeedsMoreBytes)) throw e;
        if (chunk.length >= maxPickle) throw fail(`the legacy checkpoint's pickles exceed ${maxPickle} bytes`);
        chunk = await src.read(0, Math.min(src.size, maxPickle, chunk.length * 4));
      }
    }
  };
  const plain: UnpickleHost = { findGlobal: () => undefined };
  const magic = await next(0, plain, 'magic number');
  if (magic.value !== LEGACY_MAGIC && magic.value !== Number(LEGACY_MAGIC))
    throw fail("starts with a pickle but not with torch.save's magic number: not a torch checkpoint");
  const protocol = await next(magic.end, plain, 'protocol version');
  if (protocol.value !== LEGACY_PROTOCOL)
    throw fail(`has legacy protocol version ${describe(protocol.value)}; only ${LEGACY_PROTOCOL} is known`);
  const sys = await next(protocol.end, plain, 'system info');
  if (!(sys.value instanceof Map) || typeof sys.value.get('little_endian') !== 'boolean')
    throw fail('has a malformed system-info record');
  const bigEndian = !sys.value.get('little_endian');
  const { host, storages } = stateDictHost(src.label);
  const state = await next(sys.end, host, 'state dict');
  const tensors = stateDict(state.value, src.label);
  const keyList = await next(state.end, plain, 'storage keys');
  if (!Array.isArray(keyList.value) || !keyList.value.every((k) => typeof k === 'string'))
    throw fail('has a malformed storage key list');
  const keys = keyList.value as string[];
  const located = new Map<string, Located>();
  let pos = keyList.end;
  for (const key of keys) {
    const s = storages.get(key);
    if (!s) throw fail(`lists storage "${key}" that no tensor declared`);
    if (located.has(key)) throw fail(`lists storage "${key}" twice`);
    if (pos + 8 > src.size) throw fail(`is truncated: storage "${key}" should start at byte ${pos} of ${src.size}`);
    const countBytes = await src.read(pos, 8);
    if (bigEndian) countBytes.reverse();
    const count = new DataView(countBytes.buffer).getBigInt64(0, true);
    if (count !== BigInt(s.numel))
      throw fail(`storage "${key}" holds ${count} elements but was declared with ${s.numel}`);
    const bytes = s.numel * ITEM_SIZE[s.dtype];
    if (pos + 8 + bytes > src.size)
      throw fail(`is truncated: storage "${key}" needs bytes ${pos + 8}..${pos + 8 + bytes} of ${src.size}`);
    located.set(key, { offset: pos + 8 });
    pos += 8 + bytes;
  }
  for (const s of usedStorages(tensors, storages)) {
    if (!located.has(s.key)) throw fail(`tensors use storage "${s.key}", which the file does not contain`);
  }
  return { tensors, located, bigEndian };
}

/** The unpickled object must be a dict of tensors keyed by name. */
function stateDict(value: unknown, label: string): Map<string, TensorRef> {
  if (!(value instanceof Map))
    throw new CheckpointError(`${label} holds ${describe(value)}, not a state dict (a dict of tensors)`);
  const out = new Map<string, TensorRef>();
  for (const [k, v] of value) {
    if (typeof k !== 'string') throw new CheckpointError(`${label}: state dict key ${describe(k)} is not a string`);
    if (!(v instanceof TensorRef))
      throw new CheckpointError(
        `${label}: "${k}" is ${describe(v)}, not a tensor; only plain state dicts of tensors are read`,
      );
    out.set(k, v);
  }
  return out;
}

/** The root storages the tensors use, checked against what the persistent ids declared. */
function usedStorages(tensors: Map<string, TensorRef>, storages: Map<string, StorageRef>): StorageRef[] {
  const keys = new Set([...tensors.values()].map((t) => t.storage.key));
  return [...keys].map((k) => storages.get(k)!);
}

function isContiguous(t: TensorRef): boolean {
  let expect = 1;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== expect) return false;
    expect *= t.shape[i];
  }
  return true;
}

/** Elements of a strided view into `out`, row-major, from the bytes it spans (which start at element 0 of the view). */
function gather(span: Uint8Array, t: TensorRef, size: number, out: Uint8Array): void {
  // Words of 1, 2 or 4 bytes per copy; 8-byte items move as two 4-byte words.
  const w = size === 8 ? 4 : size;
  const per = size / w;
  const Ctor = w === 1 ? Uint8Array : w === 2 ? Uint16Array : Uint32Array;
  const src = new Ctor(span.buffer as ArrayBuffer, span.byteOffset, span.length / w);
  const dst = new Ctor(out.buffer as ArrayBuffer, out.byteOffset, out.length / w);
  const rank = t.shape.length;
  if (rank === 0) {
    dst.set(src.subarray(0, per));
    return;
  }
  const inner = t.shape[rank - 1],
    innerStride = t.stride[rank - 1] * per;
  const idx = new Array<number>(rank).fill(0);
  let base = 0,
    o = 0;
  for (;;) {
    for (let j = 0, s = base; j < inner; j++, s += innerStride) for (let k = 0; k < per; k++) dst[o++] = src[s + k];
    let d = rank - 2;
    for (; d >= 0; d--) {
      base += t.stride[d] * per;
      if (++idx[d] < t.shape[d]) break;
      base -= t.stride[d] * per * idx[d];
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

function counts(v: unknown): number[] | undefined {
  if (!(v instanceof PyTuple) || !v.items.every(isCount)) return undefined;
  return [...(v.items as number[])];
}
