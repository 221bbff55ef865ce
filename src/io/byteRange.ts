/**
 * What every positioned reader shares: the {@link ByteSource} interface, bytes in memory as one,
 * and the range checks that keep reads inside a file.
 * @module
 */
import { CheckpointError } from '../errors.js';

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
 * A copy of `bytes[start, end)` in a fresh buffer at offset 0. Not `bytes.slice`: on a Node
 * `Buffer` (what `fs.readFileSync` returns) `slice` is a view into the same memory, not a copy.
 */
export function copyBytes(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(bytes.subarray(start, end));
  return out;
}

/** Bytes in memory as a {@link ByteSource}; `label` names them in errors. */
export function bytesSource(bytes: Uint8Array, label = '<bytes>'): ByteSource {
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

/** Throws unless `[position, position + length)` lies inside a source of `size` bytes. */
export function checkRange(label: string, size: number, position: number, length: number): void {
  if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0) {
    throw new CheckpointError(`${label}: bad byte range ${position}+${length}`);
  }
  if (position + length > size) {
    throw new CheckpointError(
      `${label} is truncated or corrupt: bytes ${position}..${position + length} are needed but the file has ${size}`,
    );
  }
}

/** The error for a source that ends before a range it announced. */
export function endedEarly(label: string, position: number, length: number): CheckpointError {
  return new CheckpointError(
    `${label} ended early while reading bytes ${position}..${position + length} (was it truncated after opening?)`,
  );
}
