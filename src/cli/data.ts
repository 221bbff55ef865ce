/**
 * The DATA argument of the commands that read images: an ImageFolder directory, a text file listing
 * image paths, an IDX images file, or `fashion-mnist:train|test` (the shipped subset).
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadFashionMNIST } from '../data/fashionMnist.js';
import { idxImages } from '../data/idxImages.js';
import { imageFiles, imageFolder, type SkippedFile } from '../data/imageFiles.js';
import type { ImageSource } from '../data/images.js';
import { OUTPUT_FLAGS, type FlagSpec } from './args.js';
import { CommandFailure, UsageError } from './io.js';

/**
 * The options of DATA: the IDX labels file of an IDX images file, how many of its images to take, and whether
 * unreadable image files are skipped (with a line each on stderr) rather than fatal.
 */
export const DATA_FLAGS = {
  labels: { kind: 'string' },
  limit: { kind: 'count' },
  'skip-bad': { kind: 'bool' },
} as const satisfies Record<string, FlagSpec>;

/**
 * The flags of the commands that compute features of DATA (`extract`, `sweep`, `cka`, `train`): steps,
 * blocks, output, pooling, batch and seed, the data's options, `--quiet` and `--json`.
 */
export const FEATURE_FLAGS = {
  t: { kind: 'ints' },
  b: { kind: 'ints' },
  output: { kind: 'string', short: 'o' },
  pool: { kind: 'count' },
  batch: { kind: 'count' },
  seed: { kind: 'int' },
  ...DATA_FLAGS,
  ...OUTPUT_FLAGS,
} as const satisfies Record<string, FlagSpec>;

export const DATA_HELP = `  DATA is one of: a folder laid out as torchvision's ImageFolder (one subfolder per class);
  a text file listing image paths, one per line (relative paths are relative to the list's
  folder; empty lines and lines starting with # are skipped); an IDX images file (MNIST-style,
  gzipped or not; --labels gives its labels file); or fashion-mnist:train / fashion-mnist:test,
  the subset shipped in the package. Images are center-cropped and resized to the model's side
  and converted to its channels. A file that is not a readable image stops the run with its name;
  with --skip-bad every file is decoded first and the unreadable ones are left out, one line each on
  stderr (every shard of a sharded run leaves out the same ones).`;

export interface Data {
  source: ImageSource;
  /** One identifier per image, recorded (hashed) so a resume over other images is refused. */
  ids: string[];
  /** What it is, in words. */
  label: string;
  /** One label per image, when the DATA has labels (not a list of files, nor an IDX file without --labels). */
  labels?: Int32Array;
  /** The class names, when the DATA names them (an ImageFolder's subfolders, Fashion-MNIST's classes). */
  classes?: readonly string[];
  /** Frees what the source holds. */
  dispose(): void;
}

const FMNIST = /^fashion-mnist:(train|test)$/;

/** Whether DATA is written as a named dataset (`name:split`, such as fashion-mnist:test) rather than a path. */
export function isNamedDataset(spec: string): boolean {
  return /^[a-z-]+:[a-z]+$/i.test(spec);
}

/** Whether `file` starts like an IDX file of uint8 (or is gzipped with an IDX-like name). */
function looksIdx(file: string): boolean {
  const head = Buffer.alloc(4);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (head[0] === 0 && head[1] === 0 && head[2] === 0x08 && head[3] >= 1 && head[3] <= 4) return true;
  return head[0] === 0x1f && head[1] === 0x8b && /idx|ubyte/i.test(path.basename(file));
}

/** An image source of at most `limit` images (the first ones), with channels brought to the model's. */
function wrap(source: ImageSource, limit: number | undefined, gray: boolean, channels: number): ImageSource {
  const size = limit === undefined ? source.size : Math.min(limit, source.size);
  const toRgb = gray && channels === 3;
  return {
    size,
    get: async (i) => {
      const { image, label } = await source.get(i);
      if (!toRgb) return { image, label };
      const rgb = tf.tile(image, [1, 1, 3]) as tf.Tensor3D;
      image.dispose();
      return { image: rgb, label };
    },
  };
}

/**
 * Opens DATA for a model of `channels` input channels.
 * @throws UsageError for a DATA that is none of the kinds; CommandFailure for one that cannot be read.
 */
export async function openData(
  command: string,
  spec: string,
  opts: { channels: number; labels?: string; limit?: number; skipBad?: boolean; warn?: (line: string) => void },
): Promise<Data> {
  const channels = opts.channels === 3 ? 3 : 1;
  const m = FMNIST.exec(spec);
  if (m) {
    if (opts.labels !== undefined)
      throw new UsageError(`${command}: --labels goes with an IDX images file, not ${spec}`, command);
    const split = m[1] as 'train' | 'test';
    const fm = await loadFashionMNIST({ split });
    const source = wrap(fm.imageSource(), opts.limit, true, channels);
    return {
      source,
      ids: Array.from({ length: source.size }, (_, i) => `${spec}:${i}`),
      label: `Fashion-MNIST ${split} (shipped subset)`,
      labels: fm.labels.slice(0, source.size),
      classes: fm.classNames,
      dispose: () => fm.dispose(),
    };
  }
  if (isNamedDataset(spec) && !fs.existsSync(spec))
    throw new UsageError(
      `${command}: unknown dataset ${spec}; the named datasets are fashion-mnist:train and fashion-mnist:test`,
      command,
    );
  let stat: fs.Stats;
  try {
    stat = fs.statSync(spec);
  } catch {
    throw new CommandFailure(
      `${command}: ${spec} does not exist; DATA is an image folder, a list of image files, an IDX file or fashion-mnist:train|test`,
    );
  }
  const full = path.resolve(spec);
  if (stat.isDirectory()) {
    if (opts.labels !== undefined)
      throw new UsageError(
        `${command}: --labels goes with an IDX images file; a folder's labels are its subfolders`,
        command,
      );
    const folder = await imageFolder(full, { channels, ...scanOptions(command, opts) });
    const source = wrap(folder.source, opts.limit, false, channels);
    return {
      source,
      ids: folder.files.slice(0, source.size).map((f) => path.relative(full, f)),
      label: `image folder ${spec} (${folder.files.length} images${skippedNote(folder.skipped)}, ${folder.classes.length} classes)`,
      labels: folder.labels.slice(0, source.size),
      classes: folder.classes,
      dispose: () => {},
    };
  }
  if (looksIdx(full)) {
    if (opts.labels !== undefined && !fs.existsSync(opts.labels))
      throw new CommandFailure(`${command}: the labels file ${opts.labels} does not exist`);
    const idx = await idxImages(
      { images: full, ...(opts.labels !== undefined ? { labels: path.resolve(opts.labels) } : {}) },
      { channels },
    );
    const source = wrap(idx.source, opts.limit, false, channels);
    return {
      source,
      ids: Array.from({ length: source.size }, (_, i) => `${path.basename(full)}:${i}`),
      label: `IDX file ${spec} (${idx.shape[0]} images of ${idx.shape[1]}×${idx.shape[2]})`,
      ...(opts.labels !== undefined ? { labels: idx.labels.slice(0, source.size) } : {}),
      dispose: () => {},
    };
  }
  if (opts.labels !== undefined)
    throw new UsageError(`${command}: --labels goes with an IDX images file, and ${spec} is not one`, command);
  const text = fs.readFileSync(full, 'utf8');
  if (text.includes('\0'))
    throw new CommandFailure(
      `${command}: ${spec} is neither an IDX file nor a text list of image paths; DATA is an image folder, a list, an IDX file or fashion-mnist:train|test`,
    );
  const files = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => path.resolve(path.dirname(full), l));
  if (files.length === 0)
    throw new CommandFailure(`${command}: the list ${spec} names no image files; write one image path per line`);
  const taken = opts.limit === undefined ? files : files.slice(0, opts.limit);
  const list = await imageFiles(taken, { channels, ...scanOptions(command, opts) });
  return {
    source: list.source,
    ids: list.files.map((f) => path.relative(path.dirname(full), f)),
    label: `list ${spec} (${files.length} images${skippedNote(list.skipped)})`,
    dispose: () => {},
  };
}

/** imageFiles' options for --skip-bad: decode every file first, report each one left out. */
function scanOptions(
  command: string,
  opts: { skipBad?: boolean; warn?: (line: string) => void },
): { onBadFile: 'error' | 'skip'; onSkip?: (s: SkippedFile) => void } {
  if (!opts.skipBad) return { onBadFile: 'error' };
  return { onBadFile: 'skip', onSkip: (s) => opts.warn?.(`diffssl: ${command}: left out: ${s.error.message}\n`) };
}

const skippedNote = (skipped: readonly SkippedFile[]) =>
  skipped.length ? `, ${skipped.length} unreadable skipped` : '';
