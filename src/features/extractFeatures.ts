/**
 * The paper's feature `f(x0, t, b)`: noise clean images to step t, run the U-Net, read block b.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { adaptiveAvgPool2d } from '../ops/adaptiveAvgPool.js';
import { interpolateBilinear } from '../ops/interpolate.js';
import { checkImageRange, checkTimesteps, type IMAGE_RANGE_LIMIT } from '../unet/schedule.js';
import { checkSeed, stepNoise } from '../util/noise.js';
import { progressClock, type ExtractProgressInfo, type ProgressCallback } from '../util/progress.js';

/**
 * What {@link extractFeatures} needs of a backbone; `ADMUNet` has it. Declared here, not imported,
 * so that the U-Net can offer `extractFeatures` as a method without an import circle.
 * @category Features
 */
export interface FeatureBackbone {
  /** The side of the images the backbone takes. */
  readonly config: { readonly imageSize: number; readonly inChannels: number };
  /** The number of diffusion steps T; valid t are the integers 0..T−1. */
  readonly schedule: { readonly steps: number };
  /** Throws an InputError for a block the backbone does not have. */
  block(b: number): unknown;
  /** Throws an InputError for images the backbone does not take; returns the batch size. */
  checkImages(x: tf.Tensor4D, what?: string): number;
  /** `q_sample(x0, t, ε)`, one step per example; `checkRange: false` skips the check of x0's values. */
  qSample(x0: tf.Tensor4D, t: number[], noise: tf.Tensor4D, opts?: { checkRange?: boolean }): tf.Tensor4D;
  /** Block outputs of noised images for the blocks in `capture`, owned by the caller. */
  forward(
    xt: tf.Tensor4D,
    t: number[],
    opts: { capture: number[]; y?: number[] },
  ): { features: Map<number, tf.Tensor4D> };
}

/**
 * Options of {@link extractFeatures}.
 * @category Features
 */
export interface ExtractOptions {
  /** Noise step(s), integers in [0, T). The paper's default feature is t = 150, b = 24 (256 model). */
  t: number | number[];
  /** Block(s) in the paper's numbering, 1..total. */
  b: number | number[];
  /**
   * The backbone, an `ADMUNet`. Default: the embedded backbone of `loadDefaultBackbone()` (28×28
   * grayscale, pretrained on Fashion-MNIST), loaded on first use and kept.
   */
  model?: FeatureBackbone;
  /**
   * Explicit ε, one NHWC tensor of x0's shape per t, in t order (the reference draws fresh
   * `randn_like(x0)` per t). With `ensemble: K`, one per (t, draw), t-major: `noise[i·K + k]` is
   * draw k of step `t[i]` (K·|t| tensors). Stays owned by the caller.
   */
  noise?: tf.Tensor4D | tf.Tensor4D[];
  /**
   * Makes the noise reproducible when `noise` is not given: any integer, 0 and negative ones
   * included. ε for step t depends only on (seed, t), so a step's features do not change with the
   * other steps asked for or their order, and are the same on every backend. Draw k of an
   * `ensemble` is `seededNormal(x0.shape, seed, t, k)`, so draw 0 is the noise of `ensemble: 1`, and
   * draw k does not change with K or `maxBatch`. Without `noise` or `seed` the noise is fresh on every call.
   */
  seed?: number;
  /**
   * Average every map over this many noise draws (DIFT's `ensemble_size`), each a full U-Net
   * forward: the K draws of an example run as K rows of one forward (as many examples per forward
   * as `maxBatch` allows; when K > `maxBatch`, one example's draws take several forwards). Pooling
   * applies to the average. Default 1 (one draw, as the paper).
   */
  ensemble?: number;
  /**
   * Adaptive-average-pool every map to `pool × pool` (as `nn.AdaptiveAvgPool2d`). Maps already
   * that small or smaller are returned as they are, like the paper's tokenizer does.
   */
  pool?: number;
  /**
   * Dense features: resize every block's map to `dense × dense` with PyTorch's bilinear
   * `F.interpolate(…, align_corners=False)` (up for the deep blocks, down for larger ones), one
   * forward's batch at a time, so no more than a batch ever exists at the finer sides of the blocks
   * together. {@link FeatureSet.concat} joins the blocks of a step along channels. Not with `pool`.
   */
  dense?: number;
  /** Class labels, one per example, for class-conditional backbones. */
  y?: number[];
  /**
   * Check that x0 is finite and within ±{@link IMAGE_RANGE_LIMIT} (images scaled to [-1, 1]),
   * throwing an InputError that says how to rescale otherwise. Default true; false for callers who
   * mean to feed other values.
   */
  checkRange?: boolean;
  /**
   * Most (t, example, draw) rows per U-Net forward. Default: as many as make 65 536 pixels (1 at 256×256,
   * 16 at 64×64, 64 at 32×32). Results do not depend on it; on CPU backends a larger batch buys little
   * speed and costs memory (docs/performance.md#batching).
   */
  maxBatch?: number;
  /** Called after each forward (each example's last forward with `ensemble`): `done` of `total` (t, example) rows. */
  onProgress?: ProgressCallback<ExtractProgressInfo>;
}

/**
 * Feature maps by (t, b), NHWC. The set owns its tensors: {@link FeatureSet.get} lends one
 * (do not dispose it yourself), {@link FeatureSet.dispose} frees them all. `tf.clone` a map to keep
 * it past `dispose()`.
 * @category Features
 */
export class FeatureSet {
  /** The steps, in the order requested. */
  readonly t: number[];
  /** The blocks, in the order requested. */
  readonly b: number[];
  private readonly maps: Map<string, tf.Tensor4D>;
  private disposed = false;

  /** @internal */
  constructor(t: number[], b: number[], maps: Map<string, tf.Tensor4D>) {
    this.t = t;
    this.b = b;
    this.maps = maps;
  }

  /**
   * The map of step t at block b, `[N, side, side, channels]` (or pooled). Owned by the set.
   * @throws InputError when (t, b) was not extracted or the set was disposed.
   */
  get(t: number, b: number): tf.Tensor4D {
    if (this.disposed) throw new InputError('this FeatureSet was disposed');
    const m = this.maps.get(`${t}:${b}`);
    if (!m) throw new InputError(`no feature for t=${t}, b=${b}: this set has t ∈ {${this.t}} and b ∈ {${this.b}}`);
    return m;
  }

  /** Whether (t, b) is in the set. */
  has(t: number, b: number): boolean {
    return !this.disposed && this.maps.has(`${t}:${b}`);
  }

  /**
   * The maps of step t at `blocks` (default: every block of the set, in request order) joined along
   * channels, `[N, side, side, ΣC]`: the per-pixel feature of several blocks, as dense heads take it.
   * A new tensor, the caller's to dispose.
   * @throws InputError when the maps differ in side (extract with `dense`), or for a missing (t, b).
   */
  concat(t: number, blocks: number[] = this.b): tf.Tensor4D {
    const maps = blocks.map((b) => this.get(t, b));
    const sides = new Set(maps.map((m) => `${m.shape[1]}×${m.shape[2]}`));
    if (sides.size > 1)
      throw new InputError(
        `the maps of t=${t} at blocks ${blocks.join(', ')} have sides ${[...sides].join(', ')}: extract them with \`dense: side\` to bring them to one side`,
      );
    return maps.length === 1 ? tf.clone(maps[0]) : (tf.concat(maps, 3) as tf.Tensor4D);
  }

  /** Every `{ t, b, map }`, t-major in request order. */
  *entries(): IterableIterator<{ t: number; b: number; map: tf.Tensor4D }> {
    for (const t of this.t) for (const b of this.b) yield { t, b, map: this.get(t, b) };
  }

  /** Frees every map. Safe to call twice. */
  dispose(): void {
    this.maps.forEach((m) => m.dispose());
    this.maps.clear();
    this.disposed = true;
  }
}

function asList(v: number | number[], what: string): number[] {
  const list = typeof v === 'number' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0)
    throw new InputError(`${what} must be a number or a non-empty array of numbers`);
  const seen = new Set<number>();
  for (const x of list) {
    if (seen.has(x)) throw new InputError(`${what} lists ${x} twice`);
    seen.add(x);
  }
  return list;
}

const DEFAULT_BATCH_PIXELS = 256 * 256;

// setImmediate where there is one (Node: no timer clamp), else a zero-delay timeout (browsers).
const nextTurn = (): Promise<void> =>
  new Promise((resolve) => (typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0)));

/**
 * Diffusion features of clean images: for every t, `x_t = q_sample(x0, t, ε)`, then the U-Net's
 * block outputs for every b. The (t, example) rows run as batched forwards of up to `maxBatch` rows,
 * each stopping after the deepest requested block. With `ensemble: K`, each (t, example) runs as K
 * rows with K noise draws and its maps are their mean (DIFT's `ensemble_size`).
 *
 * @param x0 clean images, NHWC `[N, S, S, C]` in [-1, 1], S the model's `image_size`. Not disposed.
 * Values beyond ±{@link IMAGE_RANGE_LIMIT}, NaN or ±Inf are an InputError (see `checkRange`).
 * @returns a {@link FeatureSet} that owns the maps; dispose it when done.
 * @throws InputError for a bad shape, step, block, noise or option.
 *
 * This is the implementation, which needs `model`; the package's `extractFeatures` fills in the
 * default backbone when it is omitted.
 *
 * @example
 * ```ts
 * const feats = await extractFeatures(x0, { t: [90, 150], b: [19, 24], model: unet, seed: 0 });
 * const f = feats.get(90, 24); // [N, 16, 16, 1024] for the 256 model
 * feats.dispose();
 * // The mean over 8 noise draws per image, pooled to 4 × 4 afterwards:
 * const avg = await extractFeatures(x0, { t: 150, b: 24, model: unet, seed: 0, ensemble: 8, pool: 4 });
 * avg.dispose();
 * ```
 * @category Features
 */
export async function extractFeatures(x0: tf.Tensor4D, opts: ExtractOptions): Promise<FeatureSet> {
  if (typeof opts !== 'object' || opts === null) throw new InputError('extractFeatures needs options: { t, b }');
  const { model } = opts;
  if (typeof model !== 'object' || model === null || typeof model.forward !== 'function')
    throw new InputError('extractFeatures: opts.model must be an ADMUNet (or omitted for the default backbone)');
  const ts = asList(opts.t, 't');
  checkTimesteps(ts, model.schedule.steps, ts.length, 't');
  const bs = asList(opts.b, 'b');
  bs.forEach((b) => model.block(b));
  const n = model.checkImages(x0, 'x0');
  if (opts.pool !== undefined && (!Number.isInteger(opts.pool) || opts.pool < 1))
    throw new InputError(`pool must be a positive integer, got ${opts.pool}`);
  if (opts.dense !== undefined && (!Number.isInteger(opts.dense) || opts.dense < 1))
    throw new InputError(`dense must be a positive integer side, got ${opts.dense}`);
  if (opts.dense !== undefined && opts.pool !== undefined)
    throw new InputError('dense and pool exclude each other: dense resizes every map to one side, pool shrinks each');
  const maxBatch =
    opts.maxBatch ?? Math.max(1, Math.floor(DEFAULT_BATCH_PIXELS / (model.config.imageSize * model.config.imageSize)));
  if (!Number.isInteger(maxBatch) || maxBatch < 1)
    throw new InputError(`maxBatch must be a positive integer, got ${opts.maxBatch}`);
  if (opts.y !== undefined && (!Array.isArray(opts.y) || opts.y.length !== n))
    throw new InputError(`y must have one label per example (${n})`);
  if (opts.checkRange !== false) checkImageRange(x0, 'x0');
  const K = opts.ensemble ?? 1;
  if (!Number.isInteger(K) || K < 1) throw new InputError(`ensemble must be a positive integer, got ${opts.ensemble}`);

  let noise: tf.Tensor4D[];
  let ownNoise = false;
  if (opts.noise !== undefined) {
    noise = Array.isArray(opts.noise) ? opts.noise : [opts.noise];
    if (noise.length !== ts.length * K)
      throw new InputError(
        K === 1
          ? `noise has ${noise.length} tensor${noise.length === 1 ? '' : 's'} but t has ${ts.length} step${ts.length === 1 ? '' : 's'}: give one ε per t, in t order`
          : `noise has ${noise.length} tensor${noise.length === 1 ? '' : 's'} but ensemble ${K} × ${ts.length} step${ts.length === 1 ? '' : 's'} need ${K * ts.length}: give one ε per (t, draw), t-major (noise[i·${K} + k] is draw k of t[i])`,
      );
    noise.forEach((e, i) => {
      if (!(e instanceof tf.Tensor) || !tf.util.arraysEqual(e.shape, x0.shape))
        throw new InputError(
          `noise[${i}] must have x0's shape [${x0.shape}], got ${e instanceof tf.Tensor ? `[${e.shape}]` : typeof e}`,
        );
    });
  } else {
    if (opts.seed !== undefined) checkSeed(opts.seed);
    // Draw k of step t is the stream (t, k): t repeated K times makes stepNoise count the repeats.
    noise = stepNoise<tf.Rank.R4>(
      x0.shape,
      ts.flatMap((t) => Array<number>(K).fill(t)),
      opts.seed,
    );
    ownNoise = true;
  }

  // Rows of the combined batch are (t, example, draw)-major: row r is draw r % K of example
  // floor(r / K) % n at step ts[floor(r / (n·K))]. A group is the K rows of one (t, example).
  const groups = ts.length * n;
  const groupsPerBlock = Math.max(1, Math.floor(maxBatch / K));
  const clock = progressClock();
  const pieces = new Map<string, tf.Tensor4D[]>();
  let xt: tf.Tensor4D | undefined;
  try {
    xt = tf.tidy(() =>
      tf.concat(
        ts.map((t, i) => {
          const tt = Array<number>(n).fill(t);
          if (K === 1) return model.qSample(x0, tt, noise[i], { checkRange: false });
          const draws = Array.from({ length: K }, (_, k) =>
            model.qSample(x0, tt, noise[i * K + k], { checkRange: false }),
          );
          const [, h, w, c] = x0.shape;
          return tf.reshape(tf.stack(draws, 1), [n * K, h, w, c]) as tf.Tensor4D;
        }),
        0,
      ),
    );
    for (let g0 = 0; g0 < groups; g0 += groupsPerBlock) {
      const g1 = Math.min(groups, g0 + groupsPerBlock);
      // The block's maps by block b, one per forward (several only when K > maxBatch).
      const outs = new Map<number, tf.Tensor4D[]>(bs.map((b) => [b, []]));
      const held: tf.Tensor4D[] = [];
      try {
        for (let r0 = g0 * K; r0 < g1 * K; r0 += maxBatch) {
          const r1 = Math.min(g1 * K, r0 + maxBatch);
          const rowsT = Array.from({ length: r1 - r0 }, (_, j) => ts[Math.floor((r0 + j) / (n * K))]);
          const y = opts.y ? rowsT.map((_, j) => opts.y![Math.floor((r0 + j) / K) % n]) : undefined;
          const chunk = tf.slice(xt, r0, r1 - r0);
          let features: Map<number, tf.Tensor4D>;
          try {
            ({ features } = model.forward(chunk, rowsT, { capture: bs, ...(y ? { y } : {}) }));
          } finally {
            chunk.dispose();
          }
          features.forEach((m) => held.push(m));
          for (const b of bs) outs.get(b)!.push(features.get(b)!);
        }
        for (const b of bs) {
          const split = tf.tidy(() => {
            const list = outs.get(b)!;
            const all = list.length === 1 ? list[0] : tf.concat(list, 0);
            const map = K === 1 ? all : ensembleMean(all, g1 - g0, K);
            const pooled =
              opts.dense !== undefined
                ? interpolateBilinear(map, opts.dense)
                : opts.pool !== undefined && opts.pool < map.shape[1]
                  ? adaptiveAvgPool2d(map, opts.pool)
                  : map;
            // The block's (t, example) rows, split by t.
            const out: { key: string; part: tf.Tensor4D }[] = [];
            for (let g = g0; g < g1;) {
              const ti = Math.floor(g / n);
              const stop = Math.min(g1, (ti + 1) * n);
              out.push({
                key: `${ts[ti]}:${b}`,
                part: stop - g === g1 - g0 ? tf.clone(pooled) : tf.slice(pooled, g - g0, stop - g),
              });
              g = stop;
            }
            return out;
          });
          for (const { key, part } of split) pieces.set(key, [...(pieces.get(key) ?? []), part]);
        }
      } finally {
        held.forEach((m) => m.dispose());
      }
      opts.onProgress?.({ kind: 'extract', ...clock(g1, groups) });
      // A full turn of the event loop, not a microtask: a page can repaint and streamed filters' JS memory be reclaimed.
      await nextTurn();
    }
  } catch (e) {
    pieces.forEach((l) => l.forEach((p) => p.dispose()));
    throw e;
  } finally {
    xt?.dispose();
    if (ownNoise) noise.forEach((e) => e.dispose());
  }
  const maps = new Map<string, tf.Tensor4D>();
  try {
    for (const [key, list] of pieces) maps.set(key, list.length === 1 ? tf.clone(list[0]) : tf.concat(list, 0));
  } catch (e) {
    maps.forEach((m) => m.dispose());
    throw e;
  } finally {
    pieces.forEach((l) => l.forEach((p) => p.dispose()));
  }
  return new FeatureSet(ts, bs, maps);
}

/**
 * The mean over the K draws of each of `groups` examples, rows draw-minor: `((f0 + f1) + …) / K`,
 * summed in draw order with elementwise adds, so the result is the same on every backend.
 */
function ensembleMean(all: tf.Tensor4D, groups: number, K: number): tf.Tensor4D {
  const [, h, w, c] = all.shape;
  const draws = tf.unstack(tf.reshape(all, [groups, K, h * w * c]), 1);
  let sum = draws[0];
  for (let k = 1; k < K; k++) sum = tf.add(sum, draws[k]);
  return tf.reshape(tf.div(sum, K), [groups, h, w, c]);
}
