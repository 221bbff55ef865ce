// diffssl quick start: diffusion features f(x0, t, b) of a small labelled image set, and how well a
// 1-nearest-neighbour classifier separates the classes with each (t, b) — a miniature of the
// paper's sweep over noise steps t and U-Net blocks b.
//
// Run from the repository root:  npm run demo   (builds, then runs this file)
// It imports the built package exactly as a user's script does: `import ... from 'diffssl'`.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { ADMUNet, extractFeatures, useBestBackend } from 'diffssl';

const T_LIST = [10, 90, 300, 700]; // noise steps (of T = 1000)
const B_LIST = [4, 7, 10, 13, 16]; // blocks of the 19-block model below (10 is the middle block)
const POOL = 4; // adaptive average pool every map to 4×4, like the paper's pooling axis
const PER_CLASS = 16;
const CLASSES = ['disc', 'square', 'stripes'];

// 1. Backend: tfjs-node(-gpu) when the project has it, else the bundled wasm backend, else cpu.
const { backend, reason } = await useBestBackend();
console.log(`backend: ${backend} (${reason})`);

// 2. Backbone: the adm-tiny reference fixture of test/fixtures (guided-diffusion's UNetModel with random
//    weights). The weights are NOT trained.
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixture = path.join(repoRoot, 'test', 'fixtures', 'adm-tiny');
const flags = JSON.parse(fs.readFileSync(path.join(fixture, 'config.json'), 'utf8')).create_model_and_diffusion_args;
const model = await ADMUNet.load(path.join(fixture, 'weights.safetensors'), flags);
console.log('model: the adm-tiny reference fixture (guided-diffusion UNetModel, random weights, not trained)');
console.log(
  `  ${model.numParameters.toLocaleString('en')} parameters, ${model.totalBlocks} blocks, middle block ${model.numInputBlocks + 1}`,
);
console.log('  b       ' + model.blocks.map((k) => String(k.b).padStart(4)).join(''));
console.log('  channels' + model.blocks.map((k) => String(k.channels).padStart(4)).join(''));
console.log('  side    ' + model.blocks.map((k) => String(k.size).padStart(4)).join(''));

// 3. A small synthetic labelled set: 32×32 RGB in [-1, 1], random position, size and colours.
function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let r = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(2311);
const S = 32;
const N = CLASSES.length * PER_CLASS;
const pixels = new Float32Array(N * S * S * 3);
const labels = [];
for (let i = 0; i < N; i++) {
  const cls = i % CLASSES.length;
  labels.push(cls);
  const bg = [0, 1, 2].map(() => rand() * 0.8 - 1); // dark background
  const fg = [0, 1, 2].map(() => rand() * 0.8 + 0.2); // light shape
  const r = 5 + rand() * 6;
  const cx = r + rand() * (S - 2 * r);
  const cy = r + rand() * (S - 2 * r);
  const period = 4 + Math.floor(rand() * 4);
  const phase = Math.floor(rand() * period);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      let inside;
      if (cls === 0) inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
      else if (cls === 1) inside = Math.abs(x - cx) <= r && Math.abs(y - cy) <= r;
      else inside = (x + phase) % period < period / 2;
      const c = inside ? fg : bg;
      for (let k = 0; k < 3; k++)
        pixels[((i * S + y) * S + x) * 3 + k] = Math.max(-1, Math.min(1, c[k] + (rand() - 0.5) * 0.1));
    }
  }
}
const x0 = tf.tensor4d(pixels, [N, S, S, 3]);
console.log(`data: ${N} images [${x0.shape}], classes ${CLASSES.join(' / ')} (${PER_CLASS} each)`);

// 4. Features for every (t, b): one batched U-Net pass per t (maxBatch = N), stopping after the
//    deepest requested block, each map pooled to POOL×POOL. The FeatureSet owns the maps.
const start = performance.now();
const feats = await extractFeatures(x0, {
  t: T_LIST,
  b: B_LIST,
  model,
  seed: 0,
  pool: POOL,
  maxBatch: N,
  onProgress: (p) => console.log(`  forward: ${p.done}/${p.total} rows`),
});
const seconds = (performance.now() - start) / 1000;
console.log(
  `features: ${T_LIST.length} t × ${B_LIST.length} b in ${seconds.toFixed(1)} s; shapes at t = ${T_LIST[0]}:`,
);
console.log('  ' + B_LIST.map((b) => `b${b} [${feats.get(T_LIST[0], b).shape}]`).join('  '));

// 5. Leave-one-out 1-NN (cosine similarity of L2-normalised flattened features): accuracy per (t, b).
function rowsOf(data, n) {
  const d = data.length / n;
  return Array.from({ length: n }, (_, i) => {
    const v = data.subarray(i * d, (i + 1) * d);
    const norm = Math.hypot(...v) || 1;
    return v.map((e) => e / norm);
  });
}
function looAccuracy(rows) {
  let right = 0;
  for (let i = 0; i < rows.length; i++) {
    let best = -Infinity,
      nearest = -1;
    for (let j = 0; j < rows.length; j++) {
      if (j === i) continue;
      let dot = 0;
      for (let k = 0; k < rows[i].length; k++) dot += rows[i][k] * rows[j][k];
      if (dot > best) [best, nearest] = [dot, j];
    }
    if (labels[nearest] === labels[i]) right++;
  }
  return right / rows.length;
}
const pct = (a) => `${(100 * a).toFixed(0)}%`.padStart(7);
const pooledPixels = tf.avgPool(x0, S / POOL, S / POOL, 'valid');
const pixelAcc = looAccuracy(rowsOf(pooledPixels.dataSync(), N));
pooledPixels.dispose();
console.log(
  `\nleave-one-out 1-NN accuracy (chance ${pct(1 / CLASSES.length).trim()}; raw pixels pooled to ${POOL}×${POOL}: ${pct(pixelAcc).trim()})`,
);
console.log('  t \\ b ' + B_LIST.map((b) => String(b).padStart(7)).join(''));
for (const t of T_LIST) {
  const accs = B_LIST.map((b) => looAccuracy(rowsOf(feats.get(t, b).dataSync(), N)));
  console.log(`  ${String(t).padStart(5)} ` + accs.map(pct).join(''));
}
console.log('The weights are random, not a trained diffusion model: this shows the mechanics of the');
console.log("t × b sweep, not the paper's results (those need the released 256×256 checkpoint).");

// 6. Free everything: the FeatureSet's maps, the input, the model's weights.
feats.dispose();
x0.dispose();
model.dispose();
console.log(`\ntensors still allocated: ${tf.memory().numTensors}`);
