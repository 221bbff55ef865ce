// Training benchmark (not a test): the gradient paths the heads use on wasm vs cpu, and one
// training step of each head on the adm-tiny fixture. Medians after a warm-up; ratios are within
// one process and backend, so they hold up better than absolute times on a busy machine.
//   npm run build && node bench/train.mjs [--backends wasm,cpu] [--reps 5] [--out bench/results/train-latest.json]
// DIFFSSL_DIST=path/to/index.js runs against another build.
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import { runMeta } from './meta.mjs';

const d = await import(process.env.DIFFSSL_DIST ?? 'diffssl');
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const backends = (args.backends ?? 'wasm,cpu').split(',');
const reps = Number(args.reps ?? 5);
const out = args.out ?? 'bench/results/train-latest.json';
const FIX = path.resolve('test/fixtures');

async function median(fn, n = reps) {
  await fn();
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Runs f under tf.grads for the listed inputs and waits for every gradient. */
const gradTime = (f, xs) =>
  median(async () => {
    const gs = tf.grads(f)(xs);
    await Promise.all(gs.map((g) => g.data()));
    tf.dispose(gs);
  });

const rows = [];
const row = (r) => {
  rows.push(r);
  console.log(
    `${r.backend.padEnd(5)} ${r.case.padEnd(46)} ${r.a.padEnd(30)} ${r.ms.toFixed(1).padStart(9)} ms` +
      (r.vs !== undefined ? `   ×${(r.vs / r.ms).toFixed(2)} faster than ${r.b}` : ''),
  );
};

for (const backend of backends) {
  tf.enableProdMode();
  await tf.setBackend(backend);
  await tf.ready();
  await d.ensureGradients();
  const fast = backend === 'cpu' ? 0.25 : 1; // cpu is 20–50× slower: smaller shapes keep the run short

  // 1. matMul gradient: tfjs autodiff (transpose flags) vs matMul2d (explicit transposes).
  {
    const m = Math.round(512 * fast) || 128;
    const a = tf.randomNormal([m, 512]),
      b = tf.randomNormal([512, 512]);
    const auto = await gradTime((x, y) => tf.sum(tf.matMul(x, y)), [a, b]);
    const own = await gradTime((x, y) => tf.sum(d.matMul2d(x, y)), [a, b]);
    row({ backend, case: `matMul [${m},512]·[512,512], both grads`, a: 'tf.matMul autodiff', ms: auto });
    row({
      backend,
      case: `matMul [${m},512]·[512,512], both grads`,
      a: 'matMul2d custom grad',
      ms: own,
      vs: auto,
      b: 'autodiff',
    });
    tf.dispose([a, b]);
  }

  // 2. Transformer attention of the heads: the paper's scale (257 tokens = 16×16 + CLS, D = 1024, 8 heads;
  // batch 4 of the paper's 32) and a small one (65 tokens, D = 256), where per-head dispatch dominates.
  for (const [n, l, dim, h] of backend === 'cpu'
    ? [[2, 65, 256, 8]]
    : [
        [4, 257, 1024, 8],
        [8, 65, 256, 8],
      ]) {
    const hd = dim / h;
    const [q, k, v] = [1, 2, 3].map((s) => tf.randomNormal([n, l, dim], 0, 1, 'float32', s));
    const split = (x) => tf.reshape(tf.transpose(tf.reshape(x, [n, l, h, hd]), [0, 2, 1, 3]), [n * h, l, hd]);
    const batched = (qq, kk, vv) =>
      tf.sum(tf.matMul(tf.softmax(tf.matMul(split(qq), split(kk), false, true)), split(vv)));
    const auto = await gradTime(batched, [q, k, v]);
    const own = await gradTime((qq, kk, vv) => tf.sum(d.multiHeadAttention(qq, kk, vv, h)), [q, k, v]);
    row({
      backend,
      case: `attention [${n},${l},${dim}] ${h} heads, q/k/v grads`,
      a: 'batched matMul autodiff',
      ms: auto,
    });
    row({
      backend,
      case: `attention [${n},${l},${dim}] ${h} heads, q/k/v grads`,
      a: 'multiHeadAttention',
      ms: own,
      vs: auto,
      b: 'autodiff',
    });
    tf.dispose([q, k, v]);
  }

  // 3. U-Net-style attention backward (DifFeed back-propagates through the U-Net): one head, L = 1024, ch = 64.
  if (backend !== 'cpu') {
    const [q, k, v] = [1, 2, 3].map((s) => tf.randomNormal([1024, 64], 0, 1, 'float32', s));
    const perHead = (qq, kk, vv) => tf.sum(tf.matMul(tf.softmax(tf.matMul(qq, tf.transpose(kk))), vv));
    const auto = await gradTime(perHead, [q, k, v]);
    const own = await gradTime(
      (qq, kk, vv) =>
        tf.sum(
          d.multiHeadAttention(
            tf.reshape(qq, [1, 1024, 64]),
            tf.reshape(kk, [1, 1024, 64]),
            tf.reshape(vv, [1, 1024, 64]),
            1,
          ),
        ),
      [q, k, v],
    );
    row({ backend, case: 'U-Net attention head L=1024 ch=64, q/k/v grads', a: '2-D matMul autodiff', ms: auto });
    row({
      backend,
      case: 'U-Net attention head L=1024 ch=64, q/k/v grads',
      a: 'multiHeadAttention',
      ms: own,
      vs: auto,
      b: '2-D autodiff',
    });
    tf.dispose([q, k, v]);
  }

  // 4. 3×3 conv input gradient (DifFeed's pass 2): Conv2DBackpropInput vs a forward conv with the turned filter.
  {
    const s = backend === 'cpu' ? 16 : 32;
    const x = tf.randomNormal([2, s, s, 128]),
      w = tf.randomNormal([3, 3, 128, 128], 0, 0.05);
    const dy = tf.randomNormal([2, s, s, 128]);
    const auto = await median(async () => {
      const g = tf.conv2dTranspose(dy, w, x.shape, 1, 'same');
      await g.data();
      g.dispose();
    });
    const turned = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]);
    const own = await median(async () => {
      const g = tf.conv2d(dy, turned, 1, 'same');
      await g.data();
      g.dispose();
    });
    row({ backend, case: `conv3x3 dX [2,${s},${s},128]`, a: 'Conv2DBackpropInput', ms: auto });
    row({
      backend,
      case: `conv3x3 dX [2,${s},${s},128]`,
      a: 'conv2d, turned filter',
      ms: own,
      vs: auto,
      b: 'BackpropInput',
    });
    tf.dispose([x, w, dy, turned]);
  }

  // 5. 1×1 conv weight gradient (tokenizer, feedback networks): tf.conv2d has none on wasm; dense does.
  {
    const side = backend === 'cpu' ? 8 : 16; // cpu's Conv2DBackpropFilter takes ~30 s at 16×16
    const x = tf.randomNormal([8, side, side, 256]),
      w = tf.randomNormal([1, 1, 256, 256], 0, 0.05);
    let auto = NaN;
    try {
      auto = await gradTime((ww) => tf.sum(tf.conv2d(x, ww, 1, 'valid')), [w]);
    } catch (e) {
      console.log(`${backend.padEnd(5)} conv1x1 dW via tf.conv2d: ${String(e.message).split('\n')[0]}`);
    }
    const own = await gradTime((ww) => tf.sum(d.dense(x, tf.reshape(ww, [256, 256]))), [w]);
    if (Number.isFinite(auto))
      row({ backend, case: `conv1x1 dW [8,${side},${side},256]→256`, a: 'tf.conv2d autodiff', ms: auto });
    row({
      backend,
      case: `conv1x1 dW [8,${side},${side},256]→256`,
      a: 'dense (matMul2d)',
      ms: own,
      ...(Number.isFinite(auto) ? { vs: auto, b: 'conv2d autodiff' } : {}),
    });
    tf.dispose([x, w]);
  }

  // 6. One training step of each system on adm-tiny (batch 8, 32×32) vs its evaluation forward.
  const cfg = JSON.parse(
    fs.readFileSync(path.join(FIX, 'adm-tiny/config.json'), 'utf8'),
  ).create_model_and_diffusion_args;
  const unet = await d.ADMUNet.load(path.join(FIX, 'adm-tiny/weights.safetensors'), cfg);
  const ARC = 'Use_CLS_Token:True:64,Insert_CLS_Token,Attention:64:4:4:2,Extract_CLS_Token';
  const base = {
    norm_type: 'layer',
    pre_pool_size: 8,
    fusion_arc: ARC,
    num_classes: 10,
    second_fw_b_list: [-1],
    feedback_b_list: [-1],
  };
  const systems = {
    linear: { ...base, head_type: 'linear', pre_pool_size: 2, t_list: [150], first_fw_b_list: [15] },
    attention: { ...base, head_type: 'attention', t_list: [150], first_fw_b_list: [15] },
    difformer: { ...base, head_type: 'attention', t_list: [90, 150, 300], first_fw_b_list: [10, 15, 18] },
    difffeed: {
      ...base,
      head_type: 'attention',
      t_list: [150],
      first_fw_b_list: [-1],
      second_fw_b_list: [15],
      feedback_b_list: [12, 15, 18],
    },
  };
  const n = 8;
  const x0 = tf.randomUniform([n, 32, 32, 3], -1, 1, 'float32', 1);
  for (const [name, a] of Object.entries(systems)) {
    const sys = d.fromReference(a, unet, { seed: 1 });
    const noise = a.t_list.map((_, i) => tf.randomNormal([n, 32, 32, 3], 0, 1, 'float32', 10 + i));
    const opt = d.sgd(0.01);
    const batch = { input: x0, labels: Array.from({ length: n }, (_, i) => i % 10), options: { noise }, dispose() {} };
    const before = tf.memory().numTensors;
    const stepMs = await median(() => d.trainStep(sys, batch, opt), backend === 'cpu' ? 2 : reps);
    const leaked = tf.memory().numTensors - before;
    const fwdMs = await median(
      async () => {
        const l = sys.logits(x0, { noise, training: false });
        await l.data();
        l.dispose();
      },
      backend === 'cpu' ? 2 : reps,
    );
    row({
      backend,
      case: `train step, ${name} (adm-tiny, batch ${n})`,
      a: `step / eval forward ${(stepMs / fwdMs).toFixed(2)}`,
      ms: stepMs,
    });
    rows.at(-1).forwardMs = fwdMs;
    rows.at(-1).tensorsAfterSteps = leaked;
    tf.dispose(noise);
    opt.dispose();
    sys.dispose();
  }
  x0.dispose();
  unet.dispose();
}

const byCase = (b, c) => rows.find((r) => r.backend === b && r.case === c && r.case.startsWith('train step'));
for (const r of rows.filter((r) => r.backend === 'wasm' && r.case.startsWith('train step'))) {
  const c = byCase('cpu', r.case);
  if (c) console.log(`${r.case}: wasm ${(c.ms / r.ms).toFixed(1)}× faster than cpu`);
}
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify({ ...runMeta(), rows }, null, 1));
console.log(`wrote ${out}`);
