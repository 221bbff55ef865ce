/**
 * The browser build's {@link shippedFile}: the package's files as URLs beside the bundle. Each URL
 * is a literal `new URL('…', import.meta.url)`, the form Vite, webpack 5 and Parcel recognise and
 * copy into the app's output; other bundlers need the files served and passed explicitly.
 * @module
 */
import { CheckpointError } from '../errors.js';
import type { ShippedFile } from './packageFiles.js';

// Paths are relative to dist/browser.js, the module this file is bundled into.
const URLS: Record<ShippedFile, () => URL> = {
  'models/fashion-mnist-adm/weights.safetensors': () =>
    new URL('../models/fashion-mnist-adm/weights.safetensors', import.meta.url),
  'data/fashion-mnist/train-images-idx3-ubyte.gz': () =>
    new URL('../data/fashion-mnist/train-images-idx3-ubyte.gz', import.meta.url),
  'data/fashion-mnist/train-labels-idx1-ubyte.gz': () =>
    new URL('../data/fashion-mnist/train-labels-idx1-ubyte.gz', import.meta.url),
  'data/fashion-mnist/t10k-images-idx3-ubyte.gz': () =>
    new URL('../data/fashion-mnist/t10k-images-idx3-ubyte.gz', import.meta.url),
  'data/fashion-mnist/t10k-labels-idx1-ubyte.gz': () =>
    new URL('../data/fashion-mnist/t10k-labels-idx1-ubyte.gz', import.meta.url),
};

/** No file system in a browser: a package folder has no path. */
export async function packagePath(parts: string[], who: string, instead: string): Promise<string> {
  throw new CheckpointError(`${who} cannot read ${parts.join('/')} from a path in a browser; ${instead}`);
}

/** The URL of a shipped file beside the bundle. */
export async function shippedFile(file: ShippedFile, who: string, instead: string): Promise<string | URL> {
  const url = URLS[file];
  if (!url) throw new CheckpointError(`${who}: ${file} is not shipped with the package; ${instead}`);
  return url();
}
