// What the example page computes, computed in Node from the repository's build: the same images, (t, b, pool,
// seed), and the same head code (examples/browser/src/heads.js) on Node's copy of tfjs. Writes JSON to argv[3].
//   node test/browser/nodeReference.mjs '{"train":512,"test":256,"t":10,"b":8,"pool":4,"epochs":4,"batch":64}' out.json
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const lib = await import(pathToFileURL(path.join(ROOT, 'dist/index.js')).href);
const { trainHead } = await import(pathToFileURL(path.join(ROOT, 'examples/browser/src/heads.js')).href);
const o = JSON.parse(process.argv[2]);
const out = process.argv[3];

const backend = await lib.useBestBackend({ force: 'wasm', threads: o.threads });
const unet = await lib.loadDefaultBackbone();
const split = async (name, n) => {
  const all = await lib.loadFashionMNIST({ split: name });
  const images = tf.slice(all.images, 0, n);
  const labels = all.labels.slice(0, n);
  all.dispose();
  return { images, labels };
};
const [train, test] = [await split('train', o.train), await split('test', o.test)];

const timings = {};
async function features(x) {
  const set = await lib.extractFeatures(x, { t: o.t, b: o.b, pool: o.pool, seed: 0, model: unet });
  const map = set.get(o.t, o.b);
  const r = { values: await map.data(), shape: map.shape };
  set.dispose();
  return r;
}
let t0 = performance.now();
const fTrain = await features(train.images);
const fTest = await features(test.images);
timings.extractMsPerImage = (performance.now() - t0) / (o.train + o.test);

const accuracy = {};
for (const kind of ['linear', 'attention']) {
  const r = await trainHead(
    { tf, lib },
    kind,
    { ...fTrain, labels: train.labels },
    { ...fTest, labels: test.labels },
    { epochs: o.epochs, batchSize: o.batch, seed: 0 },
  );
  accuracy[kind] = r.accuracy;
  timings[`${kind}MsPerStep`] = r.msPerStep;
  r.head.dispose();
}

// Test images as PNG files, for the page's upload path: the PNG holds floor((x + 1) · 127.5) as the sampler grids.
const uploads = [];
for (let i = 0; i < o.uploads; i++) {
  const x = tf.slice(test.images, i, 1);
  const file = path.join(path.dirname(out), `browser-upload-${i}.png`);
  fs.writeFileSync(file, await lib.samplesGridPNG(x, { padding: 0 }));
  uploads.push({ file, values: Array.from(await x.data()) });
  x.dispose();
}

fs.writeFileSync(
  out,
  JSON.stringify({
    backend,
    features: { train: Array.from(fTrain.values), test: Array.from(fTest.values), shape: [fTrain.shape, fTest.shape] },
    linearAccuracy: accuracy.linear,
    attentionAccuracy: accuracy.attention,
    timings,
    uploads,
  }),
);
unet.dispose();
