/**
 * A head's run directory, written by `diffssl train` and read by `diffssl eval`: what the head is (the
 * reference's `finetune_args`, so `fromReference` rebuilds it), which backbone and which inputs it was
 * trained on, and the data sets both commands feed it (merged feature directories or images on the fly).
 *
 *     RUN_DIR/config.json            the head and the settings of its training (diffssl.head-run)
 *     RUN_DIR/weights.safetensors    the trained weights under the reference's names (head.…, feedback_layers.…)
 *     RUN_DIR/checkpoint/            the trainer's resumable checkpoint (src/train/checkpoint.ts)
 *     RUN_DIR/train.json             per-epoch loss and accuracy, the final test result (diffssl.head-train)
 * @module
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Dataset } from '../data/dataset.js';
import { FeatureCache } from '../data/featureCache.js';
import type { ShardedFeatures } from '../data/featureShards.js';
import { onTheFlyFeatures, onTheFlyImages } from '../data/onTheFly.js';
import { fromReference, type DiffSSLModel, type FinetuneArgs } from '../diffsslModel.js';
import { InputError } from '../errors.js';
import type { FeatureSet } from '../features/extractFeatures.js';
import type { OptimizerSpec } from '../train/optimizers.js';
import type { EvalResult } from '../train/trainer.js';
import type { TrainableModel } from '../train/trainableModel.js';
import type { ADMUNet } from '../unet/admUnet.js';
import { isNamedDataset, openData } from './data.js';
import { CommandFailure, UsageError, type ProgressBar } from './io.js';

/** The heads `diffssl train` builds. */
export const HEADS = ['linear', 'mlp', 'attention', 'difformer', 'difffeed'] as const;
/** One of {@link HEADS}. */
export type HeadKind = (typeof HEADS)[number];

/** The files of a run directory. */
export const RUN_FILES = {
  config: 'config.json',
  weights: 'weights.safetensors',
  checkpoint: 'checkpoint',
  record: 'train.json',
} as const;

const RUN_FORMAT = 'diffssl.head-run';
const RECORD_FORMAT = 'diffssl.head-train';

/** `config.json` of a run directory. */
export interface RunConfig {
  format: typeof RUN_FORMAT;
  version: 1;
  head: HeadKind;
  /** The reference's arguments: `fromReference(finetune_args, unet)` builds the head. */
  finetune_args: FinetuneArgs;
  /** Class names, when the training data named them. */
  classes: string[] | null;
  backbone: {
    /** The model's identity as `diffssl extract` records it (see `modelIdentity`). */
    identity: string;
    label: string;
    /** `--model` and `--flags` as given (absolute paths), null for the embedded backbone. */
    model: string | null;
    flags: string | null;
  };
  input: {
    /** Merged feature directories, or images through the U-Net per batch. */
    kind: 'features' | 'images';
    source: string;
    images: number;
    /** The extraction's pool of the features (null: none); the same pool applies to every evaluation. */
    pool: number | null;
    /** Hash of the images' identifiers and labels, so a resume over other data is refused. */
    fingerprint: string;
  };
  training: {
    optimizer: OptimizerSpec;
    batchSize: number;
    seed: number;
    lrStep: number;
    lrGamma: number;
    /** Random crop and flip of training images (on the fly only). */
    augment: boolean;
  };
}

/** One finished epoch in `train.json`; epochs count from 1. */
export interface EpochRecord {
  epoch: number;
  lr: number;
  trainLoss: number;
  trainTop1: number;
  test?: EvalResult;
}

/** `train.json` of a run directory. */
export interface TrainRecord {
  format: typeof RECORD_FORMAT;
  version: 1;
  /** `done` once the weights of the last epoch are written. */
  status: 'running' | 'done';
  epochs: number;
  history: EpochRecord[];
  /** The test set's result after the last epoch. */
  test: (EvalResult & { source: string }) | null;
}

/** A new `config.json`. */
export function runConfig(c: Omit<RunConfig, 'format' | 'version'>): RunConfig {
  return { format: RUN_FORMAT, version: 1, ...c };
}

/** A new `train.json`. */
export function trainRecord(r: Omit<TrainRecord, 'format' | 'version'>): TrainRecord {
  return { format: RECORD_FORMAT, version: 1, ...r };
}

/** The JSON in `file`, or undefined when it is missing or not JSON. */
function readJsonOrUndefined(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The run of `dir`, or undefined when there is none.
 * @throws CommandFailure when `config.json` is there but is not a run's.
 */
export function readRunConfig(command: string, dir: string): RunConfig | undefined {
  const file = path.join(dir, RUN_FILES.config);
  if (!fs.existsSync(file)) return undefined;
  const c = readJsonOrUndefined(file) as RunConfig | undefined;
  if (c?.format !== RUN_FORMAT || c.version !== 1)
    throw new CommandFailure(
      `${command}: ${file} is not the config of a diffssl train run; ${command === 'train' ? 'use another -o' : 'give the -o RUN_DIR of a diffssl train run'}`,
    );
  return c;
}

/** The `train.json` of `dir`, or undefined when there is none (or it is unreadable: the checkpoint is the truth). */
export function readTrainRecord(dir: string): TrainRecord | undefined {
  const r = readJsonOrUndefined(path.join(dir, RUN_FILES.record)) as TrainRecord | undefined;
  return r?.format === RECORD_FORMAT && r.version === 1 ? r : undefined;
}

/** What of a config decides the trained weights (paths and labels do not). */
function settingsOf(c: RunConfig): Record<string, unknown> {
  return {
    head: c.head,
    finetune_args: c.finetune_args,
    backbone: c.backbone.identity,
    input: { kind: c.input.kind, images: c.input.images, pool: c.input.pool, fingerprint: c.input.fingerprint },
    training: c.training,
  };
}

function flatten(v: unknown, at: string, out: Map<string, string>): void {
  if (v !== null && typeof v === 'object' && !Array.isArray(v))
    for (const [k, x] of Object.entries(v)) flatten(x, at ? `${at}.${k}` : k, out);
  else out.set(at, JSON.stringify(v));
}

/** The settings in which `a` and `b` differ, as `name: old → new`. */
export function settingDifferences(a: RunConfig, b: RunConfig): string[] {
  const [x, y] = [new Map<string, string>(), new Map<string, string>()];
  flatten(settingsOf(a), '', x);
  flatten(settingsOf(b), '', y);
  const names = [...new Set([...x.keys(), ...y.keys()])];
  const short = (s: string | undefined) => (s === undefined ? 'none' : s.length > 40 ? `${s.slice(0, 37)}…` : s);
  return names
    .filter((k) => x.get(k) !== y.get(k))
    .map((k) =>
      k.endsWith('fingerprint') ? 'the images or their labels' : `${k} ${short(x.get(k))} → ${short(y.get(k))}`,
    );
}

/** SHA-256 of a JSON value, hex. */
export function fingerprint(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** The system a run describes, on `unet`, initialised from the run's seed (before any weights are loaded). */
export function buildSystem(config: RunConfig, unet: ADMUNet): DiffSSLModel {
  return fromReference(config.finetune_args, unet, { seed: config.training.seed });
}

/**
 * What the trainer and `evaluate` get: the system itself for DifFeed (its input is images and their
 * noise), else the head on {@link FeatureSet}s, which cached and on-the-fly features both are.
 */
export function trainableSystem(sys: DiffSSLModel): TrainableModel<unknown> {
  if (sys.feedback) return sys as TrainableModel<unknown>;
  return {
    get trainableVariables() {
      return sys.trainableVariables;
    },
    logits: (f, o) => sys.logitsFromFeatures(f as FeatureSet, o),
    saveWeights: (p) => sys.saveWeights(p),
    loadWeights: (s) => sys.loadWeights(s),
  };
}

/** The inputs a head reads, and where its training inputs came from. */
export interface HeadInputs {
  head: HeadKind;
  t: readonly number[];
  /** First-pass blocks (none for DifFeed, which reads its own second pass). */
  b: readonly number[];
  /** The extraction pool of the features the head is trained on (null: none). */
  pool: number | null;
  /** The backbone's identity and its name in messages. */
  identity: string;
  backbone: string;
}

/** Training or test examples of a head, as the trainer takes them. */
export interface RunSet {
  data: Dataset<unknown>;
  size: number;
  labels: Int32Array;
  classes?: readonly string[];
  /** What it is, in words. */
  label: string;
  /** The directory or DATA as given, resolved. */
  source: string;
  fingerprint: string;
  close(): Promise<void>;
}

/** Where a set's examples come from: a merged feature directory, or DATA (images). */
export type SetSource =
  | { features: ShardedFeatures }
  | {
      data: string;
      labels?: string;
      limit?: number;
      labelsFlag: string;
      skipBad?: boolean;
      warn?: (line: string) => void;
    };

/**
 * The {@link SetSource} of a command's main set: the merged features of `--features` when given, else
 * DATA with its `--labels`, `--limit` and `--skip-bad`.
 */
export function mainSetSource(
  features: ShardedFeatures | undefined,
  data: string | undefined,
  flags: { labels?: string; limit?: number; 'skip-bad'?: boolean },
  warn: (line: string) => void,
): SetSource {
  if (features) return { features };
  return {
    data: data!,
    labels: flags.labels,
    limit: flags.limit,
    labelsFlag: '--labels',
    skipBad: flags['skip-bad'] === true,
    warn,
  };
}

/**
 * Checks that a command got exactly one source of examples: DATA or `--features DIR`, with none of
 * `dataOnly` (the flags that apply to DATA) beside `--features`.
 * @throws UsageError naming what is missing or too much.
 */
export function checkOneSource(
  command: string,
  what: 'training' | 'test',
  data: string | undefined,
  features: string | undefined,
  dataOnly: Record<string, unknown>,
): void {
  if ((data === undefined) === (features === undefined))
    throw new UsageError(
      data === undefined
        ? `${command}: give the ${what} examples: DATA (images) or --features DIR (a merged diffssl extract directory)`
        : `${command}: give DATA or --features DIR, not both`,
      command,
    );
  const given = features !== undefined && Object.keys(dataOnly).find((f) => dataOnly[f] !== undefined);
  if (given)
    throw new UsageError(
      `${command}: --${given} is for ${what} DATA; the features of --features DIR are fixed`,
      command,
    );
}

const DIFFFEED_IMAGES =
  'difffeed runs the U-Net twice per image (its feedback changes the second pass), so it cannot use extracted features: give DATA (images) instead';

/**
 * Opens the examples of `source` for a head reading `head`'s inputs: features are checked against the
 * backbone, steps, blocks and pool the head was (or will be) trained on and read into memory; images go
 * through the U-Net per batch ({@link onTheFlyFeatures}, or {@link onTheFlyImages} for DifFeed), with the
 * features' extraction pool applied so a head trained on pooled features sees pooled maps.
 * @param what `training` or `test`, for messages.
 * @throws UsageError for DifFeed on features; InputError for features that do not fit or data without labels.
 */
export async function openRunSet(
  command: string,
  source: SetSource,
  head: HeadInputs,
  unet: ADMUNet,
  opts: { what: 'training' | 'test'; augment: boolean },
): Promise<RunSet> {
  if ('features' in source) {
    const f = source.features;
    if (head.head === 'difffeed') throw new UsageError(`${command}: ${DIFFFEED_IMAGES}`, command);
    const where = `the ${opts.what} features in ${f.dir}`;
    if (f.info.modelHash !== head.identity)
      throw new InputError(
        `${command}: ${where} were extracted with another model than ${head.backbone}; use features of that model, or give the --model and --flags they were extracted with`,
      );
    const missing = head.t.flatMap((t) =>
      head.b.filter((b) => !f.t.includes(t) || !f.b.includes(b)).map((b) => `t=${t} b=${b}`),
    );
    if (missing.length)
      throw new InputError(
        `${command}: ${where} lack ${missing.join(', ')}; extract them with --t ${head.t.join(',')} --b ${head.b.join(',')}`,
      );
    if (f.info.pool !== head.pool) {
      const pooled = (p: number | null) => (p === null ? 'not pooled' : `pooled to ${p}×${p}`);
      throw new InputError(
        `${command}: ${where} were ${pooled(f.info.pool)} at extraction, the head's inputs were ${pooled(head.pool)}; extract them with ${head.pool === null ? 'no --pool' : `--pool ${head.pool}`}`,
      );
    }
    const set = await f.load({ t: [...head.t], b: [...head.b] });
    let cache: FeatureCache;
    try {
      cache = await FeatureCache.fromFeatureSet(set, f.labels);
    } finally {
      set.dispose();
    }
    const info = f.info;
    return {
      data: cache,
      size: cache.size,
      labels: f.labels,
      label: `features in ${f.dir} (${f.size} images)`,
      source: f.dir,
      fingerprint: fingerprint([info.imagesHash, info.seed, info.ensemble, info.dtype, Array.from(f.labels)]),
      close: () => cache.close(),
    };
  }
  const data = await openData(command, source.data, {
    channels: unet.config.inChannels,
    ...(source.labels !== undefined ? { labels: source.labels } : {}),
    ...(source.limit !== undefined ? { limit: source.limit } : {}),
    skipBad: source.skipBad === true,
    ...(source.warn ? { warn: source.warn } : {}),
  });
  try {
    if (!data.labels)
      throw new InputError(
        `${command}: ${source.data} has no labels; ${opts.what} images need them: an image folder (one subfolder per class), an IDX file with ${source.labelsFlag}, or fashion-mnist:train|test`,
      );
    const t = [...head.t];
    const dataset =
      head.head === 'difffeed'
        ? onTheFlyImages(data.source, { size: unet.config.imageSize, t, augment: opts.augment })
        : onTheFlyFeatures(data.source, {
            model: unet,
            t,
            b: [...head.b],
            ...(head.pool !== null ? { pool: head.pool } : {}),
            augment: opts.augment,
          });
    return {
      data: dataset as Dataset<unknown>,
      size: data.source.size,
      labels: data.labels,
      ...(data.classes ? { classes: data.classes } : {}),
      label: data.label,
      source: isNamedDataset(source.data) ? source.data : path.resolve(source.data),
      fingerprint: fingerprint([data.ids, Array.from(data.labels)]),
      close: async () => data.dispose(),
    };
  } catch (e) {
    data.dispose();
    throw e;
  }
}

/**
 * Checks that a test set's labels are classes of the head (and its class names the head's, when both have them).
 * @throws InputError naming the first label out of range or the names that differ.
 */
export function checkTestLabels(command: string, set: RunSet, classes: number, names: readonly string[] | null): void {
  const bad = set.labels.findIndex((l) => l >= classes);
  if (bad >= 0)
    throw new InputError(
      `${command}: image ${bad} of ${set.source} has label ${set.labels[bad]}, but the head knows ${classes} classes (0..${classes - 1})`,
    );
  if (names && set.classes && set.classes.join('\n') !== names.join('\n'))
    throw new InputError(
      `${command}: the classes of ${set.source} (${set.classes.join(', ')}) are not the head's (${names.join(', ')})`,
    );
}

/** `data`, reporting to `bar` how many of its examples have been batched. */
export function withProgress<I>(data: Dataset<I>, bar: ProgressBar): Dataset<I> {
  let done = 0;
  return {
    size: data.size,
    batch: async (indices, ctx) => {
      const b = await data.batch(indices, ctx);
      done += indices.length;
      bar.update(done, data.size);
      return b;
    },
  };
}
