// The probe table of the default backbone (models/fashion-mnist-adm/README.md): a linear probe and
// kNN (k = 20) on pooled features of the shipped Fashion-MNIST subsets (train 10,000 → test 2,000)
// over a t × b grid, against raw pixels and the same architecture with random weights.
//   npm run build && node scripts/probe-backbone.mjs [--weights file | --run dir] [--t 10,50,...] [--pool 2] [--ensemble K]
//   [--steps 300] [--wd 1e-4,1e-3,1e-2]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  ADMUNet,
  extractFeatures,
  knnEvaluate,
  linearProbe,
  loadFashionMNIST,
  readSafetensors,
  useBestBackend,
} from '../dist/index.js';

const { values: a } = parseArgs({
  options: {
    weights: { type: 'string', default: 'models/fashion-mnist-adm/weights.safetensors' },
    run: { type: 'string' },
    t: { type: 'string', default: '10,50,100,200,400,700' },
    b: { type: 'string', default: '' },
    pool: { type: 'string', default: '2' },
    ensemble: { type: 'string', default: '1' },
    steps: { type: 'string', default: '300' },
    wd: { type: 'string', default: '1e-4,1e-3,1e-2' },
    random: { type: 'boolean', default: false },
    threads: { type: 'string', default: '2' },
    out: { type: 'string', default: 'models/fashion-mnist-adm/probe.json' },
  },
});
const root = path.dirname(path.dirname(new URL(import.meta.url).pathname));
const flags = JSON.parse(fs.readFileSync(path.join(root, 'models/fashion-mnist-adm/flags.json'), 'utf8'));
await useBestBackend({ force: 'wasm', threads: Number(a.threads) });
const log = (s) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

/** The EMA weights of a run directory's checkpoint (tfjs layout under ema/), as a model. */
async function fromRun(dir) {
  const unet = ADMUNet.create(flags, 0);
  const run = await readSafetensors(path.join(dir, 'diffusion-run.safetensors'));
  for (const [k, v] of unet.trainableWeights()) v.assign(tf.tensor(run.get(`ema/${k}`).data, v.shape));
  return unet;
}
const unet = a.random ? ADMUNet.create(flags, 0) : a.run ? await fromRun(a.run) : await ADMUNet.load(a.weights, flags);
const ts = a.t.split(',').map(Number);
const bs = a.b ? a.b.split(',').map(Number) : unet.blocks.map((x) => x.b);
const pool = Number(a.pool);
const ensemble = Number(a.ensemble); // features averaged over this many noise draws
// The probe's Adam steps and the L2 penalties it chooses from on a held-out tenth of the training rows.
const probeOptions = { steps: Number(a.steps), weightDecay: a.wd.split(',').map(Number) };
const train = await loadFashionMNIST({ split: 'train' });
const test = await loadFashionMNIST({ split: 'test' });

/** Pooled features `[N, D]` per (t, b), as host arrays, extracted 500 images at a time. */
async function features(images, t) {
  const n = images.shape[0];
  const out = new Map(bs.map((b) => [b, []]));
  for (let i = 0; i < n; i += 500) {
    const chunk = tf.slice(images, i, Math.min(500, n - i));
    const set = await extractFeatures(chunk, { t, b: bs, pool, seed: 0, model: unet, ensemble });
    for (const b of bs) out.get(b).push(set.get(t, b).dataSync().slice());
    set.dispose();
    chunk.dispose();
  }
  return new Map(
    [...out].map(([b, parts]) => {
      const data = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
      let off = 0;
      for (const p of parts) data.set(p, (off += p.length) - p.length);
      return [b, { data, dim: data.length / n }];
    }),
  );
}

async function score(trainData, testData, dim) {
  const trX = tf.tensor2d(trainData, [train.labels.length, dim]);
  const teX = tf.tensor2d(testData, [test.labels.length, dim]);
  try {
    const lin = await linearProbe(trX, train.labels, teX, test.labels, probeOptions);
    const [knn] = knnEvaluate(
      { features: trX, labels: train.labels },
      { features: teX, labels: test.labels },
      { k: [20] },
    );
    return { linear: lin.accuracy, weightDecay: lin.weightDecay, knn: knn.top1, dim };
  } finally {
    tf.dispose([trX, teX]);
  }
}

const result = { pool, ensemble, probe: probeOptions, t: ts, b: bs, cells: {} };
const px = 28 * 28;
result.pixels = await score(train.images.dataSync(), test.images.dataSync(), px);
log(`pixels: linear ${result.pixels.linear} knn ${result.pixels.knn}`);
for (const t of ts) {
  const [ftr, fte] = [await features(train.images, t), await features(test.images, t)];
  for (const b of bs) {
    const s = await score(ftr.get(b).data, fte.get(b).data, ftr.get(b).dim);
    result.cells[`${t},${b}`] = s;
    log(`t ${t} b ${b}: linear ${s.linear.toFixed(4)} knn ${s.knn.toFixed(4)} (D ${s.dim})`);
  }
  fs.writeFileSync(a.out, JSON.stringify(result, null, 1));
}
const best = Object.entries(result.cells).sort((x, y) => y[1].linear - x[1].linear)[0];
result.best = { cell: best[0], ...best[1] };
fs.writeFileSync(a.out, JSON.stringify(result, null, 1));
log(`best linear: (t, b) = (${best[0]}) ${best[1].linear}`);

// The grid as markdown tables (linear probe, then kNN), for the model card.
const pctOf = (v) => (100 * v).toFixed(1);
const table = (key) =>
  [
    `| t \\ b | ${bs.join(' | ')} |`,
    `|---|${bs.map(() => '---:').join('|')}|`,
    ...ts.map((t) => `| ${t} | ${bs.map((b) => pctOf(result.cells[`${t},${b}`][key])).join(' | ')} |`),
  ].join('\n');
fs.writeFileSync(
  a.out.replace(/\.json$/, '.md'),
  `Linear probe, top-1 % on the shipped test subset (pool ${pool}):\n\n${table('linear')}\n\n` +
    `20-NN, top-1 %:\n\n${table('knn')}\n\nRaw pixels: linear ${pctOf(result.pixels.linear)}, 20-NN ${pctOf(result.pixels.knn)}.\n`,
);
