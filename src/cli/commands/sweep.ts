/**
 * `diffssl sweep TRAIN_DIR --test TEST_DIR -o OUT`: linear-probe and kNN accuracy for every (t, b) of two
 * extracted (merged) feature directories, as CSV, JSON and heatmap PNGs.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeCKAHeatmap } from '../../cka/heatmap.js';
import { knnEvaluate } from '../../eval/knn.js';
import { linearProbe } from '../../eval/linearProbe.js';
import { writeBytesAtomic } from '../../io/atomicFile.js';
import { parseArgs } from '../args.js';
import { checkTestFeatures, openFeatures } from '../featureDirs.js';
import { CommandFailure, progressBar, UsageError, type CliIO } from '../io.js';

export const SWEEP_USAGE = `  diffssl sweep TRAIN_DIR --test TEST_DIR -o OUT [--k 20,200] [--knn-pool 1] [--probe-steps 300] [--json]
      Linear-probe and kNN accuracy of every (t, b) of two merged extractions (diffssl extract of the
      training and of the test images, same t, b and model), written to OUT as sweep.csv, sweep.json,
      probe.png and knn.png (heatmaps, rows t, columns b).
`;

const SPEC = {
  test: { kind: 'string' },
  output: { kind: 'string', short: 'o' },
  k: { kind: 'ints' },
  'knn-pool': { kind: 'count' },
  'probe-steps': { kind: 'count' },
  backend: { kind: 'string' },
  quiet: { kind: 'bool' },
  json: { kind: 'bool' },
} as const;

const HELP = `Usage:
${SWEEP_USAGE}
  --test DIR         the test images' features (a merged diffssl extract directory)
  -o, --output DIR   where the results go (created if absent)
  --k LIST           kNN neighbour counts (default 20,200, the paper's Table 9)
  --knn-pool P       adaptive-average-pool each map to P×P before kNN (default 1)
  --probe-steps N    full-batch Adam steps of the linear probe (default 300); its L2 penalty is
                     chosen from 1e-4, 1e-3, 1e-2 on a held-out tenth of the training rows
  --backend NAME     tfjs backend (tensorflow, wasm, cpu, …); default: the fastest present
  --quiet            no progress bar and no summary
  --json             one JSON object on stdout
`;

export async function sweepCommand(args: string[], io: CliIO): Promise<number> {
  const { flags, positional, help } = parseArgs('sweep', args, SPEC, { min: 1, max: 1, names: 'TRAIN_DIR' });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  if (flags.test === undefined) throw new UsageError('sweep needs --test DIR, the test images’ features', 'sweep');
  if (flags.output === undefined) throw new UsageError('sweep needs -o DIR for the results', 'sweep');
  const ks = flags.k ?? [20, 200];
  if (ks.some((k) => k < 1)) throw new UsageError('sweep: --k takes neighbour counts ≥ 1', 'sweep');
  const out = path.resolve(flags.output);
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory())
    throw new CommandFailure(`sweep: ${flags.output} is a file; -o names a folder for the results`);
  const train = await openFeatures('sweep', path.resolve(positional[0]), 'training');
  const test = await openFeatures('sweep', path.resolve(flags.test), 'test');
  checkTestFeatures(
    'sweep',
    train,
    test,
    train.t.flatMap((t) => train.b.map((b) => ({ t, b }))),
  );
  await io.backend?.(flags.backend);
  fs.mkdirSync(out, { recursive: true });
  const ytr = train.labels;
  const yte = test.labels;
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
          const p = await linearProbe(xa, ytr, xc, yte, { steps: flags['probe-steps'] ?? 300 });
          const knn = knnEvaluate(
            { features: a, labels: ytr },
            { features: c, labels: yte },
            { k: ks, pool: flags['knn-pool'] ?? 1 },
          );
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
  const result = {
    train: { dir: train.dir, images: train.size },
    test: { dir: test.dir, images: test.size },
    t: train.t,
    b: train.b,
    k: ks,
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
  return 0;
}
