/**
 * Test-only writers for `torch.save`-style files: a pickle writer, a zip writer that lays entries
 * out as PyTorch's does (data descriptors, ZIP64 end records, 64-byte aligned data), and the
 * legacy layout. Lets the tests build mixed-dtype, shared-storage, strided and hostile
 * checkpoints without Python.
 */
import zlib from 'node:zlib';
import type { TorchDtype } from '../../src/io/pytorch';
import { f16ToF32, f32ToF16 } from '../../src/io/float16';
import { crc32 } from '../../src/io/crc32';

const STORAGE_TYPE: Record<TorchDtype, string> = {
  float32: 'FloatStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
  float64: 'DoubleStorage',
  int64: 'LongStorage',
  int32: 'IntStorage',
  int16: 'ShortStorage',
  int8: 'CharStorage',
  uint8: 'ByteStorage',
  bool: 'BoolStorage',
};
export const ITEM: Record<TorchDtype, number> = {
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

/** Opcode-level pickle writer (protocol 2 opcodes plus a few of 4). */
export class PickleWriter {
  private parts: number[] = [];
  private memo = 0;
  raw(...bytes: number[]) {
    this.parts.push(...bytes);
    return this;
  }
  op(c: string) {
    return this.raw(c.charCodeAt(0));
  }
  proto(v = 2) {
    return this.raw(0x80, v);
  }
  stop() {
    return this.op('.');
  }
  mark() {
    return this.op('(');
  }
  none() {
    return this.op('N');
  }
  bool(v: boolean) {
    return this.raw(v ? 0x88 : 0x89);
  }
  int(v: number) {
    if (v >= 0 && v < 256) return this.raw(0x4b, v);
    if (v >= 0 && v < 65536) return this.raw(0x4d, v & 0xff, v >> 8);
    if (v >= -(2 ** 31) && v < 2 ** 31) return this.raw(0x4a, ...le(BigInt(v), 4));
    return this.long(BigInt(v));
  }
  long(v: bigint) {
    let n = 1;
    while (v >= 1n << BigInt(8 * n - 1) || v < -(1n << BigInt(8 * n - 1))) n++;
    return this.raw(0x8a, n, ...le(v, n));
  }
  float(v: number) {
    const b = new DataView(new ArrayBuffer(8));
    b.setFloat64(0, v, false);
    return this.raw(0x47, ...new Uint8Array(b.buffer));
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    return this.raw(0x58, ...le(BigInt(b.length), 4), ...b);
  }
  global(module: string, name: string) {
    return this.raw(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
  }
  /** Memoizes the top of the stack; returns its index for {@link get}. */
  put(): number {
    const i = this.memo++;
    if (i < 256) this.raw(0x71, i);
    else this.raw(0x72, ...le(BigInt(i), 4));
    return i;
  }
  /** A persistent id for a storage, `('storage', torch.<type>, key, 'cpu', size)`, loaded with BINPERSID. */
  storageRef(type: string, key: string, size: number) {
    return this.mark().str('storage').global('torch', type).str(key).str('cpu').int(size).op('t').raw(0x51);
  }
  get(i: number) {
    return i < 256 ? this.raw(0x68, i) : this.raw(0x6a, ...le(BigInt(i), 4));
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

/** One tensor of a state dict: a view of a storage. */
export interface TensorSpec {
  storage: string;
  shape: number[];
  /** Row-major when omitted. */
  stride?: number[];
  offset?: number;
}

/** A storage: dtype and raw little-endian bytes. */
export interface StorageSpec {
  dtype: TorchDtype;
  data: Uint8Array;
}

export interface StateSpec {
  tensors: [string, TensorSpec][];
  storages: Map<string, StorageSpec>;
}

export const rowMajor = (shape: number[]) => {
  const s = new Array<number>(shape.length);
  for (let i = shape.length - 1, acc = 1; i >= 0; i--) ((s[i] = acc), (acc *= shape[i]));
  return s;
};

/**
 * The pickle torch.save writes for an OrderedDict state dict: `_rebuild_tensor_v2` per tensor, a
 * persistent id per storage (5 fields in the zip layout, 6 with `view_metadata` in the legacy one),
 * the empty-hooks OrderedDict, and the `_metadata` BUILD at the end.
 */
export function stateDictPickle(
  spec: StateSpec,
  opts: { legacy?: boolean; views?: Map<string, [string, number, number]>; declared?: Map<string, number> } = {},
): Uint8Array {
  const w = new PickleWriter().proto(2);
  w.global('collections', 'OrderedDict');
  const od = w.put();
  w.op(')').op('R').put();
  w.mark();
  let rebuild = -1;
  const storageType = new Map<string, number>();
  for (const [name, t] of spec.tensors) {
    w.str(name);
    if (rebuild < 0) (w.global('torch._utils', '_rebuild_tensor_v2'), (rebuild = w.put()));
    else w.get(rebuild);
    w.mark();
    const view = opts.views?.get(t.storage);
    const rootKey = view ? view[0] : t.storage;
    const root = spec.storages.get(rootKey)!;
    w.mark().str('storage');
    const st = STORAGE_TYPE[root.dtype];
    if (storageType.has(st)) w.get(storageType.get(st)!);
    else (w.global('torch', st), storageType.set(st, w.put()));
    w.str(rootKey)
      .str('cpu')
      .int(opts.declared?.get(rootKey) ?? root.data.length / ITEM[root.dtype]);
    if (opts.legacy) {
      if (view) w.mark().str(t.storage).int(view[1]).int(view[2]).op('t');
      else w.none();
    }
    w.op('t').raw(0x51); // BINPERSID
    w.int(t.offset ?? 0);
    w.mark();
    for (const d of t.shape) w.int(d);
    w.op('t').mark();
    for (const d of t.stride ?? rowMajor(t.shape)) w.int(d);
    w.op('t').bool(false);
    w.get(od).op(')').op('R'); // backward_hooks = OrderedDict()
    w.op('t').op('R');
  }
  w.op('u');
  // _metadata: {'': {'version': 1}} set through BUILD, as nn.Module.state_dict() does.
  w.op('}')
    .str('_metadata')
    .get(od)
    .op(')')
    .op('R')
    .mark()
    .str('')
    .op('}')
    .str('version')
    .int(1)
    .op('s')
    .op('u')
    .op('s');
  w.op('b').stop();
  return w.bytes();
}

export interface ZipFileSpec {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
}

export interface ZipOptions {
  /** Data descriptors after each entry, as PyTorch writes (default true). */
  descriptors?: boolean;
  /** ZIP64 end records (default true, as PyTorch writes). */
  zip64End?: boolean;
  /** Sizes and offsets in the central directory only through ZIP64 extra fields (default false). */
  zip64Entries?: boolean;
  /** Align entry data to this many bytes with an "FB" extra field (PyTorch uses 64; default 64). */
  align?: number;
  comment?: string;
}

/**
 * Writes a zip archive laid out as PyTorch's writer (miniz) lays it out, entry by entry into a
 * sink, so an archive larger than memory can be written to a file as it is produced.
 */
export class ZipWriter {
  private readonly central: Uint8Array[] = [];
  private offset = 0;
  private count = 0;
  private readonly descriptors: boolean;
  private readonly align: number;

  constructor(
    private readonly sink: (bytes: Uint8Array) => void,
    private readonly opts: ZipOptions = {},
    private readonly crc: (data: Uint8Array) => number = crc32,
  ) {
    this.descriptors = opts.descriptors ?? true;
    this.align = opts.align ?? 64;
  }

  private emit(b: Uint8Array) {
    this.sink(b);
    this.offset += b.length;
  }

  add(f: ZipFileSpec): void {
    const { descriptors, align, opts } = this;
    const flags = (descriptors ? 0x0008 : 0) | 0x0800;
    const name = new TextEncoder().encode(f.name);
    const stored = f.deflate ? new Uint8Array(zlib.deflateRawSync(f.data)) : f.data;
    const crc = this.crc(f.data);
    const method = f.deflate ? 8 : 0;
    const pad = align > 1 ? (align - ((this.offset + 30 + name.length + 4) % align)) % align : 0;
    const extra = align > 1 ? new Uint8Array(4 + pad) : new Uint8Array(0);
    if (align > 1) {
      extra.set([0x46, 0x42, pad & 0xff, pad >> 8]);
      extra.fill(0x5a, 4);
    }
    const h = new DataView(new ArrayBuffer(30));
    h.setUint32(0, 0x04034b50, true);
    h.setUint16(4, 20, true);
    h.setUint16(6, flags, true);
    h.setUint16(8, method, true);
    if (!descriptors) {
      h.setUint32(14, crc, true);
      h.setUint32(18, stored.length, true);
      h.setUint32(22, f.data.length, true);
    }
    h.setUint16(26, name.length, true);
    h.setUint16(28, extra.length, true);
    const local = this.offset;
    for (const b of [new Uint8Array(h.buffer), name, extra, stored]) this.emit(b);
    if (descriptors) {
      const d = new DataView(new ArrayBuffer(24));
      d.setUint32(0, 0x08074b50, true);
      d.setUint32(4, crc, true);
      d.setBigUint64(8, BigInt(stored.length), true);
      d.setBigUint64(16, BigInt(f.data.length), true);
      this.emit(new Uint8Array(d.buffer));
    }
    // ZIP64 extra fields when asked, or when a value does not fit 32 bits.
    const big = opts.zip64Entries || local >= 0xffffffff || stored.length >= 0xffffffff;
    const z64 = big ? new DataView(new ArrayBuffer(28)) : undefined;
    if (z64) {
      z64.setUint16(0, 1, true);
      z64.setUint16(2, 24, true);
      z64.setBigUint64(4, BigInt(f.data.length), true);
      z64.setBigUint64(12, BigInt(stored.length), true);
      z64.setBigUint64(20, BigInt(local), true);
    }
    const c = new DataView(new ArrayBuffer(46));
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(4, 45, true);
    c.setUint16(6, 20, true);
    c.setUint16(8, flags, true);
    c.setUint16(10, method, true);
    c.setUint32(16, crc, true);
    c.setUint32(20, z64 ? 0xffffffff : stored.length, true);
    c.setUint32(24, z64 ? 0xffffffff : f.data.length, true);
    c.setUint16(28, name.length, true);
    c.setUint16(30, z64 ? 28 : 0, true);
    c.setUint32(42, z64 ? 0xffffffff : local, true);
    this.central.push(new Uint8Array(c.buffer), name);
    if (z64) this.central.push(new Uint8Array(z64.buffer));
    this.count++;
  }

  /** The central directory and end records. */
  finish(): void {
    const cd = concat(this.central);
    const cdOffset = this.offset;
    const n = this.count;
    this.emit(cd);
    if (this.opts.zip64End ?? true) {
      const z = new DataView(new ArrayBuffer(56 + 20));
      z.setUint32(0, 0x06064b50, true);
      z.setBigUint64(4, 44n, true);
      z.setUint16(12, 45, true);
      z.setUint16(14, 45, true);
      z.setBigUint64(24, BigInt(n), true);
      z.setBigUint64(32, BigInt(n), true);
      z.setBigUint64(40, BigInt(cd.length), true);
      z.setBigUint64(48, BigInt(cdOffset), true);
      z.setUint32(56, 0x07064b50, true);
      z.setBigUint64(64, BigInt(this.offset), true);
      z.setUint32(72, 1, true);
      this.emit(new Uint8Array(z.buffer));
    }
    const comment = new TextEncoder().encode(this.opts.comment ?? '');
    const e = new DataView(new ArrayBuffer(22));
    e.setUint32(0, 0x06054b50, true);
    e.setUint16(8, Math.min(n, 0xffff), true);
    e.setUint16(10, Math.min(n, 0xffff), true);
    e.setUint32(12, cd.length, true);
    e.setUint32(16, Math.min(cdOffset, 0xffffffff), true);
    e.setUint16(20, comment.length, true);
    this.emit(new Uint8Array(e.buffer));
    this.emit(comment);
  }
}

/** A whole archive in memory. */
export function zipArchive(files: ZipFileSpec[], opts: ZipOptions = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const w = new ZipWriter((b) => parts.push(b), opts);
  for (const f of files) w.add(f);
  w.finish();
  return concat(parts);
}

/** A zip-layout torch.save file: `<archive>/data.pkl`, `<archive>/data/<key>`, `<archive>/version`. */
export function torchZip(
  spec: StateSpec,
  opts: ZipOptions & {
    archive?: string;
    deflatePickle?: boolean;
    pickle?: Uint8Array;
    omitStorages?: string[];
    byteorder?: string;
  } = {},
): Uint8Array {
  const a = opts.archive ?? 'archive';
  const files: ZipFileSpec[] = [
    { name: `${a}/data.pkl`, data: opts.pickle ?? stateDictPickle(spec), deflate: opts.deflatePickle },
  ];
  if (opts.byteorder) files.push({ name: `${a}/byteorder`, data: new TextEncoder().encode(opts.byteorder) });
  for (const [key, s] of spec.storages)
    if (!opts.omitStorages?.includes(key)) files.push({ name: `${a}/data/${key}`, data: s.data });
  files.push({ name: `${a}/version`, data: new TextEncoder().encode('3\n') });
  return zipArchive(files, opts);
}

/**
 * A legacy-layout torch.save file: magic, protocol, sys_info, the state dict, the storage keys,
 * then each storage as an 8-byte element count and its bytes.
 */
export function torchLegacy(
  spec: StateSpec,
  opts: {
    views?: Map<string, [string, number, number]>;
    pickle?: Uint8Array;
    keys?: string[];
    counts?: Map<string, bigint>;
    bigEndian?: boolean;
  } = {},
): Uint8Array {
  const magic = new PickleWriter().proto(2).long(0x1950a86a20f9469cfc6cn).stop().bytes();
  const proto = new PickleWriter().proto(2).int(1001).stop().bytes();
  const sys = new PickleWriter()
    .proto(2)
    .op('}')
    .mark()
    .str('protocol_version')
    .int(1001)
    .str('little_endian')
    .bool(!opts.bigEndian)
    .str('type_sizes')
    .op('}')
    .mark()
    .str('short')
    .int(2)
    .str('int')
    .int(4)
    .str('long')
    .int(4)
    .op('u')
    .op('u')
    .stop()
    .bytes();
  const state = opts.pickle ?? stateDictPickle(spec, { legacy: true, views: opts.views });
  const keys = opts.keys ?? [...spec.storages.keys()];
  const kw = new PickleWriter().proto(2).op(']').mark();
  for (const k of keys) kw.str(k);
  const keyList = kw.op('e').stop().bytes();
  const data: Uint8Array[] = [];
  for (const k of keys) {
    const s = spec.storages.get(k)!;
    const count = le8(opts.counts?.get(k) ?? BigInt(s.data.length / ITEM[s.dtype]));
    data.push(opts.bigEndian ? count.reverse() : count, s.data);
  }
  return concat([magic, proto, sys, state, keyList, ...data]);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

function le(v: bigint, n: number): number[] {
  const out: number[] = [];
  let x = BigInt.asUintN(8 * n, v);
  for (let i = 0; i < n; i++) (out.push(Number(x & 0xffn)), (x >>= 8n));
  return out;
}

function le8(v: bigint): Uint8Array {
  return Uint8Array.from(le(v, 8));
}

/** Raw little-endian bytes of a typed array (a copy). */
export const rawBytes = (a: ArrayBufferView) =>
  new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));

/** The keys guided-diffusion's `convert_to_fp16()` makes float16: conv weights (rank ≥ 3) and their biases in the blocks. */
export function halfKeys(order: [string, number[]][]): Set<string> {
  const shapes = new Map(order);
  return new Set(
    order
      .map(([k]) => k)
      .filter(
        (k) =>
          /^(input_blocks|middle_block|output_blocks)\./.test(k) &&
          (shapes.get(k.replace(/\.(weight|bias)$/, '.weight'))?.length ?? 0) >= 3,
      ),
  );
}

/**
 * A model's float32 weights laid out the awkward ways real checkpoints can be: float16 convs when
 * `fp16` (as convert_to_fp16 leaves them), every bias of a dtype packed into one shared storage
 * with garbage between them, linear weights stored transposed (stride [1, rows]), the output conv
 * stored HWIO (permuted strides), and the fp16 qkv weights transposed too.
 */
export function awkwardCheckpoint(
  weights: Map<string, { data: ArrayBufferView }>,
  order: [string, number[]][],
  fp16: boolean,
): { spec: StateSpec; expected: Map<string, Float32Array> } {
  const half = fp16 ? halfKeys(order) : new Set<string>();
  const storages = new Map<string, StorageSpec>();
  const tensors: [string, TensorSpec][] = [];
  const expected = new Map<string, Float32Array>();
  const pools: Record<'float16' | 'float32', { key: string; parts: Float32Array[]; used: number }> = {
    float16: { key: 'shared16', parts: [], used: 0 },
    float32: { key: 'shared32', parts: [], used: 0 },
  };
  const garbage = Float32Array.of(NaN, 1e30, -7);
  const encode = (dtype: 'float16' | 'float32', v: Float32Array) =>
    dtype === 'float16' ? rawBytes(f32ToF16(v)) : rawBytes(v);
  let next = 0;
  for (const [name, shape] of order) {
    const w = weights.get(name)!.data as Float32Array;
    const dtype = half.has(name) ? 'float16' : 'float32';
    expected.set(name, dtype === 'float16' ? f16ToF32(f32ToF16(w)) : w);
    if (name.endsWith('.bias')) {
      const pool = pools[dtype];
      pool.parts.push(garbage);
      pool.used += garbage.length;
      tensors.push([name, { storage: pool.key, shape, offset: pool.used }]);
      pool.parts.push(w);
      pool.used += w.length;
      continue;
    }
    const key = String(next++);
    let phys = w,
      stride = rowMajor(shape);
    if ((shape.length === 2 && !name.startsWith('label_emb')) || (shape.length === 3 && dtype === 'float16')) {
      const [r, c] = shape;
      phys = new Float32Array(w.length);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) phys[j * r + i] = w[i * c + j];
      stride = shape.length === 2 ? [1, r] : [1, r, 1];
    } else if (name === 'out.2.weight') {
      const [O, I, H, W] = shape;
      phys = new Float32Array(w.length);
      for (let o = 0; o < O; o++)
        for (let i = 0; i < I; i++)
          for (let h = 0; h < H; h++)
            for (let x = 0; x < W; x++) phys[((h * W + x) * I + i) * O + o] = w[((o * I + i) * H + h) * W + x];
      stride = [1, O, W * I * O, I * O];
    }
    storages.set(key, { dtype, data: encode(dtype, phys) });
    tensors.push([name, { storage: key, shape, stride }]);
  }
  for (const dtype of ['float16', 'float32'] as const) {
    const pool = pools[dtype];
    if (!pool.parts.length) continue;
    pool.parts.push(garbage);
    const all = new Float32Array(pool.used + garbage.length);
    let o = 0;
    for (const p of pool.parts) (all.set(p, o), (o += p.length));
    storages.set(pool.key, { dtype, data: encode(dtype, all) });
  }
  return { spec: { tensors, storages }, expected };
}
