// Cuts the Fashion-MNIST subset shipped in data/fashion-mnist/ from the official files (Debian's
// dataset-fashion-mnist package), with the library's own IDX reader and writer.
// Usage: npm run build && node scripts/cut-fashion-mnist.mjs [sourceDir] [outDir]
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { encodeIdx, readIdxPair } from '../dist/index.js';

const source = process.argv[2] ?? '/usr/share/datasets/fashion-mnist';
const out = process.argv[3] ?? fileURLToPath(new URL('../data/fashion-mnist', import.meta.url));

// Per split: the official file prefix, the index range cut from, and how many images of each of the 10 classes.
const PLAN = [
  { prefix: 'train', range: 50_000, perClass: 1_000 },
  { prefix: 't10k', range: 5_000, perClass: 200 },
];

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');
fs.mkdirSync(out, { recursive: true });
const report = {};
for (const { prefix, range, perClass } of PLAN) {
  const names = { images: `${prefix}-images-idx3-ubyte`, labels: `${prefix}-labels-idx1-ubyte` };
  const srcFiles = { images: path.join(source, names.images + '.gz'), labels: path.join(source, names.labels + '.gz') };
  const { images, labels } = await readIdxPair(srcFiles.images, srcFiles.labels);
  // The first `perClass` images of each class in file order, among indices [0, range): balanced and seed-free.
  const taken = new Array(10).fill(0);
  const picked = [];
  for (let i = 0; i < range; i++) {
    const y = labels.data[i];
    if (taken[y] < perClass) {
      taken[y]++;
      picked.push(i);
    }
  }
  if (taken.some((c) => c !== perClass)) throw new Error(`${prefix}: classes short of ${perClass}: ${taken}`);
  const side = images.shape[1] * images.shape[2];
  const x = new Uint8Array(picked.length * side);
  picked.forEach((i, k) => x.set(images.data.subarray(i * side, (i + 1) * side), k * side));
  const y = Uint8Array.from(picked, (i) => labels.data[i]);
  const files = {
    images: encodeIdx({ shape: [picked.length, images.shape[1], images.shape[2]], data: x }),
    labels: encodeIdx({ shape: [picked.length], data: y }),
  };
  for (const kind of ['images', 'labels']) {
    const gz = zlib.gzipSync(files[kind], { level: 9 });
    fs.writeFileSync(path.join(out, names[kind] + '.gz'), gz);
    report[names[kind] + '.gz'] = {
      source: srcFiles[kind],
      sourceSha256: sha256(fs.readFileSync(srcFiles[kind])),
      sourceIdxSha256: sha256(zlib.gunzipSync(fs.readFileSync(srcFiles[kind]))),
      count: picked.length,
      firstIndex: picked[0],
      lastIndex: picked[picked.length - 1],
      bytes: gz.length,
      sha256: sha256(gz),
      idxSha256: sha256(files[kind]),
    };
  }
}
console.log(JSON.stringify(report, null, 2));
