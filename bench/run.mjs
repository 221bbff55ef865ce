// Benchmarks (not tests): `npm run bench` builds, then runs this. Times are medians of several runs
// after a warm-up, reported with ratios to a baseline measured in the same process.
//   node bench/run.mjs [--backends wasm,cpu] [--reps 5] [--out bench/results/latest.json]
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ADMUNet, extractFeatures, useBestBackend } from 'diffssl';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const backends = (args.backends ?? 'wasm,cpu').split(',');
const reps = Number(args.reps ?? 5);
const out = args.out ?? 'bench/results/latest.json';

const TINY = { image_size: 32, num_channels: 32, num_res_blocks: 2, channel_mult: '1,1,1', attention_resolutions: '16,8', num_head_channels: 16, resblock_updown: true, use_scale_shift_norm: true, learn_sigma: true };

async function median(fn) {
  await fn(); // warm-up: kernel setup, XNNPACK packing
  const times = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const rows = [];
for (const backend of backends) {
  await useBestBackend({ force: backend });
  const model = ADMUNet.create(TINY, 0);
  for (const batch of [1, 2]) {
    const x0 = tf.randomUniform([batch, 32, 32, 3], -1, 1, 'float32', 1);
    const t = Array(batch).fill(90);
    const full = await median(() => tf.dispose(model.forward(x0, t).output));
    const b10 = await median(() => model.forward(x0, t, { capture: [10] }).features.forEach((f) => f.dispose()));
    const ef = await median(async () => (await extractFeatures(x0, { t: 90, b: 10, model, seed: 0 })).dispose());
    const ef3 = await median(async () => (await extractFeatures(x0, { t: [90, 150, 300], b: [10, 15], model, seed: 0 })).dispose());
    rows.push({ model: 'adm-tiny', backend, batch, fullForwardMs: full, forwardToB10Ms: b10, extractB10Ms: ef, extract3tMs: ef3 });
    tf.dispose(x0);
  }
  model.dispose();
}

const fmt = (v) => v.toFixed(1).padStart(9);
console.log('model     backend batch  full fwd ms  fwd→b10 ms  extract b10 ms  extract 3t×2b ms  b10/full  3t/1t');
for (const r of rows)
  console.log(`${r.model.padEnd(9)} ${r.backend.padEnd(7)} ${String(r.batch).padStart(5)} ${fmt(r.fullForwardMs)}    ${fmt(r.forwardToB10Ms)}   ${fmt(r.extractB10Ms)}      ${fmt(r.extract3tMs)}      ${(r.forwardToB10Ms / r.fullForwardMs).toFixed(2)}   ${(r.extract3tMs / r.extractB10Ms).toFixed(2)}`);
for (const batch of [1, 2]) {
  const [w, c] = ['wasm', 'cpu'].map((b) => rows.find((r) => r.backend === b && r.batch === batch));
  if (w && c) console.log(`batch ${batch}: cpu / wasm full-forward time = ${(c.fullForwardMs / w.fullForwardMs).toFixed(1)}×`);
}
fs.mkdirSync(path.dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}.tmp`;
fs.writeFileSync(tmp, JSON.stringify({ date: new Date().toISOString(), node: process.version, reps, rows }, null, 2));
fs.renameSync(tmp, out);
console.log(`wrote ${out}`);
