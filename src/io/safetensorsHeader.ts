/**
 * The safetensors header as both writers lay it out (in memory and streamed): dtypes and their
 * sizes, the data order, and the JSON header itself.
 * @module
 */
import { InputError } from '../errors.js';

/**
 * The safetensors dtypes this library reads and writes.
 * @category I/O
 */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'U8' | 'BOOL';

/**
 * Dtypes the streaming writer can lay out (the safetensors names).
 * @category I/O
 */
export type StreamDtype = SafetensorsDtype | 'I16' | 'I8';

/** Bytes per element of every dtype a writer can lay out. */
export const ITEM_SIZE: Readonly<Record<StreamDtype, number>> = {
  F64: 8,
  I64: 8,
  F32: 4,
  I32: 4,
  F16: 2,
  BF16: 2,
  I16: 2,
  U8: 1,
  I8: 1,
  BOOL: 1,
};

/** Whether `d` names a dtype the reader decodes: every {@link StreamDtype} but I16 and I8. */
export function isSafetensorsDtype(d: unknown): d is SafetensorsDtype {
  return typeof d === 'string' && Object.hasOwn(ITEM_SIZE, d) && d !== 'I16' && d !== 'I8';
}

/** The header key that holds the string map of metadata, never a tensor. */
export const METADATA_KEY = '__metadata__';

/**
 * A tensor to be written: everything but its bytes.
 * @category I/O
 */
export interface StreamTensor {
  name: string;
  dtype: StreamDtype;
  shape: number[];
}

/** One tensor as the header describes it: a {@link StreamTensor} with its size in bytes. */
export interface HeaderEntry extends StreamTensor {
  byteLength: number;
}

/** Orders by name, code unit by code unit (as the reference's sorted keys). */
export function compareNames(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Orders the data widest dtype first (every tensor then stays aligned to its item size, as the
 * format has no padding between tensors; the given order within a width) and encodes the header:
 * keys sorted, padded with spaces to a multiple of 8 bytes after its 8-byte length.
 * @returns the header bytes, the tensors in data order, and the data section's length.
 * @throws InputError for metadata that is not a string map.
 */
export function layOutHeader<T extends HeaderEntry>(
  tensors: readonly T[],
  metadata?: Record<string, string>,
): { header: Uint8Array; layout: T[]; total: number } {
  if (
    metadata !== undefined &&
    (metadata === null ||
      typeof metadata !== 'object' ||
      Array.isArray(metadata) ||
      Object.values(metadata).some((v) => typeof v !== 'string'))
  ) {
    throw new InputError('safetensors metadata must map strings to strings');
  }
  const layout = [...tensors].sort((a, b) => ITEM_SIZE[b.dtype] - ITEM_SIZE[a.dtype]);
  const offsets = new Map<string, [number, number]>();
  let total = 0;
  for (const t of layout) offsets.set(t.name, [total, (total += t.byteLength)]);
  const byName = [...tensors].sort(compareNames);
  // Built by hand, not JSON.stringify(object): objects move integer-like keys first, which would unsort them.
  const fields = metadata ? [`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`] : [];
  for (const t of byName)
    fields.push(
      `${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: offsets.get(t.name) })}`,
    );
  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  const header = new Uint8Array(8 + Math.ceil(json.length / 8) * 8).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(header.length - 8), true);
  header.set(json, 8);
  return { header, layout, total };
}
