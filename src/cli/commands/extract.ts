/**
 * `diffssl extract DATA --t … --b … -o DIR`: sharded, resumable feature extraction to a directory.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  extractToDirectory,
  mergeShards,
  parseShard,
  shardFromEnv,
  SHARD_COMPLETE,
  SHARDS_ENV,
  type Shard,
} from '../../data/featureShards.js';
import { InputError } from '../../errors.js';
import { parseArgs } from '../args.js';
import { DATA_HELP, FEATURE_FLAGS, openData } from '../data.js';
import { progressBar, UsageError, type CliIO } from '../io.js';
import { loadModel, MODEL_FLAGS, MODEL_HELP, modelIdentity } from '../model.js';

export const EXTRACT_USAGE = `  diffssl extract DATA --t 90,150 --b 19,24 -o DIR [--pool 2] [--batch 64] [--seed 0]
                  [--ensemble 1] [--shard k/n | --shards n] [--labels FILE] [--limit N] [--json]
      Noise each image to every step t, run the U-Net and write every block b's output to DIR as
      safetensors parts with a manifest. Resumable: a re-run continues after the last whole part,
      and a re-run of a finished shard does nothing. When every shard is complete the directory is
      merged (features.json); otherwise the shards still pending are named.
`;

const SPEC = {
  ...MODEL_FLAGS,
  ...FEATURE_FLAGS,
  ensemble: { kind: 'count' },
  shard: { kind: 'string' },
  shards: { kind: 'count' },
  f16: { kind: 'bool' },
} as const;

const HELP = `Usage:
${EXTRACT_USAGE}
${DATA_HELP}

  --t LIST           noise steps, a comma list (each in 0..T−1; see diffssl info)
  --b LIST           blocks in the paper's numbering, a comma list (see diffssl info)
  -o, --output DIR   the run's directory, shared by all its shards (created if absent)
  --pool N           adaptive-average-pool maps larger than N×N
  --batch N          images per part file and per extraction call (default 64)
  --seed S           seed of the noise (default 0); an image's features depend only on it, t and the image
  --ensemble K       noise draws averaged per image (default 1)
  --shard k/n        extract shard k (0-based) of n; without it the shard comes from the scheduler:
                     Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX, with --shards n or ${SHARDS_ENV})
                     or Slurm arrays (SLURM_ARRAY_TASK_ID, _MIN, _COUNT); none: the whole set
  --shards n         the number of shards, with the index from the scheduler's environment
  --labels FILE      the IDX labels file of an IDX images DATA
  --limit N          only the first N images
  --f16              store the maps as float16 (half the disk, read back as float32)
  --quiet            no progress bar and no summary
  --json             one JSON object on stdout
${MODEL_HELP}

  Exit status 0 when this shard is complete (also when other shards are still pending: they are
  named, and diffssl merge DIR exits 3 until they are done).
`;

const pad = (v: number) => String(v).padStart(5, '0');
/** The shard folders' names, as extractToDirectory writes them. */
export const shardDirName = (s: Shard) => `shard-${pad(s.index)}-of-${pad(s.count)}`;

/** The shards of a run of `count` whose completion marker is not there yet. */
export function pendingShards(dir: string, count: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < count; k++)
    if (!fs.existsSync(path.join(dir, shardDirName({ index: k, count }), SHARD_COMPLETE))) out.push(k);
  return out;
}

function chooseShard(flags: { shard?: string; shards?: number }, io: CliIO): Shard | undefined {
  if (flags.shard !== undefined && flags.shards !== undefined)
    throw new UsageError(
      'extract: give --shard k/n or --shards n (with the index from the scheduler), not both',
      'extract',
    );
  if (flags.shard !== undefined) {
    try {
      return parseShard(flags.shard);
    } catch (e) {
      throw new UsageError(`extract: --shard: ${(e as Error).message}`, 'extract');
    }
  }
  const env = io.env ?? {};
  const shard = shardFromEnv(env, flags.shards);
  if (shard === undefined && flags.shards !== undefined)
    throw new UsageError(
      `extract: --shards ${flags.shards} needs the shard index from the scheduler (JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID), and neither is set; give --shard k/${flags.shards} to run one by hand`,
      'extract',
    );
  return shard;
}

export async function extractCommand(args: string[], io: CliIO): Promise<number> {
  const { flags, positional, help } = parseArgs('extract', args, SPEC, { min: 1, max: 1, names: 'DATA' });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  for (const need of ['t', 'b', 'output'] as const)
    if (flags[need] === undefined)
      throw new UsageError(`extract needs ${need === 'output' ? '-o DIR' : `--${need} LIST`}`, 'extract');
  const shard = chooseShard(flags, io);
  const dir = path.resolve(flags.output!);
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory())
    throw new InputError(`extract: ${flags.output} exists and is not a folder; -o names the run's directory`);
  const loaded = await loadModel('extract', flags, io);
  const { model } = loaded;
  let data: Awaited<ReturnType<typeof openData>> | undefined;
  try {
    const T = model.schedule.steps;
    const badT = flags.t!.filter((t) => t >= T);
    if (badT.length)
      throw new InputError(`extract: --t ${badT.join(',')} is out of range: this model's steps are 0..${T - 1}`);
    const badB = flags.b!.filter((b) => b < 1 || b > model.totalBlocks);
    if (badB.length)
      throw new InputError(
        `extract: unknown block ${badB.join(',')}: this model has blocks 1..${model.totalBlocks} (see diffssl info)`,
      );
    data = await openData('extract', positional[0], {
      channels: model.config.inChannels,
      ...(flags.labels !== undefined ? { labels: flags.labels } : {}),
      ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
    });
    const bar = progressBar(io, { quiet: flags.quiet, unit: 'images' });
    const result = await extractToDirectory(data.source, {
      model,
      t: flags.t!,
      b: flags.b!,
      dir,
      ...(flags.pool !== undefined ? { pool: flags.pool } : {}),
      seed: flags.seed ?? 0,
      ensemble: flags.ensemble ?? 1,
      batch: flags.batch ?? 64,
      dtype: flags.f16 ? 'F16' : 'F32',
      ...(shard ? { shard } : {}),
      imageIds: data.ids,
      modelHash: await modelIdentity(loaded),
      onProgress: (p) => bar.update(p.done, p.total),
    });
    bar.done();
    const count = result.shard.count;
    const pending = pendingShards(dir, count);
    const merged = pending.length === 0 ? await mergeShards(dir) : undefined;
    const out = {
      dir,
      data: data.label,
      model: loaded.label,
      images: data.source.size,
      shard: result.shard,
      rows: [result.start, result.end],
      written: result.written,
      reused: result.reused,
      pending,
      merged: merged !== undefined,
    };
    if (flags.json) io.stdout(`${JSON.stringify(out)}\n`);
    else if (!flags.quiet) {
      const what =
        result.written === 0 && result.reused > 0
          ? `already complete (${result.reused} images), nothing to do`
          : `${result.written} images extracted${result.reused ? `, ${result.reused} reused from an earlier run` : ''}`;
      io.stdout(
        `shard ${result.shard.index}/${count}: rows [${result.start}, ${result.end}) of ${data.label}: ${what}\n` +
          (merged
            ? `all ${count} shard${count > 1 ? 's' : ''} complete: merged into ${dir}\n`
            : `pending shards: ${pending.join(', ')} of ${count}; run them, then diffssl merge ${flags.output}\n`),
      );
    }
    return 0;
  } finally {
    data?.dispose();
    model.dispose();
  }
}
