/**
 * CKA matrices as PNG heatmaps: cells coloured by value (viridis), labelled rows and columns, optional title and
 * axis names, and a colour bar with ticks. Drawn pixel by pixel with the built-in 5×7 font; no image library.
 * @module
 */
import { InputError } from '../errors.js';
import { drawText, GLYPH_H, setPixel, textWidth, type Canvas } from '../io/font.js';
import { checkMatrix, resolveLabels } from './json.js';
import { encodePNG } from '../io/png.js';
import { writeBytesAtomic } from '../io/atomicFile.js';

/**
 * Options of {@link ckaHeatmapPNG}.
 * @category CKA
 */
export interface HeatmapOptions {
  /** One per row, drawn left of the matrix. Default "0", "1", …. */
  rowLabels?: readonly string[];
  /** One per column, drawn below it reading upwards. Default: the row labels for a square matrix. */
  colLabels?: readonly string[];
  /** Drawn above the matrix. */
  title?: string;
  /** Name of the column axis, under the column labels. */
  xLabel?: string;
  /** Name of the row axis, left of the row labels, reading upwards. */
  yLabel?: string;
  /** Value at the bottom of the colour scale. Default min(0, smallest value). */
  min?: number;
  /** Value at the top. Default max(1, largest value). */
  max?: number;
  /** Cell side in pixels (4–200). Default: about 480 px for the whole matrix, 6 to 48 per cell. */
  cell?: number;
  /** Write each value (2 decimals) in its cell. Default: when cells are at least 32 px. */
  annotate?: boolean;
  /** Font pixel size in screen pixels (1–8). Default 2 for cells of 18 px or more, else 1. */
  textScale?: number;
}

/** Where things are in the image (pixels), for checks and for overlays. */
export interface HeatmapLayout {
  width: number;
  height: number;
  /** Top-left of cell (0, 0), the cell side, and the matrix size. */
  matrix: { x: number; y: number; cell: number; rows: number; cols: number };
  /** The colour bar: its top row is `max`, its bottom row `min`. */
  bar: { x: number; y: number; width: number; height: number };
  min: number;
  max: number;
  /** Tick values on the colour bar. */
  ticks: number[];
}

type RGB = readonly [number, number, number];
const WHITE: RGB = [255, 255, 255];
const BLACK: RGB = [0, 0, 0];

/** Viridis sampled at 0, 1/8, …, 1; linear in between. */
const VIRIDIS: RGB[] = [
  [68, 1, 84],
  [72, 40, 120],
  [62, 73, 137],
  [49, 104, 142],
  [38, 130, 142],
  [31, 158, 137],
  [53, 183, 121],
  [110, 206, 88],
  [253, 231, 37],
];

/** The heatmap colour of a position in [0, 1] (clamped). */
export function colormap(u: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(u) ? u : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]];
  return [
    Math.round(a[0] + f * (b[0] - a[0])),
    Math.round(a[1] + f * (b[1] - a[1])),
    Math.round(a[2] + f * (b[2] - a[2])),
  ];
}

/** 3–7 round tick values covering [min, max]. */
function niceTicks(min: number, max: number): { ticks: number[]; decimals: number } {
  const span = max - min;
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= 6)!;
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (Math.abs(step / mag - 2.5) < 1e-9 ? 1 : 0));
  const ticks: number[] = [];
  const first = Math.ceil(min / step - 1e-9);
  for (let k = first; k * step <= max + step * 1e-9; k++) ticks.push(k === 0 ? 0 : k * step);
  return { ticks, decimals };
}

const intIn = (v: number | undefined, lo: number, hi: number, name: string): number | undefined => {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < lo || v > hi)
    throw new InputError(`ckaHeatmapPNG: ${name} must be an integer in [${lo}, ${hi}], got ${v}`);
  return v;
};

/**
 * Draws the heatmap into an RGB canvas and says where everything went.
 * @internal (exported for tests and for callers who want the raw pixels)
 */
export function renderHeatmap(
  matrix: readonly (readonly number[])[],
  opts: HeatmapOptions = {},
): { canvas: Canvas; layout: HeatmapLayout } {
  const size = checkMatrix(matrix, 'ckaHeatmapPNG');
  const labels = resolveLabels(size, opts.rowLabels, opts.colLabels, 'ckaHeatmapPNG');
  let lo = 0;
  let hi = 1;
  for (const row of matrix) for (const v of row) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const min = opts.min ?? lo;
  const max = opts.max ?? hi;
  if (!Number.isFinite(min) || !Number.isFinite(max) || !(min < max))
    throw new InputError(`ckaHeatmapPNG: the colour scale needs finite min < max, got min ${min}, max ${max}`);
  const cell =
    intIn(opts.cell, 4, 200, 'cell') ?? Math.max(6, Math.min(48, Math.floor(480 / Math.max(size.rows, size.cols))));
  const s = intIn(opts.textScale, 1, 8, 'textScale') ?? (cell >= 18 ? 2 : 1);
  const annotate = opts.annotate ?? cell >= 32;
  const lineH = GLYPH_H * s;
  const margin = 10;
  const gap = 3 * s;

  const { ticks, decimals } = niceTicks(min, max);
  const tickText = ticks.map((v) => v.toFixed(decimals));
  const titleH = opts.title ? lineH + 2 * gap : 0;
  const yLabelW = opts.yLabel ? lineH + 3 * gap : 0;
  const rowLabelW = Math.max(...labels.rows.map((l) => textWidth(l, s))) + gap;
  const colLabelH = Math.max(...labels.cols.map((l) => textWidth(l, s))) + gap;
  const xLabelH = opts.xLabel ? lineH + 2 * gap : 0;

  const mx = margin + yLabelW + rowLabelW;
  const my = margin + titleH;
  const matW = size.cols * cell;
  const matH = size.rows * cell;
  const bar = { x: mx + matW + 4 * gap, y: my, width: 8 + 4 * s, height: Math.max(matH, 100) };
  const tickLabelX = bar.x + bar.width + 4 + gap;
  const width =
    Math.max(tickLabelX + Math.max(...tickText.map((t) => textWidth(t, s))), mx + textWidth(opts.title ?? '', s)) +
    margin;
  const height = Math.max(my + matH + colLabelH + xLabelH, my + bar.height + lineH) + margin;

  const canvas: Canvas = { width, height, rgb: new Uint8Array(width * height * 3).fill(255) };
  const fill = (x: number, y: number, w: number, h: number, color: RGB) => {
    for (let yy = y; yy < y + h; yy++) for (let xx = x; xx < x + w; xx++) setPixel(canvas, xx, yy, color);
  };
  const unit = (v: number) => (v - min) / (max - min);

  for (let i = 0; i < size.rows; i++)
    for (let j = 0; j < size.cols; j++) {
      const color = colormap(unit(matrix[i][j]));
      fill(mx + j * cell, my + i * cell, cell, cell, color);
      if (annotate) {
        const text = matrix[i][j].toFixed(2);
        const light = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 140;
        drawText(
          canvas,
          text,
          mx + j * cell + Math.floor((cell - textWidth(text, 1)) / 2),
          my + i * cell + Math.floor((cell - GLYPH_H) / 2),
          1,
          light ? BLACK : WHITE,
        );
      }
    }
  labels.rows.forEach((l, i) =>
    drawText(canvas, l, mx - gap - textWidth(l, s), my + i * cell + Math.floor((cell - lineH) / 2), s, BLACK),
  );
  labels.cols.forEach((l, j) =>
    drawText(canvas, l, mx + j * cell + Math.floor((cell - lineH) / 2), my + matH + gap, s, BLACK, true),
  );
  if (opts.title)
    drawText(
      canvas,
      opts.title,
      Math.max(margin, mx + Math.floor((matW - textWidth(opts.title, s)) / 2)),
      margin + gap,
      s,
      BLACK,
    );
  if (opts.xLabel)
    drawText(
      canvas,
      opts.xLabel,
      Math.max(margin, mx + Math.floor((matW - textWidth(opts.xLabel, s)) / 2)),
      my + matH + colLabelH + gap,
      s,
      BLACK,
    );
  if (opts.yLabel)
    drawText(
      canvas,
      opts.yLabel,
      margin + gap,
      Math.max(my, my + Math.floor((matH - textWidth(opts.yLabel, s)) / 2)),
      s,
      BLACK,
      true,
    );

  // Colour bar: top row = max, bottom row = min; ticks and their values on the right.
  for (let r = 0; r < bar.height; r++) fill(bar.x, bar.y + r, bar.width, 1, colormap(1 - r / (bar.height - 1)));
  ticks.forEach((v, k) => {
    const y = bar.y + Math.round((1 - unit(v)) * (bar.height - 1));
    fill(bar.x + bar.width, y, 4, 1, BLACK);
    drawText(canvas, tickText[k], tickLabelX, y - Math.floor(lineH / 2), s, BLACK);
  });

  return {
    canvas,
    layout: { width, height, matrix: { x: mx, y: my, cell, rows: size.rows, cols: size.cols }, bar, min, max, ticks },
  };
}

/**
 * A CKA matrix as a PNG heatmap (bytes), rows top to bottom, columns left to right, with a colour bar.
 * Works in a browser too (the image data are then stored uncompressed).
 * @throws InputError for a ragged or non-finite matrix, labels of the wrong length, or bad options.
 *
 * @example
 * ```ts
 * const m = await ckaMatrix(feats);
 * const png = await ckaHeatmapPNG(m, { rowLabels: ['b=4', 'b=10'], title: 'linear CKA, t=90' });
 * ```
 * @category CKA
 */
export async function ckaHeatmapPNG(
  matrix: readonly (readonly number[])[],
  opts: HeatmapOptions = {},
): Promise<Uint8Array> {
  const { canvas } = renderHeatmap(matrix, opts);
  return encodePNG(canvas.rgb, canvas.width, canvas.height);
}

/**
 * Writes {@link ckaHeatmapPNG} to a file, atomically (Node).
 * @category CKA
 */
export async function writeCKAHeatmap(
  path: string,
  matrix: readonly (readonly number[])[],
  opts: HeatmapOptions = {},
): Promise<void> {
  const png = await ckaHeatmapPNG(matrix, opts);
  if (typeof path !== 'string' || path === '') throw new InputError('writeCKAHeatmap needs a non-empty file path');
  await writeBytesAtomic(path, png);
}
