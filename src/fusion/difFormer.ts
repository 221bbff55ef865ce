/**
 * DifFormer: the paper's fusion of features from several blocks and noise steps (the reference's
 * `AttentionFusion`).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { AttentionHead } from '../heads/attentionHead.js';
import { parseFusionArc, type FusionArc } from '../heads/fusionArc.js';
import { Linear, type ForwardPassOptions } from '../nn/layers.js';
import { positiveInt } from '../util/checks.js';
import { Init, prefixed, type StateEntry } from '../nn/state.js';
import { Module } from '../nn/module.js';
import { Tokenizer, type NormType } from '../heads/tokenizer.js';

/**
 * A block DifFormer tokenizes: its number and map shape (a row of `ADMUNet.blocks` fits).
 * @category Heads
 */
export interface FusionBlock {
  b: number;
  channels: number;
  /** Side of the block's square map. */
  size: number;
}

/**
 * What a {@link DifFormer} is built from.
 * @category Heads
 */
export interface DifFormerConfig {
  /** The blocks to tokenize, one tokenizer each (shared by every t and by both DifFeed passes). */
  blocks: FusionBlock[];
  /** |𝒯|: how many noise steps' CLS features are concatenated before the classifier. */
  timesteps: number;
  /** `pre_pool_size`: each map is pooled to `min(side, pool)`. */
  pool: number;
  /** `norm_type` of the tokenizers. */
  norm: NormType;
  /** `fusion_arc`, as a string or parsed. */
  arc: string | FusionArc;
  /** `num_classes`. */
  classes: number;
  /** Seed of the random initialisation. Default 0. */
  seed?: number;
}

/**
 * One map DifFormer tokenizes: block `b`'s feature; `secondPass` marks a DifFeed second-pass feature (taps get a `2` suffix).
 * @category Heads
 */
export interface FusionInput {
  b: number;
  map: tf.Tensor4D;
  secondPass?: boolean;
}

/**
 * DifFormer: for each noise step t, tokenize every block's map with that block's
 * {@link Tokenizer} (shared across t), concatenate the tokens in input order, run one shared
 * {@link AttentionHead} (CLS token + Transformer), take the CLS feature; concatenate the |𝒯| CLS
 * features in t order and classify with `Linear(D·|𝒯|, classes)`. The paper's attention head is
 * the case of one block and one t. State names as the reference's `AttentionFusion`:
 * `pre_layer.<b>.…`, `intra_inter_block_attention.…`, `head.weight`, `head.bias`.
 *
 * From a reference configuration (`finetune.py` args): `blocks` are the block-table rows of
 * `set(first_fw_b_list + second_fw_b_list)`, `timesteps` is `len(t_list)`, `pool` is
 * `pre_pool_size`, `norm` is `norm_type`, `arc` is `fusion_arc`, `classes` is `num_classes`.
 * {@link fromReference} does this and runs the U-Net too.
 *
 * @example
 * ```ts
 * // args = heads/difformer/config.json's finetune_args: t_list [90, 150, 300], first_fw_b_list [10, 15, 18],
 * // pre_pool_size 16, norm_type "layer", fusion_arc "Use_CLS_Token:True:64,…", 10 classes
 * const fusion = new DifFormer({
 *   blocks: args.first_fw_b_list.map((b) => unet.block(b)), timesteps: args.t_list.length,
 *   pool: args.pre_pool_size, norm: args.norm_type, arc: args.fusion_arc, classes: args.num_classes,
 * });
 * await fusion.loadWeights('heads/difformer/weights.safetensors', { prefix: 'head.' });
 * const features = await extractFeatures(x0, { t: args.t_list, b: args.first_fw_b_list, model: unet, noise });
 * const logits = fusion.forward(args.t_list.map((t) => args.first_fw_b_list.map((b) => ({ b, map: features.get(t, b) }))));
 * features.dispose(); fusion.dispose();
 * ```
 * @category Heads
 */
export class DifFormer extends Module {
  readonly config: Readonly<Omit<Required<DifFormerConfig>, 'arc'>> & { arc: FusionArc };
  /** One tokenizer per block. */
  readonly tokenizers: ReadonlyMap<number, Tokenizer>;
  /** The shared Transformer (no classifier of its own). */
  readonly transformer: AttentionHead;
  private readonly classifier: Linear;

  constructor(config: DifFormerConfig) {
    super();
    const arc = typeof config?.arc === 'string' ? parseFusionArc(config.arc) : config?.arc;
    if (!arc || !Array.isArray(arc.layers))
      throw new InputError('DifFormer: arc must be a fusion_arc string or a parsed FusionArc');
    if (!Array.isArray(config.blocks) || config.blocks.length === 0)
      throw new InputError('DifFormer: blocks must list at least one block ({ b, channels, size })');
    const timesteps = positiveInt(config.timesteps, 'DifFormer timesteps');
    const classes = positiveInt(config.classes, 'DifFormer classes (num_classes)');
    const pool = positiveInt(config.pool, 'DifFormer pool (pre_pool_size)');
    const seed = config.seed ?? 0;
    const seen = new Set<number>();
    for (const blk of config.blocks) {
      if (!blk || !Number.isInteger(blk.b))
        throw new InputError(`DifFormer: every block needs an integer b, got ${JSON.stringify(blk)}`);
      if (seen.has(blk.b))
        throw new InputError(`DifFormer: block ${blk.b} is listed twice (one tokenizer serves every use of a block)`);
      seen.add(blk.b);
    }
    this.config = {
      blocks: config.blocks.map(({ b, channels, size }) => ({ b, channels, size })),
      timesteps,
      pool,
      norm: config.norm,
      arc,
      classes,
      seed,
    };
    const made: { dispose(): void }[] = [];
    try {
      const tokenizers = new Map<number, Tokenizer>();
      config.blocks.forEach((blk, i) => {
        const tok = new Tokenizer({
          channels: blk.channels,
          side: blk.size,
          pool,
          dim: arc.dim,
          norm: config.norm,
          seed: seed + 1 + i,
        });
        made.push(tok);
        tokenizers.set(blk.b, tok);
      });
      this.tokenizers = tokenizers;
      this.transformer = new AttentionHead({ arc, seed: seed + 1000 });
      made.push(this.transformer);
      // The reference sizes its classifier from the token width, so the Transformer must return D-wide features.
      if (this.transformer.outDim !== arc.dim)
        throw new InputError(
          `DifFormer: the fusion_arc ends with width ${this.transformer.outDim}, but the classifier takes ${arc.dim}·|t| (the Use_CLS_Token width)`,
        );
      this.classifier = new Linear(arc.dim * timesteps, classes, new Init(seed + 2000));
    } catch (e) {
      made.forEach((m) => m.dispose());
      throw e;
    }
  }

  /**
   * The classifier's input: the CLS features of every t, concatenated in t order, `[N, D·|𝒯|]`.
   * @param inputs one list per t (in t order) of the maps to tokenize, in sequence order.
   * @param opts `tap` receives, for the i-th t, `t<i>.pooled|normed|conv|tokens.b<b>` (suffix
   * `2` for second-pass maps), `t<i>.seq_in`, `t<i>.attn_block<j>`, `t<i>.cls`, then `head_in`.
   */
  features(inputs: FusionInput[][], opts: ForwardPassOptions = {}): tf.Tensor2D {
    if (!Array.isArray(inputs) || inputs.length !== this.config.timesteps)
      throw new InputError(
        `DifFormer: inputs must hold one list of maps per t (${this.config.timesteps}), got ${Array.isArray(inputs) ? inputs.length : typeof inputs}`,
      );
    let n = -1;
    for (const [i, list] of inputs.entries()) {
      if (!Array.isArray(list) || list.length === 0)
        throw new InputError(`DifFormer: inputs[${i}] must be a non-empty list of { b, map }`);
      for (const { b, map } of list) {
        if (!this.tokenizers.has(b))
          throw new InputError(
            `DifFormer: no tokenizer for block ${b}; this DifFormer tokenizes blocks ${[...this.tokenizers.keys()].join(', ')}`,
          );
        if (!(map instanceof tf.Tensor) || map.rank !== 4)
          throw new InputError(`DifFormer: the map of block ${b} must be an NHWC rank-4 tensor`);
        if (n >= 0 && map.shape[0] !== n)
          throw new InputError(
            `DifFormer: every map needs the same batch size; block ${b} has ${map.shape[0]}, others ${n}`,
          );
        n = map.shape[0];
      }
    }
    const tap = opts.tap;
    return tf.tidy(() => {
      const cls = inputs.map((list, i) => {
        const tokens = list.map(({ b, map, secondPass }) =>
          this.tokenizers.get(b)!.forward(map, {
            training: opts.training,
            tap: tap && ((k, t) => tap(`t${i}.${k}${secondPass ? '2' : ''}.b${b}`, t)),
          }),
        );
        const seq = tokens.length === 1 ? tokens[0] : (tf.concat(tokens, 1) as tf.Tensor3D);
        return this.transformer.encode(seq, { training: opts.training, tap: tap && ((k, t) => tap(`t${i}.${k}`, t)) });
      });
      const headIn = cls.length === 1 ? cls[0] : (tf.concat(cls, 1) as tf.Tensor2D);
      tap?.('head_in', headIn);
      return headIn;
    });
  }

  /**
   * Class scores `[N, classes]`.
   * @see {@link DifFormer.features} for the inputs; `tap` also receives `logits`.
   */
  forward(inputs: FusionInput[][], opts: ForwardPassOptions = {}): tf.Tensor2D {
    return tf.tidy(() => {
      const logits = this.classifier.apply(this.features(inputs, opts));
      opts.tap?.('logits', logits);
      return logits;
    });
  }

  /** Same as {@link DifFormer.forward}: the name the training helpers call. */
  logits(inputs: FusionInput[][], opts: ForwardPassOptions = {}): tf.Tensor2D {
    return this.forward(inputs, opts);
  }

  /** State-dict entries under the reference's names within `head`. */
  state(): StateEntry[] {
    return [
      ...[...this.tokenizers].flatMap(([b, tok]) => prefixed(`pre_layer.${b}.`, tok.state())),
      ...prefixed('intra_inter_block_attention.', this.transformer.state()),
      ...prefixed('head.', this.classifier.state()),
    ];
  }
}
