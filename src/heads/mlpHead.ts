/**
 * The GD baseline: adaptive average pooling, flatten, linear layers (the reference's `Head`).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { adaptiveAvgPool2d } from '../ops/adaptiveAvgPool.js';
import { Init, prefixed, type StateEntry } from '../nn/state.js';
import { Module } from '../nn/module.js';
import { checkFeatureMap, Linear, type ForwardPassOptions } from '../nn/layers.js';
import { positiveInt } from '../util/checks.js';

/**
 * The reference's `head_arc`: `''` (no hidden layer), `'48'` or `'48_24'` (hidden widths).
 * @throws InputError for anything else.
 * @category Heads
 */
export function parseHeadArc(arc: string): number[] {
  if (typeof arc !== 'string')
    throw new InputError(`head_arc must be a string such as "" or "2048_1024", got ${typeof arc}`);
  if (arc === '') return [];
  return arc.split('_').map((p) => {
    if (!/^\s*\d+\s*$/.test(p) || Number(p) < 1)
      throw new InputError(`head_arc "${arc}": hidden widths must be positive integers separated by "_", got "${p}"`);
    return Number(p);
  });
}

/**
 * What an {@link MLPHead} is built from.
 * @category Heads
 */
export interface MLPHeadConfig {
  /** Channels of the feature map. */
  channels: number;
  /** `pre_pool_size` p: `AdaptiveAvgPool2d(p)` (a smaller map is up-sampled by repetition, as in PyTorch). */
  pool: number;
  /** Hidden widths (the reference's `head_arc` split on `_`); empty for a linear head. */
  hidden?: number[];
  classes: number;
  /** Seed of the random initialisation (PyTorch's default init, seeded). Default 0. */
  seed?: number;
}

/**
 * Pool → flatten → Linear (→ ReLU → Linear …): the reference's `Head` with hidden layers
 * (`head_arc` like `"48_24"`). Flattening follows PyTorch's NCHW order `(C, h, w)`, so weights
 * trained by the reference apply unchanged. State names `fcs.<i>.weight`, `fcs.<i>.bias`.
 *
 * From a reference configuration: `channels` is the block's row of the U-Net's block table,
 * `pool` is `pre_pool_size`, `hidden` is `parseHeadArc(head_arc)`, `classes` is `num_classes`.
 *
 * @example
 * ```ts
 * // args = heads/mlp/config.json's finetune_args: block 10, pre_pool_size 2, head_arc "48_24", 10 classes;
 * // feature = block 10's map [N, 8, 8, 32]
 * const head = new MLPHead({ channels: unet.block(10).channels, pool: args.pre_pool_size, hidden: parseHeadArc(args.head_arc), classes: args.num_classes });
 * await head.loadWeights('heads/mlp/weights.safetensors', { prefix: 'head.' });
 * const logits = head.forward(feature); // [N, 10]
 * head.dispose();
 * ```
 * @category Heads
 */
export class MLPHead extends Module {
  readonly config: Readonly<Required<MLPHeadConfig>>;
  /** Width of the flattened pooled map: `channels · pool²`. */
  readonly inFeatures: number;
  private readonly fcs: Linear[] = [];

  constructor(config: MLPHeadConfig) {
    super();
    const channels = positiveInt(config?.channels, 'head channels');
    const pool = positiveInt(config.pool, 'head pool (pre_pool_size)');
    const classes = positiveInt(config.classes, 'head classes (num_classes)');
    const hidden = config.hidden ?? [];
    if (!Array.isArray(hidden)) throw new InputError('head hidden must be an array of widths');
    hidden.forEach((h, i) => positiveInt(h, `head hidden[${i}]`));
    this.config = { channels, pool, hidden: [...hidden], classes, seed: config.seed ?? 0 };
    this.inFeatures = channels * pool * pool;
    const init = new Init(this.config.seed);
    const widths = [this.inFeatures, ...hidden, classes];
    for (let i = 0; i + 1 < widths.length; i++) this.fcs.push(new Linear(widths[i], widths[i + 1], init));
  }

  /**
   * Class scores of a feature map.
   * @param x NHWC `[N, H, W, channels]`.
   * @param opts `tap` receives `pooled` (NHWC), `head_in` (flattened, NCHW order) and `logits`.
   * @returns `[N, classes]`.
   */
  forward(x: tf.Tensor4D, opts: ForwardPassOptions = {}): tf.Tensor2D {
    const { channels, pool } = this.config;
    checkFeatureMap(x, channels, 'head', 'head');
    const tap = opts.tap;
    return tf.tidy(() => {
      const pooled = adaptiveAvgPool2d(x, pool);
      tap?.('pooled', pooled);
      // torch.flatten of NCHW: channel-major.
      let h = tf.reshape(tf.transpose(pooled, [0, 3, 1, 2]), [x.shape[0], this.inFeatures]) as tf.Tensor2D;
      tap?.('head_in', h);
      this.fcs.forEach((fc, i) => {
        h = fc.apply(h);
        if (i + 1 < this.fcs.length) h = tf.relu(h);
      });
      tap?.('logits', h);
      return h;
    });
  }

  /** Same as {@link MLPHead.forward}: the name the training helpers call. */
  logits(x: tf.Tensor4D, opts: ForwardPassOptions = {}): tf.Tensor2D {
    return this.forward(x, opts);
  }

  /** State-dict entries under the reference's names within `head`. */
  state(): StateEntry[] {
    return this.fcs.flatMap((fc, i) => prefixed(`fcs.${i}.`, fc.state()));
  }
}

/**
 * What a {@link LinearHead} is built from.
 * @category Heads
 */
export type LinearHeadConfig = Omit<MLPHeadConfig, 'hidden'>;

/**
 * The GD baseline of the paper: `AdaptiveAvgPool2d(p)` → flatten (NCHW order) → one Linear
 * (`head_arc` empty). State names `fcs.0.weight`, `fcs.0.bias`.
 *
 * @example
 * ```ts
 * // args = heads/linear/config.json's finetune_args: block 15, pre_pool_size 2, head_arc "", 10 classes;
 * // feature = block 15's map [N, 16, 16, 32]
 * const head = new LinearHead({ channels: unet.block(15).channels, pool: args.pre_pool_size, classes: args.num_classes });
 * await head.loadWeights('heads/linear/weights.safetensors', { prefix: 'head.' });
 * const logits = head.forward(feature); // [N, 10]
 * head.dispose();
 * ```
 * @category Heads
 */
export class LinearHead extends MLPHead {
  constructor(config: LinearHeadConfig) {
    super({ ...config, hidden: [] });
  }
}
