/**
 * Sharded, resumable feature extraction to a directory, for runs split over machines (Kubernetes
 * Indexed Jobs, Slurm job arrays) or killed and restarted. Each shard extracts a contiguous range of
 * image indices into part files of `batch` images; {@link mergeShards} checks that the shards fit
 * together and indexes them; {@link ShardedFeatures} reads rows back in image order.
 *
 * The layout of a directory (`k` and `n` zero-padded to 5 digits, a part named by its first row,
 * zero-padded to 9):
 *
 * ```text
 * dir/
 *   shard-00001-of-00003/                 one per shard, written only by that shard
 *     manifest.json                       settings and row range; written first
 *     part-000000004.safetensors          rows [4, 4 + count): "t:b" [count, h, w, c], "rows", "labels" I32 [count]
 *     part-000000006.safetensors          …
 *     complete.json                       the manifest plus parts and shapes; written last: the shard is done
 *   features.json                         written by mergeShards: every part in row order, the labels
 * ```
 *
 * Every file is written atomically (temp file, fsync, rename), so a kill leaves whole part files and
 * at most a temp file, which the next run removes. One process per shard: two runs of the same shard
 * at once would remove each other's temp files.
 *
 * Noise: draw k of step t for image i is `seededNormal([1, S, S, C], seed, t, k, i)`, so an image's
 * features depend only on (seed, t, k, i) and the image, not on the shard, the batch or the other
 * steps; they equal {@link extractFeatures} on the same images given that noise (not its own `seed`
 * noise, which is drawn for the whole batch at once).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, InputError, ShardError } from '../errors.js';
import { extractFeatures, FeatureSet } from '../features/extractFeatures.js';
import { isTempName, writeBytesAtomic } from '../io/atomicFile.js';
import { SafetensorsReader, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import type { ADMUNet } from '../unet/admUnet.js';
import { positiveInt } from '../util/checks.js';
import { importUnbundled } from '../util/dynamicImport.js';
import { checkSeed, seededNormal } from '../util/noise.js';
import { nodeFs } from '../util/nodeFs.js';
import { progressClock, type ProgressCallback, type ShardProgressInfo } from '../util/progress.js';
import { loadBatch, type ImageSource } from './images.js';

const SHARD_FORMAT = 'diffssl.feature-shard';
const PART_FORMAT = 'diffssl.feature-shard-part';
const INDEX_FORMAT = 'diffssl.feature-shards';
/** A shard's manifest, written before its first part file. */
export const SHARD_MANIFEST = 'manifest.json';
/** A shard's completion marker, written after its last part file. */
export const SHARD_COMPLETE = 'complete.json';
/** The index {@link mergeShards} writes at the top of the directory. */
export const SHARDS_INDEX = 'features.json';
/**
 * The environment variable {@link shardFromEnv} reads the number of shards from under Kubernetes.
 * @category Features
 */
export const SHARDS_ENV = 'DIFFSSL_SHARDS';

/**
 * One shard of a run split `count` ways: the `index`-th (0-based) contiguous range of images.
 * @category Features
 */
export interface Shard {
  /** 0-based, below `count`. */
  index: number;
  /** The number of shards, at least 1. */
  count: number;
}

/**
 * Options of {@link extractToDirectory}.
 * @category Features
 */
export interface ExtractToDirectoryOptions {
  /** The backbone. */
  model: ADMUNet;
  /** Noise step(s). */
  t: number | number[];
  /** Block(s), in the paper's numbering. */
  b: number | number[];
  /** The run's directory, shared by all its shards; created if absent. */
  dir: string;
  /** Adaptive-average-pool maps larger than `pool × pool` (after the ensemble mean), as {@link extractFeatures}. */
  pool?: number;
  /** Dense features: every block's map resized to `dense × dense`, as {@link extractFeatures}; not with `pool`. */
  dense?: number;
  /** Seed of the noise (see the module notes for the streams). Default 0. */
  seed?: number;
  /** Noise draws averaged per image, as `ensemble` of {@link extractFeatures}. Default 1. */
  ensemble?: number;
  /** Images per part file, and per {@link extractFeatures} call (default 64). May change between runs of a shard. */
  batch?: number;
  /** Most rows per U-Net forward, passed to {@link extractFeatures}. Results do not depend on it. */
  maxBatch?: number;
  /** Storage type of the maps (default 'F32'; 'F16' halves the files, read back as float32). */
  dtype?: 'F32' | 'F16';
  /** Which shard this call extracts (default: the whole set, shard 0 of 1). See {@link shardFromEnv}, {@link parseShard}. */
  shard?: Shard;
  /**
   * One identifier per image (file names, dataset keys), recorded as a hash, so that shards or a
   * re-run over another image list are refused. Without it the list is known by its size only, and a
   * re-run checks the images of the part files it reuses against their stored content hashes instead.
   */
  imageIds?: readonly string[];
  /**
   * The model's identity, e.g. the SHA-256 of its weights file. Default: {@link modelHash} of `model`,
   * which copies every weight to the host once (for a large model, pass a file hash instead).
   */
  modelHash?: string;
  /** Called once with the parts reused, then after each part file written, with a `'shard'` report; `done`/`total` count images of the shard. */
  onProgress?: ProgressCallback<ShardProgressInfo>;
  /** Stops between part files; finished parts stay for a re-run. */
  signal?: AbortSignal;
}

/**
 * What {@link extractToDirectory} did.
 * @category Features
 */
export interface ShardResult {
  /** The shard's own directory. */
  dir: string;
  /** The shard extracted. */
  shard: Shard;
  /** Its rows: image indices `[start, end)`. */
  start: number;
  end: number;
  /** Images computed by this call. */
  written: number;
  /** Images found in part files of an earlier run. */
  reused: number;
}

/** What must agree between the shards of one run, and between runs of a shard. */
interface Settings {
  model: string;
  t: number[];
  b: number[];
  pool: number | null;
  /** Present only for dense runs, so that the settings (and hashes) of earlier runs stay as they were. */
  dense?: number;
  seed: number;
  ensemble: number;
  dtype: 'F32' | 'F16';
  images: number;
  imagesHash: string | null;
}

interface PartInfo {
  file: string;
  start: number;
  count: number;
}

interface Manifest {
  format: typeof SHARD_FORMAT;
  version: 1;
  settings: Settings;
  shard: Shard & { start: number; end: number };
}

interface Complete extends Manifest {
  parts: PartInfo[];
  shapes: Record<string, [number, number, number]>;
}

interface Index {
  format: typeof INDEX_FORMAT;
  version: 1;
  settings: Settings;
  shards: number;
  shapes: Record<string, [number, number, number]>;
  labels: number[];
  parts: PartInfo[];
}

const key = (t: number, b: number) => `${t}:${b}`;
const pad = (v: number, width: number) => String(v).padStart(width, '0');
const shardDirName = (s: Shard) => `shard-${pad(s.index, 5)}-of-${pad(s.count, 5)}`;
const partName = (start: number) => `part-${pad(start, 9)}.safetensors`;
const PART_RE = /^part-(\d+)\.safetensors$/;

/**
 * The rows of a shard: image indices `[floor(index·n / count), floor((index + 1)·n / count))` of `n`.
 * Shards differ in size by at most one image; with more shards than images some are empty.
 * @category Features
 */
export function shardRange(shard: Shard, n: number): { start: number; end: number } {
  checkShard(shard);
  if (!Number.isSafeInteger(n) || n < 0) throw new InputError(`the number of images must be a count, got ${n}`);
  return { start: Math.floor((shard.index * n) / shard.count), end: Math.floor(((shard.index + 1) * n) / shard.count) };
}

function checkShard(s: unknown, what = 'shard'): Shard {
  const sh = s as Shard;
  if (typeof s !== 'object' || s === null || !Number.isSafeInteger(sh.count) || sh.count < 1)
    throw new InputError(`${what} must be { index, count } with count a positive integer, got ${JSON.stringify(s)}`);
  if (!Number.isSafeInteger(sh.index) || sh.index < 0 || sh.index >= sh.count)
    throw new InputError(`${what} index must be an integer in [0, ${sh.count}), got ${sh.index}`);
  return { index: sh.index, count: sh.count };
}

const COUNT_RE = /^\d+$/;

/**
 * Parses `"k/n"`: shard k (0-based) of n.
 * @throws InputError for anything else, k ≥ n or n = 0 (`"3/2"`, `"-1/2"`, `"a/b"`).
 * @example
 * ```ts
 * parseShard('1/3'); // { index: 1, count: 3 }
 * ```
 * @category Features
 */
export function parseShard(spec: string): Shard {
  const m = typeof spec === 'string' ? /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(spec) : null;
  if (!m)
    throw new InputError(`a shard is written k/n (shard k, 0-based, of n; e.g. 0/4), got ${JSON.stringify(spec)}`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1) throw new InputError(`shard ${spec}: the number of shards must be at least 1`);
  if (index >= count) throw new InputError(`shard ${spec}: the index must be below ${count} (shards are 0-based)`);
  return { index, count };
}

function envCount(env: Record<string, string | undefined>, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v.trim() === '') return undefined;
  if (!COUNT_RE.test(v.trim()))
    throw new InputError(`${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v.trim());
}

/**
 * The shard of this process from its scheduler's environment, or undefined when none says:
 * - Kubernetes Indexed Jobs: `JOB_COMPLETION_INDEX` is the index; the count (the Job's
 *   `completions`, which Kubernetes does not export) comes from `shards` or `DIFFSSL_SHARDS`.
 * - Slurm job arrays: the index is `(SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP`,
 *   the count `SLURM_ARRAY_TASK_COUNT` (or `shards`); the array must be a contiguous range.
 *
 * Pure: the environment is a parameter (the command line passes `process.env`).
 * @param shards the number of shards from a command-line flag; must agree with the environment's.
 * @throws InputError for malformed variables, a missing or disagreeing count, or an index out of range.
 * @example
 * ```ts
 * shardFromEnv({ JOB_COMPLETION_INDEX: '2' }, 4); // { index: 2, count: 4 }
 * shardFromEnv({ SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_MIN: '4', SLURM_ARRAY_TASK_COUNT: '3' }); // { index: 1, count: 3 }
 * ```
 * @category Features
 */
export function shardFromEnv(env: Record<string, string | undefined>, shards?: number): Shard | undefined {
  if (typeof env !== 'object' || env === null) throw new InputError('shardFromEnv needs an environment object');
  if (shards !== undefined) positiveInt(shards, 'the number of shards');
  const agree = (count: number | undefined, name: string): number | undefined => {
    if (shards !== undefined && count !== undefined && count !== shards)
      throw new InputError(`${shards} shards were asked for, but ${name} says ${count}`);
    return shards ?? count;
  };
  const k8s = envCount(env, 'JOB_COMPLETION_INDEX');
  if (k8s !== undefined) {
    const count = agree(envCount(env, SHARDS_ENV), SHARDS_ENV);
    if (count === undefined)
      throw new InputError(
        `JOB_COMPLETION_INDEX=${k8s} (a Kubernetes Indexed Job) gives the shard but not the number of shards: ` +
          `pass the Job's completions as the number of shards or set ${SHARDS_ENV}`,
      );
    return checkShard({ index: k8s, count }, `shard from JOB_COMPLETION_INDEX (of ${count})`);
  }
  const id = envCount(env, 'SLURM_ARRAY_TASK_ID');
  if (id !== undefined) {
    const min = envCount(env, 'SLURM_ARRAY_TASK_MIN') ?? 0;
    const step = envCount(env, 'SLURM_ARRAY_TASK_STEP') ?? 1;
    if (step < 1 || id < min || (id - min) % step !== 0)
      throw new InputError(
        `SLURM_ARRAY_TASK_ID=${id} is not in an array from SLURM_ARRAY_TASK_MIN=${min} by SLURM_ARRAY_TASK_STEP=${step}`,
      );
    const count = agree(envCount(env, 'SLURM_ARRAY_TASK_COUNT'), 'SLURM_ARRAY_TASK_COUNT');
    if (count === undefined)
      throw new InputError(
        `SLURM_ARRAY_TASK_ID=${id} is set but SLURM_ARRAY_TASK_COUNT is not: pass the number of shards`,
      );
    const index = (id - min) / step;
    if (index >= count)
      throw new InputError(
        `SLURM_ARRAY_TASK_ID=${id} is task ${index} counting from ${min} by ${step}, but there are ${count} shards: ` +
          `sharding needs a contiguous array (e.g. --array=0-${count - 1})`,
      );
    return { index, count };
  }
  return undefined;
}

async function sha256(...chunks: (Uint8Array | string)[]): Promise<string> {
  const { createHash } = await importUnbundled<typeof import('node:crypto')>('node:crypto');
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * A SHA-256 of a model's resolved config and its weights (names, shapes and float32 values in the
 * reference layout), the default identity {@link extractToDirectory} records. Copies every weight to
 * the host once.
 * @category Features
 */
export async function modelHash(model: Pick<ADMUNet, 'config' | 'stateDict'>): Promise<string> {
  const parts: (Uint8Array | string)[] = [JSON.stringify(model.config)];
  for (const [name, { shape, data }] of model.stateDict()) parts.push(`\n${name} [${shape}]\n`, bytesOf(data));
  return sha256(...parts);
}

/** Steps or blocks as a non-empty list of integers without repeats. */
function intList(v: number | number[], what: string): number[] {
  const l = typeof v === 'number' ? [v] : v;
  if (!Array.isArray(l) || l.length === 0 || !l.every(Number.isInteger))
    throw new InputError(`${what} must be an integer or a non-empty array of integers, got ${JSON.stringify(v)}`);
  if (new Set(l).size !== l.length) throw new InputError(`${what} lists a value twice: ${JSON.stringify(l)}`);
  return [...l];
}

/** `"<where>: <field> is <theirs>, <now> <ours>"` for each field of settings that differs. */
function settingsDiff(theirs: Settings, ours: Settings, where: string, now: string): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(ours), ...Object.keys(theirs ?? {})]) as Set<keyof Settings>) {
    const a = JSON.stringify(theirs?.[k]);
    const b = JSON.stringify(ours[k]);
    if (a !== b) out.push(`${where}: ${k} is ${a}, ${now} ${b}`);
  }
  return out;
}

async function readJson<T>(file: string): Promise<T | undefined> {
  const { fs } = await nodeFs();
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CheckpointError(`${file} cannot be read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new CheckpointError(`${file} is not JSON: ${(e as Error).message}`);
  }
}

/**
 * The shards of a run split `count` ways that have no completion marker in `dir` yet, ascending.
 * @internal (the CLI's `extract` and `sweep` name them)
 */
export async function pendingShards(dir: string, count: number): Promise<number[]> {
  const { fs, path } = await nodeFs();
  const out: number[] = [];
  for (let k = 0; k < count; k++)
    if (!fs.existsSync(path.join(dir, shardDirName({ index: k, count }), SHARD_COMPLETE))) out.push(k);
  return out;
}

/**
 * The number of shards of the run `dir` holds, from its shards' manifests; undefined when it holds none.
 * @internal (the CLI's `sweep` resumes a sharded run as one process with it)
 */
export async function shardCountOf(dir: string): Promise<number | undefined> {
  return (await shardDirs(dir))[0]?.manifest.shard?.count;
}

/** The shard directories of `dir` that hold a manifest, by name. */
async function shardDirs(dir: string): Promise<{ name: string; manifest: Manifest; complete?: Complete }[]> {
  const { fs, path } = await nodeFs();
  let names: string[];
  try {
    names = (await fs.promises.readdir(dir, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && e.name.startsWith('shard-'))
      .map((e) => e.name)
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: { name: string; manifest: Manifest; complete?: Complete }[] = [];
  for (const name of names) {
    const manifest = await readJson<Manifest>(path.join(dir, name, SHARD_MANIFEST));
    if (!manifest) continue;
    if (manifest.format !== SHARD_FORMAT || manifest.version !== 1)
      throw new CheckpointError(`${path.join(dir, name, SHARD_MANIFEST)} is not a diffssl shard manifest`);
    const complete = await readJson<Complete>(path.join(dir, name, SHARD_COMPLETE));
    out.push({ name, manifest, ...(complete ? { complete } : {}) });
  }
  return out;
}

/** What a part file holds, from its header; null for a file that is not a readable part. */
async function readPart(
  file: string,
  settingsHash: string,
): Promise<{ start: number; count: number; content: string; shapes: Map<string, [number, number, number]> } | null> {
  let r: SafetensorsReader;
  try {
    r = await SafetensorsReader.open(file);
  } catch {
    return null;
  }
  try {
    const md = r.metadata;
    if (md.format !== PART_FORMAT) return null;
    if (md.settings !== settingsHash)
      throw new ShardError(
        `${file} was written with other settings than its shard's manifest; remove the shard's directory`,
        [],
        [],
        [`${file}: settings`],
      );
    const start = Number(md.start);
    const count = Number(md.count);
    const rows = r.info('rows');
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || rows.shape[0] !== count) return null;
    const shapes = new Map<string, [number, number, number]>();
    for (const name of r.keys())
      if (name !== 'rows' && name !== 'labels') {
        const s = r.info(name).shape;
        shapes.set(name, [s[1], s[2], s[3]]);
      }
    return { start, count, content: md.content, shapes };
  } catch (e) {
    if (e instanceof ShardError) throw e;
    return null;
  } finally {
    await r.close();
  }
}

/** The transformed images and labels of rows `idx`, and the hash of both. */
async function loadRows(
  images: ImageSource,
  idx: number[],
  size: number,
): Promise<{ x0: tf.Tensor4D; labels: Int32Array; content: string }> {
  const { x0, labels } = await loadBatch(images, idx, new Int32Array(idx.length), { size, augment: false });
  try {
    return { x0, labels, content: await sha256(bytesOf((await x0.data()) as Float32Array), bytesOf(labels)) };
  } catch (e) {
    x0.dispose();
    throw e;
  }
}

/**
 * ε of rows `idx`, one `[idx.length, S, S, C]` tensor per (t, draw), t-major (as
 * `noise` of extractFeatures takes them): row j of draw k of step t is `seededNormal([1, S, S, C], seed, t, k, idx[j])`.
 * @internal (the CLI's `cka` draws the same noise, so its features are those `extract` writes)
 */
export function rowNoise(shape: [number, number, number], ts: number[], ensemble: number, seed: number, idx: number[]) {
  const out: tf.Tensor4D[] = [];
  try {
    for (const t of ts)
      for (let k = 0; k < ensemble; k++)
        out.push(
          tf.tidy(
            () => tf.concat(idx.map((i) => seededNormal<tf.Rank.R4>([1, ...shape], seed, t, k, i))) as tf.Tensor4D,
          ),
        );
    return out;
  } catch (e) {
    tf.dispose(out);
    throw e;
  }
}

/**
 * Extracts the features of one shard of `images` into `dir` (see the module notes for the layout),
 * resumably: a re-run after a kill continues after the last whole part file, with no row lost or
 * repeated; a re-run of a finished shard does nothing. Run every shard `0..count−1` (at once on
 * several machines, or one after another), then {@link mergeShards}.
 *
 * @returns what was done; the features are read with {@link mergeShards} once every shard is done.
 * @throws ShardError when `dir` holds shards (or this shard) made with other settings (model, t, b,
 * pool, dense, seed, ensemble, dtype, images, number of shards), naming each difference; InputError for bad
 * options or images; CheckpointError for unreadable files.
 * @example
 * ```ts
 * // On each of 4 machines (the shard from the scheduler's environment, or parseShard('2/4')):
 * await extractToDirectory(trainImages, { model: unet, t: 150, b: 24, pool: 4, seed: 0, dir: 'feats', shard: { index: 2, count: 4 } });
 * // Once every shard is done:
 * const feats = await mergeShards('feats');
 * const maps = await feats.load(); // a FeatureSet, rows in image order
 * maps.dispose();
 * ```
 * @category Features
 */
export async function extractToDirectory(images: ImageSource, opts: ExtractToDirectoryOptions): Promise<ShardResult> {
  if (!images || typeof images.get !== 'function' || !Number.isSafeInteger(images.size) || images.size < 1)
    throw new InputError('images must be an ImageSource: { size: positive integer, get(i) }');
  if (typeof opts !== 'object' || opts === null) throw new InputError('extractToDirectory needs options');
  const model = opts.model;
  if (!model || typeof model.forward !== 'function' || typeof model.stateDict !== 'function')
    throw new InputError('extractToDirectory needs opts.model, an ADMUNet');
  if (typeof opts.dir !== 'string' || opts.dir === '')
    throw new InputError('extractToDirectory needs opts.dir, a directory');
  const ts = intList(opts.t, 't');
  const bs = intList(opts.b, 'b');
  bs.forEach((b) => model.block(b));
  const pool = opts.pool === undefined ? null : positiveInt(opts.pool, 'pool');
  const dense = opts.dense === undefined ? null : positiveInt(opts.dense, 'dense');
  if (dense !== null && pool !== null)
    throw new InputError('dense and pool exclude each other: dense resizes every map to one side, pool shrinks each');
  const seed = checkSeed(opts.seed ?? 0);
  const ensemble = positiveInt(opts.ensemble ?? 1, 'ensemble');
  const batch = positiveInt(opts.batch ?? 64, 'batch');
  if (opts.maxBatch !== undefined) positiveInt(opts.maxBatch, 'maxBatch');
  const dtype = opts.dtype ?? 'F32';
  if (dtype !== 'F32' && dtype !== 'F16') throw new InputError(`dtype must be 'F32' or 'F16', got ${String(dtype)}`);
  const shard = checkShard(opts.shard ?? { index: 0, count: 1 });
  const n = images.size;
  const ids = opts.imageIds;
  if (ids !== undefined && (!Array.isArray(ids) || ids.length !== n || !ids.every((s) => typeof s === 'string')))
    throw new InputError(`imageIds must be one string per image (${n})`);
  if (opts.modelHash !== undefined && (typeof opts.modelHash !== 'string' || opts.modelHash === ''))
    throw new InputError('modelHash must be a non-empty string');
  const { start, end } = shardRange(shard, n);

  const settings: Settings = {
    model: opts.modelHash ?? (await modelHash(model)),
    t: ts,
    b: bs,
    pool,
    ...(dense !== null ? { dense } : {}),
    seed,
    ensemble,
    dtype,
    images: n,
    imagesHash: ids ? await sha256(JSON.stringify(ids)) : null,
  };
  const settingsHash = await sha256(JSON.stringify(settings));
  const manifest: Manifest = { format: SHARD_FORMAT, version: 1, settings, shard: { ...shard, start, end } };

  const { fs, path } = await nodeFs();
  const name = shardDirName(shard);
  const own = path.join(opts.dir, name);

  // Every shard already in the directory must be of the same run.
  const problems: string[] = [];
  for (const other of await shardDirs(opts.dir)) {
    const m = other.manifest;
    problems.push(...settingsDiff(m.settings, settings, other.name, 'this run has'));
    if (m.shard?.count !== shard.count)
      problems.push(`${other.name}: the run has ${m.shard?.count} shards, this run ${shard.count}`);
    else if (other.name === name && (m.shard.index !== shard.index || m.shard.start !== start || m.shard.end !== end))
      problems.push(`${other.name}: holds rows [${m.shard.start}, ${m.shard.end}) of shard ${m.shard.index}`);
  }
  if (problems.length)
    throw new ShardError(
      `${opts.dir} holds features made with other settings (use another directory, or remove it to start over): ${problems.join('; ')}`,
      [],
      [],
      problems,
    );

  const total = end - start;
  let reused = 0;
  let done = 0;
  const clock = progressClock();
  const report = () => opts.onProgress?.({ kind: 'shard', ...clock(done, total, reused), reused, shard: { ...shard } });

  await fs.promises.mkdir(own, { recursive: true });
  const previous = await readJson<Complete>(path.join(own, SHARD_COMPLETE));
  if (previous && JSON.stringify(previous.settings) === JSON.stringify(settings)) {
    const present = await Promise.all(
      previous.parts.map((p) =>
        fs.promises.stat(path.join(own, p.file)).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (present.every(Boolean)) {
      done = reused = total;
      report();
      return { dir: own, shard, start, end, written: 0, reused };
    }
  }
  await fs.promises.rm(path.join(own, SHARD_COMPLETE), { force: true });
  if (!(await readJson<Manifest>(path.join(own, SHARD_MANIFEST))))
    await writeBytesAtomic(path.join(own, SHARD_MANIFEST), JSON.stringify(manifest, null, 1));

  // Parts of an earlier run: the chain of whole parts from the shard's first row. A kill leaves
  // temp files (removed) and whole parts; anything off the chain is removed and recomputed.
  const shapes = new Map<string, [number, number, number]>();
  const parts: PartInfo[] = [];
  const found: { file: string; start: number; count: number; content: string }[] = [];
  for (const f of await fs.promises.readdir(own)) {
    if (isTempName(f)) {
      await fs.promises.rm(path.join(own, f), { force: true });
      continue;
    }
    if (!PART_RE.test(f)) continue;
    const p = await readPart(path.join(own, f), settingsHash);
    if (p && f === partName(p.start)) {
      found.push({ file: f, ...p });
      p.shapes.forEach((s, k) => shapes.set(k, s));
    } else await fs.promises.rm(path.join(own, f), { force: true });
  }
  found.sort((a, b) => a.start - b.start);
  let next = start;
  for (const p of found) {
    if (p.start === next && p.count > 0 && next + p.count <= end) {
      parts.push({ file: p.file, start: p.start, count: p.count });
      next += p.count;
    } else await fs.promises.rm(path.join(own, p.file), { force: true });
  }
  // Without image ids, the images of reused parts are checked against what was extracted.
  if (!ids)
    for (const p of parts) {
      const want = found.find((f) => f.file === p.file)!.content;
      const { x0, content } = await loadRows(
        images,
        Array.from({ length: p.count }, (_, j) => p.start + j),
        model.config.imageSize,
      );
      x0.dispose();
      if (content !== want)
        throw new ShardError(
          `${path.join(own, p.file)} holds other images than rows [${p.start}, ${p.start + p.count}) of these; ` +
            'use another directory, or remove it to start over (pass imageIds to name the images)',
          [],
          [],
          [`${name}: images of rows [${p.start}, ${p.start + p.count})`],
        );
    }
  done = reused = next - start;
  if (reused > 0) report();

  const size = model.config.imageSize;
  for (let s = next; s < end; s += batch) {
    if (opts.signal?.aborted)
      throw new InputError(
        `extraction of ${name} was aborted after ${done} of ${total} images; finished parts stay for a re-run`,
      );
    const idx = Array.from({ length: Math.min(batch, end - s) }, (_, j) => s + j);
    const { x0, labels, content } = await loadRows(images, idx, size);
    let feats: FeatureSet | undefined;
    let noise: tf.Tensor4D[] = [];
    try {
      noise = rowNoise([x0.shape[1], x0.shape[2], x0.shape[3]], ts, ensemble, seed, idx);
      feats = await extractFeatures(x0, {
        model,
        t: ts,
        b: bs,
        noise,
        ensemble,
        ...(pool !== null ? { pool } : {}),
        ...(dense !== null ? { dense } : {}),
        ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
      });
      const tensors = new Map<string, TensorToWrite>();
      for (const { t, b, map } of feats.entries()) {
        shapes.set(key(t, b), [map.shape[1], map.shape[2], map.shape[3]]);
        tensors.set(key(t, b), { shape: map.shape, data: (await map.data()) as Float32Array, dtype });
      }
      tensors.set('rows', { shape: [idx.length], data: Int32Array.from(idx) });
      tensors.set('labels', { shape: [idx.length], data: labels });
      const file = partName(s);
      await writeSafetensors(path.join(own, file), tensors, {
        format: PART_FORMAT,
        settings: settingsHash,
        start: String(s),
        count: String(idx.length),
        content,
      });
      parts.push({ file, start: s, count: idx.length });
    } finally {
      feats?.dispose();
      tf.dispose([x0, ...noise]);
    }
    done += idx.length;
    report();
  }

  const complete: Complete = { ...manifest, parts, shapes: Object.fromEntries(shapes) };
  await writeBytesAtomic(path.join(own, SHARD_COMPLETE), JSON.stringify(complete, null, 1));
  if (total === 0) report();
  return { dir: own, shard, start, end, written: total - reused, reused };
}

/**
 * Checks that `dir` holds every shard `0..n−1` of one run, complete and exactly once, made with the
 * same model hash, t, b, pool, seed, ensemble, dtype and images, and that their part files cover
 * the images with no gap and no overlap; then writes the index `features.json` (every part in row
 * order, the labels) and opens it. The part files stay where they are: nothing is copied.
 * @returns a reader over all rows, in image order.
 * @throws ShardError naming every missing, duplicated or mismatched shard and every gap or overlap;
 * CheckpointError for unreadable files.
 * @example
 * ```ts
 * const feats = await mergeShards('feats');
 * const x = await feats.read(150, 24, 0, 1000); // rows 0..999, [1000, h, w, c]
 * x.dispose();
 * ```
 * @category Features
 */
export async function mergeShards(dir: string): Promise<ShardedFeatures> {
  if (typeof dir !== 'string' || dir === '') throw new InputError('mergeShards needs a directory');
  const { path } = await nodeFs();
  const all = await shardDirs(dir);
  if (all.length === 0)
    throw new ShardError(`${dir} holds no feature shards (no shard-*/${SHARD_MANIFEST}); run extractToDirectory first`);
  const done = all.filter((s) => s.complete);
  if (done.length === 0) {
    const count = all[0].manifest.shard.count;
    const missing = Array.from({ length: count }, (_, k) => k);
    throw new ShardError(
      `${dir}: no shard is complete (started: ${all.map((s) => s.name).join(', ')}); missing shards ${missing.join(', ')} of ${count}`,
      missing,
    );
  }
  const ref = done[0];
  const settings = ref.complete!.settings;
  const count = ref.complete!.shard.count;
  const n = settings.images;
  const mismatched: string[] = [];
  const byIndex = new Map<number, string[]>();
  const usable: Complete[] = [];
  for (const s of done) {
    const c = s.complete!;
    const diff = settingsDiff(c.settings, settings, s.name, `${ref.name} has`);
    if (c.format !== SHARD_FORMAT || c.version !== 1) diff.push(`${s.name}: not a diffssl shard`);
    if (c.shard?.count !== count) diff.push(`${s.name}: is one of ${c.shard?.count} shards, ${ref.name} of ${count}`);
    if (diff.length) {
      mismatched.push(...diff);
      continue;
    }
    byIndex.set(c.shard.index, [...(byIndex.get(c.shard.index) ?? []), s.name]);
    usable.push(c);
    const { start, end } = shardRange(c.shard, n);
    if (c.shard.start !== start || c.shard.end !== end)
      mismatched.push(
        `${s.name}: holds rows [${c.shard.start}, ${c.shard.end}), shard ${c.shard.index} of ${count} is [${start}, ${end})`,
      );
    let next = c.shard.start;
    for (const p of [...c.parts].sort((a, b) => a.start - b.start)) {
      if (p.start > next) mismatched.push(`${s.name}: rows [${next}, ${p.start}) are in no part (a gap)`);
      if (p.start < next) mismatched.push(`${s.name}: rows [${p.start}, ${next}) are in two parts (an overlap)`);
      next = Math.max(next, p.start + p.count);
    }
    if (next < c.shard.end) mismatched.push(`${s.name}: rows [${next}, ${c.shard.end}) are in no part (a gap)`);
    if (next > c.shard.end) mismatched.push(`${s.name}: parts run past its last row ${c.shard.end - 1}`);
  }
  const missing: number[] = [];
  const duplicated: number[] = [];
  const notes: string[] = [];
  for (let k = 0; k < count; k++) {
    const holders = byIndex.get(k) ?? [];
    if (holders.length === 0) {
      missing.push(k);
      const started = all.filter((s) => !s.complete && s.manifest.shard?.index === k).map((s) => s.name);
      notes.push(
        `shard ${k} of ${count} is missing${started.length ? ` (${started.join(', ')}: started, not complete)` : ''}`,
      );
    } else if (holders.length > 1) {
      duplicated.push(k);
      notes.push(`shard ${k} of ${count} is complete twice (${holders.join(', ')})`);
    }
  }
  if (missing.length || duplicated.length || mismatched.length)
    throw new ShardError(
      `${dir} does not hold one complete run: ${[...notes, ...mismatched].join('; ')}`,
      missing,
      duplicated,
      mismatched,
    );

  // Every part file is read back: its rows, labels and maps must be what the marker says.
  const labels = new Array<number>(n).fill(-1);
  const parts: PartInfo[] = [];
  const shapes = new Map<string, [number, number, number]>();
  const names = new Map(usable.map((c) => [c.shard.index, byIndex.get(c.shard.index)![0]]));
  for (const c of usable.sort((a, b) => a.shard.index - b.shard.index))
    for (const [k, s] of Object.entries(c.shapes)) shapes.set(k, s);
  const keys = settings.t.flatMap((t) => settings.b.map((b) => key(t, b)));
  for (const c of usable) {
    const shardName = names.get(c.shard.index)!;
    for (const p of [...c.parts].sort((a, b) => a.start - b.start)) {
      const rel = `${shardName}/${p.file}`;
      const file = path.join(dir, shardName, p.file);
      let r: SafetensorsReader;
      try {
        r = await SafetensorsReader.open(file);
      } catch (e) {
        throw new CheckpointError(
          `${file}, listed in ${shardName}/${SHARD_COMPLETE}, cannot be read: ${(e as Error).message}`,
        );
      }
      try {
        const rows = (await r.read('rows')).data as Int32Array;
        if (rows.length !== p.count || rows.some((v, j) => v !== p.start + j))
          throw new CheckpointError(`${file} does not hold rows [${p.start}, ${p.start + p.count})`);
        for (const k of keys) {
          const want = shapes.get(k);
          const got = r.has(k) ? r.info(k).shape : undefined;
          if (!want || !got || got.join() !== [p.count, ...want].join())
            throw new CheckpointError(`${file} has no map ${k} of shape [${[p.count, ...(want ?? [])]}]`);
        }
        ((await r.read('labels')).data as Int32Array).forEach((y, j) => (labels[p.start + j] = y));
      } finally {
        await r.close();
      }
      parts.push({ file: rel, start: p.start, count: p.count });
    }
  }
  parts.sort((a, b) => a.start - b.start);
  const index: Index = {
    format: INDEX_FORMAT,
    version: 1,
    settings,
    shards: count,
    shapes: Object.fromEntries(keys.map((k) => [k, shapes.get(k)!])),
    labels,
    parts,
  };
  await writeBytesAtomic(path.join(dir, SHARDS_INDEX), JSON.stringify(index));
  return ShardedFeatures.open(dir);
}

/**
 * The features of a merged directory ({@link mergeShards}), read from the part files on demand:
 * any range of rows of any (t, b), in image order, without loading the rest.
 * @category Features
 */
export class ShardedFeatures {
  /** @internal Use {@link mergeShards} or {@link ShardedFeatures.open}. */
  constructor(
    /** The directory. */
    readonly dir: string,
    private readonly index: Index,
  ) {}

  /**
   * Opens a directory {@link mergeShards} has indexed.
   * @throws CheckpointError when it has no index (merge it first) or the index is not one.
   */
  static async open(dir: string): Promise<ShardedFeatures> {
    const { path } = await nodeFs();
    const file = path.join(dir, SHARDS_INDEX);
    const index = await readJson<Index>(file);
    if (!index) throw new CheckpointError(`${dir} has no ${SHARDS_INDEX}: merge its shards first (mergeShards)`);
    if (index.format !== INDEX_FORMAT || index.version !== 1)
      throw new CheckpointError(`${file} is not a diffssl feature-shards index`);
    return new ShardedFeatures(dir, index);
  }

  /** Number of images (rows). */
  get size(): number {
    return this.index.settings.images;
  }

  /** Steps, in the order extracted. */
  get t(): number[] {
    return [...this.index.settings.t];
  }

  /** Blocks, in the order extracted. */
  get b(): number[] {
    return [...this.index.settings.b];
  }

  /** One label per image, in image order (as the image source gave them). */
  get labels(): Int32Array {
    return Int32Array.from(this.index.labels);
  }

  /** How the features were made: model hash, pool (null: none), dense side (null: none), seed, ensemble, storage dtype, shards. */
  get info(): {
    modelHash: string;
    pool: number | null;
    dense: number | null;
    seed: number;
    ensemble: number;
    dtype: 'F32' | 'F16';
    shards: number;
    imagesHash: string | null;
  } {
    const s = this.index.settings;
    return {
      modelHash: s.model,
      pool: s.pool,
      dense: s.dense ?? null,
      seed: s.seed,
      ensemble: s.ensemble,
      dtype: s.dtype,
      shards: this.index.shards,
      imagesHash: s.imagesHash,
    };
  }

  /** `[h, w, c]` of one row's map of (t, b). */
  shape(t: number, b: number): [number, number, number] {
    const s = this.index.shapes[key(t, b)];
    if (!s) throw new InputError(`no feature for t=${t}, b=${b}: these have t ∈ {${this.t}} and b ∈ {${this.b}}`);
    return [...s];
  }

  /**
   * Rows `[start, start + count)` of the map of (t, b), `[count, h, w, c]`, owned by the caller.
   * Reads only the part files that hold them.
   */
  async read(t: number, b: number, start = 0, count = this.size - start): Promise<tf.Tensor4D> {
    const fs = await this.load({ t, b, start, count });
    try {
      return tf.clone(fs.get(t, b));
    } finally {
      fs.dispose();
    }
  }

  /**
   * The maps of rows `[start, start + count)` (default all) for the given steps and blocks (default
   * all), as a {@link FeatureSet} like {@link extractFeatures}'s; dispose it when done.
   */
  async load(
    opts: { t?: number | number[]; b?: number | number[]; start?: number; count?: number } = {},
  ): Promise<FeatureSet> {
    const ts = opts.t === undefined ? this.t : intList(opts.t, 't');
    const bs = opts.b === undefined ? this.b : intList(opts.b, 'b');
    const start = opts.start ?? 0;
    const count = opts.count ?? this.size - start;
    if (
      !Number.isSafeInteger(start) ||
      !Number.isSafeInteger(count) ||
      start < 0 ||
      count < 0 ||
      start + count > this.size
    )
      throw new InputError(`rows [${start}, ${start + count}) are not within [0, ${this.size})`);
    const wanted = ts.flatMap((t) => bs.map((b) => ({ t, b, k: key(t, b), shape: this.shape(t, b) })));
    const out = new Map(wanted.map((w) => [w.k, new Float32Array(count * w.shape[0] * w.shape[1] * w.shape[2])]));
    const { path } = await nodeFs();
    const end = start + count;
    for (const p of this.index.parts) {
      const lo = Math.max(start, p.start);
      const hi = Math.min(end, p.start + p.count);
      if (lo >= hi) continue;
      const r = await SafetensorsReader.open(path.join(this.dir, ...p.file.split('/')));
      try {
        for (const w of wanted) {
          const per = w.shape[0] * w.shape[1] * w.shape[2];
          const data = (await r.read(w.k)).data as Float32Array;
          out.get(w.k)!.set(data.subarray((lo - p.start) * per, (hi - p.start) * per), (lo - start) * per);
        }
      } finally {
        await r.close();
      }
    }
    const maps = new Map<string, tf.Tensor4D>();
    for (const w of wanted) maps.set(w.k, tf.tensor4d(out.get(w.k)!, [count, ...w.shape]));
    return new FeatureSet(ts, bs, maps);
  }
}
