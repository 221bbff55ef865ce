/**
 * The tokenizer of the paper's attention head: one per U-Net block.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { dense } from '../ops/dense.js';
import { adaptiveAvgPool2d } from '../ops/adaptiveAvgPool.js';
import { BatchNorm2d, checkFeatureMap, layerNorm, NORM_EPS, type ForwardPassOptions } from '../nn/layers.js';
import { positiveInt } from '../util/checks.js';
import { filled, floatEntry, Init, prefixed, type FloatEntry, type StateEntry } from '../nn/state.js';
import { Module } from '../nn/module.js';

/**
 * Which normalisation a tokenizer applies (the reference's `norm_type`).
 * @category Heads
 */
export type NormType = 'layer' | 'batch';

/**
 * What a {@link Tokenizer} is built from.
 * @category Heads
 */
export interface TokenizerConfig {
  /** Channels of the block's feature map (`C_b`). */
  channels: number;
  /** Side of the block's feature map. */
  side: number;
  /** `pre_pool_size`: the map is pooled to `min(side, pool)` per side. */
  pool: number;
  /** Token width D (the fusion_arc's `Use_CLS_Token:…:D`). */
  dim: number;
  /** `layer`: LayerNorm over the whole pooled map `[C, h, w]`; `batch`: BatchNorm2d(C). */
  norm: NormType;
  /** Seed of the random initialisation (PyTorch's default init, seeded). Default 0. */
  seed?: number;
}

/**
 * Turns a feature map into tokens: `AdaptiveAvgPool2d(min(side, pool))` → LayerNorm over
 * `[C, h, w]` (elementwise affine of that full shape) or BatchNorm2d(C) → 1×1 conv `C → D` with
 * bias → tokens `[N, h·w, D]`, row-major over (h, w). As the reference's `pre_layer[b]`; state
 * names `1.weight`, `1.bias` (`1.running_mean`, … for BatchNorm), `2.weight`, `2.bias`.
 *
 * From a reference configuration: `channels`/`side` are block b's row of the U-Net's block table,
 * `pool` is `pre_pool_size`, `dim` the third field of the fusion_arc's `Use_CLS_Token:True:D`,
 * `norm` is `norm_type`.
 *
 * @example
 * ```ts
 * // args = heads/attention/config.json's finetune_args: block 15, pre_pool_size 4, norm_type "layer",
 * // fusion_arc "Use_CLS_Token:True:64,…"; feature = block 15's map [N, 16, 16, 32] (extractFeatures)
 * const { channels, size } = unet.block(15);
 * const tok = new Tokenizer({ channels, side: size, pool: args.pre_pool_size, dim: parseFusionArc(args.fusion_arc).dim, norm: args.norm_type });
 * await tok.loadWeights('heads/attention/weights.safetensors', { prefix: 'head.pre_layer.15.' });
 * const tokens = tok.forward(feature); // [N, 4·4, 64]
 * tok.dispose();
 * ```
 * @category Heads
 */
export class Tokenizer extends Module {
  readonly config: Readonly<Required<TokenizerConfig>>;
  /** Side of the pooled map: `min(side, pool)`. */
  readonly poolSide: number;
  private readonly lnWeight: FloatEntry | null = null;
  private readonly lnBias: FloatEntry | null = null;
  private readonly bn: BatchNorm2d | null = null;
  private readonly convWeight: FloatEntry;
  private readonly convBias: FloatEntry;

  constructor(config: TokenizerConfig) {
    super();
    const channels = positiveInt(config?.channels, 'Tokenizer channels');
    const side = positiveInt(config.side, 'Tokenizer side');
    const pool = positiveInt(config.pool, 'Tokenizer pool (pre_pool_size)');
    const dim = positiveInt(config.dim, 'Tokenizer dim');
    if (config.norm !== 'layer' && config.norm !== 'batch')
      throw new InputError(`Tokenizer norm must be "layer" or "batch", got ${JSON.stringify(config.norm)}`);
    this.config = { channels, side, pool, dim, norm: config.norm, seed: config.seed ?? 0 };
    const s = (this.poolSide = Math.min(side, pool));
    const init = new Init(this.config.seed);
    if (config.norm === 'layer') {
      this.lnWeight = floatEntry('1.weight', [channels, s, s], 'chw', filled(channels * s * s, 1));
      this.lnBias = floatEntry('1.bias', [channels, s, s], 'chw', filled(channels * s * s, 0));
    } else this.bn = new BatchNorm2d(channels);
    this.convWeight = floatEntry(
      '2.weight',
      [dim, channels, 1, 1],
      'conv1x1',
      init.fanIn([dim, channels, 1, 1], channels),
    );
    this.convBias = floatEntry('2.bias', [dim], 'same', init.fanIn([dim], channels));
  }

  /**
   * Tokens of a feature map.
   * @param x NHWC `[N, H, W, C]` with C = `channels` (any H, W: the pool adapts, as in PyTorch).
   * @param opts `tap` receives `pooled`, `normed`, `conv` (NHWC maps) and `tokens`.
   * @returns `[N, h·w, D]`.
   */
  forward(x: tf.Tensor4D, opts: ForwardPassOptions = {}): tf.Tensor3D {
    const { channels, dim } = this.config;
    checkFeatureMap(x, channels, 'Tokenizer', 'tokenizer');
    const s = this.poolSide;
    const tap = opts.tap;
    return tf.tidy(() => {
      const pooled = adaptiveAvgPool2d(x, s);
      tap?.('pooled', pooled);
      const normed = this.bn
        ? this.bn.apply(pooled, opts.training ?? false)
        : layerNorm(pooled, this.lnWeight!.variable, this.lnBias!.variable, [1, 2, 3], NORM_EPS);
      tap?.('normed', normed);
      const conv = dense(
        normed,
        this.convWeight.variable as tf.Tensor as tf.Tensor2D,
        this.convBias.variable as tf.Tensor as tf.Tensor1D,
      );
      tap?.('conv', conv);
      const tokens = tf.reshape(conv, [x.shape[0], s * s, dim]) as tf.Tensor3D;
      tap?.('tokens', tokens);
      return tokens;
    });
  }

  /** State-dict entries under the reference's names within `pre_layer.<b>`. */
  state(): StateEntry[] {
    const norm = this.bn ? prefixed('1.', this.bn.state()) : [this.lnWeight!, this.lnBias!];
    return [...norm, this.convWeight, this.convBias];
  }
}
