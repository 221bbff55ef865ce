// Diffusion pretraining throughput (not a test): images per second of trainDiffusion's step on the
// default backbone's architecture (models/fashion-mnist-adm/flags.json), batch 32, on wasm with
// 1 and 2 threads, each in its own process (the thread count is fixed when the backend starts).
// bench/anchor_pretrain.py times guided-diffusion's own training step on the same architecture;
// run both in one sitting and compare the ratio.
//   npm run build && node bench/pretrain.mjs [--threads 2,1] [--steps 8] [--batch 32] [--conv auto]
//     [--workers 1,2] [--out bench/results/pretrain-latest.json]
// --conv takes the model's conv algorithms and --workers trainDiffusion's worker counts, comma-separated
// (each thread count runs each). With workers > 1 the thread count is the main thread's backend (Adam,
// the EMA); each worker runs its share of the batch on a one-thread wasm backend of its own.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { runMeta } from './meta.mjs';

const { values: a } = parseArgs({
  options: {
    threads: { type: 'string', default: '2,1' },
    steps: { type: 'string', default: '8' },
    batch: { type: 'string', default: '32' },
    out: { type: 'string', default: 'bench/results/pretrain-latest.json' },
    child: { type: 'string' },
    profile: { type: 'boolean', default: false },
    conv: { type: 'string', default: 'auto' },
    workers: { type: 'string', default: '1' },
  },
});
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

if (a.child) {
  const tf = await import('@tensorflow/tfjs-core');
  const d = await import(process.env.DIFFSSL_DIST ?? path.join(root, 'dist/index.js'));
  await d.useBestBackend({ force: 'wasm', threads: Number(a.child) });
  const flags = JSON.parse(fs.readFileSync(path.join(root, 'models/fashion-mnist-adm/flags.json'), 'utf8'));
  const data = await d.loadFashionMNIST({ split: 'train' });
  const images = tf.slice(data.images, 0, 2000);
  data.dispose();
  const unet = d.ADMUNet.create(flags, 0, { conv: a.conv });
  const batch = Number(a.batch);
  const warm = 2;
  const times = [];
  let last = performance.now();
  await d.trainDiffusion(unet, images, {
    steps: warm + Number(a.steps),
    batchSize: batch,
    workers: Number(a.workers),
    onProgress: (p) => {
      const now = performance.now();
      if (p.done > warm) times.push(now - last);
      last = now;
    },
  });
  let profile;
  if (a.profile) {
    // One more step under tf.profile: kernel milliseconds by kernel name.
    const p = await tf.profile(() =>
      d.trainDiffusion(unet, images, { steps: 1, batchSize: batch, seed: 1, workers: Number(a.workers) }),
    );
    profile = {};
    for (const k of p.kernels) profile[k.name] = (profile[k.name] ?? 0) + k.kernelTimeMs;
  }
  times.sort((x, y) => x - y);
  const ms = times[Math.floor(times.length / 2)];
  process.stdout.write(
    JSON.stringify({
      threads: Number(a.child),
      conv: a.conv,
      workers: Number(a.workers),
      batch,
      msPerStep: ms,
      imagesPerSecond: (batch * 1000) / ms,
      profile,
    }),
  );
  process.exit(0);
}

const rows = [];
for (const threads of a.threads.split(','))
  for (const conv of a.conv.split(','))
    for (const workers of a.workers.split(',')) {
      const r = spawnSync(
        process.execPath,
        [
          fileURLToPath(import.meta.url),
          '--child',
          threads,
          '--steps',
          a.steps,
          '--batch',
          a.batch,
          '--conv',
          conv,
          '--workers',
          workers,
          ...(a.profile ? ['--profile'] : []),
        ],
        {
          encoding: 'utf8',
          maxBuffer: 1 << 26,
        },
      );
      if (r.status !== 0) throw new Error(`threads ${threads}: ${r.stderr}`);
      const row = JSON.parse(r.stdout);
      rows.push(row);
      console.log(
        `wasm, ${threads} thread(s), conv ${conv}, ${workers} worker(s), batch ${row.batch}: ${row.msPerStep.toFixed(0)} ms/step, ${row.imagesPerSecond.toFixed(1)} img/s`,
      );
    }
fs.mkdirSync(path.dirname(a.out), { recursive: true });
fs.writeFileSync(a.out, JSON.stringify({ meta: runMeta(), rows }, null, 1) + '\n');
