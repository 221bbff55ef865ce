// Full-scale accuracy check (not a test): diffssl's forward of the 256×256 model against the reference's,
// with the weights and block outputs bench/fullscale_ref.py wrote (every layer random and live), per
// conv algorithm: the largest error, and how many elements break the parity tolerance 1e-4 + 1e-4·|ref|.
//   npm run build && node bench/fullscale-check.mjs --ref DIR [--algos auto,fast] [--threads 2] [--out FILE]
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';

const { values: a } = parseArgs({
  options: {
    ref: { type: 'string' },
    algos: { type: 'string', default: 'auto,fast' },
    threads: { type: 'string', default: '2' },
    out: { type: 'string' },
  },
});
if (!a.ref) throw new Error('--ref DIR (written by bench/fullscale_ref.py) is required');
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const d = await import(process.env.DIFFSSL_DIST ?? path.join(root, 'dist/index.js'));
await d.useBestBackend({ force: 'wasm', threads: Number(a.threads) });
const acts = await d.readSafetensors(fs.readFileSync(path.join(a.ref, 'activations.safetensors')));
const ref = new Map([...acts].map(([k, v]) => [k, v]));
const blocks = [...ref.keys()].filter((k) => k.startsWith('block_')).map((k) => Number(k.slice(6)));
const rows = [];
for (const conv of a.algos.split(',')) {
  const unet = await d.ADMUNet.load(path.join(a.ref, 'weights.safetensors'), '256x256_diffusion_uncond', { conv });
  const x = tf.tensor(ref.get('x').data, ref.get('x').shape);
  const t0 = performance.now();
  const r = unet.forward(x, [150], { capture: blocks, output: true });
  const seconds = (performance.now() - t0) / 1000;
  const got = new Map([...r.features].map(([b, f]) => [`block_${b}`, f]));
  got.set('out', r.output);
  for (const [name, tensor] of got) {
    const want = ref.get(name).data;
    const have = tensor.dataSync();
    let maxAbs = 0,
      scale = 0,
      bad = 0;
    for (let i = 0; i < want.length; i++) {
      const e = Math.abs(have[i] - want[i]);
      maxAbs = Math.max(maxAbs, e);
      scale = Math.max(scale, Math.abs(want[i]));
      if (!(e <= 1e-4 + 1e-4 * Math.abs(want[i]))) bad++;
    }
    rows.push({
      conv,
      tensor: name,
      elements: want.length,
      maxAbs,
      maxAbsOverScale: maxAbs / scale,
      outsideTolerance: bad,
    });
    console.log(
      `${conv.padEnd(9)} ${name.padEnd(9)} max|err| ${maxAbs.toExponential(2)}  ÷max|ref| ${(maxAbs / scale).toExponential(2)}  outside 1e-4+1e-4·|ref|: ${bad} of ${want.length}`,
    );
  }
  console.log(`${conv}: full forward ${seconds.toFixed(1)} s`);
  tf.dispose([x, r.output, ...r.features.values()]);
  unet.dispose();
}
if (a.out) fs.writeFileSync(a.out, JSON.stringify({ rows }, null, 1));
