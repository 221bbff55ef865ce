/**
 * Images in [-1, 1] laid out as one grid and encoded as PNG: how samples are looked at.
 * @module
 */
import type * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import type { HostTensor } from '../util/hostTensor.js';
import { writeBytesAtomic } from './atomicFile.js';
import { encodePNG } from './png.js';

/**
 * Options of {@link samplesGridPNG} and {@link writeSamplesGrid}.
 * @category I/O
 */
export interface GridOptions {
  /** Images per row (default: ceil(sqrt(N))). */
  columns?: number;
  /** Black pixels between images and around the grid (default 2). */
  padding?: number;
}

/**
 * Images `[N, H, W, C]` in [-1, 1], C = 1 (replicated to grey) or 3, as a PNG grid: `columns` per
 * row, in order, each pixel `floor(clamp((x + 1)·127.5, 0, 255))` as guided-diffusion's sampling
 * script writes them.
 * @param images a tensor (read, not disposed) or host values in NHWC order.
 * @returns the PNG file's bytes.
 * @throws InputError for a shape that is not NHWC with 1 or 3 channels, or bad options.
 * @category I/O
 */
export async function samplesGridPNG(
  images: tf.Tensor4D | HostTensor<Float32Array, readonly number[]>,
  opts: GridOptions = {},
): Promise<Uint8Array> {
  const shape = images?.shape;
  if (!Array.isArray(shape) || shape.length !== 4 || shape.some((d) => !Number.isInteger(d) || d < 1))
    throw new InputError(`images must be NHWC [N, H, W, C], got shape ${JSON.stringify(shape)}`);
  const [n, h, w, c] = shape;
  if (c !== 1 && c !== 3)
    throw new InputError(`images must have 1 (grey) or 3 (RGB) channels, got ${c}: pass NHWC images`);
  const columns = opts.columns ?? Math.ceil(Math.sqrt(n));
  const pad = opts.padding ?? 2;
  if (!Number.isInteger(columns) || columns < 1)
    throw new InputError(`columns must be a positive integer, got ${String(columns)}`);
  if (!Number.isInteger(pad) || pad < 0) throw new InputError(`padding must be an integer ≥ 0, got ${String(pad)}`);
  const values = 'dataSync' in images ? ((await images.data()) as Float32Array) : images.data;
  if (values.length !== n * h * w * c)
    throw new InputError(`images hold ${values.length} values, not the ${n * h * w * c} of shape [${shape}]`);
  const cols = Math.min(columns, n);
  const rows = Math.ceil(n / cols);
  const width = cols * (w + pad) + pad;
  const height = rows * (h + pad) + pad;
  const rgb = new Uint8Array(width * height * 3);
  for (let k = 0; k < n; k++) {
    const x0 = pad + (k % cols) * (w + pad);
    const y0 = pad + Math.floor(k / cols) * (h + pad);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const src = ((k * h + y) * w + x) * c;
        const dst = ((y0 + y) * width + x0 + x) * 3;
        for (let ch = 0; ch < 3; ch++) {
          const v = (values[src + (c === 1 ? 0 : ch)] + 1) * 127.5;
          // NaN becomes 0, like the clamp of the reference.
          rgb[dst + ch] = v >= 255 ? 255 : v > 0 ? Math.floor(v) : 0;
        }
      }
  }
  return encodePNG(rgb, width, height);
}

/**
 * Writes {@link samplesGridPNG}'s grid to `path` atomically (a crash leaves the old file or none).
 * @category I/O
 */
export async function writeSamplesGrid(
  path: string,
  images: tf.Tensor4D | HostTensor<Float32Array, readonly number[]>,
  opts: GridOptions = {},
): Promise<void> {
  await writeBytesAtomic(path, await samplesGridPNG(images, opts));
}
