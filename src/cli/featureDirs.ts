/**
 * Reading merged `diffssl extract` directories, shared by the commands that evaluate or train on them
 * (`sweep`, `knn`, `train`, `eval`).
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { SHARD_MANIFEST, ShardedFeatures, SHARDS_INDEX } from '../data/featureShards.js';
import { InputError } from '../errors.js';
import { CommandFailure, UsageError } from './io.js';

/**
 * Opens a merged feature directory; `what` names it in messages ("training", "test").
 * @throws CommandFailure for a path that does not exist, a directory with shards not merged yet, or one
 *   that is no diffssl extract directory at all, saying what to run.
 */
export async function openFeatures(command: string, dir: string, what: string): Promise<ShardedFeatures> {
  if (!fs.existsSync(dir))
    throw new CommandFailure(
      `${command}: the ${what} features ${dir} do not exist; give the -o DIR of a diffssl extract run`,
    );
  if (!fs.existsSync(path.join(dir, SHARDS_INDEX)))
    throw new CommandFailure(
      isFeatureDir(dir)
        ? `${command}: the ${what} features ${dir} are not merged yet (no ${SHARDS_INDEX}); run diffssl merge ${dir}, which names any shards still missing`
        : `${command}: ${dir} is not a diffssl extract directory (no ${SHARDS_INDEX}); give the -o DIR of a diffssl extract run`,
    );
  return ShardedFeatures.open(path.resolve(dir));
}

/**
 * Checks that `train` and `test` come from the same model and that `test` holds every (t, b) of `pairs`.
 * @throws InputError naming the (t, b) the test features lack.
 */
export function checkTestFeatures(
  command: string,
  train: ShardedFeatures,
  test: ShardedFeatures,
  pairs: readonly { t: number; b: number }[],
): void {
  if (train.info.modelHash !== test.info.modelHash)
    throw new InputError(
      `${command}: the training and test features were extracted with different models; extract both with the same --model and --flags`,
    );
  const missing = pairs
    .filter(({ t, b }) => !test.t.includes(t) || !test.b.includes(b))
    .map(({ t, b }) => `t=${t} b=${b}`);
  if (missing.length)
    throw new InputError(
      `${command}: the test features lack ${missing.join(', ')}; extract them with the same --t and --b`,
    );
}

/** The kNN settings `knn` and `sweep` share when not given: the paper's neighbour counts (Table 9), no pooling. */
export const KNN_DEFAULTS = { k: [20, 200], pool: 1 } as const;

/**
 * The neighbour counts of `--k`, default {@link KNN_DEFAULTS}.
 * @throws UsageError for a count of 0.
 */
export function knnCounts(command: string, k: readonly number[] | undefined): number[] {
  const ks = [...(k ?? KNN_DEFAULTS.k)];
  if (ks.some((v) => v < 1))
    throw new UsageError(`${command}: --k takes neighbour counts ≥ 1, got ${ks.join(',')}`, command);
  return ks;
}

/**
 * The step or block to use: the flag's (which the directory must hold), else the directory's only one.
 * @throws UsageError when the flag is left out and the directory holds several; InputError when it holds
 *   not the one asked for.
 */
export function choose(
  command: string,
  flag: number | undefined,
  have: readonly number[],
  name: 't' | 'b',
  dir: string,
): number {
  const what = name === 't' ? 'noise step' : 'block';
  if (flag === undefined) {
    if (have.length === 1) return have[0];
    throw new UsageError(
      `${command}: ${dir} holds the ${what}s ${name}=${have.join(',')}; choose one with --${name}`,
      command,
    );
  }
  if (!have.includes(flag))
    throw new InputError(`${command}: ${dir} has no ${what} ${name}=${flag}; it holds ${name}=${have.join(',')}`);
  return flag;
}

/**
 * Whether `dir` is a `diffssl extract` directory (its index or a shard's manifest is there), as opposed to
 * DATA such as an image folder; false for a path that does not exist.
 */
export function isFeatureDir(dir: string): boolean {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return false;
  }
  return (
    names.includes(SHARDS_INDEX) ||
    names.some((n) => n.startsWith('shard-') && fs.existsSync(path.join(dir, n, SHARD_MANIFEST)))
  );
}
