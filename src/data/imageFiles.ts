/**
 * Image files as the model's input: one file to a tensor in [−1, 1] (`loadImage`), and labelled image sources
 * over files, from a list (`imageFiles`) or an ImageFolder directory tree (`imageFolder`), which decode each
 * image when it is asked for, so the transforms of `loadBatch` (the reference's centre crop, or random crop and
 * flip when training) apply to them as to any other source.
 *
 * Pixels become values as the reference's loader makes them: 8-bit channels converted with PIL's rules (RGB → gray
 * by its ITU-R 601-2 fixed-point luma, gray → RGB by replication, alpha dropped without compositing, as
 * `convert('RGB')` and `convert('L')` do), then `x / 127.5 − 1`.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, InputError } from '../errors.js';
import { decodeImage, requireSharp, type DecodedImage } from '../io/imageDecode.js';
import { nodeFs } from '../util/nodeFs.js';
import type { ImageSource, LabelledImage } from './images.js';
import { checkLabels } from './labels.js';
import { centerCrop } from './transforms.js';
import type { FileInput } from '../io/webSource.js';

/**
 * The file extensions an image folder's files are taken by (compared case-insensitively): torchvision's
 * `IMG_EXTENSIONS`, so that a folder lists the same files, in the same order, with the same labels as
 * `torchvision.datasets.ImageFolder`. GIF is not among them (as in torchvision) but decodes: add it with
 * {@link ImageFolderOptions.extensions}.
 * @example
 * ```ts
 * const folder = await imageFolder('data/train', { extensions: [...IMAGE_EXTENSIONS, '.gif'] });
 * ```
 * @category Data
 */
export const IMAGE_EXTENSIONS: readonly string[] = Object.freeze([
  '.jpg',
  '.jpeg',
  '.png',
  '.ppm',
  '.bmp',
  '.pgm',
  '.tif',
  '.tiff',
  '.webp',
]);

/**
 * Options of {@link loadImage}.
 * @category Data
 */
export interface LoadImageOptions {
  /**
   * Output side: the image goes through {@link centerCrop} (PIL's `BOX` halving while the short side is ≥ 2·size,
   * PIL's `BICUBIC` resize of the short side to `size`, centred `size × size` crop), with its difference from the
   * reference: the resizes work on float values, where the reference's round and clip to 8-bit pixels after
   * every pass. Default: the whole image, as decoded.
   */
  size?: number;
  /** The model's `in_channels`: 3 (RGB, the default) or 1 (gray). */
  channels?: 1 | 3;
}

/**
 * Decodes an image file (a path in Node, or the file's bytes) to `[H, W, channels]` float32 in [−1, 1], or to
 * `[size, size, channels]` with the reference's evaluation transform. JPEG, WebP, TIFF and GIF need the optional
 * dependency `sharp` (`npm install sharp`); PNG, BMP and binary PGM/PPM decode without it. EXIF orientation is not
 * applied (as PIL's `Image.open`, which the reference uses).
 * @example
 * ```ts
 * const x = await loadImage('cat.jpg', { size: 256 }); // [256, 256, 3] in [−1, 1]
 * const feats = await extractFeatures(tf.expandDims(x, 0) as tf.Tensor4D, { model: unet, t: 90, b: 24 });
 * ```
 * @throws InputError for a bad option. CheckpointError naming the file when it cannot be read or decoded
 *   (missing, not an image, truncated). DiffSSLError when the format needs sharp and sharp is not installed.
 * @category Data
 */
export async function loadImage(source: FileInput, opts: LoadImageOptions = {}): Promise<tf.Tensor3D> {
  const channels = checkChannels(opts.channels, 'loadImage');
  if (opts.size !== undefined && (!Number.isInteger(opts.size) || opts.size < 1))
    throw new InputError(`loadImage: size must be a positive integer, got ${String(opts.size)}`);
  const image = pixelsToTensor(await decodeImage(source), channels);
  if (opts.size === undefined) return image;
  try {
    return centerCrop(image, opts.size);
  } finally {
    image.dispose();
  }
}

function checkChannels(c: unknown, who: string): 1 | 3 {
  if (c === undefined) return 3;
  if (c !== 1 && c !== 3) throw new InputError(`${who}: channels must be 1 (gray) or 3 (RGB), got ${String(c)}`);
  return c;
}

/**
 * 8-bit pixels with any channel count (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) → `channels` (1 or 3), as PIL's
 * `convert('L')` / `convert('RGB')`: alpha dropped, gray replicated, RGB to luma with
 * `L = (R·19595 + G·38470 + B·7471 + 2^15) >> 16` (ITU-R 601-2's 0.299, 0.587, 0.114 in 16-bit fixed point,
 * rounded to nearest).
 * @internal exported for tests.
 */
export function convertChannels(img: DecodedImage, channels: 1 | 3): Uint8Array {
  const { data, channels: from } = img;
  const n = img.width * img.height;
  if (from === channels) return data;
  const out = new Uint8Array(n * channels);
  if (from <= 2) {
    for (let i = 0; i < n; i++) {
      const g = data[i * from];
      if (channels === 1) out[i] = g;
      else out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = g;
    }
  } else if (channels === 1) {
    for (let i = 0; i < n; i++) {
      const o = i * from;
      out[i] = (data[o] * 19595 + data[o + 1] * 38470 + data[o + 2] * 7471 + 0x8000) >>> 16;
    }
  } else {
    for (let i = 0; i < n; i++) {
      out[3 * i] = data[i * from];
      out[3 * i + 1] = data[i * from + 1];
      out[3 * i + 2] = data[i * from + 2];
    }
  }
  return out;
}

/**
 * Decoded pixels → `[H, W, channels]` float32, `x / 127.5 − 1`. No intermediate tensors.
 * @internal exported for the IDX source.
 */
export function pixelsToTensor(img: DecodedImage, channels: 1 | 3): tf.Tensor3D {
  const px = convertChannels(img, channels);
  const out = new Float32Array(px.length);
  for (let i = 0; i < px.length; i++) out[i] = px[i] / 127.5 - 1;
  return tf.tensor3d(out, [img.height, img.width, channels]);
}

/**
 * What {@link imageFiles} and {@link imageFolder} do with a file that cannot be read or decoded: `'error'` (the
 * default) leaves every file in and throws a `CheckpointError` naming it when it is loaded; `'skip'` decodes every
 * file once while scanning and leaves out those that fail, so the source's indices are fixed from the start.
 * @category Data
 */
export type OnBadFile = 'error' | 'skip';

/**
 * A file left out by `onBadFile: 'skip'`.
 * @category Data
 */
export interface SkippedFile {
  /** Its path. */
  file: string;
  /** Its position in the list given to {@link imageFiles}, or in the folder's scan. */
  index: number;
  /** Why it was left out. */
  error: CheckpointError;
}

/**
 * Options of {@link imageFiles}.
 * @category Data
 */
export interface ImageFilesOptions {
  /** The model's `in_channels`: 3 (RGB, the default) or 1 (gray). */
  channels?: 1 | 3;
  /** One non-negative integer per file (default: 0 for every file, for feature extraction). */
  labels?: ArrayLike<number>;
  /** `'error'` (default) or `'skip'`; see {@link OnBadFile}. */
  onBadFile?: OnBadFile;
  /** Called for each file left out by `'skip'`, in file order, once the scan is done. */
  onSkip?: (skipped: SkippedFile) => void;
  /** Files decoded at once while `'skip'` checks them (default 4). */
  concurrency?: number;
}

/**
 * Image files as a labelled {@link ImageSource}.
 * @category Data
 */
export interface ImageFiles {
  /** Image i is `files[i]` with `labels[i]`, decoded when asked for: `[H, W, channels]` in [−1, 1], whole. */
  source: ImageSource;
  /** The files in the source, in order. */
  files: string[];
  /** Their labels. */
  labels: Int32Array;
  /** The files `'skip'` left out (empty with `'error'`). */
  skipped: SkippedFile[];
}

/**
 * An {@link ImageSource} over a list of image files (Node). Each `get(i)` decodes `files[i]` whole; the
 * training helpers (`onTheFlyImages`, `onTheFlyFeatures`, `cacheFeatures`) then crop it to the model's side, at
 * random with a flip when training. Missing files are found while scanning; undecodable ones when loaded, or while
 * scanning with `onBadFile: 'skip'`.
 * @example
 * ```ts
 * const { source } = await imageFiles(['a.jpg', 'b.png'], { labels: [0, 1] });
 * const cache = await cacheFeatures(source, { model: unet, t: 90, b: 24, pool: 2 });
 * ```
 * @throws InputError for a bad list, labels or option. CheckpointError naming the file for a missing file (with
 *   `'error'`), or when `'skip'` leaves no file. DiffSSLError when files need sharp and it is not installed.
 * @category Data
 */
export async function imageFiles(files: readonly string[], opts: ImageFilesOptions = {}): Promise<ImageFiles> {
  if (!Array.isArray(files) || files.length === 0 || !files.every((f) => typeof f === 'string' && f.length > 0))
    throw new InputError('imageFiles: files must be a non-empty array of paths');
  const labels =
    opts.labels === undefined
      ? new Int32Array(files.length)
      : checkLabels(opts.labels, files.length, Number.MAX_SAFE_INTEGER, 'imageFiles: labels');
  const checked = checkScanOptions(opts, 'imageFiles');
  const { fs } = await nodeFs();
  const bad = new Map<number, CheckpointError>();
  await eachLimited(files.length, 64, async (i) => {
    const f = files[i];
    const why = await fs.promises.stat(f).then(
      (s) => (s.isFile() ? undefined : `${f} is not a file`),
      (e: Error) => `cannot read image file ${f}: ${e.message}`,
    );
    if (why) bad.set(i, new CheckpointError(why));
  });
  if (checked.onBadFile === 'error' && bad.size) throw bad.get([...bad.keys()].reduce((a, b) => Math.min(a, b)))!;
  return scan([...files], labels, bad, { ...opts, ...checked }, 'imageFiles');
}

/**
 * Options of {@link imageFolder}.
 * @category Data
 */
export interface ImageFolderOptions extends Omit<ImageFilesOptions, 'labels'> {
  /** Extensions of the files to take (default {@link IMAGE_EXTENSIONS}), compared case-insensitively. */
  extensions?: readonly string[];
  /** Allow class folders without images (default false: an error naming them, as torchvision's default). */
  allowEmpty?: boolean;
}

/**
 * An image folder: the files of {@link imageFiles} with their classes.
 * @category Data
 */
export interface ImageFolder extends ImageFiles {
  /** Class names, by label: the folder's subfolders, sorted. */
  classes: string[];
}

/**
 * An {@link ImageSource} over a directory laid out as torchvision's `ImageFolder` (Node): one subfolder per class
 * (classes sorted by name, label = position), each holding image files at any depth (subfolders followed, files
 * sorted by folder then name, symbolic links followed), taken by extension. Same files, order and labels as
 * torchvision, so indices and labels agree with a PyTorch run over the same folder.
 * @example
 * ```ts
 * const { source, classes } = await imageFolder('data/train', { onBadFile: 'skip' });
 * const data = onTheFlyFeatures(source, { model: unet, t: 90, b: 24 }); // random crop + flip when training
 * ```
 * @throws CheckpointError naming the folder when it does not exist, has no class subfolders, or has classes
 *   without images (unless `allowEmpty`), or when `'skip'` leaves no file. InputError for a bad option.
 *   DiffSSLError when files need sharp and it is not installed.
 * @category Data
 */
export async function imageFolder(dir: string, opts: ImageFolderOptions = {}): Promise<ImageFolder> {
  if (typeof dir !== 'string' || !dir) throw new InputError('imageFolder: dir must be a path');
  const extensions = (opts.extensions ?? IMAGE_EXTENSIONS).map((e) => {
    if (typeof e !== 'string' || !e) throw new InputError(`imageFolder: extensions must be strings, got ${String(e)}`);
    return e.toLowerCase();
  });
  const checked = checkScanOptions(opts, 'imageFolder');
  const { fs, path } = await nodeFs();
  const entries = await fs.promises.readdir(dir, { withFileTypes: true }).catch((e: Error) => {
    throw new CheckpointError(`cannot read image folder ${dir}: ${e.message}`);
  });
  const classes = sortCodePoints(
    (await Promise.all(entries.map(async (e) => ((await isDir(fs, path.join(dir, e.name), e)) ? e.name : '')))).filter(
      Boolean,
    ),
  );
  if (classes.length === 0)
    throw new CheckpointError(`image folder ${dir} has no subfolders; it should hold one folder of images per class`);
  const files: string[] = [];
  const labelList: number[] = [];
  const empty: string[] = [];
  for (let c = 0; c < classes.length; c++) {
    const found = (await walk(fs, path, path.join(dir, classes[c]))).filter((f) =>
      extensions.some((e) => f.toLowerCase().endsWith(e)),
    );
    if (found.length === 0) empty.push(classes[c]);
    for (const f of found) {
      files.push(f);
      labelList.push(c);
    }
  }
  if (empty.length && !opts.allowEmpty)
    throw new CheckpointError(
      `image folder ${dir}: no image files in the class folder${empty.length > 1 ? 's' : ''} ${empty.slice(0, 10).join(', ')}${empty.length > 10 ? `, … (${empty.length})` : ''}; image files end in ${extensions.join(' ')}`,
    );
  if (files.length === 0)
    throw new CheckpointError(`image folder ${dir} holds no image files; they end in ${extensions.join(' ')}`);
  const scanned = await scan(files, Int32Array.from(labelList), new Map(), { ...opts, ...checked }, dir);
  return { ...scanned, classes };
}

type Fs = typeof import('node:fs');
type Path = typeof import('node:path');

/** Whether an entry is a directory, following symbolic links (as Python's `DirEntry.is_dir()`). */
async function isDir(fs: Fs, full: string, e: import('node:fs').Dirent): Promise<boolean> {
  if (e.isDirectory()) return true;
  if (!e.isSymbolicLink()) return false;
  return fs.promises.stat(full).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/**
 * Every non-directory under `root`, as Python's `sorted(os.walk(root, followlinks=True))` with sorted file names
 * lists them: folders in the order of their path strings, each folder's files by name; unreadable folders are
 * passed over. A link back to a folder being walked (a cycle) is not followed.
 */
async function walk(fs: Fs, path: Path, root: string): Promise<string[]> {
  const folders: { dir: string; files: string[] }[] = [];
  const visit = async (dir: string, ancestors: ReadonlySet<string>) => {
    const real = await fs.promises.realpath(dir).catch(() => dir);
    if (ancestors.has(real)) return;
    const chain = new Set(ancestors).add(real);
    const entries = await fs.promises.readdir(dir, { withFileTypes: true }).catch(() => []);
    const files: string[] = [];
    const subdirs: string[] = [];
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (await isDir(fs, full, e)) subdirs.push(full);
      else files.push(e.name);
    }
    folders.push({ dir, files: sortCodePoints(files).map((f) => path.join(dir, f)) });
    for (const s of subdirs) await visit(s, chain);
  };
  await visit(root, new Set());
  const order = sortCodePoints(folders.map((f) => f.dir));
  const byDir = new Map(folders.map((f) => [f.dir, f.files]));
  return order.flatMap((d) => byDir.get(d)!);
}

/** Sorted by Unicode code point, as Python sorts strings (JavaScript's default sort compares UTF-16 units). */
function sortCodePoints(xs: string[]): string[] {
  const astral = xs.some((s) => /[\uD800-\uDFFF]/.test(s));
  const cmp = astral
    ? (a: string, b: string) => {
        const [pa, pb] = [Array.from(a, (c) => c.codePointAt(0)!), Array.from(b, (c) => c.codePointAt(0)!)];
        for (let i = 0; i < Math.min(pa.length, pb.length); i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
        return pa.length - pb.length;
      }
    : (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return xs.sort(cmp);
}

function checkScanOptions(
  opts: ImageFilesOptions,
  who: string,
): { onBadFile: OnBadFile; concurrency: number; channels: 1 | 3 } {
  const onBadFile = opts.onBadFile ?? 'error';
  if (onBadFile !== 'error' && onBadFile !== 'skip')
    throw new InputError(`${who}: onBadFile must be 'error' or 'skip', got ${String(onBadFile)}`);
  const concurrency = opts.concurrency ?? 4;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new InputError(`${who}: concurrency must be a positive integer, got ${String(opts.concurrency)}`);
  if (opts.onSkip !== undefined && typeof opts.onSkip !== 'function')
    throw new InputError(`${who}: onSkip must be a function`);
  return { onBadFile, concurrency, channels: checkChannels(opts.channels, who) };
}

/** Extensions of the formats only sharp decodes. */
const SHARP_ONLY = /\.(jpe?g|webp|tiff?|gif|avif|heic|heif)$/i;

/**
 * The source over `files`, after the `'skip'` check (`bad` holds files already known bad). Fails early, before
 * any decoding, when some files need sharp and it is missing.
 */
async function scan(
  files: string[],
  labels: Int32Array,
  bad: Map<number, CheckpointError>,
  opts: ImageFilesOptions & { onBadFile: OnBadFile; concurrency: number; channels: 1 | 3 },
  where: string,
): Promise<ImageFiles> {
  const needSharp = files.filter((f, i) => !bad.has(i) && SHARP_ONLY.test(f));
  if (needSharp.length) await requireSharp(`${needSharp.length} of the ${files.length} files (${needSharp[0]}, …)`);
  if (opts.onBadFile === 'skip')
    await eachLimited(files.length, opts.concurrency, async (i) => {
      if (bad.has(i)) return;
      try {
        await decodeImage(files[i]);
      } catch (e) {
        if (!(e instanceof CheckpointError)) throw e;
        bad.set(i, e);
      }
    });
  const skipped: SkippedFile[] = [...bad.keys()]
    .sort((a, b) => a - b)
    .map((index) => ({ file: files[index], index, error: bad.get(index)! }));
  for (const s of skipped) opts.onSkip?.(s);
  const keep = files.map((_, i) => i).filter((i) => !bad.has(i));
  if (keep.length === 0)
    throw new CheckpointError(
      `${where}: none of its ${files.length} files could be read (the first: ${skipped[0].error.message})`,
    );
  const kept = keep.map((i) => files[i]);
  const keptLabels = Int32Array.from(keep, (i) => labels[i]);
  return { source: fileSource(kept, keptLabels, opts.channels), files: kept, labels: keptLabels, skipped };
}

/** Runs `f(0)` … `f(n − 1)`, at most `limit` at a time; the first error stops new calls and is thrown. */
async function eachLimited(n: number, limit: number, f: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await f(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

/** The {@link ImageSource} over checked files: image i decoded on each `get(i)`. */
function fileSource(files: string[], labels: Int32Array, channels: 1 | 3): ImageSource {
  const n = files.length;
  return {
    size: n,
    get: async (i: number): Promise<LabelledImage> => {
      if (!Number.isInteger(i) || i < 0 || i >= n) throw new InputError(`image index ${i} outside [0, ${n})`);
      return { image: pixelsToTensor(await decodeImage(files[i]), channels), label: labels[i] };
    },
  };
}
