// The dense table of the default backbone (models/fashion-mnist-adm/dense.md): per-pixel classification of the
// masks fashionMNISTMasks makes from the shipped subset (background, or the image's garment class: 11 classes).
// Two heads: a per-pixel linear probe on dense features (every block resized to 28×28), and a UperHead trained
// with train() on block maps at their own sides (first pass, or DifFeed's second pass trained with the head),
// against raw pixels and the same U-Net with random weights. mIoU and pixel accuracy on every pixel of the
// first --test test images.
//   npm run build && node scripts/dense-benchmark.mjs [--train 500] [--test 200] [--pixels 40000] [--t 10]
//     [--seed 0] [--uper-only]
// --seed seeds the UperHead rows (head and feedback initialisation, batch order, noise); --uper-only runs
// only the backbone's multi-block UperHead row and DifFeed's (to see how much a seed moves them).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  ADMUNet,
  DEFAULT_BACKBONE,
  extractFeatures,
  fashionMNISTMasks,
  linearProbe,
  loadDefaultBackbone,
  loadFashionMNIST,
  DifFeed,
  adam,
  segmentationDataset,
  SegmentationMeter,
  SeededRandom,
  train as trainModel,
  UperHead,
  useBestBackend,
} from '../dist/index.js';

const { values: a } = parseArgs({
  options: {
    train: { type: 'string', default: '500' },
    test: { type: 'string', default: '200' },
    pixels: { type: 'string', default: '40000' },
    epochs: { type: 'string', default: '8' },
    t: { type: 'string', default: '10' },
    threads: { type: 'string', default: '2' },
    out: { type: 'string', default: 'models/fashion-mnist-adm/dense.json' },
    seed: { type: 'string', default: '0' },
    'uper-only': { type: 'boolean', default: false },
  },
});
await useBestBackend({ force: 'wasm', threads: Number(a.threads) });
const log = (s) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
const [nTrain, nTest, nPixels, t, seed] = [a.train, a.test, a.pixels, a.t, a.seed].map(Number);
const all = !a['uper-only'];
const CLASSES = 11;
const SIDE = 28;

const split = async (name, n) => {
  const all = await loadFashionMNIST({ split: name });
  const images = tf.slice(all.images, 0, n);
  const masks = fashionMNISTMasks(all).slice(0, n * SIDE * SIDE);
  all.dispose();
  return { images, masks };
};
const train = await split('train', nTrain);
const test = await split('test', nTest);
// The training pixels: a seeded sample of every training image's pixels (the probe is full-batch).
const rng = new SeededRandom(0);
const picked = Int32Array.from({ length: nPixels }, () => Math.floor(rng.uniform() * nTrain * SIDE * SIDE));

/** Per-pixel rows `[N·28·28, D]` of a dense map `[N, 28, 28, D]`, optionally only `rows`. */
const rowsOf = (map, rows) =>
  tf.tidy(() => {
    const flat = tf.reshape(map, [-1, map.shape[3]]);
    return rows ? tf.gather(flat, tf.tensor1d(rows, 'int32')) : flat;
  });

/** Each pixel with its 9×9 neighbourhood (81 values; outside the image is the background −1). */
const neighbourhood = (x) =>
  tf.tidy(() => {
    const p = tf.pad(
      x,
      [
        [0, 0],
        [4, 4],
        [4, 4],
        [0, 0],
      ],
      -1,
    );
    const shifts = [];
    for (let dy = 0; dy < 9; dy++)
      for (let dx = 0; dx < 9; dx++) shifts.push(tf.slice(p, [0, dy, dx, 0], [-1, SIDE, SIDE, 1]));
    return tf.concat(shifts, 3);
  });

/** Dense features of several blocks at 28×28, joined per pixel. */
async function dense(model, images, blocks) {
  const set = await extractFeatures(images, { t, b: blocks, dense: SIDE, seed: 0, model });
  try {
    return set.concat(t);
  } finally {
    set.dispose();
  }
}

/** The probe on the sampled training pixels; mIoU and pixel accuracy on every test pixel. */
async function score(name, trainMap, testMap) {
  const [xtr, xte] = [rowsOf(trainMap, picked), rowsOf(testMap)];
  tf.dispose([trainMap, testMap]);
  const ytr = Int32Array.from(picked, (i) => train.masks[i]);
  const r = await linearProbe(xtr, ytr, xte, test.masks);
  tf.dispose([xtr, xte]);
  const meter = new SegmentationMeter({ classes: CLASSES });
  meter.update(r.testPredictions, test.masks, [nTest, SIDE, SIDE]);
  const s = meter.scores();
  log(
    `${name}: mIoU ${(100 * s.mIoU).toFixed(1)}, pixel accuracy ${(100 * s.pixelAccuracy).toFixed(1)} (D = ${xtr.shape[1]})`,
  );
  return {
    head: 'per-pixel linear probe',
    features: name,
    dims: xtr.shape[1],
    mIoU: s.mIoU,
    pixelAccuracy: s.pixelAccuracy,
    iou: s.iou,
    weightDecay: r.weightDecay,
  };
}

const rows = [];
const MULTI = [4, 8, 12, 16];
if (all) {
  rows.push(await score('raw pixel (1 value)', tf.clone(train.images), tf.clone(test.images)));
  rows.push(
    await score('raw pixels, 9×9 neighbourhood (81 values)', neighbourhood(train.images), neighbourhood(test.images)),
  );
  const random = ADMUNet.create(DEFAULT_BACKBONE.flags, 0);
  rows.push(
    await score(
      `random-weight U-Net, t = ${t}, b = ${MULTI}`,
      await dense(random, train.images, MULTI),
      await dense(random, test.images, MULTI),
    ),
  );
  random.dispose();
  const unet = await loadDefaultBackbone();
  for (const blocks of [[8], [12], [16], MULTI])
    rows.push(
      await score(
        `the backbone, t = ${t}, b = ${blocks}`,
        await dense(unet, train.images, blocks),
        await dense(unet, test.images, blocks),
      ),
    );
  unet.dispose();
}

// UperHead rows: maps at their own sides, from the largest to the smallest, the head trained by train().
const UPER = [17, 14, 11]; // decoder blocks at 28, 14 and 7
const epochs = Number(a.epochs);
async function uper(name, model, trainInput, testInput, channels) {
  const started = Date.now();
  const head = new UperHead({ channels, classes: CLASSES, width: 32, outputSide: SIDE, seed });
  const target = model ?? head;
  const base = segmentationDataset(trainInput, train.masks, { classes: CLASSES });
  // Each batch's noise seed (tfjs takes 0 as "unseeded", so never 0).
  const data = {
    size: base.size,
    batch: (idx, ctx) => ({ ...base.batch(idx, ctx), options: { seed: (ctx.seed % 2147483646) + 1 } }),
  };
  await trainModel(target, data, {
    epochs,
    batchSize: 16,
    optimizer: adam(2e-3),
    seed,
  });
  const meter = new SegmentationMeter({ classes: CLASSES });
  for (let i = 0; i < nTest; i += 50) {
    const idx = Array.from({ length: Math.min(50, nTest - i) }, (_, k) => i + k);
    const batch = segmentationDataset(testInput, test.masks, { classes: CLASSES }).batch(idx, {
      training: false,
      seed: 0,
      epoch: 0,
      step: 0,
    });
    tf.tidy(() => {
      const logits = model
        ? model.logits(batch.input, { training: false, seed: 1 })
        : head.logits(batch.input, { training: false });
      meter.update(tf.argMax(logits, 1).dataSync(), batch.labels, [idx.length, SIDE, SIDE]);
    });
    tf.dispose(batch.input);
  }
  head.dispose();
  const s = meter.scores();
  log(
    `UperHead, ${name}: mIoU ${(100 * s.mIoU).toFixed(1)}, pixel accuracy ${(100 * s.pixelAccuracy).toFixed(1)} (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  );
  return {
    head: `UperHead (width 32, ${epochs} epochs)`,
    features: name,
    dims: channels.reduce((x, y) => x + y, 0),
    mIoU: s.mIoU,
    pixelAccuracy: s.pixelAccuracy,
    iou: s.iou,
  };
}
const mapsOf = async (model, images) => {
  const set = await extractFeatures(images, { t, b: UPER, seed: 0, model });
  const maps = UPER.map((b) => tf.clone(set.get(t, b)));
  set.dispose();
  return maps;
};
if (all) rows.push(await uper('raw pixels (the image)', undefined, [train.images], [test.images], [1]));
const rnd = ADMUNet.create(DEFAULT_BACKBONE.flags, 0);
const chans = UPER.map((b) => rnd.block(b).channels);
if (all) {
  const [tr, te] = [await mapsOf(rnd, train.images), await mapsOf(rnd, test.images)];
  rows.push(await uper(`random-weight U-Net, t = ${t}, b = ${UPER}`, undefined, tr, te, chans));
  tf.dispose([...tr, ...te]);
}
rnd.dispose();
const backbone = await loadDefaultBackbone();
{
  const [tr, te] = [await mapsOf(backbone, train.images), await mapsOf(backbone, test.images)];
  if (all) rows.push(await uper(`the backbone, t = ${t}, b = ${UPER[0]}`, undefined, [tr[0]], [te[0]], [chans[0]]));
  rows.push(await uper(`the backbone, t = ${t}, b = ${UPER}`, undefined, tr, te, chans));
  tf.dispose([...tr, ...te]);
}
// DifFeed: every decoder block of the windowed strategy feeds back; the head reads the second pass, and the
// feedback networks train with it (the U-Net stays frozen).
{
  const feed = new DifFeed(backbone, { feedback: 'windowed', seed });
  const head = new UperHead({ channels: chans, classes: CLASSES, width: 32, outputSide: SIDE, seed });
  const model = {
    ignoreIndex: head.ignoreIndex,
    get trainableVariables() {
      return [...feed.trainableVariables, ...head.trainableVariables];
    },
    logits(input, opts) {
      const [x0] = input;
      return tf.tidy(() => {
        const n = x0.shape[0];
        const xt = backbone.qSample(
          x0,
          new Array(n).fill(t),
          tf.randomNormal(x0.shape, 0, 1, 'float32', opts.seed ?? 1),
        );
        const { second, first } = feed.forward(xt, new Array(n).fill(t), { capture: UPER, training: opts.training });
        first.forEach((f) => f.dispose());
        return head.logits(
          UPER.map((b) => second.get(b)),
          opts,
        );
      });
    },
  };
  const row = await uper(
    `DifFeed (windowed), second pass, t = ${t}, b = ${UPER}`,
    model,
    [train.images],
    [test.images],
    chans,
  );
  rows.push(row);
  feed.dispose();
  head.dispose();
}
backbone.dispose();

fs.mkdirSync(path.dirname(a.out), { recursive: true });
fs.writeFileSync(
  a.out,
  JSON.stringify({ t, train: nTrain, test: nTest, pixels: nPixels, epochs, classes: CLASSES, seed, rows }, null, 1) +
    '\n',
);
const md = [
  '| head | features | channels | mIoU | pixel accuracy |',
  '|---|---|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.head} | ${r.features} | ${r.dims} | ${(100 * r.mIoU).toFixed(1)} | ${(100 * r.pixelAccuracy).toFixed(1)} |`,
  ),
].join('\n');
fs.writeFileSync(a.out.replace(/\.json$/, '.md'), md + '\n');
console.log(md);
