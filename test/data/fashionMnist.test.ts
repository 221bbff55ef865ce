import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, InputError } from '../../src/errors';
import { FASHION_MNIST_CLASSES, fashionMNISTMasks, loadFashionMNIST, shippedDir } from '../../src/data/fashionMnist';
import { encodeIdx } from '../../src/io/idx';
import { setBackend } from '../helpers';

const SHIPPED = path.resolve(__dirname, '../../data/fashion-mnist');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-fmnist-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(() => setBackend('cpu'));

/** The "Shipped files" table of the subset's README: file → examples and sha256 of the .gz and of its IDX. */
function readmeTable(): Map<string, { count: number; bytes: number; sha256: string; idxSha256: string }> {
  const readme = fs.readFileSync(path.join(SHIPPED, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Shipped files'));
  const rows = new Map();
  for (const m of section.matchAll(
    /^\| `([^`]+)` \| ([\d,]+) \| ([\d,]+) \| `([0-9a-f]{64})` \| `([0-9a-f]{64})` \|$/gm,
  ))
    rows.set(m[1], { count: +m[2].replace(/,/g, ''), bytes: +m[3].replace(/,/g, ''), sha256: m[4], idxSha256: m[5] });
  return rows;
}

/** A directory holding a synthetic split in the official names (gzipped or not). */
function writeSplit(dir: string, images: Uint8Array, n: number, labels: Uint8Array, gzip: boolean): void {
  fs.mkdirSync(dir, { recursive: true });
  const put = (name: string, bytes: Uint8Array) =>
    fs.writeFileSync(path.join(dir, gzip ? name + '.gz' : name), gzip ? zlib.gzipSync(bytes) : bytes);
  put('t10k-images-idx3-ubyte', encodeIdx({ shape: [n, 28, 28], data: images }));
  put('t10k-labels-idx1-ubyte', encodeIdx({ shape: [labels.length], data: labels }));
}

const sha256 = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

describe('shipped Fashion-MNIST subset', () => {
  it('its files match the hashes, sizes and counts its README states', () => {
    const table = readmeTable();
    expect([...table.keys()].sort()).toEqual([
      't10k-images-idx3-ubyte.gz',
      't10k-labels-idx1-ubyte.gz',
      'train-images-idx3-ubyte.gz',
      'train-labels-idx1-ubyte.gz',
    ]);
    for (const [file, row] of table) {
      const gz = fs.readFileSync(path.join(SHIPPED, file));
      expect(gz.length, file).toBe(row.bytes);
      expect(sha256(gz), file).toBe(row.sha256);
      expect(sha256(zlib.gunzipSync(gz)), file).toBe(row.idxSha256);
      expect(row.count, file).toBe(file.startsWith('train') ? 10_000 : 2_000);
    }
  });

  it('is found from the module without a dir', async () => {
    expect(await shippedDir()).toBe(SHIPPED);
  });

  it.each([
    ['train', 10_000, 1_000],
    ['test', 2_000, 200],
  ] as const)('%s: %i images in [-1, 1], %i of every class, and no tensor left behind', async (split, n, perClass) => {
    const before = tf.memory().numTensors;
    const d = await loadFashionMNIST({ split });
    expect(d.split).toBe(split);
    expect(d.images.shape).toEqual([n, 28, 28, 1]);
    expect(d.images.dtype).toBe('float32');
    expect(d.labels).toBeInstanceOf(Int32Array);
    expect(d.labels.length).toBe(n);
    expect(d.classNames).toEqual(FASHION_MNIST_CLASSES);
    const counts = new Array(10).fill(0);
    for (const y of d.labels) counts[y]++;
    expect(counts).toEqual(new Array(10).fill(perClass));
    const x = d.images.dataSync();
    let lo = Infinity,
      hi = -Infinity;
    for (const v of x) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(lo).toBe(-1);
    expect(hi).toBe(1);
    // Every value is a pixel byte mapped by x / 127.5 − 1.
    for (let i = 0; i < x.length; i += 997)
      expect(Number.isInteger(Math.round((x[i] + 1) * 127.5 * 1e3) / 1e3)).toBe(true);
    d.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('loadFashionMNIST', () => {
  const n = 3;
  const pixels = Uint8Array.from({ length: n * 28 * 28 }, (_, i) => (i * 37) & 0xff);
  const labels = Uint8Array.of(9, 0, 4);

  it('reads a directory of gzipped or plain files and bytes, mapping pixel p to p / 127.5 − 1', async () => {
    for (const gzip of [true, false]) {
      const dir = path.join(tmp, gzip ? 'gz' : 'plain');
      writeSplit(dir, pixels, n, labels, gzip);
      const d = await loadFashionMNIST({ split: 'test', dir });
      expect(Array.from(d.labels)).toEqual([9, 0, 4]);
      const x = d.images.dataSync();
      pixels.forEach((p, i) => expect(x[i]).toBeCloseTo(p / 127.5 - 1, 6));
      d.dispose();
    }
    const bytes = {
      images: encodeIdx({ shape: [n, 28, 28], data: pixels }),
      labels: encodeIdx({ shape: [n], data: labels }),
    };
    const d = await loadFashionMNIST({ split: 'test', files: bytes });
    expect(d.images.shape).toEqual([3, 28, 28, 1]);
    d.dispose();
  });

  it('pads to a larger side with the background −1, centred', async () => {
    const dir = path.join(tmp, 'gz');
    const d = await loadFashionMNIST({ split: 'test', dir, padTo: 32 });
    expect(d.images.shape).toEqual([3, 32, 32, 1]);
    const img = d.images.arraySync() as number[][][][];
    for (const r of [0, 1, 30, 31]) expect(img[1][r].every(([v]) => v === -1)).toBe(true);
    for (let r = 0; r < 32; r++)
      expect([img[1][r][0][0], img[1][r][1][0], img[1][r][30][0], img[1][r][31][0]]).toEqual([-1, -1, -1, -1]);
    for (let r = 0; r < 28; r++)
      for (let c = 0; c < 28; c++)
        expect(img[1][r + 2][c + 2][0]).toBeCloseTo(pixels[(28 + r) * 28 + c] / 127.5 - 1, 6);
    d.dispose();
    // An odd margin puts the extra pixel at the bottom and right.
    const odd = await loadFashionMNIST({ split: 'test', dir, padTo: 29 });
    const o = odd.images.arraySync() as number[][][][];
    expect(o[0][0][0][0]).toBeCloseTo(pixels[0] / 127.5 - 1, 6);
    expect(o[0][28].every(([v]) => v === -1)).toBe(true);
    odd.dispose();
  });

  it('fashionMNISTMasks: background below the grey level, else 1 + the image label; padding is background', async () => {
    const dir = path.join(tmp, 'gz');
    const d = await loadFashionMNIST({ split: 'test', dir });
    const masks = fashionMNISTMasks(d);
    expect(masks.length).toBe(n * 28 * 28);
    // by hand from the 8-bit pixels, every value, at the default level 32 and at 200
    for (const level of [32, 200]) {
      const m = level === 32 ? masks : fashionMNISTMasks(d, { threshold: level });
      const bad = Array.from(m).findIndex((v, i) => v !== (pixels[i] >= level ? 1 + labels[Math.floor(i / 784)] : 0));
      expect(bad, `level ${level}`).toBe(-1);
    }
    expect(() => fashionMNISTMasks(d, { threshold: 0 })).toThrow(InputError);
    expect(() => fashionMNISTMasks(d, { threshold: 3.5 })).toThrow(/grey level/);
    d.dispose();
    const padded = await loadFashionMNIST({ split: 'test', dir, padTo: 32 });
    const pm = fashionMNISTMasks(padded);
    expect(pm.length).toBe(n * 32 * 32);
    expect(Array.from(pm.subarray(0, 64)).every((v) => v === 0)).toBe(true); // the top two rows
    expect(pm[(2 * 32 + 2) * 1]).toBe(pixels[0] >= 32 ? 1 + labels[0] : 0);
    padded.dispose();
  });

  it('plugs into the ImageSource and Dataset protocols', async () => {
    const d = await loadFashionMNIST({ split: 'test', dir: path.join(tmp, 'gz') });
    const before = tf.memory().numTensors;
    const source = d.imageSource();
    expect(source.size).toBe(3);
    const { image, label } = await source.get(2);
    expect(image.shape).toEqual([28, 28, 1]);
    expect(label).toBe(4);
    image.dispose();
    const data = d.dataset();
    const batch = await data.batch([2, 0], { training: true, seed: 1, epoch: 0, step: 0 });
    expect(batch.input.shape).toEqual([2, 28, 28, 1]);
    expect(Array.from(batch.labels)).toEqual([4, 9]);
    tf.dispose(batch.input);
    expect(tf.memory().numTensors).toBe(before);
    d.dispose();
  });

  it('rejects bad options, missing directories and files, and files that are not Fashion-MNIST, leaking nothing', async () => {
    const before = tf.memory().numTensors;
    const err = async (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: Error) => e,
      );
    expect(await err(loadFashionMNIST({ split: 'val' as never }))).toBeInstanceOf(InputError);
    expect(await err(loadFashionMNIST({ padTo: 27 }))).toBeInstanceOf(InputError);
    expect(await err(loadFashionMNIST({ padTo: 30.5 }))).toBeInstanceOf(InputError);
    const nowhere = path.join(tmp, 'nowhere');
    const missingDir = await err(loadFashionMNIST({ dir: nowhere }));
    expect(missingDir).toBeInstanceOf(CheckpointError);
    expect(missingDir!.message).toContain(nowhere);
    // The test split's files are there, the training split's are not.
    const missingFile = await err(loadFashionMNIST({ split: 'train', dir: path.join(tmp, 'gz') }));
    expect(missingFile).toBeInstanceOf(CheckpointError);
    expect(missingFile!.message).toMatch(/neither train-images-idx3-ubyte\.gz nor train-images-idx3-ubyte/);

    const cases: [string, () => void, RegExp][] = [
      [
        'count',
        () => writeSplit(path.join(tmp, 'count'), pixels, n, Uint8Array.of(1, 2), true),
        /holds 3 images but .* holds 2 labels/,
      ],
      [
        'label',
        () => writeSplit(path.join(tmp, 'label'), pixels, n, Uint8Array.of(1, 10, 2), true),
        /label 1 is 10, outside/,
      ],
      [
        'side',
        () => {
          const dir = path.join(tmp, 'side');
          writeSplit(dir, pixels, n, labels, true);
          fs.writeFileSync(
            path.join(dir, 't10k-images-idx3-ubyte.gz'),
            zlib.gzipSync(encodeIdx({ shape: [n, 28 * 28], data: pixels })),
          );
        },
        /not Fashion-MNIST images \(uint8 of shape \[N, 28, 28\]\)/,
      ],
      [
        'truncated',
        () => {
          const dir = path.join(tmp, 'truncated');
          writeSplit(dir, pixels, n, labels, false);
          const f = path.join(dir, 't10k-images-idx3-ubyte');
          fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 100));
        },
        /is not a readable IDX file: it is truncated/,
      ],
    ];
    for (const [name, make, message] of cases) {
      make();
      const e = await err(loadFashionMNIST({ split: 'test', dir: path.join(tmp, name) }));
      expect(e, name).toBeInstanceOf(CheckpointError);
      expect(e!.message, name).toMatch(message);
      expect(e!.message, name).toContain(path.join(tmp, name));
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
