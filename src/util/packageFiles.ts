/**
 * Files shipped inside the package (the Fashion-MNIST subset, the default backbone), found from
 * this module's own location in Node. The browser build uses `packageFiles.browser.ts` instead.
 * @module
 */
import { CheckpointError } from '../errors.js';
import { importUnbundled } from './dynamicImport.js';
import { nodeFs } from './nodeFs.js';

/**
 * `parts` joined under the nearest folder above this module that holds a `package.json`: the
 * repository from `src/`, the installed package from `dist/`.
 * @param who what is looking, and `instead` what to pass instead, for the error messages.
 * @throws CheckpointError in a runtime without a file system path for this module (a browser, a
 *   bundle that left the package behind) or when no package.json is found.
 */
export async function packagePath(parts: string[], who: string, instead: string): Promise<string> {
  const file = await moduleFile();
  if (!file) throw new CheckpointError(`${who} cannot locate the package's files in this runtime; ${instead}`);
  const { fs, path } = await nodeFs();
  let dir = path.dirname(file);
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new CheckpointError(`${who} found no package.json above ${file}; ${instead}`);
    dir = up;
  }
  return path.join(dir, ...parts);
}

/**
 * This module's file path: `import.meta.url` in ESM, `__filename` in CommonJS, nothing in a browser. ESM
 * first: under `node -e` or in the REPL a global `__filename` ('[eval]') is visible to ES modules too.
 */
async function moduleFile(): Promise<string | undefined> {
  const url = (import.meta as { url?: string }).url;
  if (url?.startsWith('file:')) {
    const { fileURLToPath } = await importUnbundled<typeof import('node:url')>('node:url');
    return fileURLToPath(url);
  }
  // An absolute path (POSIX or Windows), not the '[eval]' of `node -e`.
  if (typeof __filename === 'string' && /^(\/|[A-Za-z]:[\\/])/.test(__filename)) return __filename;
  return undefined;
}

/** The files the library itself reads from the package, relative to its root. */
export type ShippedFile =
  | 'models/fashion-mnist-adm/weights.safetensors'
  | 'data/fashion-mnist/train-images-idx3-ubyte.gz'
  | 'data/fashion-mnist/train-labels-idx1-ubyte.gz'
  | 'data/fashion-mnist/t10k-images-idx3-ubyte.gz'
  | 'data/fashion-mnist/t10k-labels-idx1-ubyte.gz';

/**
 * Where a shipped file is: its path in Node, its URL next to the bundle in a browser.
 * @throws CheckpointError as {@link packagePath}.
 */
export function shippedFile(file: ShippedFile, who: string, instead: string): Promise<string | URL> {
  return packagePath(file.split('/'), who, instead);
}
