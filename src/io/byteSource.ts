/**
 * Positioned reads from a file or from bytes already in memory, behind one interface, so that
 * the checkpoint readers never need the whole file in one buffer and never read past its end.
 * @module
 */
import { CheckpointError, InputError } from '../errors.js';
import { importUnbundled } from '../util/dynamicImport.js';
import { bytesSource, checkRange, endedEarly, type ByteSource } from './byteRange.js';
import { normalizeInput, openWebSource, type FileInput } from './webSource.js';

type FileHandle = import('node:fs/promises').FileHandle;

/** Whether typed arrays here are little-endian: the readers view file bytes (little-endian) as typed arrays directly. */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses the bytes of every `size`-byte value in place: big-endian ↔ little-endian. */
export function swapBytes(bytes: Uint8Array, size: number): void {
  // In-place swaps rather than subarray().reverse(): no object per value on files of millions of values.
  for (let i = 0; i < bytes.length; i += size)
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
}

/** Whether `x` is an already open {@link ByteSource} (handed on as it is). */
export function isByteSource(x: unknown): x is ByteSource {
  const s = x as ByteSource;
  return typeof x === 'object' && x !== null && typeof s.readInto === 'function' && typeof s.size === 'number';
}

/**
 * Opens a path (keeping its descriptor until `close`) or wraps bytes.
 * @throws CheckpointError when the path cannot be opened.
 */
export async function openByteSource(input: FileInput | ByteSource): Promise<ByteSource> {
  if (isByteSource(input)) return input;
  const source = normalizeInput(input, 'weights file');
  if (source instanceof Uint8Array) return bytesSource(source);
  if (typeof source !== 'string') return openWebSource(source);
  const fs = await importUnbundled<typeof import('node:fs')>('node:fs');
  let handle: FileHandle;
  try {
    handle = await fs.promises.open(source, 'r');
  } catch (e) {
    throw new CheckpointError(`cannot open weights file ${source}: ${(e as Error).message}`);
  }
  let size: number;
  try {
    size = (await handle.stat()).size;
  } catch (e) {
    await handle.close();
    throw new CheckpointError(`cannot stat weights file ${source}: ${(e as Error).message}`);
  }
  let closed = false;
  const readInto = async (position: number, target: Uint8Array) => {
    if (closed) throw new InputError(`${source} is closed`);
    checkRange(source, size, position, target.length);
    await readFullyAt(handle, target, position, source);
  };
  return {
    label: source,
    size,
    readInto,
    async read(position, length) {
      checkRange(source, size, position, length);
      const out = new Uint8Array(length);
      await readInto(position, out);
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}

/**
 * Fills `target` from `position` of an open file; a read may return fewer bytes than asked, so it loops.
 * @param label names the file in the error.
 * @throws CheckpointError when the file ends first (it shrank after it was opened).
 */
export async function readFullyAt(
  handle: FileHandle,
  target: Uint8Array,
  position: number,
  label: string,
): Promise<void> {
  for (let off = 0; off < target.length;) {
    const { bytesRead } = await handle.read(target, off, target.length - off, position + off);
    if (bytesRead === 0) throw endedEarly(label, position, target.length);
    off += bytesRead;
  }
}

/** {@link readFullyAt} for callers that cannot await: `fs.readSync` on the descriptor. */
export function readFullyAtSync(
  fs: typeof import('node:fs'),
  fd: number,
  target: Uint8Array,
  position: number,
  label: string,
): void {
  for (let off = 0; off < target.length;) {
    const got = fs.readSync(fd, target, off, target.length - off, position + off);
    if (got === 0) throw endedEarly(label, position, target.length);
    off += got;
  }
}
