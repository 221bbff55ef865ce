/**
 * guided-diffusion's ADM U-Net (`UNetModel`) in TensorFlow.js, with block hooks: read the output
 * of any block, stop right after the deepest one needed, add tensors into chosen blocks.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { writeSafetensors } from '../io/safetensors.js';
import { openWeights } from '../io/weights.js';
import { planResidency, WeightStore } from './runtime/weightStore.js';
import {
  buildArchitecture,
  convMultiplyAdds,
  type Architecture,
  type BlockInfo,
  type BlockSpec,
} from './architecture.js';
import { attentionBlock } from './attentionBlock.js';
import { resolveConfig, type ModelSpec, type ResolvedConfig } from './config.js';
import { affineSilu, groupNormAffine } from './groupNorm.js';
import { randomWeights } from './init.js';
import { tfjsShape, toReferenceLayout, toTfjsLayout } from './layout.js';
import type { ConvAlgorithm } from './runtime/convAlgorithm.js';
import { LayerRunner, layerOptions, type LayerOptions } from './runtime/layerRunner.js';
import { ForwardState, Parking, PartedBatch, resumeBatch, Skips } from './runtime/batchParts.js';
import type { Params } from './runtime/params.js';
import { checkpointed } from './runtime/checkpoint.js';
import { rowsOf, upsampledRows } from './runtime/rows.js';
import { concatChannels } from '../backend/concatChannels.js';
import { sliceRows } from '../backend/sliceRows.js';
import { requireBackend } from '../backend/engine.js';
import { resBlock, silu } from './resBlock.js';
import { checkImageRange, checkTimesteps, noiseSchedule, qSample, type NoiseSchedule } from './schedule.js';
import { timestepEmbedding } from './timestepEmbedding.js';
import { progressClock } from '../util/progress.js';
import { checkSeed, seededUniform } from '../util/noise.js';
import { checkAddedMaps, checkClassLabels, checkImageBatch, checkWeightKeys } from './inputChecks.js';
import type { ForwardOptions, ForwardResult, LoadOptions, ModelOptions, ReferenceTensor } from './options.js';
import { extractFeatures, type ExtractOptions, type FeatureSet } from '../features/extractFeatures.js';
import type { FileInput } from '../io/webSource.js';

/**
 * The ADM U-Net. Build it from a preset name, the reference's flag dictionary or a typed
 * {@link UNetConfig}, with weights from a safetensors file ({@link ADMUNet.load}) or random
 * ({@link ADMUNet.create}). Weights are frozen tensors owned by the model: call
 * {@link ADMUNet.dispose} to free them.
 *
 * @example
 * ```ts
 * const unet = await ADMUNet.load('256x256_diffusion_uncond.safetensors', '256x256_diffusion_uncond');
 * const xt = unet.qSample(x0, [90], noise);
 * const { features } = unet.forward(xt, [90], { capture: [24] }); // stops after block 24
 * ```
 * @category Backbone
 */
export class ADMUNet {
  /** Every number the network is built from. */
  readonly config: ResolvedConfig;
  /** The noise schedule of the flags (`noise_schedule`, `diffusion_steps`). */
  readonly schedule: NoiseSchedule;
  /** The block table in the paper's numbering: `{ b, part, module, channels, size }` for b = 1..total. */
  readonly blocks: BlockInfo[];
  /** How 3×3 convolutions are computed; see {@link ConvAlgorithm}. May be changed between forwards. */
  conv: ConvAlgorithm;
  private readonly arch: Architecture;
  private readonly weights: WeightStore;
  // How convs and linear layers run on the weights; `param` is what the layer functions get of it.
  private readonly layers: LayerRunner;
  private readonly param: Params;
  private readonly parking: Parking;
  private disposed = false;

  private constructor(config: ResolvedConfig, arch: Architecture, weights: WeightStore, opts: LayerOptions) {
    this.config = config;
    this.arch = arch;
    this.weights = weights;
    this.conv = opts.conv;
    this.layers = new LayerRunner(weights, opts, () => this.conv);
    this.param = this.layers.params;
    this.parking = new Parking(opts.bandBytes);
    this.schedule = noiseSchedule(config.noiseSchedule, config.diffusionSteps);
    this.blocks = arch.blocks.map(({ b, part, module, channels, size }) => ({ b, part, module, channels, size }));
  }

  /**
   * A model with random weights (see `randomWeights` for the recipe), for tests and benchmarks.
   * @param flags preset name, reference flags or typed config.
   * @param seed the same seed gives the same weights on every platform.
   */
  static create(flags: ModelSpec, seed = 0, opts: ModelOptions = {}): ADMUNet {
    const config = resolveConfig(flags);
    const arch = buildArchitecture(config);
    return ADMUNet.build(config, arch, opts, (add) => {
      for (const [name, data] of randomWeights(arch.parameters, seed)) add(name, data);
    });
  }

  /**
   * A model from a state dict already in memory (reference names and PyTorch layouts).
   * @throws WeightsError listing every missing, unexpected or mis-shaped key.
   */
  static fromStateDict(
    flags: ModelSpec,
    state: Map<string, ReferenceTensor>,
    opts: ModelOptions & { strict?: boolean } = {},
  ): ADMUNet {
    const config = resolveConfig(flags);
    const arch = buildArchitecture(config);
    checkWeightKeys(arch, new Map([...state].map(([k, v]) => [k, v.shape])), opts.strict ?? true, '<state dict>');
    return ADMUNet.build(config, arch, opts, (add) => {
      for (const [name] of arch.parameters) add(name, state.get(name)!.data);
    });
  }

  // Fills a store in the architecture's order; `fill` hands over each weight in the reference layout.
  private static build(
    config: ResolvedConfig,
    arch: Architecture,
    opts: ModelOptions,
    fill: (add: (name: string, data: Float32Array) => void) => void,
  ): ADMUNet;
  private static build(
    config: ResolvedConfig,
    arch: Architecture,
    opts: ModelOptions,
    fill: (add: (name: string, data: Float32Array) => void) => Promise<void>,
  ): Promise<ADMUNet>;
  private static build(
    config: ResolvedConfig,
    arch: Architecture,
    opts: ModelOptions,
    fill: (add: (name: string, data: Float32Array) => void) => void | Promise<void>,
  ): ADMUNet | Promise<ADMUNet> {
    requireBackend('ADMUNet');
    const resident = planResidency(arch.parameters, opts, tf.getBackend());
    const layerOpts = layerOptions(opts); // checked before any weight is made
    const store = new WeightStore(resident, opts.storage);
    const shapes = new Map(arch.parameters);
    const add = (name: string, data: Float32Array) => {
      const shape = shapes.get(name)!;
      store.add(name, tfjsShape(name, shape), toTfjsLayout(name, shape, data));
    };
    const done = () => new ADMUNet(config, arch, store, layerOpts);
    const fail = (e: unknown): never => {
      store.dispose();
      throw e;
    };
    try {
      const r = fill(add);
      return r instanceof Promise ? r.then(done).catch(fail) : done();
    } catch (e) {
      return fail(e);
    }
  }

  /**
   * Loads weights saved under the reference's state-dict names (safetensors; F32, F16 or BF16,
   * read as float32). The format is recognised from the content. A path is read tensor by tensor at
   * its offsets, never as one buffer.
   * @param weights the weights file: a path (Node), a URL (read by HTTP range requests, a window at a time,
   *   so a 2.2 GB file never sits in one buffer), a Blob (a dropped `File`), a Response, or its bytes.
   * @param flags preset name, reference flags (`create_model_and_diffusion_args`) or typed config.
   * @throws CheckpointError for a corrupt, truncated or unsupported file.
   * @throws WeightsError listing every missing, unexpected or mis-shaped key.
   */
  static async load(weights: FileInput, flags: ModelSpec, opts: LoadOptions = {}): Promise<ADMUNet> {
    const config = resolveConfig(flags);
    const arch = buildArchitecture(config);
    const source = await openWeights(weights);
    try {
      checkWeightKeys(arch, new Map(source.keys().map((k) => [k, source.shape(k)])), opts.strict ?? true, source.label);
      const total = arch.parameters.reduce((s, [k]) => s + source.byteLength(k), 0);
      let loaded = 0;
      const clock = progressClock();
      return await ADMUNet.build(config, arch, opts, async (add) => {
        for (const [name] of arch.parameters) {
          add(name, await source.readFloat32(name));
          loaded += source.byteLength(name);
          opts.onProgress?.({ kind: 'load', ...clock(loaded, total), key: name });
        }
      });
    } finally {
      await source.close();
    }
  }

  /** Number of blocks (37 for the 256×256 model). */
  get totalBlocks(): number {
    return this.arch.blocks.length;
  }

  /** Number of input (encoder) blocks, N_in; the middle block is N_in + 1. */
  get numInputBlocks(): number {
    return this.arch.numInputBlocks;
  }

  /** Number of parameters. */
  get numParameters(): number {
    return this.arch.parameters.reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
  }

  /**
   * Multiply-adds of the convolutions for one image through block `b` (default: the whole network),
   * counted as direct convolutions: the yardstick for effective GFLOP/s (2 FLOP per multiply-add).
   */
  multiplyAdds(b?: number): number {
    if (b !== undefined) this.block(b);
    return convMultiplyAdds(this.arch, this.config.outChannels, b);
  }

  /**
   * The encoder block whose output decoder block `b` receives as its skip: `total + 1 − b`
   * (38 − b for the 256 model). Also maps an encoder block to its decoder block.
   */
  mirror(b: number): number {
    this.block(b);
    if (b === this.numInputBlocks + 1) throw new InputError(`block ${b} is the middle block; it has no mirror`);
    return this.totalBlocks + 1 - b;
  }

  /**
   * The row of the block table for block `b`.
   * @throws InputError for a block the model does not have.
   */
  block(b: number): BlockInfo {
    if (!Number.isInteger(b) || b < 1 || b > this.totalBlocks)
      throw new InputError(`unknown block ${String(b)}: this model has blocks 1..${this.totalBlocks}`);
    return this.blocks[b - 1];
  }

  /**
   * The embedding every block receives: `time_embed(timestep_embedding(t))`, plus `label_emb(y)`
   * for class-conditional models. `[N, 4C]`, owned by the caller.
   */
  embed(t: number[], y?: number[]): tf.Tensor2D {
    this.assertAlive();
    checkTimesteps(t, this.schedule.steps, t.length);
    checkClassLabels(y, t.length, this.config.numClasses);
    const p = this.param;
    return tf.tidy(() => {
      const temb = timestepEmbedding(t, this.config.modelChannels);
      let emb = p.linear(silu(p.linear(temb, 'time_embed.0')), 'time_embed.2');
      // The rows of label_emb as a one-hot product rather than a gather: the same values, and a
      // gradient on every backend (gather's needs UnsortedSegmentSum, which wasm lacks).
      if (y) {
        const table = p('label_emb.weight');
        emb = tf.add(emb, tf.matMul(tf.oneHot(tf.tensor1d(y, 'int32'), table.shape[0]), table)) as tf.Tensor2D;
      }
      return emb;
    });
  }

  /**
   * `q_sample`: noises clean images to step t with this model's schedule.
   * @param x0 clean images in [-1, 1]; values far outside, NaN or ±Inf are an InputError unless
   * `opts.checkRange` is false (see {@link checkImageRange}).
   * @see {@link qSample}
   */
  qSample(x0: tf.Tensor4D, t: number[], noise: tf.Tensor4D, opts: { checkRange?: boolean } = {}): tf.Tensor4D {
    this.checkImages(x0, 'x0');
    if (opts.checkRange !== false) checkImageRange(x0, 'x0');
    return qSample(this.schedule, x0, t, noise);
  }

  /**
   * Runs the U-Net on noised images.
   * @param xt x_t, NHWC `[N, S, S, C_in]` float32, S = `image_size`.
   * @param t one integer step in [0, T) per example (the raw index; no rescaling).
   * @returns block outputs for `capture` (stopping after the deepest one), and the final output
   * when the whole network ran. The caller owns and disposes every returned tensor.
   * @throws InputError for a bad shape, step, label, block or added tensor.
   */
  forward(xt: tf.Tensor4D, t: number[], opts: ForwardOptions = {}): ForwardResult {
    this.assertAlive();
    const n = this.checkImages(xt, 'xt');
    checkTimesteps(t, this.schedule.steps, n);
    checkClassLabels(opts.y, n, this.config.numClasses);
    const capture = new Set<number>();
    if (opts.capture !== undefined) {
      if (!Array.isArray(opts.capture)) throw new InputError('capture must be an array of block numbers');
      for (const b of opts.capture) capture.add(this.block(b).b);
    }
    const add = checkAddedMaps(opts.add, n, (b) => this.block(b));
    const dropout = checkDropout(opts.dropout);
    const checkpoint = this.checkCheckpoint(opts.checkpoint);
    const runAll = opts.capture === undefined || opts.output === true;
    const stopAt = runAll ? this.totalBlocks : Math.max(0, ...capture);
    const startAt = opts.resume === undefined ? 1 : this.checkResume(opts.resume, n, t, stopAt, capture, add);
    const holdAt = opts.hold === undefined ? undefined : this.checkHold(opts.hold, stopAt, startAt);
    const held = holdAt === undefined ? [] : this.arch.blocks.filter((s) => s.b < holdAt).map((s) => s.b);

    // Skips are kept only for the output blocks that will run (and those a held state hands on):
    // stopping at b = 24 of the 256×256 model frees the 256² and 128² encoder maps as soon as the
    // next block has read them.
    const hs = new Skips(
      new Set([
        ...this.arch.blocks.filter((s) => s.part === 'output' && s.b <= stopAt).map((s) => s.skipFrom!),
        ...held,
      ]),
      this.parking,
    );
    const features = new Map<number, tf.Tensor4D>();
    let state: ForwardState | undefined;
    const emb = this.embed(t, opts.y);
    let h: PartedBatch | undefined;
    try {
      h = startAt === 1 ? new PartedBatch(xt, this.parking) : resumeBatch(opts.resume!, hs, startAt - 1, this.parking);
      const holdHere = () => (state = new ForwardState(holdAt!, this, [...t], hs.hand(held)));
      // The input blocks, the middle block, then the output blocks, each joined with its mirror's output.
      for (const spec of this.arch.blocks) {
        if (spec.b < startAt) continue;
        if (spec.b === holdAt) holdHere();
        if (spec.b > stopAt) break;
        h.regroup(n > 1 && this.layers.banded(h.shape, Math.max(spec.inChannels, spec.channels)));
        const skip = spec.part === 'output' ? hs.take(spec.skipFrom!, h.count) : undefined;
        const run = (x: tf.Tensor4D, example?: number) =>
          this.runPart(spec, x, skip?.(example ?? 0), emb, add.get(spec.b), { example, dropout, checkpoint });
        const captured = h.apply(run, (y) => hs.keep(spec.b, y), capture.has(spec.b));
        if (captured) features.set(spec.b, captured);
        if (skip) hs.release(spec.skipFrom!);
      }
      const output = runAll ? h.finish((x) => this.outHead(x)) : undefined;
      return { features, ...(output ? { output } : {}), ...(state ? { state } : {}) };
    } catch (e) {
      features.forEach((f) => f.dispose());
      state?.dispose();
      throw e;
    } finally {
      h?.dispose();
      hs.dispose();
      emb.dispose();
    }
  }

  // The block a resumed forward starts at, after checking that `state` fits this forward.
  private checkResume(
    state: ForwardState,
    n: number,
    t: number[],
    stopAt: number,
    capture: Set<number>,
    add: Map<number, tf.Tensor4D>,
  ): number {
    if (!(state instanceof ForwardState) || state.owner !== this)
      throw new InputError('resume must be the state that a forward of this model held (ForwardResult.state)');
    if (state.spent) throw new InputError('resume: this ForwardState was already used or disposed: hold a new one');
    if (state.t.length !== n || state.t.some((s, i) => s !== t[i]))
      throw new InputError(
        `resume: the state was held for t = [${state.t}], this forward has t = [${t}]: resume a forward of the same xt, t and y`,
      );
    const early = [...capture, ...add.keys()].filter((b) => b < state.block);
    if (early.length > 0)
      throw new InputError(
        `resume starts at block ${state.block}: blocks ${early.join(', ')} before it cannot be captured or added to`,
      );
    if (stopAt < state.block)
      throw new InputError(`resume starts at block ${state.block}, after the deepest block asked for`);
    return state.block;
  }

  /**
   * Whether a forward that stops after block `stopAt` can hold what a later forward needs to start at
   * block `hold` (`ForwardOptions.hold`).
   */
  canHold(hold: number, stopAt: number): boolean {
    return this.holdProblem(hold, stopAt) === undefined;
  }

  // `hold` after checking it (see holdProblem); a forward that resumes cannot hold.
  private checkHold(hold: number, stopAt: number, startAt: number): number {
    if (startAt > 1) throw new InputError('hold and resume cannot be used together');
    const problem = this.holdProblem(hold, stopAt);
    if (problem) throw new InputError(problem);
    return hold;
  }

  // Why `hold` cannot be held by a forward that stops after `stopAt`: not an encoder or the middle block, not reached, or a decoder block run here takes what it would hand on.
  private holdProblem(hold: number, stopAt: number): string | undefined {
    const last = this.arch.numInputBlocks + 1;
    if (!Number.isInteger(hold) || hold < 2 || hold > last)
      return `hold must be a block from 2 to ${last} (an encoder block or the middle block), got ${hold}`;
    if (hold > stopAt + 1) return `hold ${hold} is past this forward, which stops after block ${stopAt}`;
    const takers = this.arch.blocks.filter((s) => s.part === 'output' && s.b <= stopAt && s.skipFrom! < hold);
    if (takers.length > 0)
      return `hold ${hold}: this forward runs decoder block${takers.length > 1 ? 's' : ''} ${takers.map((s) => s.b).join(', ')}, which take${takers.length > 1 ? '' : 's'} encoder outputs before block ${hold}; hold a later block or stop earlier`;
    return undefined;
  }

  // Block `spec` on x, first joined with its skip for an output block, plus the tensor added to the
  // block's output; `example` picks the rows of emb and of the added tensor when x is one example of
  // the batch. With `checkpoint`, the block (not the addition) is recomputed in the backward pass
  // from x, skip and emb. Consumes x and skip.
  private runPart(
    spec: BlockSpec,
    x: tf.Tensor4D,
    skip: tf.Tensor4D | undefined,
    emb: tf.Tensor2D,
    extra: tf.Tensor4D | undefined,
    { example, dropout, checkpoint }: PartOptions,
  ): tf.Tensor4D {
    const rows = <T extends tf.Tensor>(t: T) => (example === undefined ? t : sliceRows(t, example, 1));
    const drop = dropout && ((layer: number) => dropoutMask(dropout, spec.b, layer, example ?? -1));
    const block = (h: tf.Tensor, e: tf.Tensor) => this.runBlock(spec, h as tf.Tensor4D, e as tf.Tensor2D, drop);
    const join = (h: tf.Tensor, s: tf.Tensor) => concatChannels(h as tf.Tensor4D, s as tf.Tensor4D);
    try {
      return tf.tidy((): tf.Tensor4D => {
        let y: tf.Tensor4D;
        if (checkpoint) {
          // Only x, emb and the skip are kept for the backward pass, which runs the block again.
          const inputs = [x, rows(emb), ...(skip ? [skip] : [])];
          y = checkpointed(([h, e, s]) => block(s ? join(h, s) : h, e), inputs, this.blockVariables(spec));
        } else if (skip) {
          const input = join(x, skip);
          // Freed before the block runs, so that they are gone before its intermediates exist.
          tf.dispose([x, skip]);
          y = block(input, rows(emb));
        } else y = block(x, rows(emb));
        return extra ? tf.add(y, rows(extra)) : y;
      });
    } finally {
      tf.dispose([x, ...(skip ? [skip] : [])]);
    }
  }

  // `ForwardOptions.checkpoint`, checked: it needs the weights to be variables.
  private checkCheckpoint(checkpoint: unknown): boolean {
    if (checkpoint === undefined || checkpoint === false) return false;
    if (checkpoint !== true)
      throw new InputError(`checkpoint must be true or false, got ${JSON.stringify(checkpoint)}`);
    if (!this.weights.trainable)
      throw new InputError(
        'checkpoint is for training, and the weights are not trainable: call unet.trainableWeights() first (trainDiffusion does), then take the gradient (tf.variableGrads) of a loss of this forward',
      );
    return true;
  }

  // The variables of block `spec`'s layers (those under its module's prefix).
  private blockVariables(spec: BlockSpec): tf.Variable[] {
    const prefix = `${spec.module}.`;
    return [...this.weights.makeTrainable()].filter(([name]) => name.startsWith(prefix)).map(([, v]) => v);
  }

  /**
   * Features of clean images, as the paper defines them: see {@link extractFeatures}; this model
   * is the backbone.
   */
  extractFeatures(x0: tf.Tensor4D, opts: Omit<ExtractOptions, 'model'>): Promise<FeatureSet> {
    return extractFeatures(x0, { ...opts, model: this });
  }

  /** The weights under their reference names, in PyTorch layout (a copy). */
  stateDict(): Map<string, ReferenceTensor> {
    this.assertAlive();
    return new Map(
      this.arch.parameters.map(([name, shape]) => [
        name,
        { shape: [...shape], data: toReferenceLayout(name, shape, this.weights.read(name)) },
      ]),
    );
  }

  /** Writes the weights as safetensors under the reference's names and layouts, atomically. */
  async save(path: string): Promise<void> {
    await writeSafetensors(path, this.stateDict(), { format: 'pt', producer: 'diffssl' });
  }

  /**
   * Makes the weights trainable: each becomes a `tf.Variable` (in place, once), keyed by its
   * reference name in tfjs layout (HWIO convs, `[in, out]` linear layers). From then on every conv
   * runs directly with gradients for its filter and bias (no Winograd, no cached transforms), so
   * `tf.variableGrads` through {@link forward} reaches every weight. Assign to the variables to
   * change the weights. {@link trainDiffusion} calls this.
   * @throws InputError when weights are streamed (load with `residency: 'resident'`).
   */
  trainableWeights(): Map<string, tf.Variable> {
    this.assertAlive();
    const vars = this.weights.makeTrainable();
    this.layers.dispose(); // transformed filters of the old weights
    return vars;
  }

  /** Frees the weights. The model cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.weights.dispose();
    this.layers.dispose();
    this.parking.clear();
    this.disposed = true;
  }

  /** Where the weights live: bytes held as tensors and bytes streamed from JS memory per forward. */
  get weightBytes(): { resident: number; streamed: number } {
    return this.weights.bytes;
  }

  private runBlock(
    spec: BlockSpec,
    x: tf.Tensor4D,
    emb: tf.Tensor2D,
    dropout?: (layer: number) => (x: tf.Tensor4D) => tf.Tensor4D,
  ): tf.Tensor4D {
    const p = this.param;
    let h = x;
    for (const [i, l] of spec.layers.entries()) {
      switch (l.kind) {
        case 'conv':
          h = p.conv3x3(h, l.prefix);
          break;
        case 'res':
          h = resBlock(p, l, h, emb, this.config.useScaleShiftNorm, dropout?.(i));
          break;
        case 'attn':
          h = attentionBlock(p, l, h, !this.config.useNewAttentionOrder);
          break;
        case 'down':
          h = p.conv3x3(h, `${l.prefix}.op`, 2);
          break;
        case 'up':
          h = p.conv3x3Rows(upsampledRows(rowsOf(h)), `${l.prefix}.conv`);
          break;
      }
    }
    return h;
  }

  private outHead(h: tf.Tensor4D): tf.Tensor4D {
    const p = this.param;
    return tf.tidy(() => {
      const norm = groupNormAffine(h, p('out.0.weight'), p('out.0.bias'), undefined, { rows: p.statRows(h.shape) });
      return p.conv3x3Rows(
        rowsOf(h, (band) => affineSilu(band, norm)),
        'out.2',
      );
    });
  }

  private assertAlive(): void {
    if (this.disposed) throw new InputError('this ADMUNet was disposed');
  }

  /**
   * Checks that `x` is a batch of images this model takes (float32 NHWC `[N, S, S, C_in]`).
   * @returns N.
   * @throws InputError naming what is wrong.
   */
  checkImages(x: tf.Tensor4D, what = 'x'): number {
    return checkImageBatch(x, this.config, what);
  }
}

/** How a block runs: on one `example` of a split batch or the whole batch, with dropout, checkpointed. */
interface PartOptions {
  example?: number;
  dropout?: { rate: number; seed: number };
  checkpoint: boolean;
}

/** The dropout option checked: a rate in [0, 1) and a seed (undefined when off). */
function checkDropout(d: ForwardOptions['dropout']): { rate: number; seed: number } | undefined {
  if (d === undefined) return undefined;
  if (typeof d !== 'object' || d === null || !(typeof d.rate === 'number' && d.rate >= 0 && d.rate < 1))
    throw new InputError(`dropout.rate must be a number in [0, 1), got ${JSON.stringify(d?.rate)}`);
  checkSeed(d.seed, 'dropout.seed');
  return d.rate > 0 ? d : undefined;
}

// Keeps each unit with probability 1 − rate and scales the kept ones by 1/(1 − rate); the mask
// depends on the seed, the block, the layer and (for a batch run one example at a time) the example.
function dropoutMask(
  { rate, seed }: { rate: number; seed: number },
  b: number,
  layer: number,
  example: number,
): (x: tf.Tensor4D) => tf.Tensor4D {
  return (x) =>
    tf.tidy(() => {
      const keep = tf.cast(tf.greaterEqual(seededUniform(x.shape, seed, b, layer, example), rate), 'float32');
      return tf.mul(x, tf.mul(keep, 1 / (1 - rate)));
    });
}
