// Trains the embedded default backbone (models/fashion-mnist-adm): the ADM U-Net of
// models/fashion-mnist-adm/flags.json as a denoiser of the first 50,000 images of the official
// Fashion-MNIST training file (labels unused), resuming from the checkpoint in --dir.
//   npm run build && node scripts/train-backbone.mjs --steps 6000 --dir runs/fashion-mnist-adm
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { ADMUNet, loadFashionMNIST, trainDiffusion, useBestBackend } from '../dist/index.js';

const { values: a } = parseArgs({
  options: {
    steps: { type: 'string', default: '6000' },
    dir: { type: 'string', default: 'runs/fashion-mnist-adm' },
    data: { type: 'string', default: '/usr/share/datasets/fashion-mnist' },
    first: { type: 'string', default: '50000' },
    threads: { type: 'string', default: '2' },
    every: { type: 'string', default: '100' },
    // trainDiffusion's workers: 2 splits each batch over two one-thread replicas (about 1.2× faster on two
    // cores; docs/training.md#data-parallel-workers). The shipped run used one.
    workers: { type: 'string', default: '1' },
  },
});
const root = path.dirname(path.dirname(new URL(import.meta.url).pathname));
const flags = JSON.parse(fs.readFileSync(path.join(root, 'models/fashion-mnist-adm/flags.json'), 'utf8'));
const recipe = JSON.parse(fs.readFileSync(path.join(root, 'models/fashion-mnist-adm/recipe.json'), 'utf8'));

await useBestBackend({ force: 'wasm', threads: Number(a.threads) });
const all = await loadFashionMNIST({ split: 'train', dir: a.data });
const images = tf.slice(all.images, 0, Number(a.first));
all.dispose();
const unet = ADMUNet.create(flags, recipe.initSeed);
fs.mkdirSync(a.dir, { recursive: true });
const logFile = path.join(a.dir, 'progress.log');
const result = await trainDiffusion(unet, images, {
  ...recipe.options,
  steps: Number(a.steps),
  workers: Number(a.workers),
  checkpoint: { dir: a.dir, every: Number(a.every) },
  onProgress: (p) => {
    if (p.done % 10 === 0 || p.done === p.total)
      fs.appendFileSync(
        logFile,
        `${new Date().toISOString()} step ${p.done}/${p.total} loss ${p.loss.toFixed(5)} ` +
          `${p.imagesPerSecond.toFixed(1)} img/s eta ${((p.etaMs ?? 0) / 60000).toFixed(1)} min\n`,
      );
  },
});
console.log(`done: step ${result.step}, ran ${result.ran}, last loss ${result.losses.at(-1)}`);
