/**
 * `diffssl merge DIR`: checks that every shard of an extraction is complete exactly once, and indexes them.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { mergeShards } from '../../data/featureShards.js';
import { ShardError } from '../../errors.js';
import { OUTPUT_FLAGS, parseArgs, type FlagSpec } from '../args.js';
import { CommandFailure, EXIT, oneLine, type CliIO } from '../io.js';

export const MERGE_USAGE = `  diffssl merge DIR [--json]
      Check that DIR holds every shard 0..n−1 of one extraction, complete and exactly once, with the
      same settings and no gap or overlap, and write its index (features.json). Exit status 3 when
      shards are missing or not complete yet (named on stderr); 1 when they do not fit together.
`;

/** The options of `diffssl merge`. */
export const MERGE_FLAGS = { json: OUTPUT_FLAGS.json } as const satisfies Record<string, FlagSpec>;

export async function mergeCommand(args: string[], io: CliIO): Promise<number> {
  const { flags, positional, help } = parseArgs('merge', args, MERGE_FLAGS, { min: 1, max: 1, names: 'DIR' });
  if (help) {
    io.stdout(`Usage:\n${MERGE_USAGE}\n  --json             one JSON object on stdout\n`);
    return 0;
  }
  const dir = path.resolve(positional[0]);
  if (!fs.existsSync(dir))
    throw new CommandFailure(`merge: ${positional[0]} does not exist; give the -o DIR of diffssl extract`);
  if (!fs.statSync(dir).isDirectory())
    throw new CommandFailure(`merge: ${positional[0]} is not a folder; give the -o DIR of diffssl extract`);
  try {
    const f = await mergeShards(dir);
    const out = {
      dir,
      complete: true,
      images: f.size,
      t: f.t,
      b: f.b,
      shapes: Object.fromEntries(f.t.flatMap((t) => f.b.map((b) => [`${t}:${b}`, f.shape(t, b)]))),
      ...f.info,
    };
    if (flags.json) io.stdout(`${JSON.stringify(out)}\n`);
    else
      io.stdout(
        `merged ${f.info.shards} shard${f.info.shards > 1 ? 's' : ''}: ${f.size} images, t ${f.t.join(',')}, b ${f.b.join(',')} → ${path.join(dir, 'features.json')}\n`,
      );
    return EXIT.ok;
  } catch (e) {
    // Missing or unfinished shards are a run not done yet (3); shards that do not fit together are a failure (1).
    const incomplete =
      e instanceof ShardError && e.missing.length > 0 && e.duplicated.length === 0 && e.mismatched.length === 0;
    if (!incomplete) throw e;
    if (flags.json)
      io.stdout(`${JSON.stringify({ dir, complete: false, missing: e.missing, message: oneLine(e.message) })}\n`);
    io.stderr(`diffssl: merge: ${oneLine(e.message)}\n`);
    return EXIT.incomplete;
  }
}
