/**
 * The reference's image transforms (guided-diffusion `image_datasets.py`, as diffssl's `finetune.py`
 * uses them), on float tensors:
 * - evaluation: halve with a box filter while the short side is ≥ 2·size, resize so the short
 *   side is `size`, center-crop `size × size`;
 * - training: the same with a random short side in [⌈size/maxFrac⌉, ⌈size/minFrac⌉] (so the crop
 *   covers 80–100 % of the short side by default), a random crop position, and a horizontal
 *   flip with probability ½.
 *
 * Differences from the reference: bilinear resizing (half-pixel centres) instead of PIL's bicubic,
 * 2×2 average pooling for PIL's BOX halving (the same on even sides), no rounding to 8-bit pixels,
 * and a seeded generator instead of Python's `random`.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { SeededRandom } from '../util/random.js';

/**
 * Options of {@link randomCropFlip}.
 * @category Data
 */
export interface CropFlipOptions {
  /** Smallest crop fraction of the short side (default 0.8, the reference's). */
  minFrac?: number;
  /** Largest (default 1). */
  maxFrac?: number;
  /** Random horizontal flip (default true). */
  flip?: boolean;
}

/** Python's `round`: halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `min + floor(u·(max − min + 1))`: an integer in [min, max]. */
function randInt(rng: SeededRandom, min: number, max: number): number {
  return min + Math.min(max - min, Math.floor(rng.uniform() * (max - min + 1)));
}

function checkImage(image: tf.Tensor3D, size: number): void {
  if (!(image instanceof tf.Tensor) || image.rank !== 3)
    throw new InputError(
      `an image must be a rank-3 HWC tensor, got ${image instanceof tf.Tensor ? `shape [${image.shape}]` : typeof image}`,
    );
  if (!Number.isInteger(size) || size < 1) throw new InputError(`size must be a positive integer, got ${size}`);
}

/** Box-halve while the short side is ≥ 2·short, then resize so the short side is `short`. */
function resizeShortSide(image: tf.Tensor3D, short: number): tf.Tensor3D {
  let x = image;
  while (Math.min(x.shape[0], x.shape[1]) >= 2 * short) {
    const [h, w] = x.shape;
    // PIL halves to floor(side / 2): drop an odd last row/column, then average 2×2.
    const even = h % 2 || w % 2 ? tf.slice(x, [0, 0, 0], [h - (h % 2), w - (w % 2), x.shape[2]]) : x;
    x = tf.avgPool(even, 2, 2, 'valid');
  }
  const [h, w] = x.shape;
  const scale = short / Math.min(h, w);
  const size: [number, number] = [roundHalfEven(h * scale), roundHalfEven(w * scale)];
  if (size[0] === h && size[1] === w) return x;
  return tf.image.resizeBilinear(x, size, false, true);
}

/**
 * The reference's evaluation transform: short side to `size` (box-halving first), center crop.
 * @param image HWC, any size.
 * @returns `[size, size, C]`.
 * @category Data
 */
export function centerCrop(image: tf.Tensor3D, size: number): tf.Tensor3D {
  checkImage(image, size);
  return tf.tidy(() => {
    const x = resizeShortSide(image, size);
    const [h, w] = x.shape;
    return tf.slice(x, [Math.floor((h - size) / 2), Math.floor((w - size) / 2), 0], [size, size, x.shape[2]]);
  });
}

/**
 * The reference's training transform: random short side in [⌈size/maxFrac⌉, ⌈size/minFrac⌉],
 * random `size × size` crop, random horizontal flip; every choice from `rng`.
 * @category Data
 */
export function randomCropFlip(
  image: tf.Tensor3D,
  size: number,
  rng: SeededRandom,
  opts: CropFlipOptions = {},
): tf.Tensor3D {
  checkImage(image, size);
  const minFrac = opts.minFrac ?? 0.8;
  const maxFrac = opts.maxFrac ?? 1;
  if (!(minFrac > 0 && minFrac <= maxFrac && maxFrac <= 1))
    throw new InputError(`crop fractions must satisfy 0 < minFrac ≤ maxFrac ≤ 1, got ${minFrac}, ${maxFrac}`);
  const short = randInt(rng, Math.ceil(size / maxFrac), Math.ceil(size / minFrac));
  return tf.tidy(() => {
    const x = resizeShortSide(image, short);
    const [h, w] = x.shape;
    const top = randInt(rng, 0, h - size);
    const left = randInt(rng, 0, w - size);
    const crop = tf.slice(x, [top, left, 0], [size, size, x.shape[2]]);
    return (opts.flip ?? true) && rng.uniform() < 0.5 ? tf.reverse(crop, 1) : crop;
  });
}
