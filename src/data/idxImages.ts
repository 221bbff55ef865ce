/**
 * MNIST-style IDX files (any dataset stored that way, gzipped or not) as a labelled image source: the images are
 * kept as the file's bytes and each `get(i)` makes one float tensor in [−1, 1], so a large file costs its bytes,
 * not four times as many in tensors.
 * @module
 */
import { CheckpointError, InputError } from '../errors.js';
import { readIdx, readIdxPair, type IdxTensor } from '../io/idx.js';
import { pixelsToTensor } from './imageFiles.js';
import type { ImageSource } from './images.js';
import { inputLabel, type FileInput } from '../io/webSource.js';

/**
 * Options of {@link idxImages}.
 * @category Data
 */
export interface IdxImagesOptions {
  /** The model's `in_channels`: 1 (gray, the default for `[N, H, W]` files) or 3 (RGB, gray replicated). */
  channels?: 1 | 3;
  /** Refuse a gzipped file that inflates to more than this many bytes (default 1 GiB). */
  maxBytes?: number;
}

/**
 * IDX images with their labels.
 * @category Data
 */
export interface IdxImages {
  /** Image i as `[H, W, channels]` float32, `x / 127.5 − 1`, with `labels[i]`. */
  source: ImageSource;
  /** One label per image (0 for every image when no labels file is given). */
  labels: Int32Array;
  /** The images file's shape as `[N, H, W, C]` (C = 1 for a rank-3 file). */
  shape: [number, number, number, number];
}

/**
 * An {@link ImageSource} over an IDX images file (`uint8`, `[N, H, W]` or `[N, H, W, C]` with C = 1–4) and
 * optionally its labels file, as paths (Node) or bytes, gzipped or not. Channels convert as {@link loadImage}'s
 * (alpha dropped, RGB → gray by PIL's luma, gray → RGB replicated).
 * @example
 * ```ts
 * const { source, labels } = await idxImages({ images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' });
 * const data = onTheFlyFeatures(source, { model: unet, t: 50, b: 12 });
 * ```
 * @throws CheckpointError naming the file when it cannot be read, is not IDX, does not hold uint8 images, or the
 *   labels are not one non-negative integer per image. InputError for a bad option.
 * @category Data
 */
export async function idxImages(
  files: { images: FileInput; labels?: FileInput },
  opts: IdxImagesOptions = {},
): Promise<IdxImages> {
  if (!files || files.images === undefined || files.images === null)
    throw new InputError('idxImages: files.images must be a path, a URL, a Blob, a Response or bytes');
  if (opts.channels !== undefined && opts.channels !== 1 && opts.channels !== 3)
    throw new InputError(`idxImages: channels must be 1 (gray) or 3 (RGB), got ${String(opts.channels)}`);
  const label = { imagesLabel: 'IDX image bytes', labelsLabel: 'IDX label bytes' };
  let x: IdxTensor;
  let y: IdxTensor | undefined;
  if (files.labels === undefined)
    x = await readIdx(files.images, { label: label.imagesLabel, maxBytes: opts.maxBytes });
  else
    ({ images: x, labels: y } = await readIdxPair(files.images, files.labels, { ...label, maxBytes: opts.maxBytes }));
  const where = inputLabel(files.images, label.imagesLabel);
  const [n, h, w, c = 1] = x.shape;
  if (x.dtype !== 'uint8' || (x.shape.length !== 3 && x.shape.length !== 4) || c < 1 || c > 4)
    throw new CheckpointError(
      `${where} holds ${x.dtype} of shape [${x.shape}], not images (uint8 of shape [N, H, W] or [N, H, W, C], C = 1–4)`,
    );
  if (n === 0 || h === 0 || w === 0) throw new CheckpointError(`${where} holds no pixels: shape [${x.shape}]`);
  const labels = new Int32Array(n);
  if (y) {
    const yl = inputLabel(files.labels!, label.labelsLabel);
    for (let i = 0; i < n; i++) {
      const v = Number(y.data[i]);
      if (v < 0) throw new CheckpointError(`${yl}: label ${i} is ${v}; labels must be non-negative`);
      labels[i] = v;
    }
  }
  const channels = opts.channels ?? (c === 3 || c === 4 ? 3 : 1);
  const data = x.data as Uint8Array;
  const per = h * w * c;
  return {
    labels,
    shape: [n, h, w, c],
    source: {
      size: n,
      get: (i) => {
        if (!Number.isInteger(i) || i < 0 || i >= n) throw new InputError(`image index ${i} outside [0, ${n})`);
        const pixels = {
          width: w,
          height: h,
          channels: c as 1 | 2 | 3 | 4,
          data: data.subarray(i * per, (i + 1) * per),
        };
        return { image: pixelsToTensor(pixels, channels), label: labels[i] };
      },
    },
  };
}
