/**
 * Feeding heads from cached features: run the frozen U-Net once over the dataset with fixed noise,
 * keep the maps (in memory, or on disk as safetensors shards), then train any number of epochs
 * from them at the cost of the head alone.
 *
 * How this differs from the reference: diffssl's `finetune.py` runs the U-Net inside every training
 * step, so each step sees a fresh `randn_like` noise draw and a fresh random crop and flip. A cache
 * holds `copies` draws per image (default one) made once: with one copy the head sees the same
 * x_t of each image every epoch, and no augmentation at all unless `augment` is set. That is the
 * protocol of the paper's feature sweeps and kNN table (fixed features), and is much cheaper, but
 * it is not the reference's head training; expect somewhat lower accuracy and more overfitting
 * than on-the-fly training ({@link onTheFlyFeatures}) on small datasets. `copies > 1` with
 * `augment: true` stores several draws and cycles through them by epoch, a middle ground.
 * DifFeed cannot use a cache at all (its feedback changes the second pass).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, InputError } from '../errors.js';
import { extractFeatures, FeatureSet } from '../features/extractFeatures.js';
import { SafetensorsReader, writeSafetensors } from '../io/safetensors.js';
import { nodeFs } from '../util/nodeFs.js';
import { positiveInt } from '../util/checks.js';
import { writeBytesAtomic } from '../io/atomicFile.js';
import { mixSeed, type Batch, type BatchContext, type Dataset } from './dataset.js';
import { loadBatch, type ImageSource } from './images.js';
import { batchNoise, type FeatureSpec } from './onTheFly.js';
import { progressClock, type CacheProgressInfo, type ProgressCallback } from '../util/progress.js';

const FORMAT = 'diffssl.feature-cache';
/** The manifest a disk cache is opened by; written last, so a directory without it is unfinished. */
export const CACHE_MANIFEST = 'features.json';

/**
 * Options of {@link cacheFeatures}.
 * @category Data
 */
export interface CacheOptions extends FeatureSpec {
  /** Seed of the noise (and of the augmentation when `augment`): example i, copy c is a pure function of (seed, c, i). Default 0. */
  seed?: number;
  /** Images per U-Net forward (default 8). Results do not depend on it. */
  batchSize?: number;
  /** Use the training transform (random crop and flip) instead of the evaluation center crop. Default false. */
  augment?: boolean;
  /** Draws per image (default 1); epoch e trains on copy e mod copies. */
  copies?: number;
  /** Write to this directory as safetensors shards instead of keeping the maps in memory. */
  dir?: string;
  /** Storage type on disk (default 'F32'; 'F16' halves the size, values are read back as float32). */
  dtype?: 'F32' | 'F16';
  /** Examples per shard file (default 256). */
  shardSize?: number;
  /** Reuse shards already in `dir` that were written with the same settings (an interrupted extraction continues). */
  resume?: boolean;
  /** Called after each U-Net forward, and after each shard reused, with a `'cache'` report; `done`/`total` count (image, copy) pairs. */
  onProgress?: ProgressCallback<CacheProgressInfo>;
  /** Stops between forwards; finished shards stay on disk for `resume`. */
  signal?: AbortSignal;
}

interface ShardInfo {
  file: string;
  copy: number;
  start: number;
  count: number;
}

interface Manifest {
  format: typeof FORMAT;
  version: 1;
  settings: Settings;
  shapes: Record<string, [number, number, number]>;
  labels: number[];
  shards: ShardInfo[];
}

interface Settings {
  t: number[];
  b: number[];
  pool: number | null;
  seed: number;
  augment: boolean;
  copies: number;
  dtype: 'F32' | 'F16';
  shardSize: number;
  size: number;
  examples: number;
  /** The backbone's resolved config: a cache made with another backbone is not reused. */
  backbone: string;
}

const key = (t: number, b: number) => `${t}:${b}`;

/**
 * Cached feature maps of a labelled image set, usable as a training {@link Dataset}: each batch is a
 * {@link FeatureSet} (keyed by t and b, like {@link extractFeatures}'s) that the trainer disposes.
 * @category Data
 */
export class FeatureCache implements Dataset<FeatureSet> {
  private closed = false;
  private readers = new Map<string, Promise<SafetensorsReader>>();

  /** @internal Use {@link cacheFeatures}, {@link FeatureCache.open} or {@link FeatureCache.fromFeatureSet}. */
  constructor(
    /** Steps, in order. */
    readonly t: number[],
    /** Blocks, in order. */
    readonly b: number[],
    /** One label per image. */
    readonly labels: Int32Array,
    /** `[h, w, c]` of each `t:b` map. */
    readonly shapes: Map<string, [number, number, number]>,
    /** Stored draws per image. */
    readonly copies: number,
    private readonly memory: Map<string, Float32Array>[] | null,
    private readonly disk: { dir: string; shards: ShardInfo[]; shardSize: number } | null,
  ) {}

  /** Number of images. */
  get size(): number {
    return this.labels.length;
  }

  /** Whether the maps are held in memory (else read from disk per batch). */
  get inMemory(): boolean {
    return this.memory !== null;
  }

  /**
   * A cache over maps already extracted (all t and b of `features`, copy 0), e.g. from
   * {@link extractFeatures}. The maps are copied; `features` stays the caller's.
   */
  static async fromFeatureSet(features: FeatureSet, labels: ArrayLike<number>): Promise<FeatureCache> {
    const shapes = new Map<string, [number, number, number]>();
    const data = new Map<string, Float32Array>();
    let n = -1;
    for (const { t, b, map } of features.entries()) {
      if (n >= 0 && map.shape[0] !== n)
        throw new InputError(`feature maps disagree on the number of examples (${n} vs ${map.shape[0]})`);
      n = map.shape[0];
      shapes.set(key(t, b), [map.shape[1], map.shape[2], map.shape[3]]);
      data.set(key(t, b), (await map.data()) as Float32Array);
    }
    if (labels.length !== n)
      throw new InputError(`labels has ${labels.length} entries but the features have ${n} examples`);
    return new FeatureCache(features.t, features.b, Int32Array.from(labels), shapes, 1, [data], null);
  }

  /**
   * Opens a cache that {@link cacheFeatures} wrote to `dir`.
   * @param opts.inMemory read every shard into memory now (default false: read per batch).
   * @throws CheckpointError when `dir` holds no finished cache.
   */
  static async open(dir: string, opts: { inMemory?: boolean } = {}): Promise<FeatureCache> {
    const m = await readManifest(dir);
    const shapes = new Map(Object.entries(m.shapes));
    const cache = new FeatureCache(
      m.settings.t,
      m.settings.b,
      Int32Array.from(m.labels),
      shapes,
      m.settings.copies,
      null,
      { dir, shards: m.shards, shardSize: m.settings.shardSize },
    );
    if (!opts.inMemory) return cache;
    try {
      const memory = Array.from(
        { length: m.settings.copies },
        () => new Map([...shapes].map(([k, s]) => [k, new Float32Array(m.labels.length * s[0] * s[1] * s[2])])),
      );
      for (const shard of m.shards) {
        const r = await cache.reader(shard.file);
        for (const [k, s] of shapes) {
          const per = s[0] * s[1] * s[2];
          for (let i = shard.start; i < shard.start + shard.count; i++)
            memory[shard.copy].get(k)!.set((await r.read(`${k}/${i}`)).data as Float32Array, i * per);
        }
      }
      return new FeatureCache(
        m.settings.t,
        m.settings.b,
        Int32Array.from(m.labels),
        shapes,
        m.settings.copies,
        memory,
        null,
      );
    } finally {
      await cache.close();
    }
  }

  /** The maps of examples `indices` (copy `epoch mod copies` for training batches, copy 0 for evaluation). */
  async batch(indices: number[], ctx: BatchContext): Promise<Batch<FeatureSet>> {
    if (this.closed) throw new InputError('this FeatureCache was closed');
    const n = this.size;
    for (const i of indices)
      if (!Number.isInteger(i) || i < 0 || i >= n) throw new InputError(`example index ${i} outside [0, ${n})`);
    const copy = ctx?.training ? ctx.epoch % this.copies : 0;
    const maps = new Map<string, tf.Tensor4D>();
    for (const [k, [h, w, c]] of this.shapes) {
      const per = h * w * c;
      const out = new Float32Array(indices.length * per);
      if (this.memory) {
        const src = this.memory[copy].get(k)!;
        indices.forEach((i, j) => out.set(src.subarray(i * per, (i + 1) * per), j * per));
      } else {
        for (let j = 0; j < indices.length; j++)
          out.set(
            (await (await this.shardReader(copy, indices[j])).read(`${k}/${indices[j]}`)).data as Float32Array,
            j * per,
          );
      }
      maps.set(k, tf.tensor4d(out, [indices.length, h, w, c]));
    }
    return { input: new FeatureSet(this.t, this.b, maps), labels: Int32Array.from(indices, (i) => this.labels[i]) };
  }

  private shardReader(copy: number, i: number): Promise<SafetensorsReader> {
    const d = this.disk!;
    const shard = d.shards.find((s) => s.copy === copy && i >= s.start && i < s.start + s.count);
    if (!shard) throw new CheckpointError(`${d.dir}: no shard holds example ${i} of copy ${copy}`);
    return this.reader(shard.file);
  }

  private reader(file: string): Promise<SafetensorsReader> {
    let r = this.readers.get(file);
    if (!r) {
      r = nodeFs().then(({ path }) => SafetensorsReader.open(path.join(this.disk!.dir, file)));
      this.readers.set(file, r);
    }
    return r;
  }

  /** Releases open shard files and the memory. Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    const readers = [...this.readers.values()];
    this.readers.clear();
    for (const r of readers) await (await r.catch(() => undefined))?.close();
    this.memory?.forEach((m) => m.clear());
  }
}

async function readManifest(dir: string): Promise<Manifest> {
  const { fs, path } = await nodeFs();
  const file = path.join(dir, CACHE_MANIFEST);
  let m: Manifest;
  try {
    m = JSON.parse(await fs.promises.readFile(file, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`no finished feature cache in ${dir}: ${(e as Error).message}`);
  }
  if (m?.format !== FORMAT || m.version !== 1) throw new CheckpointError(`${file} is not a diffssl feature cache`);
  return m;
}

function list(v: number | number[], what: string): number[] {
  const l = typeof v === 'number' ? [v] : v;
  if (!Array.isArray(l) || l.length === 0 || !l.every(Number.isInteger))
    throw new InputError(`${what} must be an integer or a non-empty array of integers, got ${JSON.stringify(v)}`);
  return l;
}

/**
 * Extracts `f(x0, t, b)` for every image of `images` once, with fixed per-image noise, and caches
 * the maps (see the module notes for how this differs from the reference's training).
 *
 * @example
 * ```ts
 * const cache = await cacheFeatures(trainImages, { model: unet, t: 150, b: 24, pool: 16, dir: 'cache/train' });
 * const head = new LinearHead({ channels: unet.block(24).channels, pool: 16, classes: 10 });
 * // Batches of a cache are FeatureSets: the model handed to train picks the map its head reads.
 * const model = { trainableVariables: head.trainableVariables, logits: (f: FeatureSet) => head.logits(f.get(150, 24)) };
 * await train(model, cache, { epochs: 28, batchSize: 32, optimizer: sgd(0.05) });
 * await cache.close();
 * ```
 * @throws InputError for bad options; CheckpointError when `dir` cannot be written.
 * @category Data
 */
export async function cacheFeatures(images: ImageSource, opts: CacheOptions): Promise<FeatureCache> {
  if (!images || typeof images.get !== 'function' || !Number.isInteger(images.size) || images.size < 1)
    throw new InputError('images must be an ImageSource: { size: positive integer, get(i) }');
  const model = opts?.model;
  if (!model || typeof model.forward !== 'function') throw new InputError('cacheFeatures needs opts.model, an ADMUNet');
  const ts = list(opts.t, 't');
  const bs = list(opts.b, 'b');
  bs.forEach((b) => model.block(b));
  const batchSize = positiveInt(opts.batchSize ?? 8, 'batchSize');
  const copies = positiveInt(opts.copies ?? 1, 'copies');
  const shardSize = positiveInt(opts.shardSize ?? 256, 'shardSize');
  const dtype = opts.dtype ?? 'F32';
  if (dtype !== 'F32' && dtype !== 'F16') throw new InputError(`dtype must be 'F32' or 'F16', got ${String(dtype)}`);
  if (opts.pool !== undefined) positiveInt(opts.pool, 'pool');
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new InputError(`seed must be an integer, got ${seed}`);
  const n = images.size;
  const size = model.config.imageSize;
  const settings: Settings = {
    t: ts,
    b: bs,
    pool: opts.pool ?? null,
    seed,
    augment: opts.augment === true,
    copies,
    dtype,
    shardSize,
    size,
    examples: n,
    backbone: JSON.stringify(model.config),
  };
  const settingsJson = JSON.stringify(settings);

  const labels = new Int32Array(n).fill(-1);
  const shapes = new Map<string, [number, number, number]>();
  const memory = opts.dir === undefined ? Array.from({ length: copies }, () => new Map<string, Float32Array>()) : null;
  const shards: ShardInfo[] = [];
  const total = n * copies;
  let done = 0;
  let reusedPairs = 0;
  const clock = progressClock();
  const report = () => opts.onProgress?.({ kind: 'cache', ...clock(done, total, reusedPairs), reused: reusedPairs });

  const { fs, path } = opts.dir !== undefined ? await nodeFs() : ({} as Awaited<ReturnType<typeof nodeFs>>);
  if (opts.dir !== undefined) await fs.promises.mkdir(opts.dir, { recursive: true });

  for (let copy = 0; copy < copies; copy++) {
    for (let start = 0; start < n; start += shardSize) {
      const count = Math.min(shardSize, n - start);
      const file = `shard-c${copy}-${String(start).padStart(9, '0')}.safetensors`;
      if (opts.dir !== undefined && opts.resume) {
        const reused = await reuseShard(path.join(opts.dir, file), settingsJson, start, count, labels, shapes);
        if (reused) {
          shards.push({ file, copy, start, count });
          done += count;
          reusedPairs += count;
          report();
          continue;
        }
      }
      // One shard's maps, gathered over U-Net forwards of batchSize images.
      const parts = new Map<string, Float32Array>();
      for (let s = start; s < start + count; s += batchSize) {
        if (opts.signal?.aborted)
          throw new InputError(
            `feature caching was aborted after ${done} of ${total} (image, copy) pairs${opts.dir ? '; finished shards stay for resume' : ''}`,
          );
        const idx = Array.from({ length: Math.min(batchSize, start + count - s) }, (_, k) => s + k);
        const seeds = idx.map((i) => mixSeed(seed, copy, i));
        const { x0, labels: y } = await loadBatch(images, idx, seeds, { size, augment: opts.augment === true });
        const noise = batchNoise(x0.shape, ts.length, seeds);
        let fs2: FeatureSet | undefined;
        try {
          fs2 = await extractFeatures(x0, {
            model,
            t: ts,
            b: bs,
            noise,
            ...(opts.pool !== undefined ? { pool: opts.pool } : {}),
          });
          for (const { t, b, map } of fs2.entries()) {
            const k = key(t, b);
            const shape: [number, number, number] = [map.shape[1], map.shape[2], map.shape[3]];
            shapes.set(k, shape);
            const per = shape[0] * shape[1] * shape[2];
            let buf = parts.get(k);
            if (!buf) parts.set(k, (buf = new Float32Array(count * per)));
            buf.set((await map.data()) as Float32Array, (s - start) * per);
          }
        } finally {
          fs2?.dispose();
          tf.dispose([x0, ...noise]);
        }
        idx.forEach((i, k) => (labels[i] = y[k]));
        done += idx.length;
        report();
      }
      if (memory) {
        for (const [k, buf] of parts) {
          let all = memory[copy].get(k);
          const per = buf.length / count;
          if (!all) memory[copy].set(k, (all = new Float32Array(n * per)));
          all.set(buf, start * per);
        }
      } else {
        const tensors = new Map<string, { shape: number[]; data: Float32Array; dtype: 'F32' | 'F16' }>();
        for (const [k, buf] of parts) {
          const shape = shapes.get(k)!;
          const per = shape[0] * shape[1] * shape[2];
          for (let i = 0; i < count; i++)
            tensors.set(`${k}/${start + i}`, { shape, data: buf.subarray(i * per, (i + 1) * per), dtype });
        }
        await writeSafetensors(path.join(opts.dir!, file), tensors, {
          settings: settingsJson,
          start: String(start),
          count: String(count),
          labels: JSON.stringify(Array.from(labels.subarray(start, start + count))),
        });
        shards.push({ file, copy, start, count });
      }
    }
  }
  if (memory) return new FeatureCache(ts, bs, labels, shapes, copies, memory, null);
  const manifest: Manifest = {
    format: FORMAT,
    version: 1,
    settings,
    shapes: Object.fromEntries(shapes),
    labels: Array.from(labels),
    shards,
  };
  await writeBytesAtomic(path.join(opts.dir!, CACHE_MANIFEST), JSON.stringify(manifest));
  return FeatureCache.open(opts.dir!);
}

/** Takes a finished shard from an earlier run when its settings match; fills its labels and shapes. */
async function reuseShard(
  file: string,
  settingsJson: string,
  start: number,
  count: number,
  labels: Int32Array,
  shapes: Map<string, [number, number, number]>,
): Promise<boolean> {
  let r: SafetensorsReader;
  try {
    r = await SafetensorsReader.open(file);
  } catch {
    return false;
  }
  try {
    const md = r.metadata;
    if (md.settings !== settingsJson || md.start !== String(start) || md.count !== String(count)) return false;
    const y = JSON.parse(md.labels) as number[];
    if (!Array.isArray(y) || y.length !== count) return false;
    y.forEach((v, k) => (labels[start + k] = v));
    for (const name of r.keys()) {
      const k = name.slice(0, name.lastIndexOf('/'));
      const s = r.info(name).shape;
      shapes.set(k, [s[0], s[1], s[2]]);
    }
    return true;
  } catch {
    return false;
  } finally {
    await r.close();
  }
}
