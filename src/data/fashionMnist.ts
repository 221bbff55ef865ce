/**
 * Fashion-MNIST as tensors in [−1, 1]: the subset shipped in the package (`data/fashion-mnist/`), or any
 * directory or bytes holding the IDX files of a split, as an {@link ImageSource} or a {@link Dataset} too.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { requireBackend } from '../backend/engine.js';
import { CheckpointError, InputError } from '../errors.js';
import { readIdxPair, type IdxTensor } from '../io/idx.js';
import { inputLabel } from '../io/webSource.js';
import { nodeFs } from '../util/nodeFs.js';
import { packagePath, shippedFile, type ShippedFile } from '../util/packageFiles.js';
import { tensorDataset, type Dataset } from './dataset.js';
import { imagesFromTensor, type ImageSource } from './images.js';
import type { FileInput } from '../io/webSource.js';

/**
 * Fashion-MNIST's class names, by label (0 = T-shirt/top … 9 = Ankle boot), as its authors name them.
 * @category Data
 */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

/**
 * A split of Fashion-MNIST: `'train'` (files `train-*`) or `'test'` (files `t10k-*`).
 * @category Data
 */
export type FashionMNISTSplit = 'train' | 'test';

/**
 * Options of {@link loadFashionMNIST}.
 * @category Data
 */
export interface FashionMNISTOptions {
  /** Which split (default `'train'`). */
  split?: FashionMNISTSplit;
  /**
   * A directory holding the split's IDX files under their official names, gzipped (`….gz`, tried first) or
   * not (Node). Default: the subset shipped in the package.
   */
  dir?: string;
  /**
   * The split's two files as paths, URLs, Blobs, Responses or bytes; overrides `dir`. In a browser the default
   * is the shipped subset's URLs beside the bundle (see docs/browser.md).
   */
  files?: { images: FileInput; labels: FileInput };
  /**
   * Output side: larger than 28 pads each image, centred (the odd pixel at the bottom and right), with the
   * background value −1, so that sides divide by the U-Net's powers of two (32 for the ADM models).
   */
  padTo?: number;
}

/**
 * A loaded split. `images` is the caller's to dispose (or call {@link FashionMNIST.dispose}); the image source
 * and dataset views read it and own nothing.
 * @category Data
 */
export interface FashionMNIST {
  split: FashionMNISTSplit;
  /** `[N, side, side, 1]` float32, `x / 127.5 − 1` (pixel 0 → −1, 255 → 1); padding is −1. */
  images: tf.Tensor4D;
  /** One label in 0–9 per image. */
  labels: Int32Array;
  /** {@link FASHION_MNIST_CLASSES}. */
  classNames: readonly string[];
  /** The images one by one, for `onTheFlyImages` and the transforms. */
  imageSource(): ImageSource;
  /** Batches of images with labels, for `train`. */
  dataset(): Dataset<tf.Tensor4D>;
  /** Frees `images`. */
  dispose(): void;
}

const SIDE = 28;
const FILES: Record<FashionMNISTSplit, { images: string; labels: string }> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};
/** Where the shipped subset lies, relative to the package root. */
const SHIPPED = ['data', 'fashion-mnist'];

/**
 * Loads a split of Fashion-MNIST as float32 images in [−1, 1] with their labels. By default it reads the
 * subset shipped in the package (10,000 training and 2,000 test images, 1,000 and 200 of each class; see
 * `data/fashion-mnist/README.md`); `dir` reads the full dataset or another copy.
 * @example
 * ```ts
 * const test = await loadFashionMNIST({ split: 'test', padTo: 32 });
 * test.images.shape; // [2000, 32, 32, 1]
 * test.classNames[test.labels[0]]; // 'T-shirt/top', …
 * test.dispose();
 * ```
 * @throws InputError for a bad option. CheckpointError when the directory or a file is missing or a file is
 *   not Fashion-MNIST IDX (wrong magic, truncated, not 28×28 bytes, labels outside 0–9, counts that differ).
 * @category Data
 */
export async function loadFashionMNIST(opts: FashionMNISTOptions = {}): Promise<FashionMNIST> {
  const split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'test')
    throw new InputError(`loadFashionMNIST: split must be 'train' or 'test', got ${String(split)}`);
  const side = opts.padTo ?? SIDE;
  if (!Number.isInteger(side) || side < SIDE)
    throw new InputError(`loadFashionMNIST: padTo must be an integer ≥ ${SIDE}, got ${String(opts.padTo)}`);
  const files = opts.files ?? (opts.dir !== undefined ? await splitFiles(opts.dir, split) : await shippedSplit(split));
  const pair = await readIdxPair(files.images, files.labels, {
    imagesLabel: 'image bytes',
    labelsLabel: 'label bytes',
  });
  const x = checkImages(pair.images, inputLabel(files.images, 'the image bytes'));
  const labels = checkClassLabels(pair.labels, inputLabel(files.labels, 'the label bytes'));
  const n = x.shape[0];
  const off = (side - SIDE) >> 1;
  const out = new Float32Array(n * side * side).fill(-1);
  for (let i = 0; i < n; i++)
    for (let r = 0; r < SIDE; r++) {
      const src = (i * SIDE + r) * SIDE;
      const dst = (i * side + r + off) * side + off;
      for (let c = 0; c < SIDE; c++) out[dst + c] = x.data[src + c] / 127.5 - 1;
    }
  requireBackend('loadFashionMNIST');
  const images = tf.tensor4d(out, [n, side, side, 1]);
  return {
    split,
    images,
    labels,
    classNames: FASHION_MNIST_CLASSES,
    imageSource: () => imagesFromTensor(images, labels),
    dataset: () => tensorDataset(images, labels, FASHION_MNIST_CLASSES.length),
    dispose: () => images.dispose(),
  };
}

/**
 * Options of {@link fashionMNISTMasks}.
 * @category Data
 */
export interface FashionMNISTMaskOptions {
  /** The 8-bit grey level from which a pixel is the garment's (default 32, an eighth of white). */
  threshold?: number;
}

/**
 * Segmentation masks made from Fashion-MNIST itself, for a small dense benchmark: every pixel is
 * background (class 0) where the original 8-bit value is below `threshold`, else `1 + label`, the
 * image's garment class (so 11 classes). They are derived, not drawn by people: a garment's dark
 * parts (a black print, a shadow) count as background, and a pixel's class is the whole image's.
 * Per-pixel heads must recognise the garment from context; one pixel's value only says garment or not.
 * @param data a loaded split (padding, if any, is background).
 * @returns `[N · side · side]` class ids, row-major like the images.
 * @example
 * ```ts
 * const test = await loadFashionMNIST({ split: 'test' });
 * const masks = fashionMNISTMasks(test); // Int32Array, 2000 · 28 · 28 values in 0..10
 * test.dispose();
 * ```
 * @throws InputError for a bad threshold.
 * @category Data
 */
export function fashionMNISTMasks(data: FashionMNIST, opts: FashionMNISTMaskOptions = {}): Int32Array {
  const threshold = opts.threshold ?? 32;
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > 255)
    throw new InputError(
      `fashionMNISTMasks: threshold must be an integer grey level in 1..255, got ${String(threshold)}`,
    );
  const x = data.images.dataSync();
  const per = data.images.shape[1] * data.images.shape[2];
  const masks = new Int32Array(x.length);
  // Back to the 8-bit value exactly (x = v / 127.5 − 1), so the threshold is a grey level, not a float.
  for (let i = 0; i < x.length; i++)
    masks[i] = Math.round((x[i] + 1) * 127.5) >= threshold ? 1 + data.labels[Math.floor(i / per)] : 0;
  return masks;
}

/**
 * The directory of the subset shipped in the package: `data/fashion-mnist` under the nearest folder above
 * this module that holds a `package.json` (the repository from `src/`, the package from `dist/`).
 * @throws CheckpointError when it cannot be found (a browser, or a bundle that left the data behind).
 * @internal exported for tests.
 */
export async function shippedDir(): Promise<string> {
  return packagePath(SHIPPED, 'loadFashionMNIST', 'pass `files` (paths or bytes) or `dir`');
}

/** The shipped subset's two files of a split: paths in Node, URLs beside the bundle in a browser. */
async function shippedSplit(split: FashionMNISTSplit): Promise<{ images: string | URL; labels: string | URL }> {
  const instead = 'pass `files` (paths, URLs, Blobs or bytes) or `dir`';
  const file = (name: string) =>
    shippedFile(`data/fashion-mnist/${name}.gz` as ShippedFile, 'loadFashionMNIST', instead);
  return { images: await file(FILES[split].images), labels: await file(FILES[split].labels) };
}

/** The split's two files in `dir`, gzipped or not. */
async function splitFiles(dir: string, split: FashionMNISTSplit): Promise<{ images: string; labels: string }> {
  if (typeof dir !== 'string') throw new InputError(`loadFashionMNIST: dir must be a path, got ${typeof dir}`);
  const { fs, path } = await nodeFs();
  if (!fs.existsSync(dir))
    throw new CheckpointError(
      `Fashion-MNIST directory ${dir} does not exist; pass the folder that holds its IDX files`,
    );
  const find = (name: string) => {
    for (const f of [name + '.gz', name]) if (fs.existsSync(path.join(dir, f))) return path.join(dir, f);
    throw new CheckpointError(
      `${dir} has neither ${name}.gz nor ${name}, the Fashion-MNIST ${split} file; it should hold the official file names`,
    );
  };
  return { images: find(FILES[split].images), labels: find(FILES[split].labels) };
}

function checkImages(t: IdxTensor, where: string): IdxTensor & { data: Uint8Array } {
  if (t.dtype !== 'uint8' || t.shape.length !== 3 || t.shape[1] !== SIDE || t.shape[2] !== SIDE)
    throw new CheckpointError(
      `${where} holds ${t.dtype} of shape [${t.shape}], not Fashion-MNIST images (uint8 of shape [N, 28, 28])`,
    );
  return t as IdxTensor & { data: Uint8Array };
}

function checkClassLabels(t: IdxTensor, where: string): Int32Array {
  const y = Int32Array.from(t.data as ArrayLike<number>);
  const bad = y.findIndex((v) => v < 0 || v >= FASHION_MNIST_CLASSES.length);
  if (bad >= 0) throw new CheckpointError(`${where}: label ${bad} is ${y[bad]}, outside Fashion-MNIST's classes 0–9`);
  return y;
}
