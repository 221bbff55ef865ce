// The semi-supervised table of the default backbone (the paper's Table 5, scaled down): with 1 % and
// 10 % of the shipped Fashion-MNIST training labels (class-balanced), a linear head on block b's
// 4×4-pooled map at step t, trained (a) on the frozen backbone and (b) with the U-Net fine-tuned
// through block b at a lower learning rate. Each family's setting (the frozen head's steps, the U-Net's
// lr) is chosen on a validation set cut from the shipped training images; top-1 on the shipped test
// subset. The 1 % row is repeated over several labelled subsets.
//   npm run build && node scripts/finetune-benchmark.mjs [--t 10] [--b 8] [--fractions 0.01,0.1]
//   [--steps 75,155] [--frozen-steps 1,4] [--tuned-steps 4] [--head-lr 1e-3] [--unet-lrs 3e-5,1e-4] [--subset-seeds 0,1,2]
//   [--val-per-class 100] [--batch 32] [--measure] [--report]
// --measure times one fine-tuning step, one frozen step and the test pass, and exits; --report only
// writes the markdown from an existing --out JSON.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  balancedSubset,
  evaluate,
  fineTune,
  FineTuneModel,
  loadDefaultBackbone,
  loadFashionMNIST,
  MLPHead,
  tensorDataset,
  trainStep,
  useBestBackend,
  withBatchSeeds,
} from '../dist/index.js';

const { values: a } = parseArgs({
  options: {
    t: { type: 'string', default: '10' },
    b: { type: 'string', default: '8' },
    pool: { type: 'string', default: '4' },
    fractions: { type: 'string', default: '0.01,0.1' },
    // Updates per fraction (rounded up to whole epochs), the same for every run of that fraction.
    steps: { type: 'string', default: '75,155' },
    'head-lr': { type: 'string', default: '1e-3' },
    'unet-lrs': { type: 'string', default: '3e-5,1e-4' },
    // The frozen head is cheaper per step: it may also train this many times longer (chosen on validation).
    'frozen-steps': { type: 'string', default: '1,4' },
    // Longer fine-tuning runs, at the U-Net lr that did best on validation at 1×.
    'tuned-steps': { type: 'string', default: '4' },
    // Labelled subsets of the first fraction (the rarest labels, the noisiest row); the others use the first seed.
    'subset-seeds': { type: 'string', default: '0,1,2' },
    'val-per-class': { type: 'string', default: '100' },
    batch: { type: 'string', default: '32' },
    'eval-batch': { type: 'string', default: '250' },
    seed: { type: 'string', default: '0' },
    threads: { type: 'string', default: '2' },
    measure: { type: 'boolean', default: false },
    report: { type: 'boolean', default: false },
    out: { type: 'string', default: 'models/fashion-mnist-adm/finetune.json' },
  },
});
await useBestBackend({ force: 'wasm', threads: Number(a.threads) });
const log = (s) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const t = Number(a.t);
const b = Number(a.b);
const pool = Number(a.pool);
const batchSize = Number(a.batch);
const evalBatchSize = Number(a['eval-batch']);
const seed = Number(a.seed);
const headLr = Number(a['head-lr']);
const unetLrs = a['unet-lrs'].split(',').map(Number);
const fractions = a.fractions.split(',').map(Number);
const stepsFor = a.steps.split(',').map(Number);
const frozenFactors = a['frozen-steps'].split(',').map(Number);
const tunedFactors = a['tuned-steps'].split(',').filter(Boolean).map(Number);
const subsetSeeds = a['subset-seeds'].split(',').map(Number);
const valPerClass = Number(a['val-per-class']);
const VALIDATION_SEED = 1000;

const train = await loadFashionMNIST({ split: 'train' });
const test = await loadFashionMNIST({ split: 'test' });
const testData = tensorDataset(test.images, test.labels, 10);

/** A fresh backbone and head (the same initial weights every run). */
async function fresh() {
  const unet = await loadDefaultBackbone({ residency: 'resident' });
  const head = new MLPHead({ channels: unet.block(b).channels, pool, classes: 10, seed });
  return { unet, head };
}
const partsFor = (unetLr) =>
  unetLr === undefined ? { head: { lr: headLr } } : { head: { lr: headLr }, unet: { lr: unetLr } };

if (a.measure) {
  const idx = balancedSubset(train.labels, 0.1, seed);
  const data = withBatchSeeds(
    tensorDataset(
      tf.gather(train.images, Array.from(idx)),
      Array.from(idx, (i) => train.labels[i]),
    ),
  );
  for (const unetLr of [undefined, 3e-5]) {
    const { unet, head } = await fresh();
    const model = new FineTuneModel(unet, head, { t, b, parts: partsFor(unetLr) });
    const opt = model.optimizer();
    const times = [];
    for (let s = 0; s < 4; s++) {
      const batch = await data.batch(
        Array.from({ length: batchSize }, (_, i) => s * batchSize + i),
        {
          training: true,
          seed: s,
          epoch: 0,
          step: s,
        },
      );
      const t0 = performance.now();
      await trainStep(model, batch, opt);
      times.push((performance.now() - t0) / 1000);
      tf.dispose(batch.input);
    }
    log(
      `${unetLr === undefined ? 'frozen' : 'fine-tune'} step (batch ${batchSize}, to b = ${b}): ${times.map((x) => x.toFixed(2)).join(', ')} s`,
    );
    const t0 = performance.now();
    const r = await evaluate(model, withBatchSeeds(testData), { batchSize: evalBatchSize, seed });
    log(
      `${unetLr === undefined ? 'frozen' : 'fine-tune'} test pass (${r.examples} images): ${((performance.now() - t0) / 1000).toFixed(1)} s, top-1 ${r.top1}`,
    );
    opt.dispose();
    unet.dispose();
    head.dispose();
  }
  process.exit(0);
}

const result = a.report
  ? JSON.parse(fs.readFileSync(a.out, 'utf8'))
  : {
      t,
      b,
      pool,
      batchSize,
      seed,
      headLr,
      unetLrs,
      optimizer: 'adam',
      threads: Number(a.threads),
      loadAverage: os.loadavg()[0],
      rows: [],
    };
const started = performance.now();
const outMd = a.out.replace(/\.json$/, '.md');
// Hyperparameters are chosen on a class-balanced validation set cut from the shipped training images
// (never on the test subset); the labelled subsets are drawn from the rest.
const valIdx = balancedSubset(train.labels, { perClass: valPerClass }, VALIDATION_SEED);
const inVal = new Set(valIdx);
const candidates = Array.from({ length: train.labels.length }, (_, i) => i).filter((i) => !inVal.has(i));
const valData = tensorDataset(
  tf.gather(train.images, Array.from(valIdx)),
  Array.from(valIdx, (i) => train.labels[i]),
  10,
);
if (!a.report) {
  result.validation = { images: valIdx.length, perClass: valPerClass, seed: VALIDATION_SEED };
  result.frozenStepFactors = frozenFactors;
  result.tunedStepFactors = tunedFactors;
}
const score = async (model, data) =>
  (await evaluate(model, withBatchSeeds(data), { batchSize: evalBatchSize, seed })).top1;
for (const [fi, fraction] of (a.report ? [] : fractions).entries()) {
  for (const subsetSeed of fi === 0 ? subsetSeeds : subsetSeeds.slice(0, 1)) {
    const perClass = Math.round((fraction * train.labels.length) / 10);
    const idx = Int32Array.from(
      balancedSubset(
        candidates.map((i) => train.labels[i]),
        { perClass },
        subsetSeed,
      ),
      (j) => candidates[j],
    );
    const x = tf.gather(train.images, Array.from(idx));
    const data = tensorDataset(
      x,
      Array.from(idx, (i) => train.labels[i]),
      10,
    );
    const perEpoch = Math.floor(idx.length / batchSize);
    const epochs = Math.ceil(stepsFor[fi] / perEpoch);
    const row = { fraction, subsetSeed, labels: idx.length, epochs, steps: epochs * perEpoch, runs: [] };
    const runConfig = async (c) => {
      const { unet, head } = await fresh();
      const t0 = performance.now();
      const r = await fineTune(unet, head, data, {
        t,
        b,
        parts: partsFor(c.unetLr ?? undefined),
        epochs: c.epochs,
        batchSize,
        seed,
      });
      const trainS = (performance.now() - t0) / 1000;
      const last = r.history.at(-1);
      const run = {
        unetLr: c.unetLr,
        steps: c.epochs * perEpoch,
        valTop1: await score(r.model, valData),
        top1: await score(r.model, testData),
        trainLoss: last.trainLoss,
        trainTop1: last.trainTop1,
        trainS,
      };
      row.runs.push(run);
      log(
        `${(100 * fraction).toFixed(0)} % labels (${idx.length}, subset seed ${subsetSeed}), ` +
          `${c.unetLr === null ? 'frozen' : `unet lr ${c.unetLr}`}, ${run.steps} steps: val ${(100 * run.valTop1).toFixed(2)} %, ` +
          `test ${(100 * run.top1).toFixed(2)} %, train loss ${run.trainLoss.toFixed(3)}, ${trainS.toFixed(0)} s`,
      );
      unet.dispose();
      head.dispose();
    };
    for (const f of frozenFactors) await runConfig({ unetLr: null, epochs: epochs * f });
    for (const lr of unetLrs) await runConfig({ unetLr: lr, epochs });
    const byVal = (rs) => [...rs].sort((p, q) => q.valTop1 - p.valTop1)[0];
    const lrAt1 = byVal(row.runs.filter((r) => r.unetLr !== null))?.unetLr;
    if (lrAt1 !== undefined) for (const f of tunedFactors) await runConfig({ unetLr: lrAt1, epochs: epochs * f });
    x.dispose();
    const frozen = byVal(row.runs.filter((r) => r.unetLr === null));
    const tuned = byVal(row.runs.filter((r) => r.unetLr !== null));
    row.frozen = { steps: frozen.steps, valTop1: frozen.valTop1, top1: frozen.top1 };
    row.fineTuned = tuned
      ? { unetLr: tuned.unetLr, steps: tuned.steps, valTop1: tuned.valTop1, top1: tuned.top1 }
      : null;
    result.rows.push(row);
    result.wallS = (performance.now() - started) / 1000;
    fs.writeFileSync(a.out, JSON.stringify(result, null, 1));
  }
}

const pct = (v) => (v === null || v === undefined ? '–' : (100 * v).toFixed(1));
{
  const { t, b, pool, batchSize, seed, headLr, unetLrs, validation, frozenStepFactors, tunedStepFactors } = result;
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const byFraction = [...new Set(result.rows.map((r) => r.fraction))].map((f) =>
    result.rows.filter((r) => r.fraction === f),
  );
  const md = [
    `Semi-supervised fine-tuning of the default backbone (\`scripts/finetune-benchmark.mjs\`): a linear head on block ${b}'s`,
    `map at t = ${t}, adaptive-average-pooled to ${pool}×${pool} (\`MLPHead { pool: ${pool} }\`), trained on a class-balanced`,
    `subset of the shipped training labels (\`balancedSubset\`) with Adam (head lr ${headLr}, batch ${batchSize}, seed ${seed}),`,
    `(a) on the frozen backbone, (b) with the U-Net fine-tuned through block ${b} (\`fineTune\`, U-Net lr ${unetLrs.join(' or ')}).`,
    `Each family's setting is chosen on a validation set of ${validation.images} shipped training images (${validation.perClass} per class,`,
    `\`balancedSubset\` seed ${validation.seed}), from which no labelled subset draws: for the frozen head its number of steps`,
    `(${frozenStepFactors.map((f) => `${f}×`).join(' or ')} the fine-tuning steps, since a frozen step costs a quarter to a third of a fine-tuning one), for`,
    `fine-tuning the U-Net's lr at 1× and then, at the better lr, the steps (${['1×', ...(tunedStepFactors ?? []).map((f) => `${f}×`)].join(' or ')}).`,
    `The test subset (2,000 images, one seeded noise draw) only scores the chosen runs.`,
    '',
    '| labels | subsets | frozen: test top-1 % | fine-tuned: test top-1 % | difference (points) |',
    '|---|---:|---:|---:|---:|',
    ...byFraction.map((rows) => {
      const fz = rows.map((r) => r.frozen.top1);
      const ft = rows.map((r) => r.fineTuned?.top1 ?? NaN);
      const diffs = rows.map((r, i) => 100 * (ft[i] - fz[i]));
      const each = (xs) => (xs.length > 1 ? ` (${xs.map(pct).join(', ')})` : '');
      return (
        `| ${(100 * rows[0].fraction).toFixed(0)} % (${rows[0].labels}) | ${rows.length} | ${pct(mean(fz))}${each(fz)} | ` +
        `${pct(mean(ft))}${each(ft)} | ${mean(diffs) >= 0 ? '+' : ''}${mean(diffs).toFixed(1)}${diffs.length > 1 ? ` (${diffs.map((d) => (d >= 0 ? '+' : '') + d.toFixed(1)).join(', ')})` : ''} |`
      );
    }),
    '',
    'Every run (val: the validation set; the chosen run of each family in bold):',
    '',
    '| labels | subset seed | U-Net | steps | val top-1 % | test top-1 % | last-epoch train loss | train time (s) |',
    '|---|---:|---|---:|---:|---:|---:|---:|',
    ...result.rows.flatMap((r) =>
      r.runs.map((x) => {
        const chosen =
          x.unetLr === null
            ? x.steps === r.frozen.steps
            : r.fineTuned !== null && x.unetLr === r.fineTuned.unetLr && x.steps === (r.fineTuned.steps ?? x.steps);
        const v = (s) => (chosen ? `**${s}**` : s);
        return `| ${(100 * r.fraction).toFixed(0)} % | ${r.subsetSeed} | ${x.unetLr === null ? 'frozen' : `lr ${x.unetLr}`} | ${x.steps} | ${v(pct(x.valTop1))} | ${v(pct(x.top1))} | ${x.trainLoss.toFixed(3)} | ${x.trainS.toFixed(0)} |`;
      }),
    ),
    '',
    `Total wall time ${(result.wallS / 60).toFixed(1)} min on ${result.threads ?? a.threads} wasm threads (\`nice\`${result.loadAverage === undefined ? '' : `; 1-minute load average ${result.loadAverage.toFixed(1)} at the start`}).`,
    '',
    'Read with care: one noise draw per test image; with 2,000 test images one standard error of a top-1 near 80 % is',
    'about 0.9 points, and a difference between two runs on the same images has a smaller error than that, since most',
    'images are classified alike by both. The steps were sized to fit the script in under an hour on 2 cores.',
    '',
  ];
  fs.writeFileSync(outMd, md.join('\n'));
}
if (!a.report) fs.writeFileSync(a.out, JSON.stringify(result, null, 1));
log(`wrote ${a.report ? '' : `${a.out} and `}${outMd} (${(result.wallS / 60).toFixed(1)} min)`);
