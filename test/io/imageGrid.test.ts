import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { samplesGridPNG, writeSamplesGrid } from '../../src/io/imageGrid';
import { decodePNG } from '../decodePNG';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-grid-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Image k of [N, 2, 3, C] holds, at (y, x, c), a value that tells k, y, x and c apart.
function images(n: number, c: number): Float32Array {
  const data = new Float32Array(n * 2 * 3 * c);
  for (let i = 0; i < data.length; i++) data[i] = -1 + ((i * 7) % 40) / 20;
  return data;
}
const byte = (v: number) => Math.min(255, Math.max(0, Math.floor((v + 1) * 127.5)));

describe('samplesGridPNG', () => {
  it('lays out 5 RGB images 2 per row with padding 1: size, pixels at known positions, black padding', async () => {
    const data = images(5, 3);
    const png = decodePNG(await samplesGridPNG({ shape: [5, 2, 3, 3], data }, { columns: 2, padding: 1 }));
    // 2 columns of width 3 and 3 rows of height 2, each with 1 pixel of padding, plus the outer border.
    expect([png.width, png.height]).toEqual([2 * 4 + 1, 3 * 3 + 1]);
    for (let k = 0; k < 5; k++)
      for (let y = 0; y < 2; y++)
        for (let x = 0; x < 3; x++) {
          const [gx, gy] = [1 + (k % 2) * 4 + x, 1 + Math.floor(k / 2) * 3 + y];
          const src = ((k * 2 + y) * 3 + x) * 3;
          expect(png.pixel(gx, gy), `image ${k} (${x}, ${y})`).toEqual([0, 1, 2].map((c) => byte(data[src + c])));
        }
    for (const [x, y] of [
      [0, 0],
      [4, 1],
      [1, 3],
      [5, 7], // the empty sixth cell
      [8, 9],
    ])
      expect(png.pixel(x, y), `padding (${x}, ${y})`).toEqual([0, 0, 0]);
  });

  it('replicates grey, maps -1 → 0, 1 → 255, clamps values outside [-1, 1] and NaN, reads a tensor without disposing it', async () => {
    const x = tf.tensor4d([-1, 1, 0, 3, -2, NaN, 0.999, -0.999], [2, 2, 2, 1]);
    const png = decodePNG(await samplesGridPNG(x, { padding: 0 }));
    expect(x.isDisposed).toBe(false);
    x.dispose();
    // ceil(sqrt(2)) = 2 columns by default.
    expect([png.width, png.height]).toEqual([4, 2]);
    const grey = (v: number) => [v, v, v];
    expect(png.pixel(0, 0)).toEqual(grey(0));
    expect(png.pixel(1, 0)).toEqual(grey(255));
    expect(png.pixel(0, 1)).toEqual(grey(127));
    expect(png.pixel(1, 1)).toEqual(grey(255));
    expect(png.pixel(2, 0)).toEqual(grey(0));
    expect(png.pixel(3, 0)).toEqual(grey(0));
    expect(png.pixel(2, 1)).toEqual(grey(254));
    expect(png.pixel(3, 1)).toEqual(grey(0));
  });

  it('writeSamplesGrid writes the same bytes atomically', async () => {
    const img = { shape: [3, 2, 3, 1], data: images(3, 1) };
    const file = path.join(tmp, 'grid.png');
    await writeSamplesGrid(file, img, { columns: 3 });
    expect(Buffer.from(fs.readFileSync(file)).equals(Buffer.from(await samplesGridPNG(img, { columns: 3 })))).toBe(
      true,
    );
    expect(fs.readdirSync(tmp)).toEqual(['grid.png']);
  });

  it('rejects bad shapes and options with InputError', async () => {
    const data = images(1, 3);
    await expect(samplesGridPNG({ shape: [2, 3, 3], data })).rejects.toThrow(/NHWC/);
    await expect(samplesGridPNG({ shape: [1, 2, 3, 2], data: images(1, 2) })).rejects.toThrow(/1 \(grey\) or 3/);
    await expect(samplesGridPNG({ shape: [2, 2, 3, 3], data })).rejects.toThrow(InputError);
    await expect(samplesGridPNG({ shape: [1, 2, 3, 3], data }, { columns: 0 })).rejects.toThrow(/columns/);
    await expect(samplesGridPNG({ shape: [1, 2, 3, 3], data }, { padding: -1 })).rejects.toThrow(/padding/);
  });
});
