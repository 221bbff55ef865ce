/**
 * Reader and writer for the safetensors format: an 8-byte little-endian header length N,
 * N bytes of UTF-8 JSON describing each tensor, then the raw little-endian data.
 *
 * Pure I/O: nothing here knows about any model. Node modules are imported lazily inside the
 * path-handling code so that a browser bundle which only ever passes bytes still builds.
 * @module
 */
import { CheckpointError, InputError } from '../errors.js';
import { isCount } from '../util/checks.js';
import type { HostData, HostTensor } from '../util/hostTensor.js';
import { importUnbundled } from '../util/dynamicImport.js';
import { writeAtomic, writeFully } from './atomicFile.js';
import { copyBytes, type ByteSource } from './byteRange.js';
import { isByteSource, LITTLE_ENDIAN_HOST, openByteSource, readFullyAt, readFullyAtSync } from './byteSource.js';
import { normalizeInput, type FileInput } from './webSource.js';
import {
  compareNames,
  isSafetensorsDtype,
  ITEM_SIZE,
  layOutHeader,
  METADATA_KEY,
  type HeaderEntry,
  type SafetensorsDtype,
} from './safetensorsHeader.js';
import { TensorFileReader } from './tensorFileReader.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './float16.js';

export type { SafetensorsDtype } from './safetensorsHeader.js';

/**
 * What the header says about one tensor, available without reading its data.
 * @category I/O
 */
export interface TensorInfo extends HeaderEntry {
  dtype: SafetensorsDtype;
}

/**
 * Typed arrays a safetensors tensor is read into or written from (those with a safetensors dtype).
 * @category I/O
 */
export type TensorData = Exclude<HostData, Int16Array | Int8Array>;

/**
 * One decoded tensor. F16 and BF16 arrive upcast to Float32Array, BOOL as 0/1 bytes.
 * @category I/O
 */
export interface ReadTensor extends HostTensor<TensorData> {
  /** The dtype stored in the file. */
  dtype: SafetensorsDtype;
}

/**
 * One tensor to write; `dtype` may narrow a Float32Array to 'F16' or 'BF16' on the way out.
 * @category I/O
 */
export interface TensorToWrite extends HostTensor<TensorData> {
  /** The dtype to store; by default the data's own (Float32Array → F32, …). */
  dtype?: SafetensorsDtype;
}

/**
 * Tensors to write, by name.
 * @category I/O
 */
export type TensorsToWrite = Record<string, TensorToWrite> | Map<string, TensorToWrite>;

/** A hostile header length must not make us allocate gigabytes before we can reject it. */
const MAX_HEADER_BYTES = 100_000_000;

interface Entry {
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}
type NodeFs = typeof import('node:fs');
type FileHandle = import('node:fs/promises').FileHandle;

/**
 * Opened file or bytes; reads tensors one at a time by offset (a path is never read into one big buffer).
 * @category I/O
 */
export class SafetensorsReader extends TensorFileReader<Entry> {
  private constructor(
    /** The path, the URL, or `'<bytes>'`; named in every error message. */
    readonly source: string,
    /** The header's `__metadata__` string map (empty when absent). */
    readonly metadata: Record<string, string>,
    entries: Map<string, Entry>,
    private readonly dataStart: number,
    private readonly bytes?: Uint8Array,
    private readonly file?: { fs: NodeFs; handle: FileHandle },
    private readonly remote?: ByteSource,
  ) {
    super('safetensors file', entries);
  }

  /** The path, or `'<bytes>'` (the same as {@link SafetensorsReader.source}). */
  get label(): string {
    return this.source;
  }

  /**
   * Opens a path (keeping the file descriptor until {@link close}), wraps bytes already in memory,
   * or reads a URL (range requests), Blob or Response tensor by tensor.
   */
  static async open(input: FileInput | ByteSource): Promise<SafetensorsReader> {
    if (!LITTLE_ENDIAN_HOST) throw new CheckpointError('safetensors needs a little-endian host');
    const source = isByteSource(input) ? input : normalizeInput(input, 'safetensors file');
    if (source instanceof Uint8Array) {
      const n = headerLength(source.subarray(0, 8), source.length, '<bytes>');
      const { entries, metadata } = parseHeader(source.subarray(8, 8 + n), source.length - 8 - n, '<bytes>');
      return new SafetensorsReader('<bytes>', metadata, entries, 8 + n, source);
    }
    if (typeof source !== 'string') return SafetensorsReader.fromSource(await openByteSource(source));
    const fs = await importUnbundled<NodeFs>('node:fs');
    let handle: FileHandle;
    try {
      handle = await fs.promises.open(source, 'r');
    } catch (e) {
      throw new InputError(`safetensors file ${source} cannot be opened: ${(e as Error).message}`);
    }
    try {
      const size = (await handle.stat()).size;
      const n = headerLength(await readFully(handle, 0, Math.min(8, size), source), size, source);
      const { entries, metadata } = parseHeader(await readFully(handle, 8, n, source), size - 8 - n, source);
      return new SafetensorsReader(source, metadata, entries, 8 + n, undefined, { fs, handle });
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** A reader over an open source (a URL, a Blob): it owns the source and closes it, on failure too. */
  private static async fromSource(src: ByteSource): Promise<SafetensorsReader> {
    try {
      const n = headerLength(await src.read(0, Math.min(8, src.size)), src.size, src.label);
      const { entries, metadata } = parseHeader(await src.read(8, n), src.size - 8 - n, src.label);
      return new SafetensorsReader(src.label, metadata, entries, 8 + n, undefined, undefined, src);
    } catch (e) {
      await src.close();
      throw e;
    }
  }

  /** Dtype, shape and size of one tensor without reading its data; throws InputError naming close keys if absent. */
  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { name, dtype: e.dtype, shape: [...e.shape], byteLength: e.end - e.begin };
  }

  /** Float tensors (F32/F16/BF16) as Float32Array, F64 as Float64Array, integers as their own arrays. */
  async read(name: string): Promise<ReadTensor> {
    const e = this.entry(name);
    const raw = this.file
      ? await readFully(this.file.handle, this.dataStart + e.begin, e.end - e.begin, this.source)
      : this.remote
        ? await this.remote.read(this.dataStart + e.begin, e.end - e.begin)
        : copyBytes(this.bytes!, this.dataStart + e.begin, this.dataStart + e.end);
    return decode(e, raw);
  }

  /** Like {@link read}, for callers that cannot await (uses `fs.readSync` on the open descriptor). */
  readSync(name: string): ReadTensor {
    const e = this.entry(name);
    if (this.remote)
      throw new InputError(`${this.source} is read over the web, which cannot be read synchronously; use read()`);
    if (!this.file) return decode(e, copyBytes(this.bytes!, this.dataStart + e.begin, this.dataStart + e.end));
    const raw = new Uint8Array(e.end - e.begin);
    readFullyAtSync(
      this.file.fs,
      this.file.handle.fd,
      raw,
      this.dataStart + e.begin,
      `safetensors file ${this.source}`,
    );
    return decode(e, raw);
  }

  /**
   * Closes the file descriptor (nothing to do for bytes).
   * @internal
   */
  protected async release(): Promise<void> {
    await this.file?.handle.close();
    await this.remote?.close();
  }
}

/**
 * Convenience: read everything into a Map (small files, tests).
 * @category I/O
 */
export async function readSafetensors(source: FileInput): Promise<Map<string, ReadTensor>> {
  const reader = await SafetensorsReader.open(source);
  try {
    const out = new Map<string, ReadTensor>();
    for (const key of reader.keys()) out.set(key, await reader.read(key));
    return out;
  } finally {
    await reader.close();
  }
}

/**
 * Serialise to bytes. Keys are written sorted; the header is padded with spaces to a multiple of 8.
 * Float32Array->F32, Float64Array->F64, BigInt64Array->I64, Int32Array->I32, Uint8Array->U8; `dtype: 'F16'|'BF16'`
 * converts from float32 with round-to-nearest-even.
 * @category I/O
 */
export function serializeSafetensors(tensors: TensorsToWrite, metadata?: Record<string, string>): Uint8Array {
  const { header, parts, total } = plan(tensors, metadata);
  const out = new Uint8Array(header.length + total);
  out.set(header);
  let off = header.length;
  for (const part of parts) {
    const bytes = part();
    out.set(bytes, off);
    off += bytes.length;
  }
  return out;
}

/**
 * Write atomically: write to a temp file in the same directory, fsync, rename over the target; on any failure the
 * temp file is removed and an existing target is untouched. Tensors are encoded and written one at a time, so a
 * large checkpoint is never held twice in memory.
 * @category I/O
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorsToWrite,
  metadata?: Record<string, string>,
): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new InputError('writeSafetensors expects a non-empty path');
  const { header, parts } = plan(tensors, metadata);
  await writeAtomic(path, async (handle) => {
    await writeFully(handle, header);
    for (const part of parts) await writeFully(handle, part());
  });
}

/** Checks the 8-byte length prefix before anything is allocated from it. */
function headerLength(head: Uint8Array, size: number, source: string): number {
  if (size < 8)
    throw new CheckpointError(
      `safetensors file ${source} is too short (${size} bytes) to hold the 8-byte header length`,
    );
  const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(size - 8) || n > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(
      `safetensors file ${source} has an absurd header length ${n} (file is ${size} bytes, limit ${MAX_HEADER_BYTES})`,
    );
  }
  return Number(n);
}

/** Validates every entry against the data section's length, so later reads cannot run past the end. */
function parseHeader(header: Uint8Array, dataLength: number, source: string) {
  const fail = (why: string) => new CheckpointError(`safetensors file ${source} ${why}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(header));
  } catch (e) {
    throw fail(`has a header that is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (!isObject(json)) throw fail('has a header that is not a JSON object');
  const entries = new Map<string, Entry>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(json)) {
    if (name === METADATA_KEY) {
      if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string'))
        throw fail('has __metadata__ that is not a string map');
      metadata = { ...(v as Record<string, string>) };
      continue;
    }
    const bad = (why: string) => fail(`has a bad header entry for tensor "${name}": ${why}`);
    if (!isObject(v)) throw bad('not an object');
    const { dtype, shape, data_offsets: offs } = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isSafetensorsDtype(dtype)) throw bad(`unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isCount))
      throw bad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isCount) || offs[0] > offs[1]) {
      throw bad(`data_offsets ${JSON.stringify(offs)} is not [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offs as number[];
    const expected = shape.reduce((a: number, d: number) => a * d, 1) * ITEM_SIZE[dtype];
    if (end - begin !== expected)
      throw bad(`data_offsets span ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expected}`);
    if (end > dataLength) {
      throw fail(
        `is truncated: tensor "${name}" needs bytes ${begin}..${end} of the data section but only ${dataLength} are present`,
      );
    }
    entries.set(name, { dtype, shape, begin, end });
  }
  const byOffset = [...entries].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < byOffset.length; i++) {
    const [prev, p] = byOffset[i - 1];
    const [name, e] = byOffset[i];
    if (e.begin < p.end)
      throw fail(
        `has overlapping tensors "${prev}" (bytes ${p.begin}..${p.end}) and "${name}" (bytes ${e.begin}..${e.end})`,
      );
  }
  return { entries, metadata };
}

/** `raw` must own a fresh buffer at offset 0, so every typed-array view below is aligned. */
function decode(e: Entry, raw: Uint8Array): ReadTensor {
  const { buffer } = raw;
  const n = raw.length / ITEM_SIZE[e.dtype];
  const shape = [...e.shape];
  switch (e.dtype) {
    case 'F32':
      return { dtype: e.dtype, shape, data: new Float32Array(buffer, 0, n) };
    case 'F16':
      return { dtype: e.dtype, shape, data: f16ToF32(new Uint16Array(buffer, 0, n)) };
    case 'BF16':
      return { dtype: e.dtype, shape, data: bf16ToF32(new Uint16Array(buffer, 0, n)) };
    case 'F64':
      return { dtype: e.dtype, shape, data: new Float64Array(buffer, 0, n) };
    case 'I64':
      return { dtype: e.dtype, shape, data: new BigInt64Array(buffer, 0, n) };
    case 'I32':
      return { dtype: e.dtype, shape, data: new Int32Array(buffer, 0, n) };
    default:
      return { dtype: e.dtype, shape, data: raw };
  }
}

/** Validates the tensors and lays them out; each part encodes its tensor only when the writer asks for it. */
function plan(tensors: TensorsToWrite, metadata?: Record<string, string>) {
  if (!LITTLE_ENDIAN_HOST) throw new InputError('writing safetensors needs a little-endian host');
  if (tensors === null || typeof tensors !== 'object')
    throw new InputError('tensors must be an object or a Map of {shape, data}');
  const list = (tensors instanceof Map ? [...tensors] : Object.entries(tensors)).map(([name, t]) => {
    if (name === METADATA_KEY) throw new InputError(`"${METADATA_KEY}" is reserved and cannot name a tensor`);
    const dtype = checkTensor(name, t);
    return { name, t, dtype, shape: t.shape, byteLength: t.data.length * ITEM_SIZE[dtype] };
  });
  // Within a dtype width the data follows the names, as the header does.
  const { header, layout, total } = layOutHeader(list.sort(compareNames), metadata);
  const parts = layout.map(({ t, dtype }) => (): Uint8Array => {
    const data =
      dtype === 'F16'
        ? f32ToF16(t.data as Float32Array)
        : dtype === 'BF16'
          ? f32ToBf16(t.data as Float32Array)
          : t.data;
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  });
  return { header, parts, total };
}

function checkTensor(name: string, t: TensorToWrite): SafetensorsDtype {
  const bad = (why: string) => new InputError(`cannot write tensor "${name}": ${why}`);
  if (!isObject(t)) throw bad('expected {shape, data}');
  const { data, shape } = t;
  const natural: SafetensorsDtype | undefined =
    data instanceof Float32Array
      ? 'F32'
      : data instanceof Float64Array
        ? 'F64'
        : data instanceof BigInt64Array
          ? 'I64'
          : data instanceof Int32Array
            ? 'I32'
            : data instanceof Uint8Array
              ? 'U8'
              : undefined;
  if (!natural) throw bad('data must be a Float32Array, Float64Array, BigInt64Array, Int32Array or Uint8Array');
  const dtype = t.dtype ?? natural;
  const ok =
    dtype === natural ||
    (natural === 'F32' && (dtype === 'F16' || dtype === 'BF16')) ||
    (natural === 'U8' && dtype === 'BOOL');
  if (!ok) throw bad(`dtype ${dtype} cannot be written from a ${data.constructor.name}`);
  if (!Array.isArray(shape) || !shape.every(isCount))
    throw bad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  const numel = shape.reduce((a, d) => a * d, 1);
  if (numel !== data.length)
    throw bad(`shape ${JSON.stringify(shape)} holds ${numel} values but data has ${data.length}`);
  if (dtype === 'BOOL' && (data as Uint8Array).some((v) => v > 1)) throw bad('BOOL data must be 0 or 1');
  return dtype;
}

async function readFully(handle: FileHandle, pos: number, len: number, source: string): Promise<Uint8Array> {
  const buf = new Uint8Array(len);
  await readFullyAt(handle, buf, pos, `safetensors file ${source}`);
  return buf;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
