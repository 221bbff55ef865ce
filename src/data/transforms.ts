/**
 * The reference's image transforms (guided-diffusion `image_datasets.py`, as diffssl's `finetune.py`
 * uses them), on float tensors:
 * - evaluation: halve with a box filter while the short side is ≥ 2·size, resize so the short
 *   side is `size`, center-crop `size × size`;
 * - training: the same with a random short side in [⌈size/maxFrac⌉, ⌈size/minFrac⌉] (so the crop
 *   covers 80–100 % of the short side by default), a random crop position, and a horizontal
 *   flip with probability ½.
 *
 * The halving (PIL's `BOX` resize to `⌊side / 2⌋`: 2×2 averages on even sides; on an odd side, pairs and
 * one 3-pixel window, or a pixel left out, as PIL's rounding falls) and the resize (PIL's `BICUBIC`,
 * antialiased when it shrinks) are PIL's own resampling, reimplemented in `pilResize.ts` and checked
 * against Pillow on float images.
 *
 * Differences from the reference: float arithmetic throughout, where the reference resizes 8-bit images
 * (PIL then uses fixed-point weights and rounds and clips to 0–255 after every pass, so bicubic overshoot
 * is clipped there and may leave [−1, 1] by a little here); float32 sums where PIL's float path sums in
 * double (agreement to ≈1e-7 relative on float images); and a seeded generator instead of Python's
 * `random`.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { SeededRandom } from '../util/random.js';
import { resizeShortSide } from './pilResize.js';

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

/** `min + floor(u·(max − min + 1))`: an integer in [min, max]. */
function randInt(rng: SeededRandom, min: number, max: number): number {
  return min + Math.min(max - min, Math.floor(rng.uniform() * (max - min + 1)));
}

function checkImage(image: tf.Tensor3D, size: number): void {
  if (!(image instanceof tf.Tensor) || image.rank !== 3)
    throw new InputError(
      `an image must be a rank-3 HWC tensor, got ${image instanceof tf.Tensor ? `shape [${image.shape}]` : typeof image}`,
    );
  if (image.size === 0) throw new InputError(`an image must not be empty, got shape [${image.shape}]`);
  if (!Number.isInteger(size) || size < 1) throw new InputError(`size must be a positive integer, got ${size}`);
}

/**
 * The reference's evaluation transform: short side to `size` (PIL `BOX` halvings while it is ≥ 2·`size`, then
 * PIL `BICUBIC`), center crop.
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
