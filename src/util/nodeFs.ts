/**
 * Node's file system, loaded lazily so that browser bundles of the library still build.
 * @module
 */
import { importUnbundled } from './dynamicImport.js';

type NodeFs = typeof import('node:fs');
type NodePath = typeof import('node:path');

/** Node's fs and path. */
export async function nodeFs(): Promise<{ fs: NodeFs; path: NodePath }> {
  const [fs, path] = await Promise.all([importUnbundled<NodeFs>('node:fs'), importUnbundled<NodePath>('node:path')]);
  return { fs, path };
}
