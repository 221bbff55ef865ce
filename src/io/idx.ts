/**
 * The IDX format of MNIST and Fashion-MNIST: a 4-byte magic (two zero bytes, a type byte, the number of
 * dimensions), one big-endian uint32 size per dimension, then the values, big-endian, row-major. Files may
 * be gzipped (detected by the gzip magic). Reading is strict: the data must be exactly as long as the sizes
 * say, since IDX has no end marker and extra bytes mean a wrong size field or files joined by mistake.
 * @module
 */
import { CheckpointError, InputError } from '../errors.js';
import type { HostTensor } from '../util/hostTensor.js';
import { LITTLE_ENDIAN_HOST, swapBytes } from './byteSource.js';
import { inflateBounded, isGzip } from './inflate.js';
import { inputLabel, readFileBytes, type FileInput } from './webSource.js';

/**
 * The value types an IDX file can hold, by their type byte: 0x08 `uint8`, 0x09 `int8`, 0x0B `int16`,
 * 0x0C `int32`, 0x0D `float32`, 0x0E `float64`.
 * @category I/O
 */
export type IdxDtype = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

/**
 * The typed arrays IDX values are returned in, one per {@link IdxDtype}.
 * @category I/O
 */
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

/**
 * An IDX file's contents: shape, values in host byte order, and the file's value type.
 * @category I/O
 */
export interface IdxTensor extends HostTensor<IdxData> {
  dtype: IdxDtype;
}

/**
 * Options of {@link readIdx}.
 * @category I/O
 */
export interface ReadIdxOptions {
  /** Names the source in errors when it is given as bytes (default `'<bytes>'`). */
  label?: string;
  /** Refuse a gzipped file that inflates to more than this many bytes (default 1 GiB). */
  maxBytes?: number;
}

type IdxArray = { new (buffer: ArrayBuffer): IdxData; readonly BYTES_PER_ELEMENT: number };

const DTYPES: Record<IdxDtype, { code: number; array: IdxArray }> = {
  uint8: { code: 0x08, array: Uint8Array },
  int8: { code: 0x09, array: Int8Array },
  int16: { code: 0x0b, array: Int16Array },
  int32: { code: 0x0c, array: Int32Array },
  float32: { code: 0x0d, array: Float32Array },
  float64: { code: 0x0e, array: Float64Array },
};

const BY_CODE = new Map(Object.entries(DTYPES).map(([name, info]) => [info.code, name as IdxDtype]));
const DEFAULT_MAX_BYTES = 2 ** 30;

/**
 * Parses an uncompressed IDX file held in memory.
 * @param label names the file in errors.
 * @throws CheckpointError for a wrong magic, an unknown type byte, or data shorter or longer than the sizes say.
 * @category I/O
 */
export function decodeIdx(bytes: Uint8Array, label = '<bytes>'): IdxTensor {
  const fail = (why: string) =>
    new CheckpointError(`${label} is not a readable IDX file: ${why}. Check that it is an MNIST-style IDX file.`);
  if (bytes.length < 4) throw fail(`it has ${bytes.length} bytes, fewer than the 4 of the magic number`);
  if (bytes[0] !== 0 || bytes[1] !== 0)
    throw fail(`its magic number starts with ${hex(bytes[0])} ${hex(bytes[1])}, not 0x00 0x00`);
  const dtype = BY_CODE.get(bytes[2]);
  if (!dtype)
    throw fail(
      `its type byte is ${hex(bytes[2])}; known types are 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64`,
    );
  const rank = bytes[3];
  if (rank === 0) throw fail('its magic number declares 0 dimensions');
  const header = 4 + 4 * rank;
  if (bytes.length < header) throw fail(`it ends at byte ${bytes.length}, inside the sizes of its ${rank} dimensions`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const shape: number[] = [];
  let count = 1;
  for (let d = 0; d < rank; d++) {
    shape.push(view.getUint32(4 + 4 * d));
    count *= shape[d];
  }
  const { array } = DTYPES[dtype];
  const expected = header + count * array.BYTES_PER_ELEMENT;
  if (bytes.length < expected)
    throw fail(`it is truncated: shape [${shape}] of ${dtype} needs ${expected} bytes, the file has ${bytes.length}`);
  if (bytes.length > expected)
    throw fail(
      `it has ${bytes.length - expected} bytes after the ${expected} that shape [${shape}] of ${dtype} takes (trailing data)`,
    );
  // A copy, so the values start at offset 0 of their own (aligned) buffer and can be swapped in place. Through
  // Uint8Array's slice: a Node Buffer's own `slice` returns a view into the caller's (possibly pooled) memory.
  const values = Uint8Array.prototype.slice.call(bytes, header, expected);
  if (LITTLE_ENDIAN_HOST) swapBytes(values, array.BYTES_PER_ELEMENT);
  return { shape, data: new array(values.buffer), dtype };
}

/**
 * Encodes a host tensor as an uncompressed IDX file; its type follows the data's array type
 * (`Uint8Array` → 0x08 … `Float64Array` → 0x0E).
 * @throws InputError when the shape does not match the data or a size does not fit an uint32.
 * @category I/O
 */
export function encodeIdx(tensor: HostTensor<IdxData, readonly number[]>): Uint8Array {
  const dtype = dtypeOf(tensor.data);
  const { shape, data } = tensor;
  if (shape.length < 1 || shape.length > 255)
    throw new InputError(`encodeIdx: an IDX file has 1 to 255 dimensions, got shape [${shape}]`);
  if (shape.some((s) => !Number.isInteger(s) || s < 0 || s > 0xffffffff))
    throw new InputError(`encodeIdx: every size must be an integer in [0, 2^32), got shape [${shape}]`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new InputError(`encodeIdx: shape [${shape}] holds ${count} values, the data has ${data.length}`);
  const { code, array } = DTYPES[dtype];
  const header = 4 + 4 * shape.length;
  const out = new Uint8Array(header + data.byteLength);
  const view = new DataView(out.buffer);
  out[2] = code;
  out[3] = shape.length;
  shape.forEach((s, d) => view.setUint32(4 + 4 * d, s));
  const values = out.subarray(header);
  values.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (LITTLE_ENDIAN_HOST) swapBytes(values, array.BYTES_PER_ELEMENT);
  return out;
}

/**
 * Reads an IDX file from a path (Node), a URL, Blob or Response, or bytes; gzipped or not.
 * @example
 * ```ts
 * const { shape, data } = await readIdx('train-images-idx3-ubyte.gz'); // [60000, 28, 28], Uint8Array
 * ```
 * @throws CheckpointError naming the file when it cannot be opened, does not inflate, or is not IDX
 *   (wrong magic, unknown type byte, truncated, trailing data).
 * @category I/O
 */
export async function readIdx(source: FileInput, opts: ReadIdxOptions = {}): Promise<IdxTensor> {
  const label = inputLabel(source, opts.label ?? '<bytes>');
  let bytes = await readFileBytes(source, 'IDX file');
  if (isGzip(bytes))
    bytes = await inflateBounded(
      bytes,
      'gzip',
      opts.maxBytes ?? DEFAULT_MAX_BYTES,
      (why) =>
        new CheckpointError(`${label} starts like a gzip stream but ${why}. Check that the download is complete.`),
    );
  return decodeIdx(bytes, label);
}

/**
 * Reads an images file and its labels file and checks that they belong together: labels of rank 1 and
 * an integer type, one label per image.
 * @param opts labels for the two sources when they are bytes.
 * @throws CheckpointError for either file's {@link readIdx} errors, and for a count mismatch (naming both files).
 * @category I/O
 */
export async function readIdxPair(
  images: FileInput,
  labels: FileInput,
  opts: { imagesLabel?: string; labelsLabel?: string; maxBytes?: number } = {},
): Promise<{ images: IdxTensor; labels: IdxTensor }> {
  const x = await readIdx(images, { label: opts.imagesLabel, maxBytes: opts.maxBytes });
  const y = await readIdx(labels, { label: opts.labelsLabel, maxBytes: opts.maxBytes });
  const xl = inputLabel(images, opts.imagesLabel ?? '<image bytes>');
  const yl = inputLabel(labels, opts.labelsLabel ?? '<label bytes>');
  if (y.shape.length !== 1 || y.dtype === 'float32' || y.dtype === 'float64')
    throw new CheckpointError(
      `${yl} is not a labels file: it holds ${y.dtype} of shape [${y.shape}], not one integer per image`,
    );
  if (x.shape[0] !== y.shape[0])
    throw new CheckpointError(
      `${xl} holds ${x.shape[0]} images but ${yl} holds ${y.shape[0]} labels; check that the two files are of the same split`,
    );
  return { images: x, labels: y };
}

function dtypeOf(data: unknown): IdxDtype {
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  throw new InputError(
    `encodeIdx: data must be a Uint8Array, Int8Array, Int16Array, Int32Array, Float32Array or Float64Array, got ${Object.prototype.toString.call(data)}`,
  );
}

function hex(b: number): string {
  return '0x' + b.toString(16).padStart(2, '0').toUpperCase();
}
