// Where a forward of a released-size model spends its time, per tfjs kernel: seeded random weights,
// library defaults, one warm-up pass, then one pass with wall time taken around every kernel call
// (wasm kernels run synchronously, so that is their cost). Prints the pass, the time in kernels by
// name and by input shapes (calls, ms per call, GFLOP/s for matMuls) and the time outside tfjs kernels
// (diffssl's SIMD transforms, weight uploads, JS). Not a test; run it on a quiet machine.
//   npm run build && node bench/kernel-profile.mjs [--preset 256x256_diffusion_uncond] [--b 24] [--t 150]
//     [--batch 1] [--threads 2] [--top 20] [--conv auto]
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { ADMUNet, extractFeatures, useBestBackend } from '../dist/index.js';

const { values: a } = parseArgs({
  options: {
    preset: { type: 'string', default: '256x256_diffusion_uncond' },
    b: { type: 'string', default: '24' },
    t: { type: 'string', default: '150' },
    batch: { type: 'string', default: '1' },
    threads: { type: 'string', default: '2' },
    top: { type: 'string', default: '20' },
    conv: { type: 'string', default: 'auto' },
  },
});
const [b, batch, threads, top] = [a.b, a.batch, a.threads, a.top].map(Number);
const ts = a.t.split(',').map(Number);
if (![b, batch, threads, top, ...ts].every((v) => Number.isInteger(v) && v >= 0)) {
  console.error('kernel-profile: --b, --t, --batch, --threads and --top take integers');
  process.exit(2);
}
await useBestBackend({ force: 'wasm', threads });
const model = await ADMUNet.create(a.preset, { seed: 0, conv: a.conv });
const side = model.config.imageSize;
const x = tf.randomUniform([batch, side, side, model.config.inChannels], -1, 1, 'float32', 1);

// Wall time of every top-level kernel call (kernels called from inside another are the caller's).
const engine = tf.engine();
const runKernel = engine.runKernel.bind(engine);
const calls = new Map();
let recording = false;
let depth = 0;
engine.runKernel = (name, inputs, attrs) => {
  if (!recording || depth > 0) return runKernel(name, inputs, attrs);
  depth++;
  const start = performance.now();
  try {
    return runKernel(name, inputs, attrs);
  } finally {
    depth--;
    const shapes = Object.values(inputs ?? {}).map((v) => v?.shape ?? []);
    const key = `${name} ${shapes.map((s) => s.join('×')).join(' · ')}`;
    const c = calls.get(key) ?? { name, shapes, attrs, n: 0, ms: 0 };
    c.n++;
    c.ms += performance.now() - start;
    calls.set(key, c);
  }
};

const pass = async () => {
  const start = performance.now();
  const y = model.config.numClasses ? { y: Array(batch).fill(0) } : {};
  (await extractFeatures(x, { model, t: ts, b, seed: 0, ...y })).dispose();
  return performance.now() - start;
};
const warm = await pass();
recording = true;
const total = await pass();
recording = false;

// Multiply-adds of a 2-D or batched matMul call, from its shapes and transpose flags.
const matMulFlops = ({ shapes: [sa, sb], attrs }) => {
  const [m, k] = attrs?.transposeA ? [sa.at(-1), sa.at(-2)] : [sa.at(-2), sa.at(-1)];
  const n = attrs?.transposeB ? sb.at(-2) : sb.at(-1);
  const batches = sa.slice(0, -2).reduce((p, d) => p * d, 1);
  return 2 * batches * m * k * n;
};
const s = (ms) => (ms / 1000).toFixed(2);
const pct = (ms) => ((100 * ms) / total).toFixed(1);
const byName = new Map();
for (const c of calls.values()) byName.set(c.name, (byName.get(c.name) ?? 0) + c.ms);
const inKernels = [...byName.values()].reduce((p, v) => p + v, 0);

console.log(
  `# Kernel profile: ${a.preset}, batch ${batch}, t ${ts.join(',')}, b ${b}, conv ${a.conv}, ${threads} threads\n`,
);
console.log(`Warm-up pass ${s(warm)} s; profiled pass ${s(total)} s.\n`);
console.log('| where | s | % of the pass |\n|---|---:|---:|');
for (const [name, ms] of [...byName].sort((p, q) => q[1] - p[1]).slice(0, top))
  console.log(`| ${name} | ${s(ms)} | ${pct(ms)} |`);
console.log(`| all tfjs kernels | ${s(inKernels)} | ${pct(inKernels)} |`);
console.log(
  `| outside tfjs kernels (SIMD transforms, uploads, JS) | ${s(total - inKernels)} | ${pct(total - inKernels)} |\n`,
);
console.log('| kernel and input shapes | calls | s | % | ms per call | GFLOP/s |\n|---|---:|---:|---:|---:|---:|');
for (const [key, c] of [...calls].sort((p, q) => q[1].ms - p[1].ms).slice(0, top)) {
  const rate = c.name === 'BatchMatMul' ? ((c.n * matMulFlops(c)) / c.ms / 1e6).toFixed(1) : '';
  console.log(`| ${key} | ${c.n} | ${s(c.ms)} | ${pct(c.ms)} | ${(c.ms / c.n).toFixed(3)} | ${rate} |`);
}
tf.dispose(x);
model.dispose();
