/**
 * `diffssl extract DATA --t … --b … -o DIR`: sharded, resumable feature extraction to a directory.
 * @module
 */
import path from 'node:path';
import type { Shard } from '../../data/featureShards.js';
import { OUTPUT_HELP, parseArgs, type Flags } from '../args.js';
import { DATA_HELP, openData, type Data } from '../data.js';
import { chooseShard, EXTRACTION_FLAGS, EXTRACTION_HELP, extractShard, shardSummary } from '../extraction.js';
import { checkOutputDir, UsageError, type CliIO } from '../io.js';
import { checkGrid, loadModel, MODEL_HELP, modelIdentity } from '../model.js';

/** The usage lines of `diffssl extract`, in the top-level help. */
export const EXTRACT_USAGE = `  diffssl extract DATA --t 90,150 --b 19,24 -o DIR [--pool 2 | --dense 64] [--batch 64] [--seed 0]
                  [--ensemble 1] [--f16] [--shard k/n | --shards n] [--labels FILE] [--limit N] [--json]
      Noise each image to every step t, run the U-Net and write every block b's output to DIR as
      safetensors parts with a manifest. Resumable: a re-run continues after the last whole part,
      and a re-run of a finished shard does nothing. When every shard is complete the directory is
      merged (features.json); otherwise the shards still pending are named.
`;

/** The options of `diffssl extract`: those of every extraction from DATA (shared with `sweep`), and dense maps. */
export const EXTRACT_FLAGS = { ...EXTRACTION_FLAGS, dense: { kind: 'count' } } as const;

const HELP = `Usage:
${EXTRACT_USAGE}
${DATA_HELP}

  --t LIST           noise steps, a comma list (each in 0..T−1; see diffssl info)
  --b LIST           blocks in the paper's numbering, a comma list (see diffssl info)
  -o, --output DIR   the run's directory, shared by all its shards (created if absent)
${EXTRACTION_HELP}
  --dense S          dense features: every block's map resized to S×S (bilinear, as PyTorch's
                     align_corners=False), one batch at a time; not with --pool
  --labels FILE      the IDX labels file of an IDX images DATA
  --limit N          only the first N images
${OUTPUT_HELP}
${MODEL_HELP}

  Exit status 0 when this shard is complete (also when other shards are still pending: they are
  named, and diffssl merge DIR exits 3 until they are done).
`;

/** What an `extract` command line asks for, checked as far as it can be without the model or the data. */
export interface ExtractRequest {
  flags: Flags<typeof EXTRACT_FLAGS>;
  /** DATA as given. */
  data: string;
  /** The run's directory, resolved. */
  dir: string;
  /** This process's shard; undefined for the whole set. */
  shard: Shard | undefined;
}

/**
 * Parses an `extract` command line (without the command's name) in the scheduler's environment `env`.
 * @returns undefined for `--help`.
 * @throws UsageError for bad usage: an unknown or malformed flag, a missing --t, --b or -o, a bad shard.
 */
export function parseExtract(
  args: readonly string[],
  env: Record<string, string | undefined>,
): ExtractRequest | undefined {
  const { flags, positional, help } = parseArgs('extract', args, EXTRACT_FLAGS, { min: 1, max: 1, names: 'DATA' });
  if (help) return undefined;
  for (const need of ['t', 'b', 'output'] as const)
    if (flags[need] === undefined)
      throw new UsageError(`extract needs ${need === 'output' ? '-o DIR' : `--${need} LIST`}`, 'extract');
  return { flags, data: positional[0], dir: path.resolve(flags.output!), shard: chooseShard('extract', flags, env) };
}

/** Runs `diffssl extract` on its arguments; returns the exit status. */
export async function extractCommand(args: string[], io: CliIO): Promise<number> {
  const request = parseExtract(args, io.env ?? {});
  if (!request) {
    io.stdout(HELP);
    return 0;
  }
  const { flags, shard } = request;
  const dir = checkOutputDir('extract', flags.output!, "the run's directory");
  const loaded = await loadModel('extract', flags, io);
  const { model } = loaded;
  let data: Data | undefined;
  try {
    checkGrid('extract', model, flags.t!, flags.b!);
    data = await openData('extract', request.data, {
      channels: model.config.inChannels,
      ...(flags.labels !== undefined ? { labels: flags.labels } : {}),
      ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
      skipBad: flags['skip-bad'] === true,
      warn: io.stderr,
    });
    const { result, pending, merged } = await extractShard(io, {
      model,
      modelHash: await modelIdentity(loaded),
      data,
      dir,
      flags,
      shard,
    });
    const count = result.shard.count;
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
    else if (!flags.quiet)
      io.stdout(
        `${shardSummary(result, data.label)}\n` +
          (merged
            ? `all ${count} shard${count > 1 ? 's' : ''} complete: merged into ${dir}\n`
            : `pending shards: ${pending.join(', ')} of ${count}; run them, then diffssl merge ${flags.output}\n`),
      );
    return 0;
  } finally {
    data?.dispose();
    model.dispose();
  }
}
