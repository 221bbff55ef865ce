/**
 * The whole classification system of the reference's `finetune.py` (its
 * `DiffSSLModelFeedbackFusion`: a frozen U-Net, a head, optionally DifFeed), built from the
 * script's arguments.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from './errors.js';
import { DifFeed } from './feedback/difFeed.js';
import { DifFormer, type FusionInput } from './fusion/difFormer.js';
import { parseFusionArc } from './heads/fusionArc.js';
import { type Tap } from './nn/layers.js';
import { positiveInt } from './util/checks.js';
import { MLPHead, parseHeadArc } from './heads/mlpHead.js';
import { prefixed, stateDict, type StateEntry } from './nn/state.js';
import { Module } from './nn/module.js';
import type { NormType } from './heads/tokenizer.js';
import type { TensorToWrite } from './io/safetensors.js';
import { noGrad } from './ops/noGrad.js';
import { checkSeed, stepNoise } from './util/noise.js';
import { checkImageRange } from './unet/schedule.js';
import type { ADMUNet } from './unet/admUnet.js';
import type { FeatureSet } from './features/extractFeatures.js';

/**
 * The arguments of the reference's `finetune.py` that shape the model (a fixture's
 * `config.json` → `finetune_args`). Lists use `[-1]` or `[]` for "not used", as the script does.
 * @category Heads
 */
export interface FinetuneArgs {
  /** `linear` (the GD baseline `Head`) or `attention` (`AttentionFusion`: attention head, DifFormer, DifFeed). */
  head_type: string;
  /** Linear head's hidden widths, `''` or like `'2048_1024'`. */
  head_arc?: string;
  /** Tokenizer norm of the attention head: `layer` (also for `''`, the script's default) or `batch`. */
  norm_type?: string;
  /** Pooled side: of the linear head's map, or the tokenizers' upper bound. */
  pre_pool_size: number;
  /** The attention head's layer string (see {@link parseFusionArc}). */
  fusion_arc?: string;
  /** Feedback network letters, default `C_B_R`. */
  feedback_arch?: string | null;
  /** Noise steps 𝒯. */
  t_list: number[];
  /** Blocks read from the (first) U-Net pass. */
  first_fw_b_list: number[];
  /** Blocks read from DifFeed's second pass; non-empty turns DifFeed on. */
  second_fw_b_list?: number[];
  /** DifFeed's decoder blocks, ascending; each feeds back into its mirror encoder block. */
  feedback_b_list?: number[];
  num_classes: number;
  /** `freeze` (the only mode whose training this library does; the others train the U-Net too but build the same head). */
  mode?: string;
  /** Ignored: this library computes in float32. */
  use_fp16?: boolean;
}

/**
 * Options of {@link DiffSSLModel.logits}.
 * @category Heads
 */
export interface LogitsOptions {
  /**
   * ε for each t, in t order, NHWC like x0 (the reference draws `randn_like(x0)` per t). Stays owned
   * by the caller. Without it noise is drawn with `tf.randomNormal` (seeded by `seed` when given).
   */
  noise?: tf.Tensor4D[];
  /**
   * Seed for drawn noise: any integer, 0 and negative ones included. ε for step t depends only on
   * (seed, t), as in {@link extractFeatures}'s `seed`.
   */
  seed?: number;
  /**
   * Check that x0 is finite and scaled to [-1, 1] (see `checkImageRange`), throwing an InputError
   * that says how to rescale otherwise. Default true; false for callers who mean other values.
   */
  checkRange?: boolean;
  /** Training mode: BatchNorm layers use and update batch statistics. Default false (eval). */
  training?: boolean;
  /** Class labels for a class-conditional U-Net, one per example. */
  y?: number[];
  /**
   * Receives every intermediate under the fixtures' keys: `t<i>.x_t`, `t<i>.feat.b<b>`,
   * `t<i>.pooled|normed|conv|tokens.b<b>` (suffix 2 in DifFeed's second pass), `t<i>.attn_block<j>`,
   * `t<i>.cls`, `head_in`, `logits`, `pooled` (linear head), and DifFeed's `t<i>.fb_src|fb_conv|fb_bn|fb.b<b>`,
   * `t<i>.pass2.block_<m>`, `t<i>.feat2.b<b>`. NHWC for maps.
   */
  tap?: Tap;
}

const MODES = ['freeze', 'update', 'mult_fpn', 'add_fpn', 'multi_scale_freeze', 'finetune'];

function blockList(v: unknown, what: string): number[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((b) => Number.isInteger(b)))
    throw new InputError(`${what} must be a list of block numbers, got ${JSON.stringify(v)}`);
  if (v.length > 0 && v[0] === -1) return []; // finetune.py's "not used"
  if (new Set(v).size !== v.length) throw new InputError(`${what} lists a block twice: ${JSON.stringify(v)}`);
  return [...v];
}

/**
 * The model `finetune.py` trains: a frozen ADM U-Net, optionally DifFeed's feedback networks, and
 * a head (the linear/MLP `Head` or the attention `AttentionFusion` = {@link DifFormer}). State names
 * are the reference's: `head.…`, `feedback_layers.…`, so {@link Module.loadWeights} takes a reference
 * checkpoint's `model_head` and `model_feedback` state dicts under those prefixes. Training, saving
 * and {@link Module.dispose} cover the head and feedback networks, never the U-Net. Built by
 * {@link fromReference}.
 * @category Heads
 */
export class DiffSSLModel extends Module {
  /** The arguments as given. */
  readonly args: Readonly<FinetuneArgs>;
  readonly t: readonly number[];
  readonly firstBlocks: readonly number[];
  readonly secondBlocks: readonly number[];
  /** `MLPHead` for `head_type linear`, `DifFormer` for `attention`. */
  readonly head: MLPHead | DifFormer;
  /** DifFeed's feedback networks, when `second_fw_b_list` is used. */
  readonly feedback: DifFeed | null;

  /** @internal use {@link fromReference} */
  constructor(
    readonly unet: ADMUNet,
    args: FinetuneArgs,
    parts: { t: number[]; first: number[]; second: number[]; head: MLPHead | DifFormer; feedback: DifFeed | null },
  ) {
    super();
    this.args = args;
    this.t = parts.t;
    this.firstBlocks = parts.first;
    this.secondBlocks = parts.second;
    this.head = parts.head;
    this.feedback = parts.feedback;
  }

  /**
   * Class scores of clean images, as the reference's forward: for each t, `x_t = q_sample(x0, t, ε)`;
   * U-Net features of the first-pass blocks (one batched forward over every t, without gradient);
   * with DifFeed, the second pass; then the head.
   * @param x0 NHWC `[N, S, S, 3]` in [−1, 1]; other values are an InputError (see `checkRange`).
   * @returns `[N, num_classes]`, owned by the caller.
   * @throws InputError for bad images, noise or labels.
   */
  logits(x0: tf.Tensor4D, opts: LogitsOptions = {}): tf.Tensor2D {
    const unet = this.unet;
    const n = unet.checkImages(x0, 'x0');
    const T = this.t.length;
    if (opts.noise !== undefined) {
      if (!Array.isArray(opts.noise) || opts.noise.length !== T)
        throw new InputError(
          `noise must be an array with one tensor per t (${T}: t_list ${JSON.stringify(this.t)}), got ${Array.isArray(opts.noise) ? opts.noise.length : typeof opts.noise}`,
        );
      opts.noise.forEach((e, i) => {
        if (!(e instanceof tf.Tensor) || !tf.util.arraysEqual(e.shape, x0.shape))
          throw new InputError(
            `noise[${i}] must have x0's shape [${x0.shape}], got ${e instanceof tf.Tensor ? `[${e.shape}]` : typeof e}`,
          );
      });
    }
    if (opts.y !== undefined && (!Array.isArray(opts.y) || opts.y.length !== n))
      throw new InputError(`y must hold one label per example (${n})`);
    if (opts.seed !== undefined) checkSeed(opts.seed);
    if (opts.checkRange !== false) checkImageRange(x0, 'x0');
    const training = opts.training ?? false;
    const tap = opts.tap;
    return tf.tidy(() => {
      const drawn = opts.noise ? undefined : stepNoise<tf.Rank.R4>(x0.shape, this.t, opts.seed);
      const xts = this.t.map((t, i) => {
        const eps = opts.noise ? opts.noise[i] : drawn![i];
        const xt = unet.qSample(x0, new Array(n).fill(t), eps, { checkRange: false });
        tap?.(`t${i}.x_t`, xt);
        return xt;
      });
      // One batched U-Net pass over every t.
      const xt = T === 1 ? xts[0] : (tf.concat(xts, 0) as tf.Tensor4D);
      const tt = this.t.flatMap((t) => new Array<number>(n).fill(t));
      const y = opts.y && this.t.flatMap(() => opts.y!);
      let first: Map<number, tf.Tensor4D>;
      let second = new Map<number, tf.Tensor4D>();
      if (this.feedback) {
        ({ first, second } = this.feedback.forward(xt, tt, {
          capture: [...this.secondBlocks],
          firstCapture: [...this.firstBlocks],
          groups: T,
          training,
          tap,
          y,
        }));
      } else {
        const maps = noGrad(() => {
          const r = unet.forward(xt, tt, { capture: [...this.firstBlocks], y });
          return this.firstBlocks.map((b) => r.features.get(b)!);
        });
        first = new Map(this.firstBlocks.map((b, i) => [b, maps[i]]));
        if (tap)
          for (const [b, m] of first)
            (T === 1 ? [m] : tf.split(m, T, 0)).forEach((part, i) => tap(`t${i}.feat.b${b}`, part as tf.Tensor));
      }
      const perT = (m: tf.Tensor4D) => (T === 1 ? [m] : (tf.split(m, T, 0) as tf.Tensor4D[]));
      if (this.head instanceof DifFormer) {
        const firstParts = this.firstBlocks.map((b) => perT(first.get(b)!));
        const secondParts = this.secondBlocks.map((b) => perT(second.get(b)!));
        const inputs: FusionInput[][] = this.t.map((_, i) => [
          ...this.firstBlocks.map((b, j) => ({ b, map: firstParts[j][i] })),
          ...this.secondBlocks.map((b, j) => ({ b, map: secondParts[j][i], secondPass: true })),
        ]);
        return this.head.forward(inputs, { training, tap });
      }
      // The reference's linear Head reads the first block at the first t only.
      return this.head.forward(perT(first.get(this.firstBlocks[0])!)[0], { training, tap });
    });
  }

  /**
   * Class scores from features extracted beforehand (a {@link FeatureSet} or anything with
   * `get(t, b)` returning NHWC maps): the head alone, for training on cached features. The maps
   * stay owned by the caller. Not for DifFeed, whose second pass needs the U-Net.
   * @throws InputError for a DifFeed system or a missing (t, b).
   */
  logitsFromFeatures(
    features: { get(t: number, b: number): tf.Tensor4D },
    opts: Pick<LogitsOptions, 'training' | 'tap'> = {},
  ): tf.Tensor2D {
    if (this.feedback)
      throw new InputError(
        'logitsFromFeatures: a DifFeed system needs the U-Net for its second pass; use logits(x0, …)',
      );
    if (!features || typeof features.get !== 'function')
      throw new InputError('logitsFromFeatures: features must have get(t, b) (a FeatureSet)');
    const training = opts.training ?? false;
    return tf.tidy(() => {
      if (this.head instanceof DifFormer) {
        const inputs = this.t.map((t) => this.firstBlocks.map((b) => ({ b, map: features.get(t, b) })));
        return this.head.forward(inputs, { training, tap: opts.tap });
      }
      return this.head.forward(features.get(this.t[0], this.firstBlocks[0]), { training, tap: opts.tap });
    });
  }

  /** State-dict entries: `head.…` and `feedback_layers.…`. */
  state(): StateEntry[] {
    return [
      ...prefixed('head.', this.head.state()),
      ...(this.feedback ? prefixed('feedback_layers.', this.feedback.state()) : []),
    ];
  }

  /** The head's and feedback networks' weights under the reference's names and layouts (copies). */
  stateDict(): Map<string, TensorToWrite> {
    return stateDict(this.state());
  }
}

/**
 * Options of {@link fromReference}.
 * @category Heads
 */
export interface FromReferenceOptions {
  /** Seed of the random initialisation (before any {@link DiffSSLModel.loadWeights}). Default 0. */
  seed?: number;
}

/**
 * Builds the system the reference's `finetune.py` arguments describe, on any ADM U-Net: the
 * blocks' channels and sides come from the U-Net's own block table and the feedback mirrors from
 * its block count. The same checks as the script, plus what it would only fail on later (or get
 * silently wrong): unknown blocks, a feedback block that is not a decoder block, an unsorted
 * `feedback_b_list` (the reference pairs maps with encoder blocks by position, which is only right
 * for an ascending list), an unknown `head_type`, `norm_type` or fusion_arc layer.
 *
 * @example
 * ```ts
 * const cfg = JSON.parse(fs.readFileSync('heads/difformer/config.json', 'utf8'));
 * const model = fromReference(cfg.finetune_args, unet);
 * await model.loadWeights('heads/difformer/weights.safetensors');
 * const logits = model.logits(x0, { noise: [n90, n150, n300] }); // one ε per t → [N, num_classes]
 * logits.dispose(); model.dispose(); // the U-Net stays
 * ```
 * @throws InputError naming the bad argument.
 * @category Heads
 */
export function fromReference(args: FinetuneArgs, unet: ADMUNet, opts: FromReferenceOptions = {}): DiffSSLModel {
  if (!args || typeof args !== 'object')
    throw new InputError(
      "fromReference: args must be the finetune.py argument object (a fixture config.json's finetune_args)",
    );
  if (!unet || typeof unet.forward !== 'function' || !Array.isArray(unet.blocks))
    throw new InputError('fromReference: unet must be an ADMUNet');
  const seed = opts.seed ?? 0;
  if (!Array.isArray(args.t_list) || args.t_list.length === 0)
    throw new InputError(`t_list must be a non-empty list of steps, got ${JSON.stringify(args.t_list)}`);
  const steps = unet.schedule.steps;
  args.t_list.forEach((t) => {
    if (!Number.isInteger(t) || t < 0 || t >= steps)
      throw new InputError(`t_list: ${JSON.stringify(t)} is not a step in [0, ${steps})`);
  });
  const t = [...args.t_list];
  const first = blockList(args.first_fw_b_list, 'first_fw_b_list');
  const second = blockList(args.second_fw_b_list, 'second_fw_b_list');
  const fbList = blockList(args.feedback_b_list, 'feedback_b_list');
  for (const [list, what] of [
    [first, 'first_fw_b_list'],
    [second, 'second_fw_b_list'],
  ] as const)
    for (const b of list)
      if (!Number.isInteger(b) || b < 1 || b > unet.totalBlocks)
        throw new InputError(`${what}: unknown block ${b}: this U-Net has blocks 1..${unet.totalBlocks}`);
  const pool = positiveInt(args.pre_pool_size, 'pre_pool_size');
  const classes = positiveInt(args.num_classes, 'num_classes');
  if (args.mode !== undefined && args.mode !== null && !MODES.includes(args.mode))
    throw new InputError(`mode ${JSON.stringify(args.mode)} is not one of ${MODES.join(', ')}`);
  const useFeedback = second.length > 0;
  if (useFeedback && fbList.length === 0)
    throw new InputError('second_fw_b_list is used (DifFeed) but feedback_b_list names no feedback blocks');

  let head: MLPHead | DifFormer;
  if (args.head_type === 'linear') {
    if (first.length !== 1 || t.length !== 1 || second.length !== 0)
      throw new InputError(
        'head_type linear takes exactly one block in first_fw_b_list, one t and no second_fw_b_list (as finetune.py asserts: the linear head cannot be used for feedback or fusion)',
      );
    head = new MLPHead({
      channels: unet.block(first[0]).channels,
      pool,
      hidden: parseHeadArc(args.head_arc ?? ''),
      classes,
      seed,
    });
  } else if (args.head_type === 'attention') {
    const norm = args.norm_type ?? '';
    if (!['layer', 'batch', ''].includes(norm))
      throw new InputError(
        `norm_type must be "layer" or "batch" ("" means layer, as in finetune.py), got ${JSON.stringify(norm)}`,
      );
    if (first.length + second.length === 0)
      throw new InputError('head_type attention needs at least one block in first_fw_b_list or second_fw_b_list');
    const arc = parseFusionArc(args.fusion_arc ?? '');
    const blocks = [...new Set([...first, ...second])].map((b) => unet.block(b));
    head = new DifFormer({
      blocks,
      timesteps: t.length,
      pool,
      norm: (norm === 'batch' ? 'batch' : 'layer') as NormType,
      arc,
      classes,
      seed,
    });
  } else {
    throw new InputError(`unknown head_type ${JSON.stringify(args.head_type)}: use "linear" or "attention"`);
  }

  let feedback: DifFeed | null = null;
  if (useFeedback) {
    try {
      for (let i = 1; i < fbList.length; i++)
        if (fbList[i] <= fbList[i - 1])
          throw new InputError(
            `feedback_b_list must be ascending (the reference pairs feedback maps with encoder blocks by position, which is right only for a sorted list), got ${JSON.stringify(fbList)}`,
          );
      feedback = new DifFeed(unet, { feedback: fbList, arch: args.feedback_arch ?? 'C_B_R', seed: seed + 5000 });
    } catch (e) {
      head.dispose();
      throw e;
    }
  }
  return new DiffSSLModel(unet, args, { t, first, second, head, feedback });
}
