// The page: a backend, the shipped backbone and data, features at (t, b), heads trained in a worker, CKA and samples.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgl'; // registers webgl (and, below, webgpu) so useBestBackend can take a GPU
import '@tensorflow/tfjs-backend-webgpu';
import { getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import {
  FASHION_MNIST_CLASSES,
  ckaMatrix,
  extractFeatures,
  loadDefaultBackbone,
  loadFashionMNIST,
  useBestBackend,
} from 'diffssl';
import { drawGrid, drawHeatmap } from './draw.js';
import { imageToInput } from './images.js';
import { readParams } from './params.js';
import { reportError, state } from './state.js';
import { $, mib, progressTo, status, yieldToBrowser } from './ui.js';
import { startWorker } from './workerClient.js';

const here = (file) => new URL(`./${file}`, location.href); // everything is served beside the page
const params = (state.params = readParams());
const app = { unet: null, train: null, test: null, worker: null };

$('clicker').addEventListener('click', () => {
  state.clicks++;
  if (state.training) state.clicksDuringTraining++;
  status('clicks', String(state.clicks));
});
addEventListener('unhandledrejection', (e) => reportError('unhandled rejection', e.reason));

/** The forced backend of `?backend=`, or the best one; a forced one that cannot start falls back to the best. */
async function pickBackend() {
  setThreadsCount(params.threads || Math.max(1, navigator.hardwareConcurrency || 1)); // tfjs's default is half the cores
  let choice;
  try {
    choice = await useBestBackend({ wasmPaths: './', ...(params.backend && { force: params.backend }) });
  } catch (e) {
    if (!params.backend) throw e;
    choice = await useBestBackend({ wasmPaths: './' });
    choice.reason = `${params.backend} could not start (${e.message}); took ${choice.backend}: ${choice.reason}`;
  }
  state.backend = choice.backend;
  state.backendReason = choice.reason;
  state.wasmThreads = choice.backend === 'wasm' ? getThreadsCount() : null;
  status(
    'backend',
    `${choice.backend}: ${choice.reason}. crossOriginIsolated: ${crossOriginIsolated}` +
      (state.wasmThreads ? `, wasm threads: ${state.wasmThreads}` : ''),
  );
}

/** The backbone's weights and the shipped Fashion-MNIST subset, by same-origin URLs, with one progress bar. */
async function loadAll() {
  const t0 = performance.now();
  const bar = progressTo('load-progress', 'load-status', (p) => `weights: ${mib(p.done)} of ${mib(p.total)}`);
  app.unet = await loadDefaultBackbone({ weights: here('weights.safetensors'), onProgress: bar });
  status('load-status', 'Fashion-MNIST subset…');
  const split = async (name, prefix, n) => {
    const files = { images: here(`${prefix}-images-idx3-ubyte.gz`), labels: here(`${prefix}-labels-idx1-ubyte.gz`) };
    const all = await loadFashionMNIST({ split: name, files });
    const take = Math.min(n, all.images.shape[0]);
    const out = { images: tf.slice(all.images, 0, take), labels: all.labels.slice(0, take) };
    all.dispose();
    return out;
  };
  app.train = await split('train', 'train', params.train);
  app.test = await split('test', 't10k', params.test);
  state.timings.loadMs = performance.now() - t0;
  status(
    'load-status',
    `backbone: ${app.unet.numParameters.toLocaleString('en')} parameters, ${app.unet.totalBlocks} blocks; ` +
      `${app.train.labels.length} training and ${app.test.labels.length} test images`,
  );
  $('run').disabled = false;
}

const settings = () => ({ t: Number($('t').value), b: Number($('b').value), pool: Number($('pool').value) });

/** f(x0, t, b) pooled, as host values; `onProgress` moves the features bar. */
async function features(x, { t, b, pool }, what) {
  const onProgress = progressTo('feature-progress', 'feature-status', (p) => `${what}: ${p.done} / ${p.total}`);
  const set = await extractFeatures(x, { t, b, pool, seed: 0, model: app.unet, onProgress });
  try {
    const map = set.get(t, b);
    return { values: await map.data(), shape: map.shape };
  } finally {
    set.dispose();
  }
}

async function extractAll(s) {
  const t0 = performance.now();
  const train = await features(app.train.images, s, 'training images');
  const test = await features(app.test.images, s, 'test images');
  const ms = performance.now() - t0;
  const n = train.shape[0] + test.shape[0];
  state.features = {
    ...s,
    seed: 0,
    shape: { train: train.shape, test: test.shape },
    train: train.values,
    test: test.values,
  };
  state.timings.extractMsPerImage = ms / n;
  status('feature-status', `${n} images → [${train.shape.slice(1)}] each in ${(ms / 1000).toFixed(1)} s`);
  return { train, test };
}

/** Linear CKA between blocks at t on the first test images, drawn as a heatmap. */
async function drawCKA({ t }) {
  const blocks = params.ckaBlocks;
  const x = tf.slice(app.test.images, 0, Math.min(params.cka, app.test.labels.length));
  const t0 = performance.now();
  const set = await extractFeatures(x, { t, b: blocks, seed: 0, model: app.unet });
  try {
    const matrix = await ckaMatrix(set);
    state.cka = { t, blocks, n: x.shape[0], matrix };
    drawHeatmap($('cka'), matrix, blocks.map(String));
    const lo = Math.min(...matrix.flat()).toFixed(2);
    status('cka-status', `t = ${t}, ${x.shape[0]} test images, blocks ${blocks.join(', ')}; colours span ${lo}–1`);
  } finally {
    set.dispose();
    x.dispose();
  }
  state.timings.ckaMs = performance.now() - t0;
}

async function trainHeads(maps) {
  const pack = (m, labels) => ({ values: m.values.slice(), shape: m.shape, labels: Int32Array.from(labels) });
  state.training = true;
  state.trainHistory = [];
  const t0 = performance.now();
  try {
    await app.worker.train({
      train: pack(maps.train, app.train.labels),
      test: pack(maps.test, app.test.labels),
      epochs: params.epochs,
      batchSize: params.batch,
      seed: 0,
    });
  } finally {
    state.training = false;
  }
  state.timings.trainMs = performance.now() - t0;
}

function onWorkerMessage(m) {
  if (m.type === 'progress') {
    state.trainHistory.push({ head: m.head, step: m.step, total: m.total, loss: m.loss });
    progressTo(
      'train-progress',
      'train-status',
      () => `${m.head} head: step ${m.step} / ${m.total}, loss ${m.loss.toFixed(3)}`,
    )({ done: m.step, total: m.total });
  } else if (m.type === 'result') {
    state[`${m.head}Accuracy`] = m.accuracy;
    state.timings[`${m.head}MsPerStep`] = m.msPerStep;
    const done = ['linear', 'attention'].filter((h) => state[`${h}Accuracy`] !== null);
    status(
      'train-status',
      done.map((h) => `${h}: ${(100 * state[`${h}Accuracy`]).toFixed(1)} % test top-1`).join('; '),
    );
  } else if (m.type === 'ready') state.worker = { backend: m.backend, reason: m.reason, threads: m.threads };
}

/** Draws a few samples from the backbone: DDIM, a few steps, seed 0 — in the worker, as it is one long call. */
async function drawSamples() {
  const t0 = performance.now();
  const r = await app.worker.sample({ n: params.samples, steps: params.sampleSteps });
  drawGrid($('samples-canvas'), r.values, params.samples, 28);
  state.samples = { n: params.samples, steps: params.sampleSteps, ms: performance.now() - t0 };
  status('samples-status', `${params.samples} samples, ${params.sampleSteps} DDIM steps, seed 0`);
}

/** Classifies images (flat 28×28 values in [-1, 1]) with the worker's linear head and lists them. */
async function classify(inputs, names) {
  const x = tf.tensor4d(inputs, [names.length, 28, 28, 1]);
  state.lastInputs = inputs;
  try {
    const maps = await features(x, state.features, 'your images');
    const { probs } = await app.worker.classify({ values: maps.values, shape: maps.shape });
    const box = $('predictions');
    box.textContent = '';
    state.predictions = names.map((name, i) => {
      const p = probs.subarray(10 * i, 10 * i + 10);
      const label = p.indexOf(Math.max(...p));
      const canvas = Object.assign(document.createElement('canvas'), { width: 56, height: 56 });
      drawGrid(canvas, inputs.subarray(784 * i, 784 * (i + 1)), 1, 28);
      const item = document.createElement('div');
      item.append(canvas, `${FASHION_MNIST_CLASSES[label]} (${(100 * p[label]).toFixed(0)} %)`);
      box.append(item);
      return { name, label, className: FASHION_MNIST_CLASSES[label], confidence: p[label] };
    });
  } finally {
    x.dispose();
  }
}

async function classifyShipped() {
  const n = Math.min(8, app.test.labels.length);
  const inputs = await tf.slice(app.test.images, 0, n).data();
  await classify(
    inputs,
    Array.from({ length: n }, (_, i) => `test #${i} (${FASHION_MNIST_CLASSES[app.test.labels[i]]})`),
  );
}

async function classifyFiles(files) {
  const list = [...files].filter((f) => f.type.startsWith('image/'));
  if (!list.length || state.linearAccuracy === null) return;
  const inputs = new Float32Array(784 * list.length);
  for (const [i, f] of list.entries()) inputs.set(await imageToInput(f), 784 * i);
  await classify(
    inputs,
    list.map((f) => f.name),
  );
}

/** Features at the form's (t, b), then CKA at its t, then both heads in the worker. */
async function run() {
  $('run').disabled = true;
  try {
    const s = settings();
    state.phase = 'features';
    const maps = await extractAll(s);
    state.phase = 'cka';
    await drawCKA(s);
    await yieldToBrowser();
    state.phase = 'training';
    await trainHeads(maps);
  } finally {
    $('run').disabled = false;
  }
}

async function main() {
  state.phase = 'backend';
  app.worker = startWorker(onWorkerMessage);
  await Promise.all([pickBackend(), app.worker.hello()]);
  state.phase = 'loading';
  await loadAll();
  if (params.auto) {
    await run();
    state.phase = 'samples';
    await drawSamples();
    state.phase = 'classify';
    await classifyShipped();
  }
  $('samples').disabled = false;
  state.phase = 'done';
}

$('feature-form').addEventListener('submit', (e) => {
  e.preventDefault();
  run().catch((err) => reportError('run', err));
});
$('samples').addEventListener('click', () => classifyShipped().catch((err) => reportError('classify', err)));
$('files').addEventListener('change', (e) =>
  classifyFiles(e.target.files).catch((err) => reportError('classify', err)),
);
const drop = $('drop');
drop.addEventListener('dragover', (e) => (e.preventDefault(), drop.classList.add('over')));
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  classifyFiles(e.dataTransfer.files).catch((err) => reportError('classify', err));
});

main()
  .catch((e) => reportError(state.phase, e))
  .finally(() => (state.ready = true));
