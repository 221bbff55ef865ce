/**
 * Positioned reads from a file or from bytes already in memory, behind one interface, so that
 * the checkpoint readers never need the whole file in one buffer and never read past its end.
 * @module
 */
import { CheckpointError, InputError } from '../errors.js';
import { importUnbundled } from '../util/dynamicImport.js';

type FileHandle = import('node:fs/promises').FileHandle;

/** Whether typed arrays here are little-endian: the readers view file bytes (little-endian) as typed arrays directly. */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A copy of `bytes[start, end)` in a fresh buffer at offset 0. Not `bytes.slice`: on a Node
 * `Buffer` (what `fs.readFileSync` returns) `slice` is a view into the same memory, not a copy.
 */
export function copyBytes(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(bytes.subarray(start, end));
  return out;
}

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

/** A file (or bytes) read by offset. Every range is checked against {@link ByteSource.size} first. */
export interface ByteSource {
  /** The path, or `'<bytes>'`; named in error messages. */
  readonly label: string;
  /** Length in bytes, taken when the source was opened. */
  readonly size: number;
  /**
   * `length` bytes at `position`, in a fresh buffer that starts at offset 0 of its own
   * ArrayBuffer (so every typed-array view of it is aligned).
   * @throws CheckpointError when the range runs past the end of the source.
   */
  read(position: number, length: number): Promise<Uint8Array>;
  /** Fills `target` from `position` (for callers that own an aligned buffer already). */
  readInto(position: number, target: Uint8Array): Promise<void>;
  /** Releases the file; idempotent. */
  close(): Promise<void>;
}

/**
 * Opens a path (keeping its descriptor until `close`) or wraps bytes.
 * @throws CheckpointError when the path cannot be opened.
 */
export async function openByteSource(source: string | Uint8Array): Promise<ByteSource> {
  if (source instanceof Uint8Array) return bytesSource(source);
  if (typeof source !== 'string')
    throw new InputError(`weights must be a path or a Uint8Array, got ${source === null ? 'null' : typeof source}`);
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

function endedEarly(label: string, position: number, length: number): CheckpointError {
  return new CheckpointError(
    `${label} ended early while reading bytes ${position}..${position + length} (was it truncated after opening?)`,
  );
}

function bytesSource(bytes: Uint8Array): ByteSource {
  const label = '<bytes>';
  return {
    label,
    size: bytes.length,
    async read(position, length) {
      checkRange(label, bytes.length, position, length);
      return copyBytes(bytes, position, position + length);
    },
    async readInto(position, target) {
      checkRange(label, bytes.length, position, target.length);
      target.set(bytes.subarray(position, position + target.length));
    },
    async close() {},
  };
}

function checkRange(label: string, size: number, position: number, length: number): void {
  if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0) {
    throw new CheckpointError(`${label}: bad byte range ${position}+${length}`);
  }
  if (position + length > size) {
    throw new CheckpointError(
      `${label} is truncated or corrupt: bytes ${position}..${position + length} are needed but the file has ${size}`,
    );
  }
}
