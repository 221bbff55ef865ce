/**
 * The worker thread of a data-parallel {@link trainDiffusion} (`workers` > 1, Node): a replica of the
 * U-Net on its own single-threaded wasm backend that takes the weights the main thread publishes,
 * computes L_simple's gradient for its rows of each batch, and writes it into its shared buffer. The
 * main thread sums the workers' gradients and keeps the optimizer, the EMA and the checkpoints.
 * Built as its own file (`dist/trainWorker.js`); `gradientWorkers.ts` starts it.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { parentPort } from 'node:worker_threads';
import { ensureGradients } from '../backend/gradients.js';
import { useBestBackend } from '../backend/useBestBackend.js';
import { ADMUNet } from '../unet/admUnet.js';
import { denoisingGrads } from './denoisingLoss.js';
import type { WorkerReply, WorkerRequest } from './gradientWorkers.js';

const port = parentPort;
if (!port)
  throw new Error('diffssl trainWorker.js runs as a Node worker thread, started by trainDiffusion({ workers })');

let unet: ADMUNet | undefined;
let vars: Map<string, tf.Variable> | undefined;
let layout: Extract<WorkerRequest, { kind: 'init' }> | undefined;

const reply = (r: WorkerReply) => port.postMessage(r);

// Requests come one at a time (the main thread waits for each reply), so they never interleave.
port.on('message', (req: WorkerRequest) => {
  handle(req).then(reply, (e: unknown) => {
    const err = e as Error;
    reply({ kind: 'error', name: err?.name ?? 'Error', message: String(err?.message ?? e) });
  });
});

async function handle(req: WorkerRequest): Promise<WorkerReply> {
  if (req.kind === 'init') {
    await useBestBackend({ force: 'wasm', threads: 1 });
    await ensureGradients();
    unet = ADMUNet.create(req.config, 0, { conv: req.conv });
    vars = unet.trainableWeights();
    const mine = [...vars.keys()];
    if (mine.length !== req.names.length || mine.some((k, i) => k !== req.names[i]))
      throw new Error('the worker built a model with other weights than the main thread’s');
    layout = req;
    return { kind: 'ready' };
  }
  if (!unet || !vars || !layout) throw new Error('a step reached the training worker before its model');
  loadWeights(vars, layout); // the main thread publishes new weights after every update
  const { names, offsets } = layout;
  const missing: number[] = [];
  const grads = new Float32Array(layout.grads);
  const model = unet;
  const weights = vars;
  const loss = tf.tidy(() => {
    const x0 = tf.tensor4d(req.x0, req.shape);
    const noise = tf.tensor4d(req.noise, req.shape);
    const { value, grads: g } = denoisingGrads(model, weights, x0, noise, req.t, {
      dropout: req.dropout,
      recompute: layout!.recompute,
      scale: req.scale,
    });
    names.forEach((name, i) => {
      const gi = g[weights.get(name)!.name];
      if (gi) grads.set(gi.dataSync() as Float32Array, offsets[i]);
      else missing.push(i);
    });
    return value.dataSync()[0];
  });
  return { kind: 'done', loss, missing };
}

function loadWeights(vars: Map<string, tf.Variable>, l: Extract<WorkerRequest, { kind: 'init' }>): void {
  const all = new Float32Array(l.weights);
  l.names.forEach((name, i) => {
    const v = vars.get(name)!;
    tf.tidy(() => v.assign(tf.tensor(all.slice(l.offsets[i], l.offsets[i] + l.sizes[i]), v.shape)));
  });
}
