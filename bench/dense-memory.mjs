// Dense features of more images than memory holds, streamed to disk: peak RSS against the bytes written
// (not a test; test/data/featureShards.memory.test.ts runs a smaller case of it). The shipped test images,
// repeated, through the embedded backbone; blocks 4, 8, 12 and 16 (32 + 64 + 64 + 64 channels) at 28×28,
// 702 KB of float32 per image.
//   npm run build && node bench/dense-memory.mjs [--images 6000] [--batch 64] [--dir /tmp/dense] [--threads 2] [--heap-mib 128]
// With --heap-mib the script re-runs itself under --max-old-space-size (V8's JS heap; tensors live in wasm memory).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const { values: a } = parseArgs({
  options: {
    images: { type: 'string', default: '6000' },
    dir: { type: 'string' },
    threads: { type: 'string', default: '2' },
    batch: { type: 'string', default: '64' },
    'heap-mib': { type: 'string' },
    dist: { type: 'string', default: path.join(path.dirname(fileURLToPath(import.meta.url)), '../dist/index.js') },
    child: { type: 'boolean', default: false },
  },
});

if (a['heap-mib'] && !a.child) {
  const args = process.argv.slice(2);
  const r = spawnSync(
    process.execPath,
    [`--max-old-space-size=${a['heap-mib']}`, fileURLToPath(import.meta.url), ...args, '--child'],
    {
      stdio: 'inherit',
    },
  );
  process.exit(r.status ?? 1);
}

const tf = await import('@tensorflow/tfjs-core');
const d = await import(a.dist);
const dir = a.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-dense-'));
const count = Number(a.images);
await d.useBestBackend({ force: 'wasm', threads: Number(a.threads) });
const unet = await d.loadDefaultBackbone();
const test = await d.loadFashionMNIST({ split: 'test' });
const shipped = d.imagesFromTensor(test.images, test.labels);
const source = { size: count, get: (i) => shipped.get(i % shipped.size) };
const mib = (b) => b / 2 ** 20;
const rss0 = process.memoryUsage().rss;
let peak = rss0;
let third = rss0; // the peak while the first third of the images was written
let twoThirds = rss0; // ... and while the first two thirds were
const t0 = performance.now();
await d.extractToDirectory(source, {
  model: unet,
  t: 10,
  b: [4, 8, 12, 16],
  dense: 28,
  dir,
  batch: Number(a.batch),
  onProgress: (p) => {
    peak = Math.max(peak, process.memoryUsage().rss);
    if (p.done <= p.total / 3) third = peak;
    if (p.done <= (2 * p.total) / 3) twoThirds = peak;
  },
});
peak = Math.max(peak, process.memoryUsage().rss);
const seconds = (performance.now() - t0) / 1000;
const bytes = fs
  .readdirSync(path.join(dir, 'shard-00000-of-00001'))
  .filter((f) => f.endsWith('.safetensors'))
  .reduce((s, f) => s + fs.statSync(path.join(dir, 'shard-00000-of-00001', f)).size, 0);
const result = {
  images: count,
  featureMiB: +mib(bytes).toFixed(1),
  rssStartMiB: +mib(rss0).toFixed(1),
  rssFirstThirdMiB: +mib(third).toFixed(1),
  rssTwoThirdsMiB: +mib(twoThirds).toFixed(1),
  heapUsedMiB: +mib(process.memoryUsage().heapUsed).toFixed(1),
  heapTotalMiB: +mib(process.memoryUsage().heapTotal).toFixed(1),
  rssPeakMiB: +mib(peak).toFixed(1),
  ratio: +(bytes / peak).toFixed(2),
  seconds: +seconds.toFixed(1),
  heapLimitMiB: a['heap-mib'] ? Number(a['heap-mib']) : null,
  tensors: tf.memory().numTensors,
};
console.log(JSON.stringify(result));
test.dispose();
unet.dispose();
if (!a.dir) fs.rmSync(dir, { recursive: true, force: true });
