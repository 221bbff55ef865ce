/**
 * The embedded default backbone: a small ADM U-Net that diffssl pretrained on Fashion-MNIST
 * (`models/fashion-mnist-adm/`, its model card in the README there), shipped in the package.
 * @module
 */
import type * as tf from '@tensorflow/tfjs-core';
import { InputError } from './errors.js';
import { extractFeatures as extractWith, type ExtractOptions, type FeatureSet } from './features/extractFeatures.js';
import type { FileInput } from './io/webSource.js';
import { shippedFile } from './util/packageFiles.js';
import { ADMUNet } from './unet/admUnet.js';
import type { ReferenceFlags } from './unet/flags.js';
import type { LoadOptions } from './unet/options.js';
import FLAGS from '../models/fashion-mnist-adm/flags.json';

/**
 * What the default backbone is: its folder in the package, its architecture, and the images it takes.
 * @category Backbone
 */
export const DEFAULT_BACKBONE = {
  /** Folder under the package root holding `flags.json`, `weights.safetensors` and the model card. */
  dir: 'models/fashion-mnist-adm',
  /** Its architecture: the folder's `flags.json`, built into the code so that a browser needs only the weights. */
  flags: FLAGS as ReferenceFlags,
  /** Images are `[N, 28, 28, 1]`, grayscale in [-1, 1] (Fashion-MNIST's `x / 127.5 − 1`). */
  imageSize: 28,
  inChannels: 1,
} as const;

/**
 * Options of {@link loadDefaultBackbone}.
 * @category Backbone
 */
export interface DefaultBackboneOptions extends LoadOptions {
  /**
   * Where `weights.safetensors` is, when not beside the package's code: a URL (read by range
   * requests), a path, a Blob, a Response or bytes. Default: the package's own copy — a path in
   * Node, `new URL('../models/fashion-mnist-adm/weights.safetensors', import.meta.url)` in a browser.
   */
  weights?: FileInput;
}

/**
 * Loads the default backbone shipped in the package: the EMA weights of an ADM U-Net (1.84 M
 * parameters; 28×28 grayscale; 19 blocks) that diffssl's {@link trainDiffusion} pretrained on
 * Fashion-MNIST. {@link extractFeatures} without `model` uses it. Each call returns a new model;
 * dispose it when done. `onProgress` reports the bytes read.
 * @example
 * ```ts
 * const unet = await loadDefaultBackbone();
 * unet.blocks.length; // 19
 * unet.dispose();
 * // in a browser whose bundler did not copy the package's files: serve them, and say where
 * // await loadDefaultBackbone({ weights: '/assets/weights.safetensors', onProgress: (p) => bar(p.done / p.total) });
 * ```
 * @throws CheckpointError when the weights cannot be found or read (the message says what to pass).
 * @category Backbone
 */
export async function loadDefaultBackbone(opts: DefaultBackboneOptions = {}): Promise<ADMUNet> {
  const { weights, ...load } = opts;
  const file = `${DEFAULT_BACKBONE.dir}/weights.safetensors` as const;
  const where =
    weights ??
    (await shippedFile(file, 'loadDefaultBackbone', `pass \`weights\` (a URL, a Blob or the bytes of ${file})`));
  return ADMUNet.load(where, DEFAULT_BACKBONE.flags, load);
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
