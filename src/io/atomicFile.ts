/**
 * Writes that a crash cannot half-do: a temp file in the target's directory, fsync, rename over the
 * target, then a best-effort fsync of the directory. Readers see the old file or the new one, never a
 * mix; a failure (or a kill) before the rename leaves the old file untouched and no temp file behind.
 * @module
 */
import { InputError } from '../errors.js';
import { importUnbundled } from '../util/dynamicImport.js';

type FileHandle = import('node:fs/promises').FileHandle;

/** Temp names start with `.` and end with `.tmp`, so directory scans can tell them from finished files. */
export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.tmp');
}

/** Writes all of `bytes` at the handle's position (a single `write` may write less). */
export async function writeFully(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += (await handle.write(bytes, at, bytes.length - at)).bytesWritten;
}

/**
 * Atomically replaces `target` with what `write` puts into the handle it is given.
 * @throws InputError for an empty path; whatever `write` or the file system throws, after cleaning up.
 */
export async function writeAtomic(target: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  if (typeof target !== 'string' || target === '') throw new InputError('a non-empty file path is needed');
  const fs = await importUnbundled<typeof import('node:fs')>('node:fs');
  const path = await importUnbundled<typeof import('node:path')>('node:path');
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await fs.promises.open(tmp, 'wx');
    await write(handle);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.promises.rename(tmp, target);
  } catch (e) {
    await handle?.close().catch(() => {});
    await fs.promises.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  // Make the rename itself durable; directories cannot be opened for sync on every platform.
  const dirHandle = await fs.promises.open(dir, 'r').catch(() => undefined);
  await dirHandle?.sync().catch(() => {});
  await dirHandle?.close().catch(() => {});
}

/** Atomically replaces `target` with `data` (UTF-8 for a string). */
export function writeBytesAtomic(target: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  return writeAtomic(target, (h) => writeFully(h, bytes));
}
