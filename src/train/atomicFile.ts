/**
 * Small-file writes that a crash cannot half-do: temp file in the same directory, fsync, rename.
 * @module
 */
import { importUnbundled } from '../util/dynamicImport.js';

type NodeFs = typeof import('node:fs');
type NodePath = typeof import('node:path');

/** Node's fs and path, loaded lazily so browser bundles of the library still build. */
export async function nodeFs(): Promise<{ fs: NodeFs; path: NodePath }> {
  const [fs, path] = await Promise.all([importUnbundled<NodeFs>('node:fs'), importUnbundled<NodePath>('node:path')]);
  return { fs, path };
}

/** Temp names start with `.` and end with `.tmp`, so directory scans can tell them from finished files. */
export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.tmp');
}

/**
 * Writes `data` to `target` atomically: readers see the old file or the new one, never a mix, and
 * a failure (or a kill) before the rename leaves the old file untouched.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  const { fs, path } = await nodeFs();
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  let handle: import('node:fs/promises').FileHandle | undefined;
  try {
    handle = await fs.promises.open(tmp, 'wx');
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    for (let off = 0; off < bytes.length; ) off += (await handle.write(bytes, off, bytes.length - off)).bytesWritten;
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.promises.rename(tmp, target);
  } catch (e) {
    await handle?.close().catch(() => {});
    await fs.promises.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  const dirHandle = await fs.promises.open(dir, 'r').catch(() => undefined);
  await dirHandle?.sync().catch(() => {});
  await dirHandle?.close().catch(() => {});
}
