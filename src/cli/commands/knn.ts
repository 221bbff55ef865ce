/**
 * `diffssl knn TRAIN_DIR --test TEST_DIR [--t T --b B]`: weighted kNN accuracy of one (t, b) of two
 * extracted (merged) feature directories.
 * @module
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { knnEvaluate } from '../../eval/knn.js';
import { OUTPUT_FLAGS, parseArgs, type FlagSpec } from '../args.js';
import { checkTestFeatures, choose, KNN_DEFAULTS, knnCounts, openFeatures } from '../featureDirs.js';
import { UsageError, type CliIO } from '../io.js';
import { BACKEND_HELP, MODEL_FLAGS } from '../model.js';

export const KNN_USAGE = `  diffssl knn TRAIN_DIR --test TEST_DIR [--t T --b B] [--k 20,200] [--pool 1] [--json]
      Weighted kNN accuracy (cosine similarity, exp(sim/0.07) votes, as DINO) of the test images'
      features against the training images' at one (t, b) of two merged extractions. --t and --b
      may be left out for a directory holding a single step or block.
`;

/** The options of `diffssl knn`. */
export const KNN_FLAGS = {
  test: { kind: 'string' },
  t: { kind: 'int' },
  b: { kind: 'int' },
  k: { kind: 'ints' },
  pool: { kind: 'count' },
  backend: MODEL_FLAGS.backend,
  ...OUTPUT_FLAGS,
} as const satisfies Record<string, FlagSpec>;

const HELP = `Usage:
${KNN_USAGE}
  --test DIR         the test images' features (a merged diffssl extract directory)
  --t T              the noise step to evaluate (needed when TRAIN_DIR holds several)
  --b B              the block to evaluate (needed when TRAIN_DIR holds several)
  --k LIST           neighbour counts (default 20,200, the paper's Table 9)
  --pool P           adaptive-average-pool each map to P×P before kNN (default 1; sweep's --knn-pool)
${BACKEND_HELP}
  --quiet            no summary
  --json             one JSON object on stdout
`;

export async function knnCommand(args: string[], io: CliIO): Promise<number> {
  const { flags, positional, help } = parseArgs('knn', args, KNN_FLAGS, { min: 1, max: 1, names: 'TRAIN_DIR' });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  if (flags.test === undefined) throw new UsageError('knn needs --test DIR, the test images’ features', 'knn');
  const ks = knnCounts('knn', flags.k);
  const pool = flags.pool ?? KNN_DEFAULTS.pool;
  const train = await openFeatures('knn', path.resolve(positional[0]), 'training');
  const test = await openFeatures('knn', path.resolve(flags.test), 'test');
  const t = choose('knn', flags.t, train.t, 't', train.dir);
  const b = choose('knn', flags.b, train.b, 'b', train.dir);
  checkTestFeatures('knn', train, test, [{ t, b }]);
  await io.backend?.(flags.backend);
  const [a, c] = [await train.read(t, b), await test.read(t, b)];
  let scores: ReturnType<typeof knnEvaluate>;
  try {
    scores = knnEvaluate({ features: a, labels: train.labels }, { features: c, labels: test.labels }, { k: ks, pool });
  } finally {
    tf.dispose([a, c]);
  }
  const result = {
    train: { dir: train.dir, images: train.size },
    test: { dir: test.dir, images: test.size },
    t,
    b,
    pool,
    results: scores.map((s) => ({ k: s.k, top1: s.top1, top5: s.top5 })),
  };
  if (flags.json) io.stdout(`${JSON.stringify(result)}\n`);
  else if (!flags.quiet)
    io.stdout(
      `kNN at t=${t}, b=${b} (pool ${pool}), ${train.size} training and ${test.size} test images: ` +
        `${scores.map((s) => `k=${s.k} top-1 ${(s.top1 * 100).toFixed(1)}% top-5 ${(s.top5 * 100).toFixed(1)}%`).join('; ')}\n`,
    );
  return 0;
}
