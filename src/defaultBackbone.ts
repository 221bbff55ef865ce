/**
 * The embedded default backbone: a small ADM U-Net that diffssl pretrained on Fashion-MNIST
 * (`models/fashion-mnist-adm/`, its model card in the README there), shipped in the package.
 * @module
 */
import { registerDefaultBackbone } from './features/extractFeatures.js';
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

registerDefaultBackbone(() => loadDefaultBackbone());
