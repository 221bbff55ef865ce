/**
 * `diffssl sweep TRAIN --test TEST -o OUT`: linear-probe and kNN accuracy for every (t, b), as CSV, JSON and
 * heatmap PNGs (the paper's Figures 3 and 4), of two merged feature directories, or of two DATA that it
 * first extracts into OUT/features/ in one pass each (resumable and sharded as `extract`).
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeCKAHeatmap } from '../../cka/heatmap.js';
import {
  mergeShards,
  pendingShards,
  shardCountOf,
  type Shard,
  type ShardedFeatures,
} from '../../data/featureShards.js';
import { knnEvaluate } from '../../eval/knn.js';
import { linearProbe } from '../../eval/linearProbe.js';
import { writeBytesAtomic } from '../../io/atomicFile.js';
import { OUTPUT_HELP, parseArgs, type Flags } from '../args.js';
import { DATA_HELP, isNamedDataset, openData } from '../data.js';
import { chooseShard, EXTRACTION_FLAGS, EXTRACTION_HELP, extractShard, shardSummary } from '../extraction.js';
import { checkTestFeatures, isFeatureDir, KNN_DEFAULTS, knnCounts, openFeatures } from '../featureDirs.js';
import { checkOutputDir, EXIT, progressBar, UsageError, type CliIO } from '../io.js';
import { BACKEND_HELP, checkGrid, loadModel, MODEL_FILE_HELP, modelIdentity } from '../model.js';

/** The usage lines of `diffssl sweep`, in the top-level help. */
export const SWEEP_USAGE = `  diffssl sweep TRAIN_DIR --test TEST_DIR -o OUT [--k 20,200] [--knn-pool 1] [--probe-steps 300] [--json]
  diffssl sweep DATA --test DATA --t 90,150 --b 19,24 -o OUT [--pool 2] [--ensemble 1] [--limit N]
                [--test-limit N] [--shard k/n | --shards n] [the other options of extract]
      Linear-probe and kNN accuracy of every (t, b), written to OUT as sweep.csv, sweep.json,
      probe.png and knn.png (heatmaps, rows t, columns b). Of two merged extractions (diffssl extract
      of the training and of the test images, same t, b and model), or of two DATA, each extracted
      in one pass into OUT/features/train and OUT/features/test (resumable and sharded as extract).
      A shard that finds others still pending exits 3; the last one to finish runs the probes.
`;

/** The options of `diffssl sweep`. */
export const SWEEP_FLAGS = {
  ...EXTRACTION_FLAGS,
  test: { kind: 'string' },
  'test-labels': { kind: 'string' },
  'test-limit': { kind: 'count' },
  k: { kind: 'ints' },
  'knn-pool': { kind: 'count' },
  'probe-steps': { kind: 'count' },
} as const;

type SweepFlags = Flags<typeof SWEEP_FLAGS>;

/** The flags that only make sense when sweep extracts DATA itself. */
const DATA_ONLY = [
  't',
  'b',
  'pool',
  'batch',
  'seed',
  'ensemble',
  'shard',
  'shards',
  'f16',
  'labels',
  'test-labels',
  'limit',
  'test-limit',
  'model',
  'flags',
] as const satisfies readonly (keyof typeof SWEEP_FLAGS)[];

const HELP = `Usage:
${SWEEP_USAGE}
  TRAIN_DIR and TEST_DIR are merged diffssl extract directories (their index or a shard's manifest
  tells them from DATA).

${DATA_HELP}

  --test DIR|DATA    the test images' features, or the test images (the same kind as the first
                     argument)
  -o, --output DIR   where the results go (created if absent); with DATA also the features:
                     OUT/features/train and OUT/features/test, one extract directory each
  --k LIST           kNN neighbour counts (default 20,200, the paper's Table 9)
  --knn-pool P       adaptive-average-pool each map to P×P before kNN (default 1; knn's --pool)
  --probe-steps N    full-batch Adam steps of the linear probe (default 300); its L2 penalty is
                     chosen from 1e-4, 1e-3, 1e-2 on a held-out tenth of the training rows
${OUTPUT_HELP}
${BACKEND_HELP}

  With DATA (as diffssl extract; the training and the test images are split into the same shards):
  --t LIST           noise steps, a comma list (each in 0..T−1; see diffssl info)
  --b LIST           blocks in the paper's numbering, a comma list (see diffssl info)
${EXTRACTION_HELP}
  --labels FILE      the IDX labels file of an IDX images training DATA
  --test-labels FILE the IDX labels file of an IDX images test DATA
  --limit N          only the first N images of each set (of the training set when --test-limit is given)
  --test-limit N     only the first N test images (default: --limit)
${MODEL_FILE_HELP}

  Exit status 3 when this shard is complete but others are still pending (named on stderr): the
  last shard to finish merges the features and runs the probes; so does a re-run of the sweep
  without --shard or --shards, which first extracts whatever shards are still missing.
`;

/** A DATA argument that is not a feature directory: a named dataset or a path that exists. */
const isData = (spec: string) => !isFeatureDir(spec) && (fs.existsSync(spec) || isNamedDataset(spec));

/** What a `sweep` command line asks for, checked as far as it can be without reading TRAIN and TEST. */
export interface SweepRequest {
  flags: SweepFlags;
  /** The first argument: a feature directory or DATA. */
  train: string;
  /** --test: a feature directory or DATA. */
  test: string;
  /** The results' folder, resolved. */
  out: string;
  /** kNN neighbour counts. */
  ks: number[];
}

/**
 * Parses a `sweep` command line (without the command's name).
 * @returns undefined for `--help`.
 * @throws UsageError for an unknown or malformed flag, or a missing argument, --test or -o.
 */
export function parseSweep(args: readonly string[]): SweepRequest | undefined {
  const { flags, positional, help } = parseArgs('sweep', args, SWEEP_FLAGS, {
    min: 1,
    max: 1,
    names: 'TRAIN_DIR or DATA',
  });
  if (help) return undefined;
  if (flags.test === undefined)
    throw new UsageError('sweep needs --test DIR or --test DATA, the test images’ features or images', 'sweep');
  if (flags.output === undefined) throw new UsageError('sweep needs -o DIR for the results', 'sweep');
  const ks = knnCounts('sweep', flags.k);
  return { flags, train: positional[0], test: flags.test, out: path.resolve(flags.output), ks };
}

/** Runs `diffssl sweep` on its arguments; returns the exit status. */
export async function sweepCommand(args: string[], io: CliIO): Promise<number> {
  const request = parseSweep(args);
  if (!request) {
    io.stdout(HELP);
    return 0;
  }
  const { flags, ks, train: trainArg, test: testArg } = request;
  const out = checkOutputDir('sweep', flags.output!, 'the results’ folder');

  let pair: Extracted;
  if (isFeatureDir(trainArg)) {
    const given = DATA_ONLY.find((f) => flags[f] !== undefined);
    if (given !== undefined)
      throw new UsageError(
        `sweep: --${given} goes with DATA; ${trainArg} is a feature directory, which holds its own settings`,
        'sweep',
      );
    if (isData(testArg))
      throw new UsageError(
        `sweep: ${trainArg} is a feature directory but --test ${testArg} is not; give two feature directories (diffssl extract) or two DATA`,
        'sweep',
      );
    const train = await openFeatures('sweep', path.resolve(trainArg), 'training');
    const test = await openFeatures('sweep', path.resolve(testArg), 'test');
    await io.backend?.(flags.backend);
    pair = { train, test };
  } else {
    if (isFeatureDir(testArg))
      throw new UsageError(
        `sweep: --test ${testArg} is a feature directory but ${trainArg} is not; give two feature directories (diffssl extract) or two DATA`,
        'sweep',
      );
    for (const need of ['t', 'b'] as const)
      if (flags[need] === undefined)
        throw new UsageError(
          `sweep needs --${need} LIST to extract DATA (${trainArg} is not a feature directory)`,
          'sweep',
        );
    const extracted = await extractBoth(flags, trainArg, testArg, out, io);
    if ('pending' in extracted) return EXIT.incomplete;
    pair = extracted;
  }
  return probeAndWrite(pair, flags, ks, out, io);
}

/** The training and test features, and (when sweep extracted them) what their images were. */
interface Extracted {
  train: ShardedFeatures;
  test: ShardedFeatures;
  data?: { train: string; test: string };
}

/**
 * Extracts this process's shard of the training and then of the test DATA into OUT/features/; when every
 * shard of both is complete, merges them. Otherwise prints what is pending and returns it.
 */
async function extractBoth(
  flags: SweepFlags,
  trainArg: string,
  testArg: string,
  out: string,
  io: CliIO,
): Promise<Extracted | { pending: true }> {
  const dirs = { train: path.join(out, 'features', 'train'), test: path.join(out, 'features', 'test') };
  const shard = chooseShard('sweep', flags, io.env ?? {});
  // Without a shard, a re-run over a sharded run's directories runs all its shards (finished ones are no-ops).
  const count = shard ? undefined : ((await shardCountOf(dirs.train)) ?? (await shardCountOf(dirs.test)));
  const shards: (Shard | undefined)[] = shard
    ? [shard]
    : count !== undefined && count > 1
      ? Array.from({ length: count }, (_, index) => ({ index, count }))
      : [undefined];
  const loaded = await loadModel('sweep', flags, io);
  const { model } = loaded;
  const labels = { train: '', test: '' };
  const merged: { train?: ShardedFeatures; test?: ShardedFeatures } = {};
  const lines: string[] = [];
  let ran: Shard = { index: 0, count: 1 };
  try {
    checkGrid('sweep', model, flags.t!, flags.b!);
    const modelHash = await modelIdentity(loaded);
    for (const [what, spec, labelsFile, limit] of [
      ['train', trainArg, flags.labels, flags.limit],
      ['test', testArg, flags['test-labels'], flags['test-limit'] ?? flags.limit],
    ] as const) {
      const data = await openData('sweep', spec, {
        channels: model.config.inChannels,
        ...(labelsFile !== undefined ? { labels: labelsFile } : {}),
        ...(limit !== undefined ? { limit } : {}),
        skipBad: flags['skip-bad'] === true,
        warn: io.stderr,
      });
      try {
        labels[what] = data.label;
        for (const s of shards) {
          const run = await extractShard(io, { model, modelHash, data, dir: dirs[what], flags, shard: s });
          ran = run.result.shard;
          if (run.merged) merged[what] = run.merged;
          lines.push(`${what} ${shardSummary(run.result, data.label)}`);
        }
      } finally {
        data.dispose();
      }
    }
  } finally {
    model.dispose();
  }
  if (!flags.quiet && !flags.json) io.stdout(lines.map((l) => `${l}\n`).join(''));
  // Other shards may have finished while this one ran: what is pending is read again, after both extractions.
  const pending = {
    train: await pendingShards(dirs.train, ran.count),
    test: await pendingShards(dirs.test, ran.count),
  };
  const either = [...new Set([...pending.train, ...pending.test])].sort((a, b) => a - b);
  if (either.length) {
    const message =
      `sweep: shard ${ran.index}/${ran.count} is complete; shard${either.length > 1 ? 's' : ''} ${either.join(', ')} of ${ran.count} ` +
      `still pending (training: ${pending.train.join(', ') || 'none'}; test: ${pending.test.join(', ') || 'none'}); ` +
      'the last shard to finish runs the probes, as does a re-run of this sweep without --shard or --shards';
    if (flags.json) io.stdout(`${JSON.stringify({ complete: false, shard: ran, pending, features: dirs, message })}\n`);
    io.stderr(`diffssl: ${message}\n`);
    return { pending: true };
  }
  return {
    train: merged.train ?? (await mergeShards(dirs.train)),
    test: merged.test ?? (await mergeShards(dirs.test)),
    data: labels,
  };
}

/** Runs the linear probe and kNN for every (t, b) and writes sweep.csv, sweep.json, probe.png and knn.png. */
async function probeAndWrite(
  { train, test, data }: Extracted,
  flags: SweepFlags,
  ks: number[],
  out: string,
  io: CliIO,
): Promise<number> {
  checkTestFeatures(
    'sweep',
    train,
    test,
    train.t.flatMap((t) => train.b.map((b) => ({ t, b }))),
  );
  fs.mkdirSync(out, { recursive: true });
  const ytr = train.labels;
  const yte = test.labels;
  const probeSteps = flags['probe-steps'] ?? 300;
  const knnPool = flags['knn-pool'] ?? KNN_DEFAULTS.pool;
  const rows: {
    t: number;
    b: number;
    probe: number;
    probeTrain: number;
    weightDecay: number;
    knn: Record<string, number>;
  }[] = [];
  const bar = progressBar(io, { quiet: flags.quiet, unit: 'cells' });
  const total = train.t.length * train.b.length;
  for (const t of train.t)
    for (const b of train.b) {
      const [a, c] = [await train.read(t, b), await test.read(t, b)];
      try {
        const [xa, xc] = [
          tf.reshape(a, [a.shape[0], -1]) as tf.Tensor2D,
          tf.reshape(c, [c.shape[0], -1]) as tf.Tensor2D,
        ];
        try {
          const p = await linearProbe(xa, ytr, xc, yte, { steps: probeSteps });
          const knn = knnEvaluate({ features: a, labels: ytr }, { features: c, labels: yte }, { k: ks, pool: knnPool });
          rows.push({
            t,
            b,
            probe: p.accuracy,
            probeTrain: p.trainAccuracy,
            weightDecay: p.weightDecay,
            knn: Object.fromEntries(knn.map((s) => [`k${s.k}`, s.top1])),
          });
        } finally {
          tf.dispose([xa, xc]);
        }
      } finally {
        tf.dispose([a, c]);
      }
      bar.update(rows.length, total);
    }
  bar.done();
  const header = ['t', 'b', 'probe_top1', 'probe_train_top1', 'probe_weight_decay', ...ks.map((k) => `knn${k}_top1`)];
  const csv = [
    header.join(','),
    ...rows.map((r) => [r.t, r.b, r.probe, r.probeTrain, r.weightDecay, ...ks.map((k) => r.knn[`k${k}`])].join(',')),
  ].join('\n');
  const grid = (v: (r: (typeof rows)[number]) => number) =>
    train.t.map((t) => train.b.map((b) => v(rows.find((r) => r.t === t && r.b === b)!)));
  const labels = {
    rowLabels: train.t.map((t) => `t=${t}`),
    colLabels: train.b.map((b) => `b=${b}`),
    xLabel: 'block',
    yLabel: 'noise step',
    min: 0,
    max: 1,
  };
  const best = rows.reduce((m, r) => (r.probe > m.probe ? r : m), rows[0]);
  const side = (f: ShardedFeatures, what: 'train' | 'test') => ({
    dir: f.dir,
    ...(data ? { data: data[what] } : {}),
    images: f.size,
    pool: f.info.pool,
    seed: f.info.seed,
    ensemble: f.info.ensemble,
  });
  const result = {
    train: side(train, 'train'),
    test: side(test, 'test'),
    model: train.info.modelHash,
    // The noise draws averaged per training image: sweeps at several --ensemble measure its probe gain.
    ensemble: train.info.ensemble,
    t: train.t,
    b: train.b,
    k: ks,
    knnPool,
    probeSteps,
    results: rows,
    best: { t: best.t, b: best.b, probe: best.probe },
    files: ['sweep.csv', 'sweep.json', 'probe.png', 'knn.png'].map((f) => path.join(out, f)),
  };
  await writeBytesAtomic(path.join(out, 'sweep.csv'), `${csv}\n`);
  await writeBytesAtomic(path.join(out, 'sweep.json'), JSON.stringify(result, null, 1));
  await writeCKAHeatmap(
    path.join(out, 'probe.png'),
    grid((r) => r.probe),
    { ...labels, title: 'linear probe top-1' },
  );
  await writeCKAHeatmap(
    path.join(out, 'knn.png'),
    grid((r) => r.knn[`k${ks[0]}`]),
    { ...labels, title: `kNN (k=${ks[0]}) top-1` },
  );
  if (flags.json) io.stdout(`${JSON.stringify(result)}\n`);
  else if (!flags.quiet)
    io.stdout(
      `${rows.length} (t, b) pairs, ${train.size} training and ${test.size} test images; best linear probe ` +
        `${(best.probe * 100).toFixed(1)}% at t=${best.t}, b=${best.b} → ${out}/sweep.csv, sweep.json, probe.png, knn.png\n`,
    );
  return EXIT.ok;
}
