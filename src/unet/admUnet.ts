/**
 * guided-diffusion's ADM U-Net (`UNetModel`) in TensorFlow.js, with block hooks: read the output
 * of any block, stop right after the deepest one needed, add tensors into chosen blocks.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkStateDict, InputError } from '../errors.js';
import { writeSafetensors } from '../io/safetensors.js';
import { openWeights } from '../io/weights.js';
import { planResidency, WeightStore, type WeightOptions } from './runtime/weightStore.js';
import { buildArchitecture, convMultiplyAdds, type Architecture, type BlockInfo, type BlockSpec } from './architecture.js';
import { attentionBlock } from './attentionBlock.js';
import { resolveConfig, type ModelSpec, type ResolvedConfig } from './config.js';
import { conv3x3, conv3x3Gemm, withFastInputGrad, type RowPad } from './runtime/conv3x3.js';
import { winogradConv3x3, winogradFilters, winogradFiltersRows, type WinogradTile } from './runtime/winograd.js';
import { applyAffine, groupNormAffine } from './groupNorm.js';
import { randomWeights } from './init.js';
import { tfjsShape, toReferenceLayout, toTfjsLayout } from './layout.js';
import type { Params } from './runtime/params.js';
import { bandRows, mapBands, rowsOf, upsampledRows, type Rows } from './runtime/rows.js';
import { alias } from '../backend/engine.js';
import { dense, matMulRowsLeft } from '../ops/dense.js';
import { park, ParkingBuffers, type Parked } from '../backend/wasm/park.js';
import { sliceRows } from '../backend/sliceRows.js';
import { resBlock, silu } from './resBlock.js';
import { checkImageRange, checkTimesteps, noiseSchedule, qSample, type NoiseSchedule } from './schedule.js';
import { timestepEmbedding } from './timestepEmbedding.js';
import { extractFeatures, type ExtractOptions, type FeatureSet } from '../features/extractFeatures.js';

/** Options of {@link ADMUNet.forward}. */
export interface ForwardOptions {
  /** Class labels, one per example; required by class-conditional models, refused by others. */
  y?: number[];
  /**
   * Blocks whose outputs to return (paper numbering, 1..total). When given, the pass stops right
   * after the deepest of them and no final output is computed (unless `output` is true).
   */
  capture?: number[];
  /** With `capture`: run the whole network anyway and return the final output too. */
  output?: boolean;
  /**
   * Tensors added to the output of the given blocks before the next block sees it (DifFeed's
   * feedback). Shape `[N, size_b, size_b, channels_b]`. For an encoder block the sum is also the
   * skip its mirror decoder block receives; a captured block is returned after the addition.
   */
  add?: Map<number, tf.Tensor4D>;
}

/** What {@link ADMUNet.forward} returns. The caller owns every tensor in it. */
export interface ForwardResult {
  /** Output of each captured block, NHWC. Empty when `capture` was omitted. */
  features: Map<number, tf.Tensor4D>;
  /** The network's final output `[N, S, S, outChannels]` (ε, plus variance values with learn_sigma); present when the whole network ran. */
  output?: tf.Tensor4D;
}

/** Progress of {@link ADMUNet.load}, in bytes of tensor data read. */
export interface LoadProgress {
  loaded: number;
  total: number;
  /** The weight just read. */
  key: string;
}

// Streamed 3×3 filters applied to at most this many pixels (N·H·W) run as conv3x3Gemm, which does not
// repack the filter: measured on wasm with 2 threads, a 1024→1024 conv on one 8×8 map took 35 ms
// that way against 138 ms through tf.conv2d with a fresh filter; at 4×16×16 the conv was faster.
const GEMM_MAX_PIXELS = 512;

// Rows up to which a linear layer with a streamed weight multiplies it from the left (see linear).
const LINEAR_LEFT_MAX_ROWS = 64;

// Streamed filters whose Winograd products have at most this many rows (N·tiles) go on the left of
// their matMuls (see FilterSide). On wasm with 2 threads, F(4×4) on a 32×32 map (64 tiles) took 37 /
// 104 / 76 ms for 512→512 / 1024→1024 / 1536→512 that way against 50 / 196 / 147 ms on the right;
// on a 64×64 map (256 tiles) the right side was faster (102 against 129 ms).
const LEFT_MAX_TILES = 64;

/**
 * How 3×3 convolutions are computed.
 * - `auto` (default): per layer, Winograd F(2×2,3×3) where a conv has at least 128×128 channels and
 *   a map of 32×32 or more, or, for streamed filters, 8×8 or more; elsewhere `tf.conv2d`, or for
 *   streamed filters on few pixels a GEMM with the filter on the left. Streamed filters on maps of
 *   few tiles also go on the left of Winograd's matMuls: both spare XNNPACK from repacking the
 *   filter on every forward. Errors stay at the level of `direct` (about 1e-6 relative to the
 *   output's scale).
 * - `fast`: as `auto` with F(4×4,3×3) on maps of 16×16 or more: fastest, with errors of about 1e-5
 *   relative to the output's scale that grow with the input channels (1e-4 absolute at 512), beyond
 *   an elementwise `1e-4` parity tolerance in places.
 * - `direct`: `tf.conv2d` everywhere. `winograd2`, `winograd4`: that algorithm for every stride-1
 *   conv, however small its map (for measurements and tests).
 *
 * Stride-2 convs and convs with fewer than 8 input channels are always direct. Speeds on the 256×256
 * model are in the README's benchmark table.
 */
export type ConvAlgorithm = 'direct' | 'winograd2' | 'winograd4' | 'auto' | 'fast';

/** Options of {@link ADMUNet.create}, {@link ADMUNet.load} and {@link ADMUNet.fromStateDict}. */
export interface ModelOptions extends WeightOptions {
  /** How 3×3 convs are computed (default `auto`); can be changed later through `unet.conv`. */
  conv?: ConvAlgorithm;
  /**
   * Bytes of Winograd-transformed filters kept between forwards for resident weights (they are
   * 16/9 or 4× the filters); the rest are transformed on each use. Default 256 MiB.
   */
  winogradCacheBytes?: number;
  /**
   * Bytes of intermediates one band of a large map may hold (default 64 MiB). Layers on maps whose
   * normalised, activated or Winograd-transformed copies would exceed it run in horizontal bands,
   * one example at a time (a batch is carried between such blocks as one tensor per example), so
   * that peak memory follows this budget rather than the image size or the batch: lower it to fit a
   * smaller heap, at some cost in speed. On wasm, encoder outputs of more than a sixteenth of it wait
   * for their decoder blocks in JS memory rather than in the heap (see `park`), in buffers the model
   * keeps for its next forward until it is disposed.
   */
  bandBytes?: number;
}

/** Options of {@link ADMUNet.load}; {@link ModelOptions} choose where the weights live and how convs run. */
export interface LoadOptions extends ModelOptions {
  /**
   * Refuse weights the model does not have (default true). Missing and mis-shaped weights are
   * always an error: the network cannot run without them.
   */
  strict?: boolean;
  /** Called after each weight is read. */
  onProgress?: (p: LoadProgress) => void;
}

/** A weight in the reference layout, as a state dict holds it. */
export interface ReferenceTensor {
  shape: number[];
  data: Float32Array;
}

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
  private readonly winogradCache = new Map<string, { m: WinogradTile; u: tf.Tensor2D[] }>();
  private winogradCacheLeft: number;
  private readonly bandFloats: number;
  private readonly parkBytes: number;
  private readonly parking = new ParkingBuffers();
  private disposed = false;

  private constructor(config: ResolvedConfig, arch: Architecture, weights: WeightStore, opts: ModelOptions) {
    this.config = config;
    this.arch = arch;
    this.weights = weights;
    if (opts.conv !== undefined && !['direct', 'winograd2', 'winograd4', 'auto', 'fast'].includes(opts.conv)) throw new InputError(`conv must be auto, fast, direct, winograd2 or winograd4, got "${opts.conv}"`);
    this.conv = opts.conv ?? 'auto';
    this.winogradCacheLeft = opts.winogradCacheBytes ?? 256 * 1024 ** 2;
    const bandBytes = opts.bandBytes ?? 64 * 1024 ** 2;
    if (!(bandBytes > 0)) throw new InputError(`bandBytes must be a positive number of bytes, got ${opts.bandBytes}`);
    this.bandFloats = bandBytes / 4;
    this.parkBytes = bandBytes / 16;
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
  static fromStateDict(flags: ModelSpec, state: Map<string, ReferenceTensor>, opts: ModelOptions & { strict?: boolean } = {}): ADMUNet {
    const config = resolveConfig(flags);
    const arch = buildArchitecture(config);
    checkKeys(arch, new Map([...state].map(([k, v]) => [k, v.shape])), opts.strict ?? true, '<state dict>');
    return ADMUNet.build(config, arch, opts, (add) => {
      for (const [name] of arch.parameters) add(name, state.get(name)!.data);
    });
  }

  // Fills a store in the architecture's order; `fill` hands over each weight in the reference layout.
  private static build(config: ResolvedConfig, arch: Architecture, opts: ModelOptions, fill: (add: (name: string, data: Float32Array) => void) => void): ADMUNet;
  private static build(config: ResolvedConfig, arch: Architecture, opts: ModelOptions, fill: (add: (name: string, data: Float32Array) => void) => Promise<void>): Promise<ADMUNet>;
  private static build(config: ResolvedConfig, arch: Architecture, opts: ModelOptions, fill: (add: (name: string, data: Float32Array) => void) => void | Promise<void>): ADMUNet | Promise<ADMUNet> {
    const store = new WeightStore(planResidency(arch.parameters, opts, tf.getBackend()), opts.storage);
    const shapes = new Map(arch.parameters);
    const add = (name: string, data: Float32Array) => {
      const shape = shapes.get(name)!;
      store.add(name, tfjsShape(name, shape), toTfjsLayout(name, shape, data));
    };
    const done = () => new ADMUNet(config, arch, store, opts);
    const fail = (e: unknown): never => {
      store.dispose();
      throw e;
    };
    try {
      const r = fill(add);
      return r instanceof Promise ? r.then(done, fail) : done();
    } catch (e) {
      return fail(e);
    }
  }

  /**
   * Loads weights saved under the reference's state-dict names (safetensors; F32, F16 or BF16,
   * read as float32). The format is recognised from the content. A path is read tensor by tensor at
   * its offsets, never as one buffer.
   * @param weights a weights file path (Node) or its bytes.
   * @param flags preset name, reference flags (`create_model_and_diffusion_args`) or typed config.
   * @throws CheckpointError for a corrupt, truncated or unsupported file.
   * @throws WeightsError listing every missing, unexpected or mis-shaped key.
   */
  static async load(weights: string | Uint8Array, flags: ModelSpec, opts: LoadOptions = {}): Promise<ADMUNet> {
    const config = resolveConfig(flags);
    const arch = buildArchitecture(config);
    const source = await openWeights(weights);
    try {
      checkKeys(arch, new Map(source.keys().map((k) => [k, source.shape(k)])), opts.strict ?? true, source.label);
      const total = arch.parameters.reduce((s, [k]) => s + source.byteLength(k), 0);
      let loaded = 0;
      return await ADMUNet.build(config, arch, opts, async (add) => {
        for (const [name] of arch.parameters) {
          add(name, await source.readFloat32(name));
          loaded += source.byteLength(name);
          opts.onProgress?.({ loaded, total, key: name });
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
    if (!Number.isInteger(b) || b < 1 || b > this.totalBlocks) throw new InputError(`unknown block ${String(b)}: this model has blocks 1..${this.totalBlocks}`);
    return this.blocks[b - 1];
  }

  /**
   * The embedding every block receives: `time_embed(timestep_embedding(t))`, plus `label_emb(y)`
   * for class-conditional models. `[N, 4C]`, owned by the caller.
   */
  embed(t: number[], y?: number[]): tf.Tensor2D {
    this.assertAlive();
    checkTimesteps(t, this.schedule.steps, t.length);
    this.checkLabels(y, t.length);
    const p = this.param;
    return tf.tidy(() => {
      const temb = timestepEmbedding(t, this.config.modelChannels);
      let emb = p.linear(silu(p.linear(temb, 'time_embed.0')), 'time_embed.2');
      if (y) emb = tf.add(emb, tf.gather(p('label_emb.weight'), tf.tensor1d(y, 'int32'))) as tf.Tensor2D;
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
    this.checkLabels(opts.y, n);
    const capture = new Set<number>();
    if (opts.capture !== undefined) {
      if (!Array.isArray(opts.capture)) throw new InputError('capture must be an array of block numbers');
      for (const b of opts.capture) capture.add(this.block(b).b);
    }
    const add = this.checkAdd(opts.add, n);
    const runAll = opts.capture === undefined || opts.output === true;
    const stopAt = runAll ? this.totalBlocks : Math.max(0, ...capture);

    const features = new Map<number, tf.Tensor4D>();
    // Skips are kept only for the output blocks that will run: stopping at b = 24 of the 256×256
    // model frees the 256² and 128² encoder maps as soon as the next block has read them.
    const needed = new Set(this.arch.blocks.filter((s) => s.part === 'output' && s.b <= stopAt).map((s) => s.skipFrom!));
    const skips = new Map<number, Parked<tf.Tensor4D>[]>();
    const emb = this.embed(t, opts.y);
    // The batch as one part, or one part per example through blocks whose maps need bands (bands cover
    // one example). Parts waiting their turn are parked like skips, so that a batch of 256×256 maps is
    // never in the heap at once.
    let h: Parked<tf.Tensor4D>[] = [park(alias(xt), Infinity)];
    try {
      for (const spec of this.arch.blocks) {
        if (spec.b > stopAt) break;
        const [, size, width] = h[0].shape;
        const widest = Math.max(spec.inChannels, spec.channels);
        h = regroup(h, n > 1 && this.rowsPerBand(size, width, widest, widest) < size, (x) => this.park(x));
        const skip = spec.part === 'output' ? this.skipParts(skips.get(spec.skipFrom!)!, h.length) : undefined;
        const extra = add.get(spec.b);
        const newSkips: Parked<tf.Tensor4D>[] = [];
        if (needed.has(spec.b)) skips.set(spec.b, newSkips);
        const captured: tf.Tensor4D[] = [];
        try {
          for (let i = 0; i < h.length; i++) {
            const split = h.length > 1;
            const out = this.runPart(spec, h[i].take(), skip?.(i), emb, extra, split ? i : undefined);
            // Skips and captures share the output's data (an alias, not a copy); large skips wait outside the wasm heap.
            if (needed.has(spec.b)) newSkips.push(this.park(alias(out)));
            if (capture.has(spec.b)) captured.push(alias(out));
            h[i] = split ? this.park(out) : park(out, Infinity);
          }
        } catch (e) {
          tf.dispose(captured);
          throw e;
        }
        skips.get(spec.skipFrom!)?.forEach((s) => s.dispose());
        skips.delete(spec.skipFrom!);
        if (capture.has(spec.b)) features.set(spec.b, captured.length === 1 ? captured[0] : joinParts(captured));
      }
      if (!runAll) return { features };
      const outputs: tf.Tensor4D[] = [];
      try {
        for (const part of h) {
          const x = part.take();
          try {
            outputs.push(this.outHead(x));
          } finally {
            x.dispose();
          }
        }
      } catch (e) {
        tf.dispose(outputs);
        throw e;
      }
      return { features, output: outputs.length === 1 ? outputs[0] : joinParts(outputs) };
    } catch (e) {
      features.forEach((f) => f.dispose());
      throw e;
    } finally {
      h.forEach((part) => part.dispose());
      skips.forEach((parts) => parts.forEach((s) => s.dispose()));
      emb.dispose();
    }
  }

  // Block `spec` on x, first joined with its skip for an output block, plus the tensor added to the
  // block's output; `example` picks the rows of emb and of the added tensor when x is one example of
  // the batch. Consumes x and skip.
  private runPart(spec: BlockSpec, x: tf.Tensor4D, skip: tf.Tensor4D | undefined, emb: tf.Tensor2D, extra: tf.Tensor4D | undefined, example?: number): tf.Tensor4D {
    let input = x;
    try {
      if (skip) {
        input = tf.concat([x, skip], 3);
        // Freed before the block runs, so that they are gone before its intermediates exist.
        tf.dispose([x, skip]);
      }
      return tf.tidy((): tf.Tensor4D => {
        const y = this.runBlock(spec, input, example === undefined ? emb : sliceRows(emb, example, 1));
        return extra ? tf.add(y, example === undefined ? extra : sliceRows(extra, example, 1)) : y;
      });
    } finally {
      tf.dispose([x, input, ...(skip ? [skip] : [])]);
    }
  }

  // Sets a map aside until a later block takes it: out of the wasm heap when it holds parkBytes or
  // more, in JS buffers this model reuses from forward to forward.
  private park(x: tf.Tensor4D): Parked<tf.Tensor4D> {
    return park(x, this.parkBytes, this.parking);
  }

  // The skip's part for each of `count` parts of h: taken one at a time when both are split alike,
  // otherwise taken whole and regrouped to h's parts.
  private skipParts(parked: Parked<tf.Tensor4D>[], count: number): (i: number) => tf.Tensor4D {
    if (parked.length === count) return (i) => parked[i].take();
    const parts = regroup(parked, count > 1, (x) => park(x, Infinity));
    return (i) => parts[i].take();
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
    return new Map(this.arch.parameters.map(([name, shape]) => [name, { shape: [...shape], data: toReferenceLayout(name, shape, this.weights.read(name)) }]));
  }

  /** Writes the weights as safetensors under the reference's names and layouts, atomically. */
  async save(path: string): Promise<void> {
    await writeSafetensors(path, this.stateDict(), { format: 'pt', producer: 'diffssl' });
  }

  /** Frees the weights. The model cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.weights.dispose();
    this.winogradCache.forEach(({ u }) => tf.dispose(u));
    this.winogradCache.clear();
    this.parking.clear();
    this.disposed = true;
  }

  private readonly param: Params = Object.assign((name: string) => this.weights.get(name), {
    conv3x3: (x: tf.Tensor4D, prefix: string, stride: 1 | 2 = 1) =>
      stride === 1 ? this.conv3x3Rows(rowsOf(x), prefix) : conv3x3(x, this.weights.get(`${prefix}.weight`), this.weights.get(`${prefix}.bias`), stride),
    conv3x3Rows: (x: Rows, prefix: string, epilogue?: (y: tf.Tensor4D, top: number) => tf.Tensor4D) => this.conv3x3Rows(x, prefix, epilogue),
    linear: (x: tf.Tensor2D, prefix: string) => this.linear(x, prefix),
    statRows: ([, h, w, c]: readonly number[]) => bandRows(h, 3 * w * c, this.bandFloats),
  });

  // A streamed weight is new on every forward, so with few rows (the embedding's one per example,
  // attention and skips on 8×8 maps) it goes on the left (matMulRowsLeft): on wasm with 2 threads
  // 0.9 against 6.5 ms for 1 × 1024 → 2048, 11.8 against 16.2 ms for 64 × 1024 → 3072; from 256
  // rows on the weight on the right was faster.
  private linear(x: tf.Tensor2D, prefix: string): tf.Tensor2D {
    return tf.tidy(() => {
      const name = `${prefix}.weight`;
      const b = this.weights.get(`${prefix}.bias`);
      if (x.shape[0] <= LINEAR_LEFT_MAX_ROWS && !this.weights.isResident(name))
        return tf.add(matMulRowsLeft(x, this.weights.getRows(name)), b) as tf.Tensor2D;
      const [cin, cout] = this.weights.shapeOf(name).slice(-2);
      return dense(x, tf.reshape(this.weights.get(name), [cin, cout]) as tf.Tensor2D, b as tf.Tensor1D);
    });
  }

  // Bands of output rows, each convolved from its input rows plus one neighbour row on either side
  // (zero rows only at the map's edges), with the filter fetched and transformed once for all.
  private conv3x3Rows(x: Rows, prefix: string, epilogue?: (y: tf.Tensor4D, top: number) => tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w, cin] = x.shape;
      const conv = this.convFor(prefix, x.shape);
      const rows = n === 1 ? this.rowsPerBand(h, w, cin, this.weights.shapeOf(`${prefix}.weight`)[3]) : h;
      return mapBands(h, rows, (top, count) =>
        tf.tidy(() => {
          const first = Math.max(0, top - 1);
          const last = Math.min(h, top + count + 1);
          const y = conv(x.get(first, last - first), [1 - (top - first), 1 - (last - top - count)]);
          return epilogue ? epilogue(y, top) : y;
        }),
      );
    });
  }

  // Output rows per band of a conv on a `h × w` map: its input band, the activation made on the way
  // (about 3 band-sized copies) and, for Winograd F(2×2, 3×3), 4× the input and twice 4× the output.
  private rowsPerBand(h: number, w: number, cin: number, cout: number): number {
    return bandRows(h, w * (4 * cin + 4 * (cin + 2 * cout)), this.bandFloats);
  }

  // A stride-1 3×3 conv for maps of `shape` (rows padded by `rowPad`, columns by 1), its algorithm
  // chosen for the whole map and its filter fetched (and transformed) now, in the caller's scope.
  private convFor(prefix: string, [n, h, wd]: readonly number[]): (x: tf.Tensor4D, rowPad?: RowPad) => tf.Tensor4D {
    const name = `${prefix}.weight`;
    const b = this.weights.get(`${prefix}.bias`);
    const [, , cin, cout] = this.weights.shapeOf(name);
    const streamed = !this.weights.isResident(name);
    const algo = this.conv === 'auto' || this.conv === 'fast' ? this.autoAlgorithm(streamed, [n, h, wd], cin * cout) : this.conv;
    if (algo === 'gemm' && cin >= 8) {
      const wT = this.weights.getRows(name);
      return (x, rowPad) => withFastInputGrad(x, wT, (v) => conv3x3Gemm(v, wT, b, rowPad), rowPad);
    }
    const m: WinogradTile = algo === 'winograd4' ? 4 : 2;
    if (algo !== 'direct' && cin >= 8 && streamed && n * Math.ceil(h / m) * Math.ceil(wd / m) <= LEFT_MAX_TILES) {
      const wT = this.weights.getRows(name);
      const ut = winogradFiltersRows(wT, m);
      return (x, rowPad) => withFastInputGrad(x, wT, (v) => winogradConv3x3(v, ut, b, m, rowPad, 'left'), rowPad);
    }
    const w = this.weights.get(name) as tf.Tensor4D;
    if (algo === 'direct' || cin < 8) return (x, rowPad) => withFastInputGrad(x, w, (v) => conv3x3(v, w, b, 1, rowPad), rowPad);
    const u = this.winogradFilters(prefix, w, m);
    return (x, rowPad) => withFastInputGrad(x, w, (v) => winogradConv3x3(v, u, b, m, rowPad), rowPad);
  }

  // Winograd pays where a conv has at least 128×128 channels and enough tiles to share each
  // transformed filter: on a 32×32 map or larger. Streamed filters are repacked by XNNPACK on every
  // forward whatever the algorithm, and with the filters on the left (see convFor) Winograd
  // beat the other paths down to 8×8 maps (wasm, 2 threads, 1024→1024: 12 ms on 8×8 against 22 ms by
  // conv3x3Gemm; 33 against 126 ms on 16×16). F(4×4) is worth its larger filters from 16×16 on (at
  // 8×8, 30 against 12 ms for F(2×2)). Below that a streamed filter goes through conv3x3Gemm when the
  // pixels are few, tf.conv2d otherwise.
  private autoAlgorithm(streamed: boolean, [n, h, w]: number[], channelPairs: number): 'direct' | 'winograd2' | 'winograd4' | 'gemm' {
    if (channelPairs >= 128 * 128 && h * w >= (streamed ? 8 * 8 : 32 * 32)) return this.conv === 'fast' && h * w >= 16 * 16 ? 'winograd4' : 'winograd2';
    return n * h * w <= GEMM_MAX_PIXELS && streamed ? 'gemm' : 'direct';
  }

  // Transformed filters: kept between forwards for resident weights within the cache budget,
  // otherwise made in the caller's scope and freed with it.
  private winogradFilters(prefix: string, w: tf.Tensor4D, m: WinogradTile): tf.Tensor2D[] {
    const cached = this.winogradCache.get(prefix);
    if (cached?.m === m) return cached.u;
    const u = winogradFilters(w, m);
    const bytesOf = (ts: tf.Tensor[]) => ts.reduce((s, t) => s + 4 * t.size, 0);
    const freed = cached ? bytesOf(cached.u) : 0;
    if (!this.weights.isResident(`${prefix}.weight`) || bytesOf(u) > this.winogradCacheLeft + freed) return u;
    if (cached) tf.dispose(cached.u);
    this.winogradCache.set(prefix, { m, u: u.map((t) => tf.keep(t)) });
    this.winogradCacheLeft += freed - bytesOf(u);
    return u;
  }

  /** Where the weights live: bytes held as tensors and bytes streamed from JS memory per forward. */
  get weightBytes(): { resident: number; streamed: number } {
    return this.weights.bytes;
  }

  private runBlock(spec: BlockSpec, x: tf.Tensor4D, emb: tf.Tensor2D): tf.Tensor4D {
    const p = this.param;
    let h = x;
    for (const l of spec.layers) {
      switch (l.kind) {
        case 'conv':
          h = p.conv3x3(h, l.prefix);
          break;
        case 'res':
          h = resBlock(p, l, h, emb, this.config.useScaleShiftNorm);
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
      return p.conv3x3Rows(rowsOf(h, (band) => silu(applyAffine(band, norm))), 'out.2');
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
    if (!(x instanceof tf.Tensor)) throw new InputError(`${what} must be a tf.Tensor4D, got ${x === null ? 'null' : typeof x}`);
    if (x.rank !== 4) throw new InputError(`${what} must be rank 4 (NHWC [N, H, W, C]), got rank ${x.rank} [${x.shape}]`);
    if (x.dtype !== 'float32') throw new InputError(`${what} must be float32, got ${x.dtype}`);
    const [n, hgt, wid, c] = x.shape;
    const S = this.config.imageSize;
    if (c !== this.config.inChannels)
      throw new InputError(`${what} has ${c} channel${c === 1 ? '' : 's'} but the model takes ${this.config.inChannels} (layout is NHWC, channels last)${x.shape[1] === this.config.inChannels ? '; this looks like NCHW' : ''}`);
    if (hgt !== S || wid !== S) throw new InputError(`${what} is ${hgt}×${wid} but this model takes ${S}×${S} images`);
    if (n < 1) throw new InputError(`${what} has an empty batch`);
    return n;
  }

  private checkLabels(y: number[] | undefined, n: number): void {
    const classes = this.config.numClasses;
    if (classes === null) {
      if (y !== undefined) throw new InputError('y was given but this model is unconditional (class_cond false)');
      return;
    }
    if (y === undefined) throw new InputError(`this model is class-conditional: pass y, one label in [0, ${classes}) per example`);
    if (!Array.isArray(y) || y.length !== n) throw new InputError(`y must have one label per example (${n}), got ${Array.isArray(y) ? y.length : typeof y}`);
    y.forEach((v, i) => {
      if (!Number.isInteger(v) || v < 0 || v >= classes) throw new InputError(`y[${i}] = ${v} is outside [0, ${classes})`);
    });
  }

  private checkAdd(add: Map<number, tf.Tensor4D> | undefined, n: number): Map<number, tf.Tensor4D> {
    if (add === undefined) return new Map();
    if (!(add instanceof Map)) throw new InputError('add must be a Map from block number to tensor');
    for (const [b, t] of add) {
      const info = this.block(b);
      const want = [n, info.size, info.size, info.channels];
      if (!(t instanceof tf.Tensor) || !tf.util.arraysEqual(t.shape, want))
        throw new InputError(`add: the tensor for block ${b} must have shape [${want}], got ${t instanceof tf.Tensor ? `[${t.shape}]` : typeof t}`);
    }
    return add;
  }
}

// One part per example (splitting a batch, each set aside by `hold`), or the batch as one part
// (joining examples); the parts given are consumed.
function regroup(parts: Parked<tf.Tensor4D>[], perExample: boolean, hold: (x: tf.Tensor4D) => Parked<tf.Tensor4D>): Parked<tf.Tensor4D>[] {
  if (perExample && parts.length === 1 && parts[0].shape[0] > 1) {
    const whole = parts[0].take();
    try {
      return Array.from({ length: whole.shape[0] }, (_, i) => hold(sliceRows(whole, i, 1)));
    } finally {
      whole.dispose();
    }
  }
  return !perExample && parts.length > 1 ? [park(joinParts(parts.map((p) => p.take())), Infinity)] : parts;
}

function joinParts(parts: tf.Tensor4D[]): tf.Tensor4D {
  try {
    return tf.concat(parts, 0);
  } finally {
    tf.dispose(parts);
  }
}

function checkKeys(arch: Architecture, got: Map<string, number[]>, strict: boolean, label: string): void {
  checkStateDict(arch.parameters, got, {
    subject: `${label} does not fit this model's state dict`,
    advice: 'Check that the flags match the checkpoint (a preset name such as "256x256_diffusion_uncond" picks the released ones).',
    strict,
  });
}
