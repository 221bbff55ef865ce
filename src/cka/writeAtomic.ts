/**
 * Atomic file writes for the CKA exports: a reader never sees half a PNG or JSON file.
 * @module
 */
import { InputError } from '../errors.js';
import { importUnbundled } from '../util/dynamicImport.js';

/**
 * Writes bytes to a temporary file beside `path`, syncs it and renames it over `path`; on failure the temporary
 * file is removed and the target left as it was.
 * @internal
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array, what: string): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new InputError(`${what} needs a non-empty file path`);
  const fs = await importUnbundled<typeof import('node:fs')>('node:fs');
  const nodePath = await importUnbundled<typeof import('node:path')>('node:path');
  const tmp = nodePath.join(nodePath.dirname(path), `.${nodePath.basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  let handle: import('node:fs/promises').FileHandle | undefined;
  try {
    handle = await fs.promises.open(tmp, 'wx');
    for (let at = 0; at < bytes.length; ) at += (await handle.write(bytes, at, bytes.length - at)).bytesWritten;
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.promises.rename(tmp, path);
  } catch (e) {
    await handle?.close().catch(() => {});
    await fs.promises.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
}
