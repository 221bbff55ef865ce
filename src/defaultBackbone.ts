/**
 * The embedded default backbone: a small ADM U-Net that diffssl pretrained on Fashion-MNIST
 * (`models/fashion-mnist-adm/`, its model card in the README there), shipped in the package.
 * @module
 */
import type * as tf from '@tensorflow/tfjs-core';
import { InputError } from './errors.js';
import { extractFeatures as extractWith, type ExtractOptions, type FeatureSet } from './features/extractFeatures.js';
import { nodeFs } from './util/nodeFs.js';
import { packagePath } from './util/packageFiles.js';
import { ADMUNet } from './unet/admUnet.js';
import type { ReferenceFlags } from './unet/flags.js';
import type { LoadOptions } from './unet/options.js';

/**
 * What the default backbone is: its folder in the package, and the images it takes.
 * @category Backbone
 */
export const DEFAULT_BACKBONE = {
  /** Folder under the package root holding `flags.json`, `weights.safetensors` and the model card. */
  dir: 'models/fashion-mnist-adm',
  /** Images are `[N, 28, 28, 1]`, grayscale in [-1, 1] (Fashion-MNIST's `x / 127.5 − 1`). */
  imageSize: 28,
  inChannels: 1,
} as const;

/**
 * Loads the default backbone shipped in the package (Node): the EMA weights of an ADM U-Net
 * (1.84 M parameters; 28×28 grayscale; 19 blocks) that diffssl's {@link trainDiffusion} pretrained
 * on Fashion-MNIST. {@link extractFeatures} without `model` uses it. Each call returns a new model;
 * dispose it when done.
 * @example
 * ```ts
 * const unet = await loadDefaultBackbone();
 * unet.blocks.length; // 19
 * unet.dispose();
 * ```
 * @throws CheckpointError when the package's files cannot be found (a browser: load
 *   `models/fashion-mnist-adm/weights.safetensors` yourself with `ADMUNet.load(bytes, flags)`).
 * @category Backbone
 */
export async function loadDefaultBackbone(opts: LoadOptions = {}): Promise<ADMUNet> {
  const dir = await packagePath(
    DEFAULT_BACKBONE.dir.split('/'),
    'loadDefaultBackbone',
    `load ${DEFAULT_BACKBONE.dir}/weights.safetensors with ADMUNet.load(bytes, flags) instead`,
  );
  const { fs, path } = await nodeFs();
  const flags = JSON.parse(await fs.promises.readFile(path.join(dir, 'flags.json'), 'utf8')) as ReferenceFlags;
  return ADMUNet.load(path.join(dir, 'weights.safetensors'), flags, opts);
}

let loaded: Promise<ADMUNet> | undefined;

/** The default backbone for {@link extractFeatures}: loaded once and kept; a failed load is retried next time. */
function defaultBackbone(): Promise<ADMUNet> {
  loaded ??= loadDefaultBackbone().catch((e: unknown) => {
    loaded = undefined;
    throw e;
  });
  return loaded;
}

/**
 * Diffusion features of clean images: for every t, `x_t = q_sample(x0, t, ε)`, then the U-Net's
 * block outputs for every b. The (t, example) rows run as batched forwards of up to `maxBatch` rows,
 * each stopping after the deepest requested block. With `ensemble: K`, each (t, example) runs as K
 * rows with K noise draws and its maps are their mean (DIFT's `ensemble_size`). Without `model`, the
 * embedded default backbone ({@link loadDefaultBackbone}, 28×28 grayscale) is loaded on first use and kept.
 *
 * @param x0 clean images, NHWC `[N, S, S, C]` in [-1, 1], S the model's `image_size`. Not disposed.
 * Values beyond ±{@link IMAGE_RANGE_LIMIT}, NaN or ±Inf are an InputError (see `checkRange`).
 * @returns a {@link FeatureSet} that owns the maps; dispose it when done.
 * @throws InputError for a bad shape, step, block, noise or option; without `model`, for images the
 * default backbone does not take (the message says what it takes).
 *
 * @example
 * ```ts
 * const feats = await extractFeatures(x0, { t: [90, 150], b: [19, 24], model: unet, seed: 0 });
 * const f = feats.get(90, 24); // [N, 16, 16, 1024] for the 256 model
 * feats.dispose();
 * // The mean over 8 noise draws per image, pooled to 4 × 4 afterwards:
 * const avg = await extractFeatures(x0, { t: 150, b: 24, model: unet, seed: 0, ensemble: 8, pool: 4 });
 * avg.dispose();
 * // No model: the embedded backbone, for [N, 28, 28, 1] images
 * const small = await extractFeatures(fashion, { t: 50, b: 12, seed: 0 });
 * small.dispose();
 * ```
 * @category Features
 */
export async function extractFeatures(x0: tf.Tensor4D, opts: ExtractOptions): Promise<FeatureSet> {
  if (typeof opts !== 'object' || opts === null || opts.model !== undefined) return extractWith(x0, opts);
  const model = await defaultBackbone();
  try {
    model.checkImages(x0, 'x0');
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    const { imageSize: s, inChannels: c } = model.config;
    throw new InputError(
      `${e.message}. No model was given, so the default backbone is used: it takes [N, ${s}, ${s}, ${c}] ` +
        `(${c === 1 ? 'grayscale' : `${c} channels`}) in [-1, 1]; resize the images or pass your own model`,
    );
  }
  return extractWith(x0, { ...opts, model });
}
