/**
 * Line charts as PNG: training curves and other series drawn on a white canvas with axes, round tick values, an
 * optional log y axis, moving-average smoothing and a legend. Drawn pixel by pixel with the built-in 5×7 font;
 * no image or plotting library.
 * @module
 */
import { InputError } from '../errors.js';
import { writeBytesAtomic } from './atomicFile.js';
import { drawText, GLYPH_H, setPixel, textWidth, type Canvas } from './font.js';
import { encodePNG } from './png.js';

/**
 * One curve of a {@link lineChartPNG} chart.
 * @category I/O
 */
export interface LineSeries {
  /** Shown in the legend (drawn when there are two series or more) and named in error messages. */
  name: string;
  /** The values, finite (and positive with `logY`). */
  y: ArrayLike<number>;
  /** Where each value sits on the x axis, as long as `y` and finite. Default 1, 2, …, N. */
  x?: ArrayLike<number>;
}

/**
 * Options of {@link lineChartPNG} and {@link writeLineChart}.
 * @category I/O
 */
export interface LineChartOptions {
  /** Image width in pixels, an integer in [100, 10000]. Default 640. */
  width?: number;
  /** Image height in pixels, an integer in [100, 10000]. Default 400. */
  height?: number;
  /** Drawn above the plot. */
  title?: string;
  /** Name of the x axis, under its tick values. */
  xLabel?: string;
  /** Name of the y axis, left of its tick values, reading upwards. */
  yLabel?: string;
  /** A log10 y axis; every value must then be positive. Default false. */
  logY?: boolean;
  /**
   * Moving-average window in points, centred and shortened at the ends; an integer ≥ 1. Above 1 the averages are
   * drawn as the line and the raw values as a faint line behind it. Default 1 (no smoothing).
   */
  smooth?: number;
}

/** A tick on an axis: its value, its text and the pixel column (x axis) or row (y axis) it sits on. */
export interface ChartTick {
  value: number;
  label: string;
  px: number;
}

/** Where things are in a rendered chart (pixels), for checks and overlays. */
export interface LineChartLayout {
  width: number;
  height: number;
  /** The plot area: the frame's top-left pixel and size; axis ends lie on the frame. */
  plot: { x: number; y: number; width: number; height: number };
  /** The x axis: values at the left and right frame columns, and the ticks. */
  xAxis: { min: number; max: number; ticks: ChartTick[] };
  /** The y axis: values at the bottom and top frame rows, the ticks, and whether it is log10. */
  yAxis: { min: number; max: number; ticks: ChartTick[]; log: boolean };
  /** The colour each series is drawn in, in order. */
  colors: (readonly [number, number, number])[];
  /** The legend box, when drawn (two series or more). */
  legend?: { x: number; y: number; width: number; height: number };
}

type RGB = readonly [number, number, number];
const BLACK: RGB = [0, 0, 0];
const GRID: RGB = [225, 225, 225];

/** Matplotlib's "tab10": distinct hues that stay apart for the colour-blind too; more series reuse them. */
const PALETTE: RGB[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
];

/** A quarter of the colour on white: the raw values behind a smoothed line. */
const faint = (c: RGB): RGB => {
  const mix = (v: number) => Math.round(255 - 0.25 * (255 - v));
  return [mix(c[0]), mix(c[1]), mix(c[2])];
};

const MIN_TICKS = 4;
const MAX_TICKS = 6;
/** How far a tick count is from MIN_TICKS…MAX_TICKS (0 inside). */
const tickScore = (n: number): number => (n < MIN_TICKS ? MIN_TICKS - n : n > MAX_TICKS ? n - MAX_TICKS : 0);

/** Kills float noise such as 0.30000000000000004 so labels and comparisons see the round value. */
const clean = (v: number): number => (v === 0 ? 0 : Number(v.toPrecision(12)));

/** Decimal exponent: 2 for 350, -3 for 0.0025. */
const exponent = (v: number): number => Math.floor(Math.log10(Math.abs(v)) + 1e-9);

/** Decimals needed to write multiples of `step` exactly (2.5 needs one, 0.25 two). */
function decimalsOf(step: number): number {
  for (let d = 0; d <= 15; d++) {
    const scaled = step * 10 ** d;
    if (Math.abs(scaled - Math.round(scaled)) <= 1e-9 * scaled) return d;
  }
  return 15;
}

/**
 * A tick value as text: plain digits with the step's decimals for everyday magnitudes, else "1e-5" / "2.5e7" with
 * as many digits as the step needs, so neighbouring ticks never read the same.
 */
function formatValue(v: number, step: number): string {
  const decimals = decimalsOf(step);
  if (v === 0 || (Math.abs(v) >= 1e-4 && Math.abs(v) < 1e6 && decimals <= 6)) return v.toFixed(decimals);
  const mantissaDigits = decimalsOf(step / 10 ** exponent(step)) > 0 ? 2 : 1;
  const digits = Math.min(17, Math.max(1, exponent(v) - exponent(step) + mantissaDigits));
  return Number(v.toPrecision(digits)).toExponential().replace('e+', 'e');
}

/** k·step without float noise (0.30000000000000004 → 0.3), keeping the digits a fine step over a large value needs. */
function snap(k: number, step: number): number {
  const v = k * step;
  return v === 0 ? 0 : Number(v.toPrecision(Math.min(17, Math.max(1, exponent(v) - exponent(step) + 3))));
}

/** The multiples of `step` in [lo, hi]. */
function multiplesIn(lo: number, hi: number, step: number): number[] {
  const out: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(snap(k, step));
  return out;
}

interface AxisTicks {
  min: number;
  max: number;
  values: number[];
  labels: string[];
}

/**
 * Round tick values for a linear axis over [lo, hi] (lo < hi): multiples of 1, 2 or 5 × 10^k (2.5 × 10^k as a
 * last resort), 4–6 of them. Ticks fall inside the range when that works; else the range grows to the
 * enclosing multiples so its ends are ticks.
 * @internal exported for tests.
 */
export function linearTicks(lo: number, hi: number): AxisTicks {
  const mag = 10 ** Math.floor(Math.log10((hi - lo) / 5));
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50].map((m) => m * mag);
  const tries: { min: number; max: number; step: number }[] = [];
  for (const mantissas of [steps, [0.25, 2.5, 25].map((m) => m * mag)]) {
    for (const step of mantissas) tries.push({ min: lo, max: hi, step });
    for (const step of mantissas)
      tries.push({ min: snap(Math.floor(lo / step + 1e-9), step), max: snap(Math.ceil(hi / step - 1e-9), step), step });
  }
  let best: { min: number; max: number; step: number; values: number[] } | undefined;
  for (const t of tries) {
    const values = multiplesIn(t.min, t.max, t.step);
    if (!best || tickScore(values.length) < tickScore(best.values.length)) best = { ...t, values };
    if (tickScore(values.length) === 0) break;
  }
  const { min, max, step, values } = best!;
  return { min, max, values, labels: values.map((v) => formatValue(v, step)) };
}

/**
 * Tick values for a log10 axis over [lo, hi] (0 < lo < hi), 4–6 where the range allows: powers of ten (every m-th
 * for wide ranges), 1-3 or 1-2-5 steps per decade, or for narrow ranges round linear steps. Ticks fall inside the
 * range when that works; else the range grows to enclosing tick values.
 * @internal exported for tests.
 */
export function logTicks(lo: number, hi: number): AxisTicks {
  const [a, b] = [Math.log10(lo), Math.log10(hi)];
  const eps = 1e-9;
  const inRange = (v: number, min: number, max: number) => v >= min * (1 - eps) && v <= max * (1 + eps);
  const grid = (mantissas: number[], min: number, max: number): number[] => {
    const out: number[] = [];
    for (let d = Math.floor(Math.log10(min)) - 1; d <= Math.ceil(Math.log10(max)) + 1; d++)
      for (const m of mantissas) {
        const v = clean(m * 10 ** d);
        if (inRange(v, min, max)) out.push(v);
      }
    return out;
  };
  const linear = linearTicks(lo, hi);
  const linearInside = linear.min === lo && linear.max === hi;
  const tries: { min: number; max: number; values: number[]; labels?: string[] }[] = [];
  for (const grow of [false, true]) {
    const d0 = grow ? Math.floor(a + eps) : Math.ceil(a - eps);
    let d1 = grow ? Math.ceil(b - eps) : Math.floor(b + eps);
    if (d1 >= d0) {
      // Every m-th power of ten: the smallest m that leaves at most MAX_TICKS.
      const m = Math.max(1, Math.ceil((d1 - d0) / (MAX_TICKS - 1)));
      if (grow) d1 = d0 + m * Math.ceil((d1 - d0) / m);
      const values: number[] = [];
      for (let d = d0; d <= d1; d += m) values.push(clean(10 ** d));
      tries.push(grow ? { min: values[0], max: values[values.length - 1], values } : { min: lo, max: hi, values });
    }
    for (const mantissas of [
      [1, 3],
      [1, 2, 5],
    ]) {
      const around = grid(mantissas, lo / 10, hi * 10);
      const min = grow ? around.filter((v) => v <= lo * (1 + eps)).pop()! : lo;
      const max = grow ? around.find((v) => v >= hi * (1 - eps))! : hi;
      tries.push({ min, max, values: grid(mantissas, min, max) });
    }
    // A range grown to multiples of a linear step could reach 0, which a log axis cannot show.
    if (linearInside !== grow && linear.min > 0) tries.push(linear);
  }
  let best = tries[0];
  for (const t of tries) {
    if (tickScore(t.values.length) < tickScore(best.values.length)) best = t;
    if (tickScore(best.values.length) === 0) break;
  }
  return { min: best.min, max: best.max, values: best.values, labels: best.labels ?? best.values.map(logLabel) };
}

/** Short labels for log ticks: plain from 0.001 to 99999, else "1e-5", "3e6". */
function logLabel(v: number): string {
  if (v >= 1e-3 && v < 1e5) return String(clean(v));
  return Number(v.toPrecision(6)).toExponential().replace('e+', 'e');
}

interface Checked {
  name: string;
  x: Float64Array;
  y: Float64Array;
}

/** Copies a number array, naming the first value that is not finite (or not positive on a log axis). */
function finiteValues(values: ArrayLike<number>, what: string, positive: boolean): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new InputError(
        `lineChartPNG: ${what}[${i}] is ${typeof v === 'number' ? v : JSON.stringify(v)}, not a finite number`,
      );
    if (positive && v <= 0) throw new InputError(`lineChartPNG: ${what}[${i}] is ${v}; logY needs every value > 0`);
    out[i] = v;
  }
  return out;
}

const isArrayLike = (v: unknown): v is ArrayLike<number> =>
  v != null && typeof v === 'object' && Number.isInteger((v as ArrayLike<number>).length);

function checkSeries(series: readonly LineSeries[], logY: boolean): Checked[] {
  if (!Array.isArray(series))
    throw new InputError(`lineChartPNG: series must be an array of { name, y, x? }, got ${typeof series}`);
  if (series.length === 0) throw new InputError('lineChartPNG needs at least one series, got an empty list');
  return series.map((s, k) => {
    if (s == null || typeof s !== 'object')
      throw new InputError(`lineChartPNG: series ${k} is not a { name, y } object`);
    if (typeof s.name !== 'string') throw new InputError(`lineChartPNG: series ${k} needs a string name`);
    const what = `series ${k} ("${s.name}")`;
    if (!isArrayLike(s.y)) throw new InputError(`lineChartPNG: ${what} needs y, an array of numbers`);
    if (s.y.length === 0) throw new InputError(`lineChartPNG: ${what} has no points (y is empty)`);
    if (s.x !== undefined && !isArrayLike(s.x))
      throw new InputError(`lineChartPNG: ${what} has an x that is not an array`);
    if (s.x !== undefined && s.x.length !== s.y.length)
      throw new InputError(`lineChartPNG: ${what} has ${s.x.length} x values but ${s.y.length} y values`);
    const y = finiteValues(s.y, `${what} y`, logY);
    const x = s.x === undefined ? Float64Array.from(y, (_, i) => i + 1) : finiteValues(s.x, `${what} x`, false);
    return { name: s.name, x, y };
  });
}

/**
 * Centred moving average over `window` points, the window shortened at the ends so no point is dropped.
 * @internal exported for tests.
 */
export function movingAverage(values: Float64Array, window: number): Float64Array {
  if (window <= 1) return values;
  const before = Math.floor((window - 1) / 2);
  const after = window - 1 - before;
  const prefix = new Float64Array(values.length + 1);
  for (let i = 0; i < values.length; i++) prefix[i + 1] = prefix[i] + values[i];
  return values.map((_, i) => {
    const [from, to] = [Math.max(0, i - before), Math.min(values.length, i + after + 1)];
    return (prefix[to] - prefix[from]) / (to - from);
  });
}

function intOption(v: unknown, fallback: number, lo: number, hi: number, name: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    const range = hi === Infinity ? `≥ ${lo}` : `in [${lo}, ${hi}]`;
    throw new InputError(`lineChartPNG: ${name} must be an integer ${range}, got ${String(v)}`);
  }
  return v;
}

function textOption(v: unknown, name: string): string {
  if (v === undefined) return '';
  if (typeof v !== 'string') throw new InputError(`lineChartPNG: ${name} must be a string, got ${typeof v}`);
  return v;
}

/** [lo, hi] of the values, widened when they are (nearly) all equal so the axis still has a span to divide. */
function extent(arrays: Float64Array[], log: boolean): [number, number] {
  let [lo, hi] = [Infinity, -Infinity];
  for (const a of arrays) for (const v of a) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  if (hi - lo > 1e-9 * Math.max(Math.abs(lo), Math.abs(hi))) return [lo, hi];
  if (log) return [lo / 2, hi * 2];
  const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
  return [lo - pad, hi + pad];
}

/** A 1-px line without antialiasing (Bresenham), so every pixel is exactly the series colour. */
function drawLine(c: Canvas, x0: number, y0: number, x1: number, y1: number, color: RGB): void {
  const [dx, dy] = [Math.abs(x1 - x0), -Math.abs(y1 - y0)];
  const [sx, sy] = [x0 < x1 ? 1 : -1, y0 < y1 ? 1 : -1];
  let err = dx + dy;
  for (;;) {
    setPixel(c, x0, y0, color);
    if (x0 === x1 && y0 === y1) return;
    const e2 = 2 * err;
    if (e2 >= dy) [err, x0] = [err + dy, x0 + sx];
    if (e2 <= dx) [err, y0] = [err + dx, y0 + sy];
  }
}

/** Shortens text to `maxWidth` pixels, marking the cut with "..". */
function fitText(text: string, maxWidth: number, scale: number): string {
  if (textWidth(text, scale) <= maxWidth) return text;
  const chars = [...text];
  while (chars.length > 0 && textWidth(chars.join('') + '..', scale) > maxWidth) chars.pop();
  return chars.join('') + '..';
}

/**
 * Draws the chart into an RGB canvas and says where everything went.
 * @throws InputError as {@link lineChartPNG} does.
 * @internal (exported for tests and for callers who want the raw pixels)
 */
export function renderLineChart(
  series: readonly LineSeries[],
  opts: LineChartOptions = {},
): { canvas: Canvas; layout: LineChartLayout } {
  if (opts == null || typeof opts !== 'object') throw new InputError('lineChartPNG: options must be an object');
  const width = intOption(opts.width, 640, 100, 10000, 'width');
  const height = intOption(opts.height, 400, 100, 10000, 'height');
  const smooth = intOption(opts.smooth, 1, 1, Infinity, 'smooth');
  if (opts.logY !== undefined && typeof opts.logY !== 'boolean')
    throw new InputError(`lineChartPNG: logY must be true or false, got ${String(opts.logY)}`);
  const logY = opts.logY ?? false;
  const [title, xLabel, yLabel] = [
    textOption(opts.title, 'title'),
    textOption(opts.xLabel, 'xLabel'),
    textOption(opts.yLabel, 'yLabel'),
  ];
  const data = checkSeries(series, logY);
  const lines = data.map((d) => movingAverage(d.y, smooth));

  // Large images get 2× text so labels keep their size relative to the plot.
  const s = Math.min(width, height) >= 600 ? 2 : 1;
  const lineH = GLYPH_H * s;
  const margin = 10;
  const gap = 3 * s;
  const tickLen = 4;

  const [xs, ys] = [data.map((d) => d.x), data.map((d) => d.y)];
  const xt = linearTicks(...extent(xs, false));
  const [yMin, yMax] = extent(ys, logY);
  // 3 % of air above and below the curves (in log space on a log axis) so they do not run along the frame.
  const air = logY ? (yMax / yMin) ** 0.03 : 0.03 * (yMax - yMin);
  const yt = logY ? logTicks(yMin / air, yMax * air) : linearTicks(yMin - air, yMax + air);

  const colors = data.map((_, k) => PALETTE[k % PALETTE.length]);
  const legendOn = data.length >= 2;
  const swatch = 14;
  const names = data.map((d) => fitText(d.name, Math.floor(width / 4) - swatch - gap, s));
  const legendW = legendOn ? 2 * gap + swatch + gap + Math.max(...names.map((n) => textWidth(n, s))) : 0;
  const legendH = legendOn ? gap + data.length * (lineH + gap) : 0;

  const titleScale = title && textWidth(title, 2 * s) <= width - 2 * margin ? 2 * s : s;
  const top = margin + (title ? GLYPH_H * titleScale + 2 * gap : 0) + Math.ceil(lineH / 2);
  const left =
    margin + (yLabel ? lineH + 2 * gap : 0) + Math.max(...yt.labels.map((l) => textWidth(l, s))) + gap + tickLen;
  const lastX = xt.labels[xt.labels.length - 1] ?? '';
  const right = width - 1 - margin - (legendOn ? legendW + 2 * gap : Math.ceil(textWidth(lastX, s) / 2));
  const bottom = height - 1 - margin - (xLabel ? lineH + 2 * gap : 0) - lineH - gap - tickLen;
  const plot = { x: left, y: top, width: right - left + 1, height: bottom - top + 1 };
  if (plot.width < 40 || plot.height < 40)
    throw new InputError(
      `lineChartPNG: a ${width}×${height} image leaves a ${plot.width}×${plot.height} px plot after labels and legend; make it larger or the labels shorter`,
    );

  const toX = (v: number) => plot.x + Math.round(((v - xt.min) / (xt.max - xt.min)) * (plot.width - 1));
  const yUnit = (v: number) =>
    logY ? Math.log10(v / yt.min) / Math.log10(yt.max / yt.min) : (v - yt.min) / (yt.max - yt.min);
  const toY = (v: number) => plot.y + plot.height - 1 - Math.round(yUnit(v) * (plot.height - 1));
  const xTicks: ChartTick[] = xt.values.map((value, i) => ({ value, label: xt.labels[i], px: toX(value) }));
  const yTicks: ChartTick[] = yt.values.map((value, i) => ({ value, label: yt.labels[i], px: toY(value) }));

  const canvas: Canvas = { width, height, rgb: new Uint8Array(width * height * 3).fill(255) };
  const fill = (x: number, y: number, w: number, h: number, color: RGB) => {
    for (let yy = y; yy < y + h; yy++) for (let xx = x; xx < x + w; xx++) setPixel(canvas, xx, yy, color);
  };
  const polyline = (xs: Float64Array, ys: Float64Array, color: RGB) => {
    if (xs.length === 1) fill(toX(xs[0]) - 1, toY(ys[0]) - 1, 3, 3, color); // one point: a dot, not a lone pixel
    for (let i = 1; i < xs.length; i++) drawLine(canvas, toX(xs[i - 1]), toY(ys[i - 1]), toX(xs[i]), toY(ys[i]), color);
  };

  for (const t of xTicks) fill(t.px, plot.y, 1, plot.height, GRID);
  for (const t of yTicks) fill(plot.x, t.px, plot.width, 1, GRID);
  fill(plot.x, plot.y, plot.width, 1, BLACK);
  fill(plot.x, plot.y + plot.height - 1, plot.width, 1, BLACK);
  fill(plot.x, plot.y, 1, plot.height, BLACK);
  fill(plot.x + plot.width - 1, plot.y, 1, plot.height, BLACK);
  // Raw values first, all series, so no faint line covers a smoothed one.
  if (smooth > 1) data.forEach((d, k) => polyline(d.x, d.y, faint(colors[k])));
  data.forEach((d, k) => polyline(d.x, lines[k], colors[k]));

  for (const t of xTicks) {
    fill(t.px, plot.y + plot.height, 1, tickLen, BLACK);
    const w = textWidth(t.label, s);
    drawText(
      canvas,
      t.label,
      Math.min(width - w, Math.max(0, t.px - Math.floor(w / 2))),
      bottom + tickLen + gap,
      s,
      BLACK,
    );
  }
  for (const t of yTicks) {
    fill(plot.x - tickLen, t.px, tickLen, 1, BLACK);
    const w = textWidth(t.label, s);
    drawText(canvas, t.label, plot.x - tickLen - gap - w, t.px - Math.floor(lineH / 2), s, BLACK);
  }
  // Centred on the plot, but pulled back inside the image when the text is wider than the plot.
  const centred = (text: string, scale: number) => {
    const w = textWidth(text, scale);
    return Math.max(margin, Math.min(width - margin - w, plot.x + Math.floor((plot.width - w) / 2)));
  };
  if (title) drawText(canvas, title, centred(title, titleScale), margin, titleScale, BLACK);
  if (xLabel) drawText(canvas, xLabel, centred(xLabel, s), bottom + tickLen + gap + lineH + 2 * gap, s, BLACK);
  if (yLabel)
    drawText(
      canvas,
      yLabel,
      margin,
      Math.max(margin, plot.y + Math.floor((plot.height - textWidth(yLabel, s)) / 2)),
      s,
      BLACK,
      true,
    );

  let legend: LineChartLayout['legend'];
  if (legendOn) {
    legend = { x: right + 2 * gap, y: plot.y, width: legendW, height: legendH };
    names.forEach((name, k) => {
      const rowY = legend!.y + gap + k * (lineH + gap);
      fill(legend!.x + gap, rowY + Math.floor(lineH / 2) - 1, swatch, 3, colors[k]);
      drawText(canvas, name, legend!.x + gap + swatch + gap, rowY, s, BLACK);
    });
  }

  return {
    canvas,
    layout: {
      width,
      height,
      plot,
      xAxis: { min: xt.min, max: xt.max, ticks: xTicks },
      yAxis: { min: yt.min, max: yt.max, ticks: yTicks, log: logY },
      colors,
      ...(legend ? { legend } : {}),
    },
  };
}

/**
 * Series as a PNG line chart (bytes): white background, framed plot with round tick values on both axes, one
 * 1-px line per series in its own colour, a legend when there are two series or more. Works in a browser too
 * (the image data are then stored uncompressed).
 * @param series one or more `{ name, y, x? }`; x defaults to 1, 2, …, N.
 * @returns the PNG file's bytes.
 * @throws InputError for no series, a series without points, x and y of different lengths, a value that is NaN
 *   or infinite (or not positive with `logY`), or a bad option.
 *
 * @example
 * ```ts
 * const png = await lineChartPNG(
 *   [{ name: 'train', y: trainLoss }, { name: 'val', x: valSteps, y: valLoss }],
 *   { title: 'L_simple', xLabel: 'step', yLabel: 'loss', logY: true, smooth: 25 },
 * );
 * ```
 * @category I/O
 */
export async function lineChartPNG(series: readonly LineSeries[], opts: LineChartOptions = {}): Promise<Uint8Array> {
  const { canvas } = renderLineChart(series, opts);
  return encodePNG(canvas.rgb, canvas.width, canvas.height);
}

/**
 * Writes {@link lineChartPNG}'s chart to `path` atomically (a crash leaves the old file or none; Node).
 *
 * @example
 * ```ts
 * await writeLineChart('runs/loss.png', [{ name: 'loss', y: losses }], { logY: true, smooth: 50 });
 * ```
 * @category I/O
 */
export async function writeLineChart(
  path: string,
  series: readonly LineSeries[],
  opts: LineChartOptions = {},
): Promise<void> {
  await writeBytesAtomic(path, await lineChartPNG(series, opts));
}
