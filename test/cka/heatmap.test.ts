import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { ckaHeatmapPNG, colormap, renderHeatmap, writeCKAHeatmap } from '../../src/cka/heatmap';
import { adler32, encodePNG, zlibStored } from '../../src/io/png';
import { glyph } from '../../src/io/font';
import { decodePNG } from '../decodePNG';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cka-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('CKA heatmap PNG', () => {
  const matrix = [
    [1, 0.8, 0.25],
    [0.8, 1, 0.5],
    [0.25, 0.5, 1],
  ];
  const labels = ['b=4', 'b=10', 'b=16'];

  it('is a valid PNG: signature, IHDR, CRCs, inflatable data; cells and colour-bar ends have the colour-map colours', async () => {
    const png = await ckaHeatmapPNG(matrix, { rowLabels: labels, title: 'CKA t=90', xLabel: 'block', yLabel: 'block' });
    const img = decodePNG(png);
    const { layout } = renderHeatmap(matrix, {
      rowLabels: labels,
      title: 'CKA t=90',
      xLabel: 'block',
      yLabel: 'block',
    });
    expect(img.chunks).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect([img.width, img.height]).toEqual([layout.width, layout.height]);
    expect(img.header.slice(8)).toEqual([8, 2, 0, 0, 0]);
    expect([layout.min, layout.max]).toEqual([0, 1]);
    // Viridis ends.
    expect(colormap(0)).toEqual([68, 1, 84]);
    expect(colormap(1)).toEqual([253, 231, 37]);
    const { bar, matrix: m } = layout;
    expect(img.pixel(bar.x, bar.y)).toEqual(colormap(1));
    expect(img.pixel(bar.x + bar.width - 1, bar.y + bar.height - 1)).toEqual(colormap(0));
    expect(img.pixel(bar.x, bar.y + Math.round((bar.height - 1) / 2))).toEqual(
      colormap(1 - Math.round((bar.height - 1) / 2) / (bar.height - 1)),
    );
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++)
        expect(img.pixel(m.x + j * m.cell + 1, m.y + i * m.cell + 1), `cell ${i},${j}`).toEqual(colormap(matrix[i][j]));
    expect(layout.ticks.map((t) => Math.round(t * 1e9) / 1e9)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    // Labels are drawn: dark pixels left of row 0, below column 0, and above the matrix (title).
    const dark = (x0: number, y0: number, x1: number, y1: number) => {
      let count = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (img.pixel(x, y).every((c) => c < 60)) count++;
      return count;
    };
    expect(dark(0, m.y, m.x, m.y + m.cell)).toBeGreaterThan(10);
    expect(dark(m.x, m.y + 3 * m.cell, m.x + m.cell, img.height)).toBeGreaterThan(10);
    expect(dark(m.x, 0, m.x + 3 * m.cell, m.y)).toBeGreaterThan(10);
    expect(dark(bar.x + bar.width, bar.y - 8, img.width, bar.y + bar.height + 8)).toBeGreaterThan(10);
  });

  it('uses the data range when it leaves [0, 1], and honours min/max, cell size and annotations', async () => {
    const neg = [
      [1, -0.2],
      [-0.2, 1],
    ];
    const { layout } = renderHeatmap(neg);
    expect(layout.min).toBe(-0.2);
    const img = decodePNG(await ckaHeatmapPNG(neg, { cell: 20, annotate: false, min: -1, max: 1 }));
    const l2 = renderHeatmap(neg, { cell: 20, annotate: false, min: -1, max: 1 }).layout;
    expect(l2.matrix.cell).toBe(20);
    expect(img.pixel(l2.matrix.x + 20 + 10, l2.matrix.y + 10)).toEqual(colormap(0.4));
    expect(img.pixel(l2.bar.x, l2.bar.y + l2.bar.height - 1)).toEqual(colormap(0));
  });

  it('stored (uncompressed) deflate blocks decode to the same image', async () => {
    const rgb = new Uint8Array(300 * 250 * 3).map((_, i) => (i * 7) % 251);
    const a = decodePNG(await encodePNG(rgb, 300, 250, true));
    const b = decodePNG(await encodePNG(rgb, 300, 250, false)); // 225,250 bytes: four stored blocks
    expect(Buffer.from(b.raw).equals(Buffer.from(a.raw))).toBe(true);
    expect(a.pixel(299, 249)).toEqual([...rgb.subarray(rgb.length - 3)]);
    expect(zlib.inflateSync(zlibStored(new Uint8Array(0))).length).toBe(0);
    expect(adler32(new TextEncoder().encode('Wikipedia'))).toBe(0x11e60398);
  });

  it('writes the file atomically and leaves no temporary file', async () => {
    const file = path.join(tmp, 'cka.png');
    await writeCKAHeatmap(file, matrix, { rowLabels: labels });
    expect(
      Buffer.from(fs.readFileSync(file)).equals(Buffer.from(await ckaHeatmapPNG(matrix, { rowLabels: labels }))),
    ).toBe(true);
    expect(fs.readdirSync(tmp)).toEqual(['cka.png']);
    await expect(writeCKAHeatmap(path.join(tmp, 'missing-dir', 'x.png'), matrix)).rejects.toThrow();
    expect(fs.readdirSync(tmp)).toEqual(['cka.png']);
  });

  it('rejects a ragged or non-finite matrix, wrong label counts and bad options with an InputError', async () => {
    await expect(ckaHeatmapPNG([[1, 2], [3]])).rejects.toThrow(/row 1 has 1 entries, row 0 has 2/);
    await expect(ckaHeatmapPNG([[1, NaN]])).rejects.toThrow(/matrix\[0\]\[1\] is NaN/);
    await expect(ckaHeatmapPNG([])).rejects.toThrow(InputError);
    await expect(ckaHeatmapPNG(matrix, { rowLabels: ['a'] })).rejects.toThrow(/rowLabels must be 3 strings/);
    await expect(ckaHeatmapPNG(matrix, { min: 1, max: 0 })).rejects.toThrow(/finite min < max/);
    await expect(ckaHeatmapPNG(matrix, { cell: 2.5 })).rejects.toThrow(/cell must be an integer/);
  });

  it('a rectangular matrix gets its own column labels; unknown characters draw as "?"', async () => {
    const img = decodePNG(
      await ckaHeatmapPNG([[0.1, 0.2, 0.3]], { rowLabels: ['unet b=24'], colLabels: ['vit 1', 'vit 2', 'vit 3'] }),
    );
    expect(img.width).toBeGreaterThan(0);
    expect([...glyph('€')]).toEqual([...glyph('?')]);
    expect([...glyph('−')]).toEqual([...glyph('-')]);
  });
});
