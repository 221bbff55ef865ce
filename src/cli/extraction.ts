/**
 * Sharded extraction of DATA to a feature directory, shared by `extract` and `sweep`: the flags and their
 * help, the shard from `--shard`, `--shards` or the scheduler's environment, and one shard's run with the
 * shards still pending and the merge when none is.
 * @module
 */
import {
  extractToDirectory,
  mergeShards,
  parseShard,
  pendingShards,
  shardFromEnv,
  SHARDS_ENV,
  type Shard,
  type ShardedFeatures,
  type ShardResult,
} from '../data/featureShards.js';
import type { ADMUNet } from '../unet/admUnet.js';
import type { FlagSpec } from './args.js';
import { FEATURE_FLAGS, type Data } from './data.js';
import { progressBar, UsageError, type CliIO } from './io.js';
import { MODEL_FLAGS } from './model.js';

/** The flags of a command that extracts DATA to a directory: the model's, the features', the noise ensemble and sharding. */
export const EXTRACTION_FLAGS = {
  ...MODEL_FLAGS,
  ...FEATURE_FLAGS,
  ensemble: { kind: 'count' },
  shard: { kind: 'string' },
  shards: { kind: 'count' },
  f16: { kind: 'bool' },
} as const satisfies Record<string, FlagSpec>;

/** Help lines of the extraction flags shared by `extract` and `sweep` (not --t, --b, -o, --labels, --limit). */
export const EXTRACTION_HELP = `  --pool N           adaptive-average-pool maps larger than N×N
  --batch N          images per part file and per extraction call (default 64)
  --seed S           seed of the noise (default 0); an image's features depend only on it, t and the image
  --ensemble K       noise draws averaged per image (default 1)
  --shard k/n        extract shard k (0-based) of n; without it the shard comes from the scheduler:
                     Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX, with --shards n or ${SHARDS_ENV})
                     or Slurm arrays (SLURM_ARRAY_TASK_ID, _MIN, _COUNT); none: the whole set
  --shards n         the number of shards, with the index from the scheduler's environment
  --f16              store the maps as float16 (half the disk, read back as float32)`;

/** What the extraction flags hold once parsed. */
export interface ExtractionFlags {
  t?: number[];
  b?: number[];
  pool?: number;
  dense?: number;
  batch?: number;
  seed?: number;
  ensemble?: number;
  shard?: string;
  shards?: number;
  f16?: boolean;
  quiet?: boolean;
}

/**
 * This process's shard: `--shard k/n`, else the scheduler's environment (with `--shards n` as the count);
 * undefined for the whole set.
 * @throws UsageError for both flags at once, a malformed `--shard`, or `--shards` without an index in `env`.
 */
export function chooseShard(
  command: string,
  flags: { shard?: string; shards?: number },
  env: Record<string, string | undefined>,
): Shard | undefined {
  if (flags.shard !== undefined && flags.shards !== undefined)
    throw new UsageError(
      `${command}: give --shard k/n or --shards n (with the index from the scheduler), not both`,
      command,
    );
  if (flags.shard !== undefined) {
    try {
      return parseShard(flags.shard);
    } catch (e) {
      throw new UsageError(`${command}: --shard: ${(e as Error).message}`, command);
    }
  }
  const shard = shardFromEnv(env, flags.shards);
  if (shard === undefined && flags.shards !== undefined)
    throw new UsageError(
      `${command}: --shards ${flags.shards} needs the shard index from the scheduler (JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID), and neither is set; give --shard k/${flags.shards} to run one by hand`,
      command,
    );
  return shard;
}

/** One shard's extraction, the shards of its run still pending, and the merged features when none is. */
export interface ShardRun {
  result: ShardResult;
  pending: number[];
  /** Set when this call found every shard complete and merged the directory. */
  merged?: ShardedFeatures;
}

/**
 * Extracts `shard` (default: the whole set) of `data` into `dir` with the flags' settings, resumably, then
 * merges `dir` when every shard of the run is complete. A progress bar goes to stderr on a terminal.
 */
export async function extractShard(
  io: CliIO,
  opts: {
    model: ADMUNet;
    modelHash: string;
    data: Data;
    dir: string;
    flags: ExtractionFlags;
    shard: Shard | undefined;
  },
): Promise<ShardRun> {
  const { flags } = opts;
  const bar = progressBar(io, { quiet: flags.quiet, unit: 'images' });
  const result = await extractToDirectory(opts.data.source, {
    model: opts.model,
    t: flags.t!,
    b: flags.b!,
    dir: opts.dir,
    ...(flags.pool !== undefined ? { pool: flags.pool } : {}),
    ...(flags.dense !== undefined ? { dense: flags.dense } : {}),
    seed: flags.seed ?? 0,
    ensemble: flags.ensemble ?? 1,
    batch: flags.batch ?? 64,
    dtype: flags.f16 ? 'F16' : 'F32',
    ...(opts.shard ? { shard: opts.shard } : {}),
    imageIds: opts.data.ids,
    modelHash: opts.modelHash,
    onProgress: (p) => bar.update(p.done, p.total),
  });
  bar.done();
  const pending = await pendingShards(opts.dir, result.shard.count);
  return pending.length === 0 ? { result, pending, merged: await mergeShards(opts.dir) } : { result, pending };
}

/** `shard 0/3: rows [0, 2) of <data>: 2 images extracted` (or reused, or already complete). */
export function shardSummary(result: ShardResult, data: string): string {
  const what =
    result.written === 0 && result.reused > 0
      ? `already complete (${result.reused} images), nothing to do`
      : `${result.written} images extracted${result.reused ? `, ${result.reused} reused from an earlier run` : ''}`;
  return `shard ${result.shard.index}/${result.shard.count}: rows [${result.start}, ${result.end}) of ${data}: ${what}`;
}
