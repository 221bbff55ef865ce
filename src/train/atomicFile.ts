/**
 * Node's file system for the training helpers, and the project's atomic writes (src/io/atomicFile.ts).
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

export { isTempName, writeBytesAtomic as writeFileAtomic } from '../io/atomicFile.js';
