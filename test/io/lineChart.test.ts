import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import {
  lineChartPNG,
  linearTicks,
  logTicks,
  movingAverage,
  renderLineChart,
  writeLineChart,
  type LineChartLayout,
  type LineChartOptions,
  type LineSeries,
} from '../../src/io/lineChart';
import { decodePNG, type Decoded } from '../decodePNG';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-linechart-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

type RGB = readonly [number, number, number];
const same = (a: readonly number[], b: RGB) => a[0] === b[0] && a[1] === b[1] && a[2] === b[2];

/** Pixels of `color` in the box [x0, x1) × [y0, y1). */
function count(img: Decoded, color: RGB, x0: number, y0: number, x1: number, y1: number): number {
  let n = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (same(img.pixel(x, y), color)) n++;
  return n;
}

/** Where a data point lands, by the axis ends the layout reports (the renderer's own mapping). */
function toPixel(layout: LineChartLayout, x: number, y: number): [number, number] {
  const { plot, xAxis, yAxis } = layout;
  const u = (x - xAxis.min) / (xAxis.max - xAxis.min);
  const v = yAxis.log
    ? Math.log10(y / yAxis.min) / Math.log10(yAxis.max / yAxis.min)
    : (y - yAxis.min) / (yAxis.max - yAxis.min);
  return [plot.x + Math.round(u * (plot.width - 1)), plot.y + plot.height - 1 - Math.round(v * (plot.height - 1))];
}

async function chart(series: LineSeries[], opts: LineChartOptions = {}) {
  const { layout } = renderLineChart(series, opts);
  return { img: decodePNG(await lineChartPNG(series, opts)), layout };
}

describe('lineChartPNG', () => {
  it('is a valid 640×400 RGB PNG by default and honours width and height', async () => {
    const { img, layout } = await chart([{ name: 'loss', y: [3, 2, 1.5, 1.2] }]);
    expect(img.chunks).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect([img.width, img.height, layout.width, layout.height]).toEqual([640, 400, 640, 400]);
    expect(img.header.slice(8)).toEqual([8, 2, 0, 0, 0]);
    expect(img.pixel(0, 0)).toEqual([255, 255, 255]);
    const small = decodePNG(await lineChartPNG([{ name: 'loss', y: [3, 2] }], { width: 300, height: 200 }));
    expect([small.width, small.height]).toEqual([300, 200]);
  });

  it('draws a rising line from bottom-left to top-right of the plot, through its points, with a black frame', async () => {
    const y = Array.from({ length: 11 }, (_, i) => i);
    const { img, layout } = await chart([{ name: 'acc', y }], { title: 'Acc', xLabel: 'epoch', yLabel: 'accuracy' });
    const { plot, colors } = layout;
    const color = colors[0];
    const [midX, midY] = [plot.x + (plot.width >> 1), plot.y + (plot.height >> 1)];
    const [right, bottom] = [plot.x + plot.width, plot.y + plot.height];
    expect(count(img, color, plot.x, midY, midX, bottom)).toBeGreaterThan(50); // bottom-left
    expect(count(img, color, midX, plot.y, right, midY)).toBeGreaterThan(50); // top-right
    expect(count(img, color, plot.x, plot.y, midX - 10, midY - 10)).toBe(0); // top-left
    expect(count(img, color, midX + 10, midY + 10, right, bottom)).toBe(0); // bottom-right
    // x defaults to 1..N: point i sits at x = i + 1.
    for (let i = 0; i < y.length; i++)
      expect(img.pixel(...toPixel(layout, i + 1, y[i])), `point ${i}`).toEqual([...color]);
    expect(img.pixel(plot.x, plot.y)).toEqual([0, 0, 0]);
    expect(img.pixel(right - 1, bottom - 1)).toEqual([0, 0, 0]);
    // Title above the plot, axis names left of and below it: dark pixels there.
    expect(count(img, [0, 0, 0], plot.x, 0, right, plot.y - 5)).toBeGreaterThan(10);
    expect(count(img, [0, 0, 0], 0, plot.y, 20, bottom)).toBeGreaterThan(10);
    expect(count(img, [0, 0, 0], plot.x, img.height - 20, right, img.height)).toBeGreaterThan(10);
  });

  it('puts 4–6 round ticks on each axis, at the pixels of their values, with tick marks', async () => {
    const { img, layout } = await chart([{ name: 'loss', x: [0, 250, 500, 1000], y: [2.31, 1.1, 0.72, 0.4] }]);
    for (const axis of [layout.xAxis, layout.yAxis]) {
      expect(axis.ticks.length).toBeGreaterThanOrEqual(4);
      expect(axis.ticks.length).toBeLessThanOrEqual(6);
    }
    expect(layout.xAxis.ticks.map((t) => t.label)).toEqual(['0', '200', '400', '600', '800', '1000']);
    expect(layout.yAxis.ticks.map((t) => t.label)).toEqual(['0.5', '1.0', '1.5', '2.0']);
    for (const t of layout.yAxis.ticks) {
      expect(t.px).toBe(toPixel(layout, 0, t.value)[1]);
      expect(img.pixel(layout.plot.x - 2, t.px)).toEqual([0, 0, 0]);
    }
    for (const t of layout.xAxis.ticks)
      expect(img.pixel(t.px, layout.plot.y + layout.plot.height + 1)).toEqual([0, 0, 0]);
  });

  it('logY puts 1, 10 and 100 equally far apart and draws a geometric series as a straight line', async () => {
    const { img, layout } = await chart([{ name: 'loss', x: [1, 2, 3], y: [100, 10, 1] }], { logY: true });
    expect(layout.yAxis.log).toBe(true);
    const row = (v: number) => layout.yAxis.ticks.find((t) => t.value === v)!.px;
    for (const v of [1, 10, 100]) expect(layout.yAxis.ticks.map((t) => t.value)).toContain(v);
    expect(Math.abs(row(1) - row(10) - (row(10) - row(100)))).toBeLessThanOrEqual(1);
    expect(row(1) - row(10)).toBeGreaterThan(50);
    const color = layout.colors[0];
    expect(img.pixel(...toPixel(layout, 2, 10))).toEqual([...color]);
    expect(toPixel(layout, 2, 10)[1]).toBe(row(10));
    // Halfway between x = 1 and 2 the line is halfway between the rows of 100 and 10 (√1000 on a log axis).
    const x = toPixel(layout, 1.5, 1)[0];
    const hits = Array.from({ length: img.height }, (_, y) => y).filter((y) => same(img.pixel(x, y), color));
    expect(Math.abs(hits[0] - (row(100) + row(10)) / 2)).toBeLessThanOrEqual(2);
    // Log ticks are powers of ten or 1-2-5 / 1-3 steps within a decade.
    expect(logTicks(1, 1e6).values).toEqual([1, 100, 1e4, 1e6]);
    expect(logTicks(1, 1000).values).toEqual([1, 10, 100, 1000]);
    expect(logTicks(1, 10).values).toEqual([1, 2, 5, 10]);
    expect(logTicks(0.8, 120).values).toEqual([1, 3, 10, 30, 100]);
  });

  it('tick rules hold over many ranges: 4–6 ticks, multiples of 1, 2, 2.5 or 5 × 10^k, covering the data', () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let i = 0; i < 2000; i++) {
      const lo = (rnd() - 0.5) * 10 ** Math.floor(rnd() * 10 - 5);
      const hi = lo + (0.01 + rnd()) * 10 ** Math.floor(rnd() * 10 - 5);
      const t = linearTicks(lo, hi);
      const at = `[${lo}, ${hi}] → ${t.labels.join(' ')}`;
      expect(t.values.length, at).toBeGreaterThanOrEqual(4);
      expect(t.values.length, at).toBeLessThanOrEqual(6);
      expect(t.min <= lo && t.max >= hi, at).toBe(true);
      const step = t.values[1] - t.values[0];
      const round = (m: number) => Math.abs(step / (m * 10 ** Math.round(Math.log10(step / m))) - 1) < 1e-5;
      expect([1, 2, 2.5, 5].some(round), at).toBe(true);
      expect(new Set(t.labels).size, at).toBe(t.labels.length);
      const a = rnd() * 10 - 5;
      const l = logTicks(10 ** a, 10 ** (a + 0.05 + rnd() * 8));
      expect(l.values.length, `log ${a}`).toBeGreaterThanOrEqual(4);
      expect(l.values.length, `log ${a}`).toBeLessThanOrEqual(6);
      expect(l.min, `log ${a}`).toBeGreaterThan(0);
    }
  });

  it('two series get two palette colours and a legend with a swatch of each; one series gets no legend', async () => {
    const series = [
      { name: 'train', y: [3, 2, 1.5, 1.2, 1.1] },
      { name: 'val', y: [3.2, 2.4, 2, 1.9, 1.9] },
    ];
    const { img, layout } = await chart(series);
    expect(layout.colors).toHaveLength(2);
    expect(layout.colors[0]).not.toEqual(layout.colors[1]);
    const { plot, legend } = layout;
    for (const c of layout.colors)
      expect(count(img, c, plot.x, plot.y, plot.x + plot.width, plot.y + plot.height)).toBeGreaterThan(50);
    expect(legend).toBeDefined();
    expect(legend!.x).toBeGreaterThan(plot.x + plot.width);
    for (const c of layout.colors)
      expect(count(img, c, legend!.x, legend!.y, img.width, legend!.y + legend!.height)).toBeGreaterThan(10);
    expect(count(img, [0, 0, 0], legend!.x, legend!.y, img.width, legend!.y + legend!.height)).toBeGreaterThan(20);

    const one = await chart([series[0]]);
    expect(one.layout.legend).toBeUndefined();
    expect(count(one.img, layout.colors[1], 0, 0, one.img.width, one.img.height)).toBe(0);
  });

  it('smooth draws the moving average as the line and the raw values faintly behind it', async () => {
    expect([...movingAverage(Float64Array.of(1, 2, 3, 4, 5), 3)]).toEqual([1.5, 2, 3, 4, 4.5]);
    expect([...movingAverage(Float64Array.of(1, 2, 3, 4), 2)]).toEqual([1.5, 2.5, 3.5, 4]);
    const y = Array.from({ length: 60 }, (_, i) => 1 + (i % 2 === 0 ? 0.5 : -0.5) + i / 30);
    const raw = await chart([{ name: 'noisy', y }]);
    const smoothed = await chart([{ name: 'noisy', y }], { smooth: 5 });
    const color = raw.layout.colors[0];
    const faint = color.map((v) => Math.round(255 - 0.25 * (255 - v))) as unknown as RGB;
    const all = (img: Decoded, c: RGB) => count(img, c, 0, 0, img.width, img.height);
    expect(all(raw.img, faint)).toBe(0);
    expect(all(smoothed.img, faint)).toBeGreaterThan(100);
    // The zigzag spans the plot's height 60 times; its average is nearly straight, so far fewer pixels.
    expect(all(smoothed.img, color)).toBeLessThan(all(raw.img, color) / 3);
    const avg = movingAverage(Float64Array.from(y), 5);
    expect(smoothed.img.pixel(...toPixel(smoothed.layout, 30, avg[29]))).toEqual([...color]);
  });

  it('draws a single point and a constant series', async () => {
    const dot = await chart([{ name: 'one', y: [5] }]);
    expect(dot.img.pixel(...toPixel(dot.layout, 1, 5))).toEqual([...dot.layout.colors[0]]);
    const flat = await chart([{ name: 'flat', y: [0.5, 0.5, 0.5] }]);
    expect(flat.layout.yAxis.min).toBeLessThan(0.5);
    expect(flat.layout.yAxis.max).toBeGreaterThan(0.5);
    const flatLog = await chart([{ name: 'flat', y: Float32Array.of(2, 2) }], { logY: true });
    expect(flatLog.img.pixel(...toPixel(flatLog.layout, 1.5, 2))).toEqual([...flatLog.layout.colors[0]]);
  });

  it('rejects bad input with an InputError that names the problem', async () => {
    const ok = [{ name: 'a', y: [1, 2] }];
    const bad: [unknown, unknown, RegExp][] = [
      [[], {}, /at least one series, got an empty list/],
      ['loss', {}, /series must be an array/],
      [[{ name: 'a', y: [] }], {}, /series 0 \("a"\) has no points/],
      [
        [
          { name: 'a', y: [1] },
          { name: 'b', x: [1, 2], y: [1, 2, 3] },
        ],
        {},
        /series 1 \("b"\) has 2 x values but 3 y values/,
      ],
      [[{ name: 'a', y: [1, NaN, 2] }], {}, /series 0 \("a"\) y\[1\] is NaN/],
      [
        [
          { name: 'a', y: [1] },
          { name: 'b', y: [1, 2, Infinity] },
        ],
        {},
        /series 1 \("b"\) y\[2\] is Infinity/,
      ],
      [[{ name: 'a', x: [0, -Infinity], y: [1, 2] }], {}, /series 0 \("a"\) x\[1\] is -Infinity/],
      [[{ name: 'a', y: [1, 0.1, 0] }], { logY: true }, /y\[2\] is 0; logY needs every value > 0/],
      [[{ name: 'a', y: [-1] }], { logY: true }, /y\[0\] is -1; logY/],
      [[{ y: [1] }], {}, /series 0 needs a string name/],
      [[{ name: 'a' }], {}, /series 0 \("a"\) needs y/],
      [ok, { width: 99 }, /width must be an integer in \[100, 10000\], got 99/],
      [ok, { width: 640.5 }, /width must be an integer/],
      [ok, { height: 0 }, /height must be an integer in \[100, 10000\], got 0/],
      [ok, { smooth: 0 }, /smooth must be an integer ≥ 1, got 0/],
      [ok, { logY: 'yes' }, /logY must be true or false/],
      [ok, { title: 3 }, /title must be a string/],
      [ok, { width: 100, height: 100, yLabel: 'a long axis name', title: 'T' }, /leaves a .* px plot/],
    ];
    for (const [series, opts, message] of bad) {
      const call = () => renderLineChart(series as LineSeries[], opts as LineChartOptions);
      expect(call, String(message)).toThrow(InputError);
      expect(call, String(message)).toThrow(message);
      await expect(lineChartPNG(series as LineSeries[], opts as LineChartOptions)).rejects.toThrow(InputError);
    }
  });

  it('writeLineChart writes the same PNG atomically and leaves no temporary file', async () => {
    const series = [{ name: 'loss', y: [2, 1, 0.5] }];
    const file = path.join(tmp, 'loss.png');
    await writeLineChart(file, series, { title: 'loss', logY: true });
    const bytes = fs.readFileSync(file);
    expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(bytes.equals(Buffer.from(await lineChartPNG(series, { title: 'loss', logY: true })))).toBe(true);
    expect(decodePNG(new Uint8Array(bytes)).width).toBe(640);
    expect(fs.readdirSync(tmp)).toEqual(['loss.png']);
    // Overwrites in place; a failed write (missing directory, bad input) leaves the old file alone.
    await writeLineChart(file, series, { width: 200, height: 150 });
    expect(decodePNG(new Uint8Array(fs.readFileSync(file))).width).toBe(200);
    await expect(writeLineChart(path.join(tmp, 'missing', 'x.png'), series)).rejects.toThrow();
    await expect(writeLineChart(file, [])).rejects.toThrow(InputError);
    await expect(writeLineChart('', series)).rejects.toThrow(InputError);
    expect(fs.readdirSync(tmp)).toEqual(['loss.png']);
    expect(decodePNG(new Uint8Array(fs.readFileSync(file))).width).toBe(200);
  });
});
