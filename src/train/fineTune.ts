/**
 * Fine-tuning the U-Net together with a head (the paper's semi-supervised Table 5): clean images are
 * noised to step t with seeded noise, the U-Net runs up to block b (and no further), a head turns
 * block b's map into logits, and the library's one training loop ({@link train}) updates the head and
 * the chosen parts of the U-Net, each part with its own learning rate.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import type { Batch, Dataset } from '../data/dataset.js';
import { noGrad } from '../ops/noGrad.js';
import type { ADMUNet } from '../unet/admUnet.js';
import { buildArchitecture } from '../unet/architecture.js';
import type { ForwardOptions } from '../unet/options.js';
import { checkSeed, seededNormal } from '../util/noise.js';
import { mixSeed } from '../util/random.js';
import { makeOptimizer, type AdamSpec, type LRSchedule, type MomentumSpec, type SgdSpec } from './optimizers.js';
import { train, type TrainOptions, type TrainResult } from './trainer.js';
import type { LogitsCallOptions, TrainableModel } from './trainableModel.js';

/**
 * How one part is trained: with its own learning rate, or not at all.
 * @category Training
 */
export type PartSetting = { lr: number } | 'freeze';

/**
 * The parts that take a {@link PartSetting}. U-Net weights are matched by their reference state-dict
 * names, the most specific key winning: `input_blocks.<k>` / `output_blocks.<k>` (one module of the
 * block table, paper block k + 1 / N_in + 2 + k), then `input_blocks`, `middle_block`,
 * `output_blocks`, `time_embed`, `label_emb` (class-conditional models), then `unet` (every U-Net
 * weight). A U-Net weight no key matches is frozen. `head` is the head's variables.
 * @category Training
 */
export type FineTunePart =
  | 'head'
  | 'unet'
  | 'time_embed'
  | 'label_emb'
  | 'input_blocks'
  | 'middle_block'
  | 'output_blocks'
  | `input_blocks.${number}`
  | `output_blocks.${number}`;

/**
 * What {@link FineTuneModel} runs on block b's map: any head with variables and a forward, such as
 * `MLPHead`, `LinearHead` or `AttentionHead`-like modules that take one NHWC map.
 * @category Training
 */
export interface FineTuneHead {
  readonly trainableVariables: tf.Variable[];
  forward(x: tf.Tensor4D, opts?: { training?: boolean }): tf.Tensor2D;
}

/**
 * Options of {@link FineTuneModel}.
 * @category Training
 */
export interface FineTuneModelOptions {
  /** Noise step, an integer in [0, T). */
  t: number;
  /** The block whose output the head reads (paper numbering, 1..total); the U-Net stops after it. */
  b: number;
  /**
   * Learning rate or freezing per part, e.g. `{ head: { lr: 1e-3 }, unet: { lr: 3e-5 }, 'input_blocks.0': 'freeze' }`.
   * `head` is required; U-Net weights no key matches are frozen (see {@link FineTunePart}). Weights
   * of blocks after `b` are never run, so never trained, whatever the settings.
   */
  parts: Partial<Record<FineTunePart, PartSetting>>;
  /**
   * Per-block gradient checkpointing of the U-Net forward (passed on as `ForwardOptions.checkpoint`):
   * less memory, one more forward per block. Named apart from the trainer's `checkpoint` (saved runs).
   */
  gradientCheckpoint?: boolean;
  /** Training only: ResBlock dropout rate of the U-Net (as `ForwardOptions.dropout`), masks drawn from the batch seed. Default 0. */
  dropout?: number;
  /** Seed of the noise when a call gives neither `seed` nor `noise` (default 0: the same ε every such call). */
  seed?: number;
}

/**
 * Options of {@link FineTuneModel.logits}: the trainer's mode plus what the batch carries.
 * @category Training
 */
export interface FineTuneLogitsOptions extends Partial<LogitsCallOptions> {
  /** Seed of this batch's ε (`seededNormal(x0.shape, seed, t)`); {@link withBatchSeeds} puts the trainer's batch seed here. */
  seed?: number;
  /** Explicit ε, x0's shape; overrides `seed`. */
  noise?: tf.Tensor4D;
  /** Class labels for a class-conditional U-Net. */
  y?: number[];
}

/**
 * One learning-rate group: the variables one optimizer of a {@link GroupedOptimizer} updates.
 * @category Training
 */
export interface ParamGroup {
  lr: number;
  /** The parts (keys of `parts`) whose setting gave the group's variables. */
  parts: string[];
  /** `head.<i>` for the head's variables, the reference state-dict name for U-Net weights. */
  names: string[];
  variables: tf.Variable[];
}

/** The optimizer family of a {@link GroupedOptimizer}: an {@link OptimizerSpec} less its learning rate. */
export type GroupOptimizerSpec = Omit<SgdSpec, 'lr'> | Omit<MomentumSpec, 'lr'> | Omit<AdamSpec, 'lr'>;

/** A tensor with a name, as tfjs optimizers list their weights. */
type NamedTensor = { name: string; tensor: tf.Tensor };
type WithLr = tf.Optimizer & { learningRate: number; setLearningRate?: (lr: number) => void };
type AdamInternals = { accBeta1?: tf.Variable; accBeta2?: tf.Variable };

function positiveLr(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new InputError(`${what} must be a positive finite number, got ${String(v)}`);
  return v;
}

/**
 * One optimizer per learning-rate group behind the one `tf.Optimizer` the trainer takes. Per-part
 * rates cannot be had by scaling gradients (Adam is invariant to gradient scale), so each group
 * has an optimizer of its own, all of one family and stepped together.
 *
 * For the trainer and its checkpoints it behaves as one optimizer over the groups' variables
 * concatenated in group order (a {@link FineTuneModel}'s `trainableVariables` order): `getWeights`
 * lists the slots kind-major in that order, as tfjs's optimizers do, `setWeights` takes them back,
 * and Adam's running β powers (`accBeta1/2`, which the checkpoint restores exactly) are shared.
 * `learningRate` is the first group's rate; setting it (a schedule) scales every group's rate by the
 * same factor, so the ratios stay.
 * @category Training
 */
export class GroupedOptimizer extends tf.Optimizer {
  /** @nocollapse */
  static className = 'GroupedOptimizer';
  private readonly subs: tf.Optimizer[];
  private readonly baseLrs: number[];
  private readonly groups: { variables: tf.Variable[] }[];
  private readonly spec: GroupOptimizerSpec;
  private lr: number;

  constructor(groups: { lr: number; variables: tf.Variable[] }[], spec: GroupOptimizerSpec = { type: 'adam' }) {
    super();
    if (!Array.isArray(groups) || groups.length === 0)
      throw new InputError('GroupedOptimizer needs at least one group of variables');
    groups.forEach((g, i) => {
      positiveLr(g?.lr, `group ${i} lr`);
      if (
        !Array.isArray(g.variables) ||
        g.variables.length === 0 ||
        !g.variables.every((v) => v instanceof tf.Variable)
      )
        throw new InputError(`group ${i} must have a non-empty array of tf.Variable`);
    });
    const seen = new Set<string>();
    for (const g of groups)
      for (const v of g.variables) {
        if (seen.has(v.name)) throw new InputError(`variable ${v.name} is in two groups`);
        seen.add(v.name);
      }
    this.spec = { ...spec };
    this.baseLrs = groups.map((g) => g.lr);
    this.groups = groups.map((g) => ({ variables: [...g.variables] }));
    this.lr = this.baseLrs[0];
    const subs: tf.Optimizer[] = [];
    try {
      for (const g of groups) subs.push(makeOptimizer({ ...spec, lr: g.lr } as SgdSpec | MomentumSpec | AdamSpec));
    } catch (e) {
      subs.forEach((s) => s.dispose());
      throw e;
    }
    this.subs = subs;
  }

  /** The first group's learning rate. */
  get learningRate(): number {
    return this.lr;
  }
  set learningRate(lr: number) {
    this.setLearningRate(lr);
  }

  /** The rate each group steps with now. */
  get learningRates(): number[] {
    return this.subs.map((s) => (s as WithLr).learningRate);
  }

  /** Sets the first group's rate to `lr` and every other group's to its base rate times `lr / base₀`. */
  setLearningRate(lr: number): void {
    positiveLr(lr, 'learning rate');
    const factor = lr / this.baseLrs[0];
    this.subs.forEach((s, i) => {
      const r = i === 0 ? lr : this.baseLrs[i] * factor;
      const o = s as WithLr;
      if (typeof o.setLearningRate === 'function') o.setLearningRate(r);
      else o.learningRate = r;
    });
    this.lr = lr;
  }

  /** Adam's running β₁ power (shared by the groups), for checkpoints; undefined for other families. */
  get accBeta1(): tf.Variable | undefined {
    return (this.subs[0] as unknown as AdamInternals).accBeta1;
  }
  /** Adam's running β₂ power (shared by the groups), for checkpoints; undefined for other families. */
  get accBeta2(): tf.Variable | undefined {
    return (this.subs[0] as unknown as AdamInternals).accBeta2;
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const byName: tf.NamedTensorMap = Array.isArray(variableGradients)
      ? Object.fromEntries(variableGradients.map((g) => [g.name, g.tensor]))
      : variableGradients;
    this.syncBetaPowers();
    this.groups.forEach((g, i) =>
      this.subs[i].applyGradients(g.variables.map((v) => ({ name: v.name, tensor: byName[v.name] }))),
    );
    this.incrementIterations();
  }

  // The groups step together, so their β powers agree; after a checkpoint restored the first
  // group's exactly, the others take its values.
  private syncBetaPowers(): void {
    const first = this.subs[0] as unknown as AdamInternals;
    if (!(first.accBeta1 instanceof tf.Variable) || !(first.accBeta2 instanceof tf.Variable)) return;
    for (const s of this.subs.slice(1)) {
      const o = s as unknown as AdamInternals;
      o.accBeta1!.assign(first.accBeta1);
      o.accBeta2!.assign(first.accBeta2);
    }
  }

  override async getWeights(): Promise<NamedTensor[]> {
    const per = await Promise.all(this.subs.map((s) => s.getWeights()));
    tf.dispose(per.map((w) => w[0].tensor)); // each group's own iteration count
    const slots = per.map((w, i) => {
      const rest = w.slice(1);
      const n = this.groups[i].variables.length;
      if (rest.length % n !== 0) throw new InputError(`group ${i} holds ${rest.length} slots for ${n} variables`);
      return { rest, kinds: rest.length / n, n };
    });
    const kinds = Math.max(...slots.map((s) => s.kinds));
    if (slots.some((s) => s.kinds !== kinds))
      throw new InputError('the groups of this optimizer have not all been stepped: cannot list their slots');
    const out: NamedTensor[] = [await this.saveIterations()];
    for (let k = 0; k < kinds; k++) for (const s of slots) out.push(...s.rest.slice(k * s.n, (k + 1) * s.n));
    return out;
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const [iter, ...slots] = weightValues;
    const total = this.groups.reduce((s, g) => s + g.variables.length, 0);
    if (slots.length % total !== 0)
      throw new InputError(`setWeights: ${slots.length} slot tensors do not split over ${total} variables`);
    const kinds = slots.length / total;
    this.iterations_ = (await iter.tensor.data())[0];
    let offset = 0;
    for (let i = 0; i < this.subs.length; i++) {
      const n = this.groups[i].variables.length;
      const mine: NamedTensor[] = [];
      for (let k = 0; k < kinds; k++) mine.push(...slots.slice(k * total + offset, k * total + offset + n));
      await this.subs[i].setWeights([iter, ...mine]);
      offset += n;
    }
  }

  override getConfig(): tf.serialization.ConfigDict {
    const inner = this.subs[0].getConfig() as Record<string, unknown>;
    delete inner.learningRate;
    return {
      learningRate: this.lr,
      type: this.spec.type,
      baseLearningRates: [...this.baseLrs],
      groupSizes: this.groups.map((g) => g.variables.length),
      ...(inner as tf.serialization.ConfigDict),
    };
  }

  override dispose(): void {
    this.subs.forEach((s) => s.dispose());
  }
}

const GROUP_KEYS = ['time_embed', 'label_emb', 'input_blocks', 'middle_block', 'output_blocks'] as const;

/**
 * A U-Net with a head on block b's map at step t, as one {@link TrainableModel} of clean images:
 * `x0 → q_sample(x0, t, ε) → U-Net up to block b → head → logits`. ε is drawn from the batch's seed
 * ({@link withBatchSeeds} passes the trainer's), so a run is a pure function of its seed and resumes
 * exactly from a trainer checkpoint (which holds `trainableVariables` by position; a head's
 * BatchNorm running statistics are not in it).
 *
 * `trainableVariables` are the groups' variables in group order (the head's group first): the head's
 * variables unless frozen, and the U-Net weights of blocks ≤ b (and the time embedding) whose part
 * is not frozen. Training any U-Net weight turns the U-Net's weights into variables
 * (`unet.trainableWeights()`: they must be resident), and its convolutions then run without Winograd;
 * with the whole U-Net frozen its pass runs without gradient tape.
 *
 * @example
 * ```ts
 * const backbone = await loadDefaultBackbone({ residency: 'resident' });
 * const linear = new MLPHead({ channels: backbone.block(8).channels, pool: 4, classes: 10 });
 * const model = new FineTuneModel(backbone, linear, { t: 10, b: 8, parts: { head: { lr: 1e-3 }, unet: { lr: 3e-5 } } });
 * const images = await loadFashionMNIST({ split: 'train' });
 * const opt = model.optimizer(); // Adam per learning-rate group
 * await train(model, withBatchSeeds(tensorDataset(images.images, images.labels)), { epochs: 5, batchSize: 32, optimizer: opt });
 * opt.dispose();
 * ```
 * @category Training
 */
export class FineTuneModel implements TrainableModel<tf.Tensor4D> {
  readonly t: number;
  readonly b: number;
  /** The learning-rate groups, the head's first. */
  readonly groups: readonly ParamGroup[];
  readonly trainableVariables: tf.Variable[];
  /** Whether any U-Net weight is trained. */
  readonly trainsUNet: boolean;
  private readonly gradientCheckpoint: boolean;
  private readonly dropout: number;
  private readonly seed: number;

  constructor(
    readonly unet: ADMUNet,
    readonly head: FineTuneHead,
    opts: FineTuneModelOptions,
  ) {
    if (!unet || typeof unet.forward !== 'function' || typeof unet.trainableWeights !== 'function')
      throw new InputError('FineTuneModel needs an ADMUNet');
    if (!head || typeof head.forward !== 'function' || !Array.isArray(head.trainableVariables))
      throw new InputError('FineTuneModel needs a head with forward(map) and trainableVariables (e.g. MLPHead)');
    if (!opts || typeof opts !== 'object') throw new InputError('FineTuneModel needs options { t, b, parts }');
    const T = unet.schedule.steps;
    if (!Number.isInteger(opts.t) || opts.t < 0 || opts.t >= T)
      throw new InputError(`t must be an integer in [0, ${T}), got ${String(opts.t)}`);
    this.t = opts.t;
    const block = unet.block(opts.b); // InputError for a block outside the table
    this.b = block.b;
    const headChannels = (head as { config?: { channels?: unknown } }).config?.channels;
    if (typeof headChannels === 'number' && headChannels !== block.channels)
      throw new InputError(
        `the head takes ${headChannels} channels; block ${block.b} has ${block.channels}: build the head with channels: unet.block(${block.b}).channels`,
      );
    this.gradientCheckpoint = opts.gradientCheckpoint === true;
    const dropout = opts.dropout ?? 0;
    if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1))
      throw new InputError(`dropout must be a number in [0, 1), got ${String(opts.dropout)}`);
    this.dropout = dropout;
    this.seed = checkSeed(opts.seed ?? 0, 'seed');

    const parts = checkParts(opts.parts, unet);
    const groups = new Map<number, ParamGroup>();
    const put = (lr: number, part: string, name: string, v: tf.Variable) => {
      let g = groups.get(lr);
      if (!g) groups.set(lr, (g = { lr, parts: [], names: [], variables: [] }));
      if (!g.parts.includes(part)) g.parts.push(part);
      g.names.push(name);
      g.variables.push(v);
    };
    const headSetting = parts.get('head')!;
    if (headSetting !== 'freeze')
      head.trainableVariables.forEach((v, i) => put(headSetting.lr, 'head', `head.${i}`, v));

    // Which U-Net weights would train (known from names alone, before any weight becomes a variable).
    const nIn = unet.numInputBlocks;
    const settingOf = (name: string): { part: string; setting: PartSetting } | undefined => {
      const block = weightBlock(name, nIn);
      if (block === undefined || block > this.b) return undefined; // never run with capture [b]
      for (const key of candidateKeys(name)) {
        const s = parts.get(key);
        if (s !== undefined) return { part: key, setting: s };
      }
      return undefined;
    };
    const names = buildArchitecture(unet.config).parameters.map(([name]) => name);
    const trained = names.filter((n) => {
      const s = settingOf(n);
      return s !== undefined && s.setting !== 'freeze';
    });
    if (groups.size === 0 && trained.length === 0)
      throw new InputError(
        'everything is frozen: give the head or a U-Net part (through block b) a learning rate, e.g. parts: { head: { lr: 1e-3 } }',
      );
    this.trainsUNet = trained.length > 0;
    if (this.trainsUNet) {
      let vars: Map<string, tf.Variable>;
      try {
        vars = unet.trainableWeights();
      } catch (e) {
        if (e instanceof InputError)
          throw new InputError(
            `fine-tuning the U-Net needs its weights resident as tf.Variables (unet.trainableWeights()): ${e.message}`,
          );
        throw e;
      }
      for (const n of trained) {
        const { part, setting } = settingOf(n)!;
        put((setting as { lr: number }).lr, part, n, vars.get(n)!);
      }
    }
    // The head's group first: its rate is the optimizer's `learningRate`.
    const ordered = [...groups.values()];
    if (headSetting !== 'freeze') {
      const i = ordered.findIndex((g) => g.parts.includes('head'));
      ordered.unshift(...ordered.splice(i, 1));
    }
    this.groups = ordered;
    this.trainableVariables = ordered.flatMap((g) => g.variables);
  }

  /**
   * A fresh optimizer for this model's groups: one of `spec`'s family (default Adam with PyTorch's
   * defaults) per learning rate. The caller disposes it.
   */
  optimizer(spec: GroupOptimizerSpec = { type: 'adam' }): GroupedOptimizer {
    return new GroupedOptimizer(
      this.groups.map((g) => ({ lr: g.lr, variables: g.variables })),
      spec,
    );
  }

  /**
   * Logits of clean images: ε from `noise`, else `seededNormal(x0.shape, seed, t)` with the batch's
   * `seed` (else the model's); x_t = q_sample(x0, t, ε); the U-Net up to block b; the head.
   * @param x0 NHWC `[N, S, S, C]` in [−1, 1].
   * @returns `[N, classes]`, owned by the caller.
   */
  logits(x0: tf.Tensor4D, opts: FineTuneLogitsOptions = {}): tf.Tensor2D {
    const unet = this.unet;
    const n = unet.checkImages(x0, 'x0');
    const training = opts.training === true;
    const seed = checkSeed(opts.seed ?? this.seed, 'seed');
    if (
      opts.noise !== undefined &&
      (!(opts.noise instanceof tf.Tensor) || !tf.util.arraysEqual(opts.noise.shape, x0.shape))
    )
      throw new InputError(`noise must be a tensor of x0's shape [${x0.shape}]`);
    const tt = new Array<number>(n).fill(this.t);
    const b = this.b;
    const forward: ForwardOptions = {
      capture: [b],
      ...(opts.y !== undefined ? { y: opts.y } : {}),
      ...(training && this.dropout > 0 ? { dropout: { rate: this.dropout, seed: mixSeed(seed, 0xd40) } } : {}),
      // A frozen U-Net runs without tape: nothing to checkpoint.
      ...(this.gradientCheckpoint && this.trainsUNet ? { checkpoint: true } : {}),
    };
    return tf.tidy(() => {
      const eps = opts.noise ?? seededNormal<tf.Rank.R4>(x0.shape, seed, this.t);
      const xt = unet.qSample(x0, tt, eps);
      const run = () => [unet.forward(xt, tt, forward).features.get(b)!];
      const map = this.trainsUNet ? run()[0] : noGrad(run)[0];
      return this.head.forward(map, { training });
    });
  }
}

/** The parts checked: known keys only, each `{ lr > 0 }` or `'freeze'`; `head` required. */
function checkParts(parts: unknown, unet: ADMUNet): Map<string, PartSetting> {
  if (!parts || typeof parts !== 'object' || Array.isArray(parts))
    throw new InputError(
      "parts must be an object of part → { lr } | 'freeze', e.g. { head: { lr: 1e-3 }, unet: { lr: 3e-5 } }",
    );
  const nIn = unet.numInputBlocks;
  const nOut = unet.totalBlocks - nIn - 1;
  const known = (k: string): boolean => {
    if (k === 'head' || k === 'unet' || (GROUP_KEYS as readonly string[]).includes(k))
      return k !== 'label_emb' || unet.config.numClasses !== null;
    const m = /^(input_blocks|output_blocks)\.(\d+)$/.exec(k);
    return !!m && Number(m[2]) < (m[1] === 'input_blocks' ? nIn : nOut);
  };
  const out = new Map<string, PartSetting>();
  for (const [k, v] of Object.entries(parts as Record<string, unknown>)) {
    if (!known(k))
      throw new InputError(
        `unknown part ${JSON.stringify(k)}: parts are head, unet, time_embed, ${unet.config.numClasses !== null ? 'label_emb, ' : ''}input_blocks, middle_block, output_blocks, input_blocks.0..${nIn - 1}, output_blocks.0..${nOut - 1}`,
      );
    if (v === 'freeze') out.set(k, v);
    else if (v && typeof v === 'object' && 'lr' in v)
      out.set(k, { lr: positiveLr((v as { lr: unknown }).lr, `parts[${JSON.stringify(k)}].lr`) });
    else
      throw new InputError(
        `parts[${JSON.stringify(k)}] must be { lr: positive number } or 'freeze', got ${JSON.stringify(v)}`,
      );
  }
  if (!out.has('head')) throw new InputError("parts.head is required: { lr } to train the head, or 'freeze'");
  return out;
}

/** The paper block a U-Net weight belongs to: 0 for the embeddings every block uses, undefined for the output head. */
function weightBlock(name: string, nIn: number): number | undefined {
  let m: RegExpExecArray | null;
  if ((m = /^input_blocks\.(\d+)\./.exec(name))) return Number(m[1]) + 1;
  if (name.startsWith('middle_block.')) return nIn + 1;
  if ((m = /^output_blocks\.(\d+)\./.exec(name))) return nIn + 2 + Number(m[1]);
  if (name.startsWith('time_embed.') || name.startsWith('label_emb.')) return 0;
  return undefined;
}

/** The part keys that may set a U-Net weight, most specific first. */
function candidateKeys(name: string): string[] {
  const m = /^(input_blocks|output_blocks)\.(\d+)\./.exec(name);
  if (m) return [`${m[1]}.${m[2]}`, m[1], 'unet'];
  const group = name.split('.')[0];
  return [group, 'unet'];
}

/**
 * A view of `data` whose batches also carry the trainer's batch seed as `options.seed`, which
 * {@link FineTuneModel.logits} draws ε from (fresh noise every step, the same on a resumed run).
 * @category Training
 */
export function withBatchSeeds<I>(data: Dataset<I>): Dataset<I> {
  if (!data || typeof data.batch !== 'function') throw new InputError('withBatchSeeds needs a Dataset');
  return {
    size: data.size,
    batch: async (indices, ctx) => {
      const batch: Batch<I> = await data.batch(indices, ctx);
      return { ...batch, options: { ...(batch.options ?? {}), seed: ctx.seed } };
    },
  };
}

/**
 * Options of {@link fineTune}: the model's ({@link FineTuneModelOptions}) and the trainer's
 * ({@link TrainOptions}), with the optimizer made here.
 * @category Training
 */
export interface FineTuneOptions
  extends FineTuneModelOptions, Omit<TrainOptions<tf.Tensor4D>, 'optimizer' | 'schedule'> {
  /** The optimizer family, one per learning-rate group (default Adam, PyTorch's defaults). */
  optimizer?: GroupOptimizerSpec;
  /** A schedule of the grouped optimizer, e.g. `(opt) => new StepLR(opt, { stepSize: 7 })`: it scales every group's rate alike. */
  schedule?: (optimizer: tf.Optimizer) => LRSchedule;
}

/**
 * What {@link fineTune} did: the trainer's result and the model it trained.
 * @category Training
 */
export interface FineTuneResult extends TrainResult {
  model: FineTuneModel;
}

/**
 * Fine-tunes `unet` with `head` on clean images and their labels through {@link train}: a
 * {@link FineTuneModel}, one optimizer per learning-rate group, batch seeds for the noise. The U-Net
 * and the head are updated in place; the optimizer is disposed at the end.
 * @example
 * ```ts
 * const backbone = await loadDefaultBackbone({ residency: 'resident' });
 * const linear = new MLPHead({ channels: backbone.block(8).channels, pool: 4, classes: 10 });
 * const images = await loadFashionMNIST({ split: 'train' });
 * const r = await fineTune(backbone, linear, tensorDataset(images.images, images.labels), {
 *   t: 10, b: 8, parts: { head: { lr: 1e-3 }, unet: { lr: 3e-5 } }, epochs: 10, batchSize: 32, seed: 0,
 * });
 * ```
 * @throws InputError for bad options (see {@link FineTuneModel}, {@link train}).
 * @category Training
 */
export async function fineTune(
  unet: ADMUNet,
  head: FineTuneHead,
  data: Dataset<tf.Tensor4D>,
  opts: FineTuneOptions,
): Promise<FineTuneResult> {
  const {
    t,
    b,
    parts,
    gradientCheckpoint,
    dropout,
    seed,
    optimizer: spec,
    schedule,
    evalData,
    ...rest
  } = opts ?? ({} as FineTuneOptions);
  const model = new FineTuneModel(unet, head, { t, b, parts, gradientCheckpoint, dropout, seed });
  const optimizer = model.optimizer(spec);
  try {
    const r = await train(model, withBatchSeeds(data), {
      ...rest,
      seed,
      optimizer,
      ...(schedule ? { schedule: schedule(optimizer) } : {}),
      ...(evalData ? { evalData: withBatchSeeds(evalData) } : {}),
    });
    return { ...r, model };
  } finally {
    optimizer.dispose();
  }
}
