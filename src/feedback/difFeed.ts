/**
 * DifFeed: the paper's feedback of decoder features into the encoder, over two U-Net passes.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { BatchNorm2d, type ForwardPassOptions } from '../nn/layers.js';
import { positiveInt } from '../util/checks.js';
import { floatEntry, Init, prefixed, type FloatEntry, type StateEntry } from '../nn/state.js';
import { Module } from '../nn/module.js';
import { dense } from '../ops/dense.js';
import { interpolateBilinear } from '../ops/interpolate.js';
import { noGrad } from '../ops/noGrad.js';
import type { ADMUNet } from '../unet/admUnet.js';
import type { BlockInfo } from '../unet/architecture.js';
import type { ForwardState } from '../unet/runtime/batchParts.js';

/**
 * The feedback block choices of the paper's ablation (Table 4).
 * @category Heads
 */
export type FeedbackStrategy = 'all' | 'bottleneck' | 'windowed' | 'multi-scale';

/**
 * Feedback from decoder block `from` (pass 1) into the output of encoder block `to` (pass 2).
 * @category Heads
 */
export interface FeedbackLink {
  from: number;
  to: number;
}

/**
 * Options of {@link feedbackLinks}.
 * @category Heads
 */
export interface FeedbackStrategyOptions {
  /** `windowed`/`multi-scale`: how many decoder blocks, from the first (default 5, the paper's). */
  window?: number;
  /**
   * `multi-scale`: the one encoder block every windowed map is fed into. The paper does not name
   * it; the default is the mirror of the last windowed block (the largest map among the mirrors, so
   * no map is down-sampled below its own side).
   */
  target?: number;
}

const mirrorOf = (blocks: readonly BlockInfo[], b: number) => blocks.length + 1 - b;

/**
 * The feedback links of a strategy, derived from a U-Net's own block table (so they hold for any
 * model, not only the 256×256 one):
 * - `all`: every decoder block into its mirror encoder block (mirror = total + 1 − b);
 * - `bottleneck`: the decoder blocks whose mirror is the first ResBlock of an encoder level
 *   (right after the input conv or a down-sampling block) — {21, 24, 27, 30, 33, 36} for the 256
 *   model, {12, 15, 18} for a three-level model with two ResBlocks per level;
 * - `windowed`: the first `window` (5) decoder blocks, each into its mirror;
 * - `multi-scale`: the windowed blocks, all into one encoder block (`target`).
 * @param blocks the block table, `unet.blocks`.
 * @throws InputError for an unknown strategy or a bad option.
 * @category Heads
 */
export function feedbackLinks(
  blocks: readonly BlockInfo[],
  strategy: FeedbackStrategy,
  opts: FeedbackStrategyOptions = {},
): FeedbackLink[] {
  if (!Array.isArray(blocks) || blocks.length < 3)
    throw new InputError('feedbackLinks: blocks must be a U-Net block table (unet.blocks)');
  const decoder = blocks.filter((r) => r.part === 'output').map((r) => r.b);
  const size = (b: number) => blocks[b - 1].size;
  const window = () => {
    const w = positiveInt(opts.window ?? 5, 'feedback window');
    return decoder.slice(0, Math.min(w, decoder.length));
  };
  switch (strategy) {
    case 'all':
      return decoder.map((b) => ({ from: b, to: mirrorOf(blocks, b) }));
    case 'bottleneck':
      return decoder
        .filter((b) => {
          const m = mirrorOf(blocks, b);
          return m >= 2 && size(m) === size(m - 1) && (m - 1 === 1 || size(m - 1) !== size(m - 2));
        })
        .map((b) => ({ from: b, to: mirrorOf(blocks, b) }));
    case 'windowed':
      return window().map((b) => ({ from: b, to: mirrorOf(blocks, b) }));
    case 'multi-scale': {
      const w = window();
      const to = opts.target ?? mirrorOf(blocks, w[w.length - 1]);
      if (!Number.isInteger(to) || to < 1 || to > blocks.length || blocks[to - 1].part !== 'input')
        throw new InputError(
          `feedback target ${String(to)} is not an encoder block (1..${blocks.filter((r) => r.part === 'input').length})`,
        );
      return w.map((b) => ({ from: b, to }));
    }
    default:
      throw new InputError(
        `unknown feedback strategy ${JSON.stringify(strategy)}: use all, bottleneck, windowed or multi-scale`,
      );
  }
}

/**
 * What a {@link DifFeed} is built from.
 * @category Heads
 */
export interface DifFeedConfig {
  /**
   * Which decoder features feed back where: a strategy name, a list of decoder blocks (each into
   * its mirror encoder block; the reference's `feedback_b_list`), or explicit links.
   */
  feedback: FeedbackStrategy | number[] | FeedbackLink[];
  /** Options of the strategy. */
  strategy?: FeedbackStrategyOptions;
  /**
   * The feedback network, one letter per layer as the reference's `feedback_arch` (`_` separates):
   * `C` first = 1×1 conv C_from → C_to without bias, `B` = BatchNorm2d, `R` = ReLU, `S` = SiLU.
   * Default `C_B_R`, the paper's.
   */
  arch?: string;
  /** Seed of the random initialisation (PyTorch's default init, seeded). Default 0. */
  seed?: number;
}

/**
 * Options of {@link DifFeed.forward}.
 * @category Heads
 */
export interface DifFeedForwardOptions extends ForwardPassOptions {
  /** Blocks whose second-pass features to return (the pass stops after the deepest). */
  capture: number[];
  /** Blocks whose first-pass features to return as well (constants, like every pass-1 value). */
  firstCapture?: number[];
  /**
   * The batch is this many equal groups (one per t, in t order): each feedback network runs on
   * each group separately, as the reference runs one t at a time — BatchNorm's training statistics
   * are per group — and taps are keyed `t<g>.…`. Default 1.
   */
  groups?: number;
  /** Class labels for class-conditional U-Nets, one per example. */
  y?: number[];
}

/**
 * What {@link DifFeed.forward} returns; the caller owns every tensor.
 * @category Heads
 */
export interface DifFeedResult {
  /** Second-pass features of `capture`, NHWC. Gradients reach the feedback networks through them. */
  second: Map<number, tf.Tensor4D>;
  /** First-pass features of `firstCapture`, NHWC, without gradient. */
  first: Map<number, tf.Tensor4D>;
}

/**
 * The layers of a `feedback_arch` string, one per letter as the reference reads it (its loop runs
 * over the characters; `_` matches no layer): a leading `C` is the 1×1 conv, `B` BatchNorm2d,
 * `R` ReLU, `S` SiLU. The index of a layer in the returned list is its `nn.Sequential` index.
 * @throws InputError for anything else (a later `C` is the reference's depthwise 3×3 conv, `G` its GroupNorm: not supported).
 * @category Heads
 */
export function parseFeedbackArch(arch: string): ('conv' | 'bn' | 'relu' | 'silu')[] {
  if (typeof arch !== 'string' || arch[0] !== 'C')
    throw new InputError(
      `feedback_arch must start with C (the 1×1 conv that maps C_b to the encoder block's channels), got ${JSON.stringify(arch)}`,
    );
  const out: ('conv' | 'bn' | 'relu' | 'silu')[] = [];
  [...arch].forEach((ch, j) => {
    if (ch === '_') return;
    if (ch === 'C' && j === 0) out.push('conv');
    else if (ch === 'B') out.push('bn');
    else if (ch === 'R') out.push('relu');
    else if (ch === 'S') out.push('silu');
    else if (ch === 'C')
      throw new InputError(
        `feedback_arch "${arch}": only a leading C (the 1×1 conv) is supported; a later C is the reference's depthwise 3×3 conv`,
      );
    else
      throw new InputError(
        `feedback_arch "${arch}": unsupported layer "${ch}" (supported: a leading C, then B, R, S, separated by _)`,
      );
  });
  return out;
}

type FbLayer =
  | { kind: 'conv'; index: number; weight: FloatEntry }
  | { kind: 'bn'; index: number; bn: BatchNorm2d }
  | { kind: 'relu' | 'silu' };

/** One feedback network: `C_from → C_to`. */
class FeedbackNet extends Module {
  readonly layers: FbLayer[] = [];
  constructor(
    arch: string,
    readonly inChannels: number,
    readonly outChannels: number,
    init: Init,
  ) {
    super();
    parseFeedbackArch(arch).forEach((kind, index) => {
      if (kind === 'conv')
        this.layers.push({
          kind,
          index,
          weight: floatEntry(
            'weight',
            [outChannels, inChannels, 1, 1],
            'conv1x1',
            init.fanIn([outChannels, inChannels, 1, 1], inChannels),
          ),
        });
      else if (kind === 'bn') this.layers.push({ kind, index, bn: new BatchNorm2d(outChannels) });
      else this.layers.push({ kind });
    });
  }
  apply(x: tf.Tensor4D, training: boolean, tap?: (stage: string, t: tf.Tensor) => void): tf.Tensor4D {
    return tf.tidy(() => {
      let h = x;
      for (const l of this.layers) {
        if (l.kind === 'conv') {
          h = dense(h, l.weight.variable as tf.Tensor as tf.Tensor2D);
          tap?.('fb_conv', h);
        } else if (l.kind === 'bn') {
          h = l.bn.apply(h, training);
          tap?.('fb_bn', h);
        } else h = l.kind === 'relu' ? tf.relu(h) : (tf.mul(h, tf.sigmoid(h)) as tf.Tensor4D);
      }
      tap?.('fb', h);
      return h;
    });
  }
  state(): StateEntry[] {
    return this.layers.flatMap((l) =>
      l.kind === 'conv'
        ? [{ ...l.weight, name: `${l.index}.weight` }]
        : l.kind === 'bn'
          ? prefixed(`${l.index}.`, l.bn.state())
          : [],
    );
  }
}

/**
 * DifFeed's feedback over a frozen U-Net. Pass 1 runs the U-Net on x_t without gradient and
 * stops at the deepest feedback block; each feedback block's map goes through its own network
 * (1×1 conv without bias → BatchNorm2d → ReLU, `C_b → C_mirror`), is resized bilinearly with
 * half-pixel centres (torch's `align_corners=False`) to its encoder block's side and added to that
 * block's output in pass 2, on the same x_t, which also becomes the block's skip. Pass 2 stops at
 * the deepest requested block. Gradients reach the feedback networks (and a head on the
 * features) through pass 2; the U-Net's weights are constants. State names as the reference's
 * `feedback_layers`: `<i>.0.weight`, `<i>.1.weight`, `<i>.1.running_mean`, … with i the link's
 * index.
 *
 * From a reference configuration: `feedback` is `feedback_b_list`, `arch` is `feedback_arch`; the
 * head is a {@link DifFormer} over `second_fw_b_list` — {@link fromReference} builds both.
 *
 * @example
 * ```ts
 * // args = heads/difffeed/config.json's finetune_args: feedback_b_list [12, 15, 18] (adm-tiny's
 * // "bottleneck": into encoder blocks 8, 5, 2), feedback_arch "C_B_R", second_fw_b_list [15], t 150
 * const feed = new DifFeed(unet, { feedback: args.feedback_b_list, arch: args.feedback_arch }); // or { feedback: 'bottleneck' }
 * await feed.loadWeights('heads/difffeed/weights.safetensors', { prefix: 'feedback_layers.' });
 * const t = new Array(x0.shape[0]).fill(150);
 * const xt = unet.qSample(x0, t, noise);
 * const { second } = feed.forward(xt, t, { capture: args.second_fw_b_list });
 * const feature = second.get(15); // [N, 16, 16, 32], for a DifFormer / attention head
 * feed.dispose(); // the U-Net stays
 * ```
 * @category Heads
 */
export class DifFeed extends Module {
  readonly links: readonly FeedbackLink[];
  readonly arch: string;
  private readonly nets: FeedbackNet[];

  constructor(
    readonly unet: ADMUNet,
    config: DifFeedConfig,
  ) {
    super();
    if (!unet || typeof unet.forward !== 'function' || !Array.isArray(unet.blocks))
      throw new InputError('DifFeed needs an ADMUNet');
    const fb = config?.feedback;
    let links: FeedbackLink[];
    if (typeof fb === 'string') links = feedbackLinks(unet.blocks, fb as FeedbackStrategy, config.strategy);
    else if (Array.isArray(fb) && fb.every((v) => typeof v === 'number')) {
      links = (fb as number[]).map((b) => {
        this.checkDecoder(b);
        return { from: b, to: unet.mirror(b) };
      });
    } else if (Array.isArray(fb) && fb.every((v) => v && typeof v === 'object'))
      links = (fb as FeedbackLink[]).map(({ from, to }) => ({ from, to }));
    else
      throw new InputError(
        'DifFeed: feedback must be a strategy name, a list of decoder blocks or a list of { from, to } links',
      );
    if (links.length === 0) throw new InputError('DifFeed: no feedback blocks');
    const seen = new Set<number>();
    for (const { from, to } of links) {
      this.checkDecoder(from);
      if (!Number.isInteger(to) || to < 1 || to > unet.totalBlocks || unet.block(to).part !== 'input')
        throw new InputError(
          `DifFeed: feedback from block ${from} goes to block ${String(to)}, which is not an encoder block (1..${unet.numInputBlocks})`,
        );
      if (seen.has(from)) throw new InputError(`DifFeed: decoder block ${from} is listed twice`);
      seen.add(from);
    }
    this.links = links;
    this.arch = config.arch ?? 'C_B_R';
    parseFeedbackArch(this.arch); // all checks before anything is allocated
    const init = new Init(config.seed ?? 0);
    this.nets = [];
    try {
      for (const { from, to } of links)
        this.nets.push(new FeedbackNet(this.arch, unet.block(from).channels, unet.block(to).channels, init));
    } catch (e) {
      this.nets.forEach((n) => n.dispose());
      throw e;
    }
  }

  private checkDecoder(b: number): void {
    const info = this.unet.block(b); // InputError for an unknown block
    if (info.part !== 'output')
      throw new InputError(
        `feedback block ${b} is not a decoder block: it is the ${info.part === 'input' ? 'encoder' : 'middle'} block ${info.module}; decoder blocks are ${this.unet.numInputBlocks + 2}..${this.unet.totalBlocks}`,
      );
  }

  /** The decoder blocks pass 1 must reach. */
  get sources(): number[] {
    return this.links.map((l) => l.from);
  }

  /**
   * The two passes.
   * @param xt x_t, NHWC, a batch of `groups` equal groups in t order.
   * @param t one step per example.
   * @param opts `tap` receives, for group g, `t<g>.fb_src.b<b>`, `t<g>.fb_conv.b<b>`,
   * `t<g>.fb_bn.b<b>`, `t<g>.fb.b<b>` (feedback network stages at the feedback block's size),
   * `t<g>.pass2.block_<m>` (encoder block m after the addition), `t<g>.feat.b<b>` (first pass) and
   * `t<g>.feat2.b<b>` (second pass).
   */
  forward(xt: tf.Tensor4D, t: number[], opts: DifFeedForwardOptions): DifFeedResult {
    const unet = this.unet;
    const n = unet.checkImages(xt, 'xt');
    if (!opts || !Array.isArray(opts.capture) || opts.capture.length === 0)
      throw new InputError('DifFeed.forward: capture must list the second-pass blocks to return');
    const capture = [...new Set(opts.capture.map((b) => unet.block(b).b))];
    const firstCapture = [...new Set((opts.firstCapture ?? []).map((b) => unet.block(b).b))];
    const groups = positiveInt(opts.groups ?? 1, 'groups');
    if (n % groups !== 0)
      throw new InputError(`DifFeed.forward: a batch of ${n} does not split into ${groups} equal groups`);
    const training = opts.training ?? false;
    const tap = opts.tap;
    const tapGroups = (key: (g: number) => string, x: tf.Tensor4D) => {
      if (!tap) return;
      tf.tidy(() => (groups === 1 ? [x] : tf.split(x, groups, 0)).forEach((part, g) => tap(key(g), part as tf.Tensor)));
    };

    // Pass 1: constants; stops after the deepest block needed. Pass 2 equals it up to the first
    // block that receives feedback, so, where the blocks allow, it starts there from what pass 1 held.
    const pass1Blocks = [...new Set([...this.sources, ...firstCapture])];
    const targets = [...new Set(this.links.map((l) => l.to))];
    const extra = tap ? targets.filter((m) => !capture.includes(m)) : [];
    const hold = Math.min(...targets);
    const resumable = unet.canHold(hold, Math.max(...pass1Blocks)) && [...capture, ...extra].every((b) => b >= hold);
    let held: ForwardState | undefined;
    const pass1 = noGrad(() => {
      const r = unet.forward(xt, t, { capture: pass1Blocks, y: opts.y, ...(resumable ? { hold } : {}) });
      held = r.state;
      return pass1Blocks.map((b) => r.features.get(b)!);
    });
    const pass1Map = new Map(pass1Blocks.map((b, i) => [b, pass1[i]]));
    const first = new Map<number, tf.Tensor4D>();
    try {
      for (const b of firstCapture) {
        first.set(b, tf.clone(pass1Map.get(b)!));
        tapGroups((g) => `t${g}.feat.b${b}`, first.get(b)!);
      }
      const outs = tf.tidy(() => {
        const add = new Map<number, tf.Tensor4D>();
        this.links.forEach(({ from, to }, i) => {
          const src = pass1Map.get(from)!;
          const parts = groups === 1 ? [src] : (tf.split(src, groups, 0) as tf.Tensor4D[]);
          const fb = parts.map((part, g) => {
            tap?.(`t${g}.fb_src.b${from}`, part);
            return this.nets[i].apply(part, training, tap && ((stage, x) => tap(`t${g}.${stage}.b${from}`, x)));
          });
          let map = fb.length === 1 ? fb[0] : (tf.concat(fb, 0) as tf.Tensor4D);
          const side = unet.block(to).size;
          if (map.shape[1] !== side || map.shape[2] !== side) map = interpolateBilinear(map, side);
          const prev = add.get(to);
          add.set(to, prev ? tf.add(prev, map) : map);
        });
        const r = unet.forward(xt, t, { add, capture: [...capture, ...extra], y: opts.y, resume: held });
        for (const m of targets) if (r.features.has(m)) tapGroups((g) => `t${g}.pass2.block_${m}`, r.features.get(m)!);
        for (const b of capture) tapGroups((g) => `t${g}.feat2.b${b}`, r.features.get(b)!);
        return capture.map((b) => r.features.get(b)!);
      });
      return { second: new Map(capture.map((b, i) => [b, outs[i]])), first };
    } catch (e) {
      first.forEach((f) => f.dispose());
      throw e;
    } finally {
      pass1.forEach((p) => p.dispose());
      held?.dispose();
    }
  }

  /** State-dict entries under the reference's names within `feedback_layers`. */
  state(): StateEntry[] {
    return this.nets.flatMap((net, i) => prefixed(`${i}.`, net.state()));
  }
}
