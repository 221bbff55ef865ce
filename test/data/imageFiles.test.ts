import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, DiffSSLError, InputError } from '../../src/errors';
import { idxImages } from '../../src/data/idxImages';
import { IMAGE_EXTENSIONS, imageFiles, imageFolder, loadImage, type SkippedFile } from '../../src/data/imageFiles';
import { loadBatch } from '../../src/data/images';
import { onTheFlyImages } from '../../src/data/onTheFly';
import { centerCrop } from '../../src/data/transforms';
import { encodeIdx } from '../../src/io/idx';
import { setSharpImport } from '../../src/io/imageDecode';
import { setBackend } from '../helpers';
import { gradient, handBMP, handPNM, pattern, put, sharpEncode } from '../imageFiles';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-images-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(() => setBackend('cpu'));
afterEach(() => setSharpImport());

const at = (...p: string[]) => path.join(tmp, ...p);
const noSharp = () => setSharpImport(() => Promise.reject(new Error("Cannot find package 'sharp'")));
const toUnit = (px: ArrayLike<number>) => Array.from(px, (v) => Math.fround(v / 127.5 - 1));
/** PIL's `convert('L')`: ITU-R 601-2 luma in 16-bit fixed point. */
const pilLuma = (r: number, g: number, b: number) => (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;

/** Expects `f` to reject with `type` whose message contains every string of `names`, leaving no tensor behind. */
async function rejects(f: () => Promise<unknown>, type: Function, ...names: string[]): Promise<Error> {
  const before = tf.memory().numTensors;
  const e = await f().then(
    () => undefined,
    (x: Error) => x,
  );
  expect(e, `expected a ${type.name}`).toBeInstanceOf(type);
  for (const n of names) expect(e!.message).toContain(n);
  expect(tf.memory().numTensors).toBe(before);
  return e!;
}

describe('loadImage', () => {
  it('PNG of any size: [H, W, C] with x / 127.5 − 1, exactly; an image already at `size` passes unchanged', async () => {
    const before = tf.memory().numTensors;
    const [w, h] = [37, 50];
    const rgb = pattern(w, h, 3);
    const file = put(at('odd.png'), await sharpEncode(rgb, w, h, 3, 'png'));
    const whole = await loadImage(file);
    expect(whole.shape).toEqual([h, w, 3]);
    expect(Array.from(whole.dataSync())).toEqual(toUnit(rgb));
    // Short side 37 = size: no resize, rows ⌊(50 − 37) / 2⌋ = 6 … 42 kept.
    const cropped = await loadImage(file, { size: 37 });
    expect(cropped.shape).toEqual([37, 37, 3]);
    expect(Array.from(cropped.dataSync())).toEqual(toUnit(rgb.subarray(6 * w * 3, (6 + 37) * w * 3)));
    const square = pattern(16, 16, 3, 2);
    const same = await loadImage(await sharpEncode(square, 16, 16, 3, 'png'), { size: 16 });
    expect(Array.from(same.dataSync())).toEqual(toUnit(square));
    tf.dispose([whole, cropped, same]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('size: box halving then centre crop, the transform of centerCrop', async () => {
    // Each pixel of a 9×9 image repeated 2×2: halving (short side 18 ≥ 2·9) gives the 9×9 image back.
    const small = pattern(9, 9, 3, 3);
    const big = new Uint8Array(18 * 18 * 3);
    for (let y = 0; y < 18; y++)
      for (let x = 0; x < 18; x++)
        big.set(small.subarray(((y >> 1) * 9 + (x >> 1)) * 3, ((y >> 1) * 9 + (x >> 1)) * 3 + 3), (y * 18 + x) * 3);
    const x = await loadImage(await sharpEncode(big, 18, 18, 3, 'png'), { size: 9 });
    expect(Array.from(x.dataSync())).toEqual(toUnit(small));
    // A resize (40×48 → halve to 20×24 → short side 16 → crop) is centerCrop's, whatever it does.
    const bytes = await sharpEncode(pattern(40, 48, 3), 40, 48, 3, 'png');
    const [full, y] = [await loadImage(bytes), await loadImage(bytes, { size: 16 })];
    const want = centerCrop(full, 16);
    expect(y.shape).toEqual([16, 16, 3]);
    expect(Array.from(y.dataSync())).toEqual(Array.from(want.dataSync()));
    tf.dispose([x, full, y, want]);
  });

  it('channels: RGB → gray by PIL’s luma, gray → RGB replicated, alpha dropped', async () => {
    const [w, h] = [11, 7];
    const rgb = pattern(w, h, 3);
    const gray = await loadImage(await sharpEncode(rgb, w, h, 3, 'png'), { channels: 1 });
    expect(gray.shape).toEqual([h, w, 1]);
    const g = gray.dataSync();
    for (let i = 0; i < w * h; i++) {
      const [r, gg, b] = rgb.subarray(3 * i, 3 * i + 3);
      expect(g[i]).toBe(Math.fround(pilLuma(r, gg, b) / 127.5 - 1));
      // …which is the float formula R·0.299 + G·0.587 + B·0.114 rounded to a level.
      expect(Math.abs((g[i] + 1) * 127.5 - (r * 299 + gg * 587 + b * 114) / 1000)).toBeLessThanOrEqual(0.5 + 1e-4);
    }
    const levels = pattern(w, h, 1, 4);
    const replicated = await loadImage(await sharpEncode(levels, w, h, 1, 'png'), { channels: 3 });
    expect(Array.from(replicated.dataSync())).toEqual(toUnit([...levels].flatMap((v) => [v, v, v])));
    const sameGray = await loadImage(await sharpEncode(levels, w, h, 1, 'png'), { channels: 1 });
    expect(Array.from(sameGray.dataSync())).toEqual(toUnit(levels));
    // RGBA with any alpha: the RGB values as they are (PIL's convert('RGB') drops alpha, no compositing).
    const rgba = pattern(w, h, 4);
    const noAlpha = await loadImage(await sharpEncode(rgba, w, h, 4, 'png'));
    expect(Array.from(noAlpha.dataSync())).toEqual(toUnit([...rgba].filter((_, i) => i % 4 !== 3)));
    const la = await loadImage(await sharpEncode(pattern(w, h, 2), w, h, 2, 'png'), { channels: 1 });
    expect(Array.from(la.dataSync())).toEqual(toUnit([...pattern(w, h, 2)].filter((_, i) => i % 2 === 0)));
    tf.dispose([gray, replicated, sameGray, noAlpha, la]);
  });

  it('JPEG (RGB and gray), BMP and PPM: shapes, range, values near the pixels written', async () => {
    const [w, h] = [37, 50];
    for (const c of [1, 3] as const) {
      const px = gradient(w, h, c);
      for (const channels of [1, 3] as const) {
        const x = await loadImage(put(at(`grad${c}.jpg`), await sharpEncode(px, w, h, c, 'jpeg')), { channels });
        expect(x.shape).toEqual([h, w, channels]);
        const v = x.dataSync();
        expect(Math.min(...v)).toBeGreaterThanOrEqual(-1);
        expect(Math.max(...v)).toBeLessThanOrEqual(1);
        if (channels === c) {
          const err = toUnit(px).reduce((s, u, i) => s + Math.abs(u - v[i]), 0) / v.length;
          expect(err, `mean error of a quality-95 JPEG, ${c} → ${channels}`).toBeLessThan(0.02);
        }
        x.dispose();
      }
    }
    const rgb = pattern(7, 5, 3);
    const bmp = await loadImage(handBMP(7, 5, { rgb }));
    const ppm = await loadImage(handPNM(rgb, 7, 5, 3));
    expect(Array.from(bmp.dataSync())).toEqual(toUnit(rgb));
    expect(Array.from(ppm.dataSync())).toEqual(toUnit(rgb));
    tf.dispose([bmp, ppm]);
  });

  it('bad input: typed errors naming the file, no tensor left', async () => {
    const jpeg = await sharpEncode(gradient(40, 30, 3), 40, 30, 3, 'jpeg');
    const cases: [string, string | Uint8Array][] = [
      ['text.png', 'I am not a picture'],
      ['cut.jpg', jpeg.subarray(0, Math.floor(jpeg.length * 0.6))],
      ['empty.png', ''],
    ];
    for (const [name, bytes] of cases) {
      const file = put(at('bad', name), bytes);
      await rejects(() => loadImage(file, { size: 8 }), CheckpointError, file);
    }
    await rejects(() => loadImage(at('bad', 'missing.png')), CheckpointError, 'missing.png', 'cannot read');
    await rejects(() => loadImage(at('odd.png'), { size: 0 }), InputError, 'size');
    await rejects(() => loadImage(at('odd.png'), { channels: 2 as 1 }), InputError, 'channels');
    await rejects(() => loadImage(42 as unknown as string), InputError, 'must be a path, a URL, a Blob');
  });

  it('without sharp: PNG loads the same, JPEG says `npm install sharp`', async () => {
    const png = await sharpEncode(pattern(9, 6, 3), 9, 6, 3, 'png');
    const a = await loadImage(png, { channels: 1 });
    noSharp();
    const b = await loadImage(png, { channels: 1 });
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([a, b]);
    const e = await rejects(() => loadImage(at('grad3.jpg')), DiffSSLError, 'grad3.jpg', 'npm install sharp');
    expect(e).not.toBeInstanceOf(CheckpointError);
  });
});

/** An ImageFolder tree: classes out of order, nested folders, mixed-case extensions and files to ignore. */
async function makeFolder(root: string): Promise<void> {
  const png = (seed: number, c: 1 | 3 | 4 = 3) => sharpEncode(pattern(10 + seed, 12, c, seed), 10 + seed, 12, c, 'png');
  put(path.join(root, 'dog', 'b.png'), await png(1));
  put(path.join(root, 'dog', 'a.JPG'), await sharpEncode(gradient(12, 10, 3), 12, 10, 3, 'jpeg'));
  put(path.join(root, 'dog', 'notes.txt'), 'not an image');
  put(path.join(root, 'dog', 'anim.gif'), 'GIF89a… not in torchvision’s extensions');
  put(path.join(root, 'dog', 'sub', 'c.png'), await png(2, 1));
  // Folders sort as path strings (Python's sorted(os.walk(…))): 'sub' < 'sub-x' < 'sub/deep', as '-' < '/'.
  put(path.join(root, 'dog', 'sub-x', 'd.png'), await png(3, 4));
  put(path.join(root, 'dog', 'sub', 'deep', 'e.png'), await png(5));
  put(path.join(root, 'Zebra', 'z.PNG'), await png(4));
  put(path.join(root, 'cat', 'c.bmp'), handBMP(3, 2, { rgb: pattern(3, 2, 3) }));
  put(path.join(root, 'cat', 'a.ppm'), handPNM(pattern(4, 4, 3), 4, 4, 3));
  put(path.join(root, 'README.md'), 'files at the top are not classes');
}

describe('imageFolder and imageFiles', () => {
  let root: string;
  beforeAll(async () => {
    root = at('folder');
    await makeFolder(root);
  });

  it('imageFolder: classes sorted by code point, files as torchvision lists them, labels by class', async () => {
    const before = tf.memory().numTensors;
    const { source, classes, files, labels, skipped } = await imageFolder(root);
    expect(classes).toEqual(['Zebra', 'cat', 'dog']);
    expect(files.map((f) => path.relative(root, f))).toEqual([
      path.join('Zebra', 'z.PNG'),
      path.join('cat', 'a.ppm'),
      path.join('cat', 'c.bmp'),
      path.join('dog', 'a.JPG'),
      path.join('dog', 'b.png'),
      path.join('dog', 'sub', 'c.png'),
      path.join('dog', 'sub-x', 'd.png'),
      path.join('dog', 'sub', 'deep', 'e.png'),
    ]);
    expect([...labels]).toEqual([0, 1, 1, 2, 2, 2, 2, 2]);
    expect(skipped).toEqual([]);
    expect(source.size).toBe(8);
    const shapes: number[][] = [];
    for (let i = 0; i < source.size; i++) {
      const { image, label } = await source.get(i);
      expect(label).toBe(labels[i]);
      shapes.push(image.shape);
      const v = image.dataSync();
      expect(Math.min(...v) >= -1 && Math.max(...v) <= 1).toBe(true);
      image.dispose();
    }
    expect(shapes).toEqual([
      [12, 14, 3],
      [4, 4, 3],
      [2, 3, 3],
      [10, 12, 3],
      [12, 11, 3],
      [12, 12, 3],
      [12, 13, 3],
      [12, 15, 3],
    ]);
    const gray = await imageFolder(root, { channels: 1, extensions: ['.png', '.gif'], allowEmpty: true });
    expect(gray.files.filter((f) => f.endsWith('.gif'))).toHaveLength(1); // included when asked for
    const { image } = await gray.source.get(0);
    expect(image.shape).toEqual([12, 14, 1]);
    image.dispose();
    await expect(gray.source.get(1)).rejects.toThrow(/anim\.gif/); // not really a GIF
    await expect(source.get(8)).rejects.toThrow(InputError);
    expect(tf.memory().numTensors).toBe(before);
    expect(IMAGE_EXTENSIONS).toContain('.webp');
  });

  it('sources plug into the transforms: loadBatch and onTheFlyImages crop (and flip when training) to the size', async () => {
    const before = tf.memory().numTensors;
    const { source } = await imageFolder(root);
    const idx = [0, 3, 5, 6];
    const train = await loadBatch(source, idx, [1, 2, 3, 4], { size: 8, augment: true });
    const evalBatch = await loadBatch(source, idx, [1, 2, 3, 4], { size: 8, augment: false });
    expect(train.x0.shape).toEqual([4, 8, 8, 3]);
    expect([...train.labels]).toEqual([0, 2, 2, 2]);
    // The evaluation batch is loadImage's centre crop of each file.
    const first = await loadImage((await imageFolder(root)).files[0], { size: 8 });
    expect(Array.from(evalBatch.x0.dataSync().slice(0, 8 * 8 * 3))).toEqual(Array.from(first.dataSync()));
    const data = onTheFlyImages(source, { size: 8, t: [10, 20] });
    const batch = await data.batch(idx, { training: true, seed: 7, epoch: 0, step: 0 });
    expect((batch.input as tf.Tensor).shape).toEqual([4, 8, 8, 3]);
    expect((batch.options!.noise as tf.Tensor[]).length).toBe(2);
    tf.dispose([train.x0, evalBatch.x0, first, batch.input as tf.Tensor, ...(batch.options!.noise as tf.Tensor[])]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('imageFiles: a list in its order, labels optional (0) or checked', async () => {
    const list = [path.join(root, 'dog', 'b.png'), path.join(root, 'cat', 'c.bmp')];
    const plain = await imageFiles(list);
    expect(plain.files).toEqual(list);
    expect([...plain.labels]).toEqual([0, 0]);
    const { source, labels } = await imageFiles(list, { labels: [3, 1], channels: 1 });
    expect([...labels]).toEqual([3, 1]);
    const { image, label } = await source.get(1);
    expect([image.shape, label]).toEqual([[2, 3, 1], 1]);
    image.dispose();
    await rejects(() => imageFiles(list, { labels: [1] }), InputError, 'labels');
    await rejects(() => imageFiles(list, { labels: [1, -2] }), InputError, 'labels');
    await rejects(() => imageFiles([]), InputError, 'non-empty');
    await rejects(() => imageFiles(list, { onBadFile: 'ignore' as 'skip' }), InputError, 'onBadFile');
    await rejects(() => imageFiles([...list, at('nope.png')]), CheckpointError, 'nope.png');
  });

  it('folder errors: missing, empty, no class folders, classes without images; each names the place', async () => {
    await rejects(() => imageFolder(at('no-such-folder')), CheckpointError, 'no-such-folder');
    fs.mkdirSync(at('empty'));
    await rejects(() => imageFolder(at('empty')), CheckpointError, 'empty', 'no subfolders');
    put(at('flat', 'a.png'), await sharpEncode(pattern(4, 4, 3), 4, 4, 3, 'png'));
    await rejects(() => imageFolder(at('flat')), CheckpointError, 'no subfolders');
    put(at('textonly', 'one', 'notes.txt'), 'x');
    put(at('textonly', 'two', 'more.md'), 'x');
    await rejects(() => imageFolder(at('textonly')), CheckpointError, 'one, two', '.jpg');
    await rejects(() => imageFolder(at('textonly'), { allowEmpty: true }), CheckpointError, 'holds no image files');
    put(at('partly', 'one', 'a.png'), await sharpEncode(pattern(4, 4, 3), 4, 4, 3, 'png'));
    fs.mkdirSync(at('partly', 'two'));
    await rejects(() => imageFolder(at('partly')), CheckpointError, 'class folder two');
    const ok = await imageFolder(at('partly'), { allowEmpty: true });
    expect([ok.classes, ok.files.length]).toEqual([['one', 'two'], 1]);
  });

  it('symbolic links: linked class folders and subfolders are followed, a link back up (a cycle) is not', async () => {
    const dir = at('links');
    put(path.join(dir, 'a', '1.png'), await sharpEncode(pattern(3, 3, 3), 3, 3, 3, 'png'));
    put(at('links-outside', 'x.png'), await sharpEncode(pattern(2, 2, 3), 2, 2, 3, 'png'));
    fs.symlinkSync(at('links-outside'), path.join(dir, 'a', 'alias'));
    fs.symlinkSync(path.join(dir, 'a'), path.join(dir, 'a', 'loop'));
    fs.symlinkSync(path.join(dir, 'a'), path.join(dir, 'b'));
    const { classes, files, labels } = await imageFolder(dir);
    expect(classes).toEqual(['a', 'b']);
    expect(files.map((f) => path.relative(dir, f))).toEqual(
      ['a/1.png', 'a/alias/x.png', 'b/1.png', 'b/alias/x.png'].map((f) => path.join(...f.split('/'))),
    );
    expect([...labels]).toEqual([0, 0, 1, 1]);
  });

  it("bad files: 'error' names the file when it is loaded; 'skip' leaves it out at scan time with stable indices", async () => {
    const dir = at('mixed');
    const good = (seed: number) => sharpEncode(pattern(6, 5, 3, seed), 6, 5, 3, 'png');
    const jpeg = await sharpEncode(gradient(30, 20, 3), 30, 20, 3, 'jpeg');
    put(path.join(dir, 'a', '1.png'), await good(1));
    put(path.join(dir, 'a', '2.png'), 'text in a .png');
    put(path.join(dir, 'a', '3.jpg'), jpeg.subarray(0, jpeg.length >> 1));
    put(path.join(dir, 'b', '4.png'), await good(4));
    put(path.join(dir, 'b', '5.jpeg'), jpeg);
    const before = tf.memory().numTensors;

    const strict = await imageFolder(dir);
    expect(strict.source.size).toBe(5);
    await rejects(async () => strict.source.get(1), CheckpointError, path.join(dir, 'a', '2.png'));
    await rejects(async () => strict.source.get(2), CheckpointError, path.join(dir, 'a', '3.jpg'));
    await rejects(
      () => loadBatch(strict.source, [0, 1], [0, 0], { size: 4, augment: false }),
      CheckpointError,
      '2.png',
    );

    const seen: SkippedFile[] = [];
    const lenient = await imageFolder(dir, { onBadFile: 'skip', onSkip: (s) => seen.push(s), concurrency: 2 });
    expect(lenient.files.map((f) => path.basename(f))).toEqual(['1.png', '4.png', '5.jpeg']);
    expect([...lenient.labels]).toEqual([0, 1, 1]);
    expect(lenient.skipped.map((s) => [path.basename(s.file), s.index])).toEqual([
      ['2.png', 1],
      ['3.jpg', 2],
    ]);
    expect(seen).toEqual(lenient.skipped);
    for (const s of lenient.skipped) {
      expect(s.error).toBeInstanceOf(CheckpointError);
      expect(s.error.message).toContain(s.file);
    }
    for (let i = 0; i < lenient.source.size; i++) {
      const { image, label } = await lenient.source.get(i);
      expect(label).toBe(lenient.labels[i]);
      image.dispose();
    }
    const batch = await loadBatch(lenient.source, [0, 1, 2], [0, 0, 0], { size: 4, augment: true });
    batch.x0.dispose();

    // A list: missing files are skipped too, labels follow their files.
    const list = [path.join(dir, 'a', '2.png'), at('gone.png'), path.join(dir, 'b', '4.png')];
    const files = await imageFiles(list, { labels: [5, 6, 7], onBadFile: 'skip' });
    expect([files.files, [...files.labels]]).toEqual([[list[2]], [7]]);
    expect(files.skipped.map((s) => s.index)).toEqual([0, 1]);
    expect(files.skipped[1].error.message).toContain('gone.png');
    await rejects(() => imageFiles(list.slice(0, 2), { onBadFile: 'skip' }), CheckpointError, 'none of its 2 files');
    expect(tf.memory().numTensors).toBe(before);
  });

  it("without sharp: a folder of JPEGs fails at once, in 'skip' mode too, saying `npm install sharp`", async () => {
    noSharp();
    for (const onBadFile of ['error', 'skip'] as const) {
      const e = await rejects(() => imageFolder(root, { onBadFile }), DiffSSLError, 'a.JPG', 'npm install sharp');
      expect(e).not.toBeInstanceOf(CheckpointError);
    }
    const pngOnly = await imageFolder(root, { extensions: ['.png', '.bmp', '.ppm'] });
    expect(pngOnly.files).toHaveLength(7);
    const { image } = await pngOnly.source.get(0);
    image.dispose();
  });
});

describe('idxImages', () => {
  it('uint8 [N, H, W] and [N, H, W, 3] files with or without labels, paths or bytes', async () => {
    const before = tf.memory().numTensors;
    const gray = pattern(5, 4, 3); // 3 images of 4×5
    const images = put(at('idx', 'images-idx3-ubyte'), encodeIdx({ shape: [3, 4, 5], data: gray }));
    const labels = put(at('idx', 'labels-idx1-ubyte'), encodeIdx({ shape: [3], data: Uint8Array.of(2, 0, 9) }));
    const a = await idxImages({ images, labels });
    expect([a.shape, [...a.labels], a.source.size]).toEqual([[3, 4, 5, 1], [2, 0, 9], 3]);
    const { image, label } = await a.source.get(1);
    expect([image.shape, label]).toEqual([[4, 5, 1], 0]);
    expect(Array.from(image.dataSync())).toEqual(toUnit(gray.subarray(20, 40)));
    image.dispose();
    const rgb = await idxImages({ images: fs.readFileSync(images) }, { channels: 3 });
    expect([...rgb.labels]).toEqual([0, 0, 0]);
    const x = await rgb.source.get(2);
    expect(x.image.shape).toEqual([4, 5, 3]);
    expect(Array.from(x.image.dataSync())).toEqual(toUnit([...gray.subarray(40, 60)].flatMap((v) => [v, v, v])));
    x.image.dispose();
    const colour = pattern(3, 2, 3); // 2 images of 1×3 RGB
    const c = await idxImages({ images: encodeIdx({ shape: [2, 1, 3, 3], data: colour }) }, { channels: 1 });
    const y = await c.source.get(0);
    expect(Array.from(y.image.dataSync())).toEqual(
      toUnit([0, 1, 2].map((p) => pilLuma(colour[3 * p], colour[3 * p + 1], colour[3 * p + 2]))),
    );
    y.image.dispose();
    // It plugs into the transforms like any source.
    const batch = await loadBatch(a.source, [0, 2], [1, 2], { size: 4, augment: true });
    expect(batch.x0.shape).toEqual([2, 4, 4, 1]);
    batch.x0.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('errors name the file: not IDX, not uint8 images, a count mismatch, negative labels', async () => {
    const notIdx = put(at('idx', 'text-idx3-ubyte'), 'plain text');
    await rejects(() => idxImages({ images: notIdx }), CheckpointError, notIdx);
    const floats = put(at('idx', 'float-idx3-ubyte'), encodeIdx({ shape: [1, 2, 2], data: new Float32Array(4) }));
    await rejects(() => idxImages({ images: floats }), CheckpointError, floats, 'uint8');
    const images = at('idx', 'images-idx3-ubyte');
    const two = put(at('idx', 'two-labels'), encodeIdx({ shape: [2], data: Uint8Array.of(1, 2) }));
    await rejects(() => idxImages({ images, labels: two }), CheckpointError, 'two-labels');
    const neg = put(at('idx', 'neg-labels'), encodeIdx({ shape: [3], data: Int8Array.of(1, -1, 2) }));
    await rejects(() => idxImages({ images, labels: neg }), CheckpointError, 'neg-labels', 'non-negative');
    await rejects(() => idxImages({ images: at('idx', 'missing') }), CheckpointError, 'missing');
    await rejects(() => idxImages({ images }, { channels: 4 as 3 }), InputError, 'channels');
  });
});
