/**
 * Labelled images for the training helpers: anything that can hand out example i.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { SeededRandom } from '../util/random.js';
import { centerCrop, randomCropFlip, type CropFlipOptions } from './transforms.js';
import { checkLabels } from './labels.js';

/**
 * One labelled image: HWC RGB in [−1, 1], any size (the transforms bring it to the model's).
 * @category Data
 */
export interface LabelledImage {
  image: tf.Tensor3D;
  label: number;
}

/**
 * Images by index: decode from disk, slice a tensor, anything. The caller of {@link ImageSource.get}
 * owns (and disposes) the returned image.
 * @category Data
 */
export interface ImageSource {
  readonly size: number;
  get(i: number): LabelledImage | Promise<LabelledImage>;
}

/**
 * An {@link ImageSource} over an in-memory NHWC batch (already in [−1, 1]). The tensor stays the
 * caller's.
 * @category Data
 */
export function imagesFromTensor(images: tf.Tensor4D, labels: ArrayLike<number>): ImageSource {
  if (!(images instanceof tf.Tensor) || images.rank !== 4)
    throw new InputError('imagesFromTensor: images must be an NHWC rank-4 tensor');
  const n = images.shape[0];
  const y = checkLabels(labels, n, Number.MAX_SAFE_INTEGER);
  return {
    size: n,
    get: (i) => {
      if (!Number.isInteger(i) || i < 0 || i >= n) throw new InputError(`image index ${i} outside [0, ${n})`);
      return {
        image: tf.tidy(
          () =>
            tf.reshape(
              tf.slice(images, [i, 0, 0, 0], [1, -1, -1, -1]),
              images.shape.slice(1) as [number, number, number],
            ) as tf.Tensor3D,
        ),
        label: y[i],
      };
    },
  };
}

/** How {@link loadBatch} transforms each image. */
export interface TransformOptions extends CropFlipOptions {
  /** Output side (the backbone's `image_size`). */
  size: number;
  /** Random crop and flip (the reference's training transform) instead of the center crop. */
  augment: boolean;
}

/**
 * Loads the images `indices` from `source`, transforms each (example k's random choices seeded by
 * `seeds[k]` when augmenting), and stacks them: `[n, size, size, C]` and the labels.
 */
export async function loadBatch(
  source: ImageSource,
  indices: number[],
  seeds: ArrayLike<number>,
  opts: TransformOptions,
): Promise<{ x0: tf.Tensor4D; labels: Int32Array }> {
  if (seeds.length !== indices.length)
    throw new InputError(`loadBatch needs one seed per index (${indices.length}), got ${seeds.length}`);
  const out: tf.Tensor3D[] = [];
  const labels = new Int32Array(indices.length);
  try {
    for (let k = 0; k < indices.length; k++) {
      const { image, label } = await source.get(indices[k]);
      try {
        if (!Number.isInteger(label) || label < 0)
          throw new InputError(`image ${indices[k]} has label ${label}; labels must be non-negative integers`);
        out.push(
          opts.augment
            ? randomCropFlip(image, opts.size, new SeededRandom(seeds[k]), opts)
            : centerCrop(image, opts.size),
        );
      } finally {
        image.dispose();
      }
      labels[k] = label;
    }
    return { x0: tf.stack(out) as tf.Tensor4D, labels };
  } finally {
    tf.dispose(out);
  }
}
