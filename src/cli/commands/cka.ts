/**
 * `diffssl cka DATA --b 3,6,9 --t 50 -o OUT`: linear CKA between blocks at one step, or between steps
 * at one block, over the images of DATA, as cka.json and a cka.png heatmap.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeCKAHeatmap } from '../../cka/heatmap.js';
import { writeCKAJSON } from '../../cka/json.js';
import { MinibatchCKAMatrix } from '../../cka/matrix.js';
import { rowNoise } from '../../data/featureShards.js';
import { loadBatch } from '../../data/images.js';
import { extractFeatures } from '../../defaultBackbone.js';
import { InputError } from '../../errors.js';
import type { FeatureSet } from '../../features/extractFeatures.js';
import { OUTPUT_HELP, parseArgs } from '../args.js';
import { DATA_HELP, FEATURE_FLAGS, openData } from '../data.js';
import { checkOutputDir, progressBar, UsageError, type CliIO } from '../io.js';
import { checkGrid, loadModel, MODEL_FLAGS, MODEL_HELP } from '../model.js';

export const CKA_USAGE = `  diffssl cka DATA --b 3,6,9 --t 50 -o DIR [--limit N] [--seed 0] [--pool P] [--batch 500] [--debiased]
              [--labels FILE] [--json]
  diffssl cka DATA --t 10,50,150 --b 9 -o DIR …
      Linear CKA between blocks at one noise step (blocks × blocks), or between steps at one block
      (steps × steps), over the images of DATA; written to DIR as cka.json (labels and matrix) and
      cka.png (a heatmap). Exactly one of --t and --b lists several values.
`;

/** The options of `diffssl cka`. */
export const CKA_FLAGS = {
  ...MODEL_FLAGS,
  ...FEATURE_FLAGS,
  debiased: { kind: 'bool' },
} as const;

const HELP = `Usage:
${CKA_USAGE}
${DATA_HELP}

  --t LIST           noise step(s), a comma list (each in 0..T−1; see diffssl info)
  --b LIST           block(s) in the paper's numbering, a comma list (see diffssl info)
  -o, --output DIR   where cka.json and cka.png go (created if absent)
  --pool N           adaptive-average-pool maps larger than N×N before CKA
  --batch N          images per extraction and per CKA minibatch (default 500). With at most N
                     images the CKA is over all of them at once; with more, the HSIC terms are
                     averaged over batches of about N (minibatch CKA, Nguyen et al. 2021), so
                     memory stays bounded (a batch's features and one N×N Gram
                     matrix per step or block)
  --debiased         the unbiased HSIC_1 estimator (needs ≥ 4 images per batch)
  --seed S           seed of the noise (default 0); image i's noise is the one diffssl extract draws
  --labels FILE      the IDX labels file of an IDX images DATA
  --limit N          only the first N images
${OUTPUT_HELP}
${MODEL_HELP}
`;

/** `count` items split into batches of at most `batch`, as even as possible. */
function batches(count: number, batch: number): [number, number][] {
  const n = Math.ceil(count / batch);
  return Array.from({ length: n }, (_, i) => [Math.floor((i * count) / n), Math.floor(((i + 1) * count) / n)]);
}

export async function ckaCommand(args: string[], io: CliIO): Promise<number> {
  const { flags, positional, help } = parseArgs('cka', args, CKA_FLAGS, { min: 1, max: 1, names: 'DATA' });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  for (const need of ['t', 'b', 'output'] as const)
    if (flags[need] === undefined)
      throw new UsageError(`cka needs ${need === 'output' ? '-o DIR' : `--${need} LIST`}`, 'cka');
  const ts = flags.t!;
  const bs = flags.b!;
  if (ts.length > 1 && bs.length > 1)
    throw new UsageError(
      `cka: --t ${ts.join(',')} and --b ${bs.join(',')} both list several values; give several blocks at one step or several steps at one block`,
      'cka',
    );
  if (ts.length === 1 && bs.length === 1)
    throw new UsageError(
      'cka compares several blocks at one step (--b 3,6,9 --t 50) or several steps at one block (--t 10,50,150 --b 9); give a list to one of them',
      'cka',
    );
  const debiased = flags.debiased ?? false;
  const least = debiased ? 4 : 2;
  const batch = flags.batch ?? 500;
  if (batch < least)
    throw new UsageError(`cka: --batch takes at least ${least} images${debiased ? ' with --debiased' : ''}`, 'cka');
  const out = checkOutputDir('cka', flags.output!, 'the results’ folder');
  const acrossBlocks = bs.length > 1;
  const loaded = await loadModel('cka', flags, io);
  const { model } = loaded;
  let data: Awaited<ReturnType<typeof openData>> | undefined;
  try {
    checkGrid('cka', model, ts, bs);
    data = await openData('cka', positional[0], {
      channels: model.config.inChannels,
      ...(flags.labels !== undefined ? { labels: flags.labels } : {}),
      ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
      skipBad: flags['skip-bad'] === true,
      warn: io.stderr,
    });
    const n = data.source.size;
    if (n < least)
      throw new InputError(
        `cka: ${data.label} gives ${n} image${n === 1 ? '' : 's'}; CKA needs at least ${least}${debiased ? ' with --debiased' : ''}`,
      );
    const names = acrossBlocks ? bs.map((b) => `b=${b}`) : ts.map((t) => `t=${t}`);
    const acc = new MinibatchCKAMatrix({ debiased, labels: names });
    const seed = flags.seed ?? 0;
    const size = model.config.imageSize;
    const bar = progressBar(io, { quiet: flags.quiet, unit: 'images' });
    for (const [start, end] of batches(n, batch)) {
      const idx = Array.from({ length: end - start }, (_, j) => start + j);
      const { x0 } = await loadBatch(data.source, idx, new Int32Array(idx.length), { size, augment: false });
      let noise: tf.Tensor4D[] = [];
      let feats: FeatureSet | undefined;
      try {
        noise = rowNoise([x0.shape[1], x0.shape[2], x0.shape[3]], ts, 1, seed, idx);
        feats = await extractFeatures(x0, {
          model,
          t: ts,
          b: bs,
          noise,
          ...(flags.pool !== undefined ? { pool: flags.pool } : {}),
        });
        const reps = acrossBlocks ? bs.map((b) => feats!.get(ts[0], b)) : ts.map((t) => feats!.get(t, bs[0]));
        await acc.update(reps);
      } finally {
        feats?.dispose();
        tf.dispose([x0, ...noise]);
      }
      bar.update(end, n);
    }
    bar.done();
    const matrix = await acc.result();
    const fixed = acrossBlocks ? `t=${ts[0]}` : `b=${bs[0]}`;
    fs.mkdirSync(out, { recursive: true });
    const files = ['cka.json', 'cka.png'].map((f) => path.join(out, f));
    await writeCKAJSON(files[0], matrix, { rowLabels: names, debiased, examples: n });
    await writeCKAHeatmap(files[1], matrix, {
      rowLabels: names,
      title: `linear CKA at ${fixed}${debiased ? ' (debiased)' : ''}, ${n} images`,
      xLabel: acrossBlocks ? 'block' : 'noise step',
      yLabel: acrossBlocks ? 'block' : 'noise step',
    });
    const result = {
      data: data.label,
      model: loaded.label,
      images: n,
      batches: acc.batches,
      t: ts,
      b: bs,
      across: acrossBlocks ? 'b' : 't',
      labels: names,
      matrix,
      debiased,
      files,
    };
    if (flags.json) io.stdout(`${JSON.stringify(result)}\n`);
    else if (!flags.quiet)
      io.stdout(
        `linear CKA of ${names.length} ${acrossBlocks ? 'blocks' : 'steps'} at ${fixed} over ${n} images` +
          `${acc.batches > 1 ? ` (${acc.batches} batches)` : ''} → ${files.join(', ')}\n`,
      );
    return 0;
  } finally {
    data?.dispose();
    model.dispose();
  }
}
