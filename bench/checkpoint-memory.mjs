// Memory and time of one training step of the embedded backbone (28×28×1, 19 blocks) with and
// without gradient checkpointing (`ForwardOptions.checkpoint`): forward + `tf.variableGrads` of an
// MSE, on the final output (the whole network) or on a captured block (early exit), at a few batch
// sizes. Not a test. Each case runs in a child process of its own, so that the wasm heap (which
// grows and never shrinks) and the RSS are that case's alone.
//   npm run build && nice node bench/checkpoint-memory.mjs [--batch 32,128] [--exit 8,full] [--steps 2] [--threads 1]
// Columns: peak tensors = the largest tf.memory().numBytes seen after any kernel of a step (an
// engine hook), "over weights" = that minus what was alive before the step (the weights, x, the
// target); wasm heap = the size of the wasm memory after the steps (its high-water mark); RSS = the
// largest process RSS sampled during the steps; ms/step = the mean over the measured steps (after
// one warm-up step).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const { values: a } = parseArgs({
  options: {
    batch: { type: 'string', default: '32,128' },
    exit: { type: 'string', default: '8,full' },
    steps: { type: 'string', default: '2' },
    threads: { type: 'string', default: '1' },
    dist: { type: 'string', default: path.join(path.dirname(fileURLToPath(import.meta.url)), '../dist/index.js') },
    child: { type: 'boolean', default: false },
    checkpoint: { type: 'boolean', default: false },
  },
});

const mib = (b) => (b / 2 ** 20).toFixed(1);
const blocks = (exit) => (exit === 'full' ? 'all 19 + out' : `1–${exit}`);

if (!a.child) {
  const rows = [];
  for (const batch of a.batch.split(',').map(Number))
    for (const exit of a.exit.split(','))
      for (const checkpoint of [false, true]) {
        const args = [fileURLToPath(import.meta.url), '--child', '--batch', String(batch), '--exit', exit];
        args.push('--steps', a.steps, '--threads', a.threads, '--dist', a.dist);
        if (checkpoint) args.push('--checkpoint');
        const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        const line = r.stdout.trim().split('\n').pop();
        if (r.status !== 0 || !line?.startsWith('{')) {
          // An abort in a kernel is the wasm heap's allocation failing (wasm32: 4 GiB at most).
          const why = /Aborted\(\)/.test(r.stderr)
            ? 'wasm Aborted() (out of heap: wasm32 memory is 4 GiB at most)'
            : (r.stderr.match(/^\w*Error.*$/m) ?? [`exit status ${r.status ?? r.signal}`])[0];
          console.error(`batch ${batch}, exit ${exit}, checkpoint ${checkpoint}: failed\n${r.stderr}`);
          rows.push({ batch, exit, checkpoint, failed: why.slice(0, 120) });
          continue;
        }
        const res = JSON.parse(line);
        rows.push(res);
        console.error(JSON.stringify(res));
      }
  console.log(
    '| batch | blocks run | checkpoint | peak tensors MiB | over weights MiB | wasm heap MiB | peak RSS MiB | ms/step | loss |',
  );
  console.log('|---:|---|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows)
    if (r.failed)
      console.log(
        `| ${r.batch} | ${blocks(r.exit)} | ${r.checkpoint ? 'yes' : 'no'} | failed: ${r.failed} | | | | | |`,
      );
    else
      console.log(
        `| ${r.batch} | ${blocks(r.exit)} | ${r.checkpoint ? 'yes' : 'no'} | ${mib(r.peakBytes)} | ${mib(r.peakBytes - r.baseBytes)} | ${r.heapBytes === null ? '–' : mib(r.heapBytes)} | ${mib(r.peakRss)} | ${r.msPerStep.toFixed(0)} | ${r.loss.toPrecision(6)} |`,
      );
  process.exit(0);
}

// ---- one case ----
const tf = await import('@tensorflow/tfjs-core');
const d = await import(a.dist);
await d.useBestBackend({ force: 'wasm', threads: Number(a.threads) });
await d.ensureGradients();
const batch = Number(a.batch);
const exit = a.exit === 'full' ? undefined : Number(a.exit);
const unet = await d.loadDefaultBackbone();
unet.trainableWeights();

// The peak of the engine's tensor bytes: sampled after every kernel (their outputs are made and
// their inputs still alive then) and every tensor made from data; the RSS every 32 kernels.
const engine = tf.engine();
let peak = 0;
let peakRss = 0;
let kernels = 0;
const sample = () => {
  if (engine.state.numBytes > peak) peak = engine.state.numBytes;
  if (++kernels % 32 === 0) peakRss = Math.max(peakRss, process.memoryUsage.rss());
};
for (const method of ['runKernelFunc', 'makeTensor']) {
  const orig = engine[method].bind(engine);
  engine[method] = (...args) => {
    const r = orig(...args);
    sample();
    return r;
  };
}

const x = tf.randomNormal([batch, 28, 28, 1], 0, 1, 'float32', 1);
const target = tf.randomNormal([batch, 28, 28, 1], 0, 1, 'float32', 2);
const t = Array.from({ length: batch }, (_, i) => (i * 37) % 1000);
const opts = { checkpoint: a.checkpoint, ...(exit ? { capture: [exit] } : {}) };

function step() {
  const { value, grads } = tf.variableGrads(() =>
    tf.tidy(() => {
      const r = unet.forward(x, t, opts);
      // MSE on the output; on a captured block, its mean square (a loss that reaches every weight before it).
      return exit ? tf.mean(tf.square(r.features.get(exit))) : tf.mean(tf.square(tf.sub(r.output, target)));
    }),
  );
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return loss;
}

step(); // warm-up: the heap grows to what a step needs
const steps = Number(a.steps);
const before = tf.memory().numTensors;
const baseBytes = engine.state.numBytes;
peak = baseBytes;
peakRss = process.memoryUsage.rss();
let loss = 0;
const t0 = performance.now();
for (let i = 0; i < steps; i++) loss = step();
const msPerStep = (performance.now() - t0) / steps;
peakRss = Math.max(peakRss, process.memoryUsage.rss());
if (tf.memory().numTensors !== before) throw new Error(`leak: ${tf.memory().numTensors - before} tensors`);
const heap = tf.backend().wasm?.HEAPU8?.byteLength ?? null;
console.log(
  JSON.stringify({
    batch,
    exit: a.exit,
    checkpoint: a.checkpoint,
    baseBytes,
    peakBytes: peak,
    heapBytes: heap,
    peakRss,
    msPerStep,
    loss,
    kernelsPerStep: Math.round(kernels / (steps + 1)),
  }),
);
unet.dispose();
