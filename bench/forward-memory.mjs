// Peak memory of the 256×256 model's forward with library defaults: seeded random weights, batch 1,
// t = 150, early exit at block b, a few passes in one process. Not a test. Prints per pass the time,
// the process's RSS and its high-water mark (also as a multiple of the float32 weight bytes) and the
// size of the wasm heap (which grows and never shrinks, so it is its own high-water mark).
//   npm run build && node bench/forward-memory.mjs [--b 24] [--passes 3] [--threads 2] [--save features.f32]
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { ADMUNet, extractFeatures, useBestBackend } from '../dist/index.js';

const { values: a } = parseArgs({
  options: {
    b: { type: 'string', default: '24' },
    passes: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' },
    save: { type: 'string' },
  },
});
const [b, passes, threads] = [Number(a.b), Number(a.passes), Number(a.threads)];
if (![b, passes, threads].every((v) => Number.isInteger(v) && v >= 1)) {
  console.error('forward-memory: --b, --passes and --threads take positive integers');
  process.exit(2);
}
await useBestBackend({ force: 'wasm', threads });
const status = (key) =>
  Number(fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`${key}:\\s+(\\d+)`))?.[1] ?? 0) * 1024;
const gib = (bytes) => (bytes / 2 ** 30).toFixed(2);
const heap = () => tf.backend().wasm.HEAPU8.length;

const model = await ADMUNet.create('256x256_diffusion_uncond', { seed: 0 });
const weightBytes = 4 * model.numParameters;
console.log(
  `weights ${gib(weightBytes)} GiB (float32); after create: RSS ${gib(status('VmRSS'))} GiB, heap ${gib(heap())} GiB`,
);
const x = tf.randomUniform([1, 256, 256, 3], -1, 1, 'float32', 1);
for (let i = 0; i < passes; i++) {
  const start = performance.now();
  const f = await extractFeatures(x, { model, t: 150, b, seed: 0 });
  if (a.save && i === 0) fs.writeFileSync(a.save, Buffer.from((await f.get(150, b).data()).buffer));
  f.dispose();
  const hwm = status('VmHWM');
  console.log(
    `pass ${i + 1}: ${((performance.now() - start) / 1000).toFixed(2)} s; RSS ${gib(status('VmRSS'))} GiB, ` +
      `peak ${gib(hwm)} GiB = ${(hwm / weightBytes).toFixed(3)}× the weights; heap ${gib(heap())} GiB`,
  );
}
x.dispose();
model.dispose();
