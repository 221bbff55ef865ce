// Benchmarks (never tests): `npm run bench` builds, then runs this. Each (model, threads) runs in its own
// process, because the wasm thread count is fixed when the backend starts. Times are seconds per image;
// every ratio compares two numbers measured in the same process.
//
//   node bench/run.mjs [--models tiny,64,256] [--threads 2,1] [--out bench/results/latest.json]
//                      [--algos auto,fast] [--batches 1] [--reps 3]   (a reduced run: these replace each model's own)
//                      [--note "text"]   (saved with the results, printed under the header of docs/benchmarks.md)
//   node bench/run.mjs --report DIR     (tables from the per-child files of an interrupted run)
//   node bench/report.mjs [bench/results/latest.json]   (docs/benchmarks.md from the saved results)
//
// Models get random weights made in the process (ADMUNet.create; never written to disk). The 256 rows are
// the paper's backbone, 256x256_diffusion_uncond (553 M parameters): on wasm its weights are streamed from
// JS memory in float16 (the auto residency for models over 1 GiB), so every pass uploads them again.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMeta } from './meta.mjs';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .reduce(
      (acc, a, i, all) =>
        a.startsWith('--')
          ? [...acc, [a.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : 'true']]
          : acc,
      [],
    ),
);
const here = path.dirname(fileURLToPath(import.meta.url));

const MODELS = {
  tiny: {
    // The adm-tiny architecture of the reference fixtures.
    flags: JSON.parse(fs.readFileSync(path.join(here, '..', 'test', 'fixtures', 'adm-tiny', 'config.json'), 'utf8'))
      .create_model_and_diffusion_args,
    bs: [5, 10],
    reps: 5,
    batches: [1, 4],
    algos: ['auto', 'precise', 'direct', 'winograd2', 'winograd4'],
  },
  64: {
    flags: '64x64_diffusion',
    bs: [16, 22],
    reps: 2,
    batches: [1, 4],
    algos: ['auto', 'precise', 'direct', 'winograd2', 'winograd4'],
  },
  256: {
    flags: '256x256_diffusion_uncond',
    bs: [19, 24],
    reps: 1,
    batches: [1, 8],
    algos: ['auto', 'precise', 'direct', 'winograd2', 'winograd4'],
    // The heads' extractions (bench rows "DifFormer", "DifFeed"): the paper's DifFormer reads blocks 19, 24, 30 at
    // t = 90, 150, 300; DifFeed feeds 24 and 30 back into their mirrors and reads 24 and 30 again.
    heads: { ts: [90, 150, 300], difformer: [19, 24, 30], feedback: [24, 30] },
  },
};

const list = (v, f = String) => (v === undefined ? undefined : v.split(',').filter(Boolean).map(f));
/** A model's bench plan, narrowed by --algos, --batches and --reps when given. */
const planOf = (model) => {
  const base = MODELS[model];
  return {
    ...base,
    algos: list(args.algos) ?? base.algos,
    batches: list(args.batches, Number) ?? base.batches,
    reps: args.reps ? Number(args.reps) : base.reps,
  };
};

async function child() {
  const tf = await import('@tensorflow/tfjs-core');
  const { ADMUNet, DifFeed, extractFeatures, useBestBackend } = await import('diffssl');
  const spec = planOf(args.model);
  const threads = Number(args.threads);
  const choice = await useBestBackend({ force: 'wasm', threads });
  const heap = () => tf.backend().wasm.HEAPU8.length;
  let heapPeak = 0;
  const vm = (key) =>
    Number((fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`${key}:\\s+(\\d+)`)) ?? [0, 0])[1]) * 1024;
  const time = async (fn, reps) => {
    const ts = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await fn();
      ts.push((performance.now() - t0) / 1000);
      heapPeak = Math.max(heapPeak, heap());
    }
    ts.sort((a, b) => a - b);
    return ts[Math.floor(ts.length / 2)];
  };

  // The backend's practical peak: one large direct 3×3 conv, 64×64×256 → 256.
  const cx = tf.randomNormal([1, 64, 64, 256]);
  const cw = tf.randomNormal([3, 3, 256, 256], 0, 0.05);
  tf.conv2d(cx, cw, 1, 1).dispose();
  // Read back a sum, not the 4 MiB map: on threaded wasm that readback alone takes about as long as the conv.
  const convS = await time(async () => {
    const s = tf.tidy(() => tf.sum(tf.conv2d(cx, cw, 1, 1)));
    await s.data();
    s.dispose();
  }, 5);
  const peakGflops = (2 * 64 * 64 * 256 * 256 * 9) / convS / 1e9;
  tf.dispose([cx, cw]);

  const t0 = performance.now();
  // Library defaults (float32 weights, streamed on wasm above 1 GiB; conv algorithm per row).
  const model = ADMUNet.create(spec.flags, 0);
  const createS = (performance.now() - t0) / 1000;
  const rssAfterCreate = vm('VmRSS');
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5'); // restart the peak-RSS counter: creation is not the workload
  } catch {}
  const S = model.config.imageSize;
  const y = model.config.numClasses ? (n) => ({ y: Array(n).fill(0) }) : () => ({});
  const total = model.totalBlocks;
  const rows = [];
  const x = (n) => tf.randomUniform([n, S, S, 3], -1, 1, 'float32', 1);
  // A batch of n runs as one forward of n rows (extractFeatures' maxBatch = n): blocks whose maps need bands
  // still take one example at a time, the others (the deep blocks, where the weights are) the whole batch.
  const extract = async (x0, t, b, opts = {}) =>
    (await extractFeatures(x0, { t, b, model, seed: 0, maxBatch: x0.shape[0], ...y(x0.shape[0]), ...opts })).dispose();
  const full = async (x0) => {
    const r = model.forward(x0, Array(x0.shape[0]).fill(150), y(x0.shape[0]));
    await r.output.data();
    r.output.dispose();
  };
  const save = () =>
    fs.writeFileSync(
      args.child,
      JSON.stringify({
        model: args.model,
        threads,
        backend: choice.reason,
        bs: spec.bs,
        reps: spec.reps,
        peakConvGflops: peakGflops,
        createS,
        params: model.numParameters,
        weightBytes: model.weightBytes,
        rssAfterCreate,
        peakRss: vm('VmHWM'),
        heapPeak,
        rows,
      }),
    );
  // Warm-up: one full pass, so that one-time work (kernel set-up, re-laying out streamed filters for the
  // GEMM path, cached Winograd filters) is not in any timed row.
  const warm = x(1);
  await full(warm);
  warm.dispose();
  for (const algo of spec.algos) {
    model.conv = algo;
    for (const n of spec.batches) {
      // Batches of the 256 model: the default algorithm only (a batch of 8 takes minutes per row).
      if (args.model === '256' && n > 1 && algo !== 'auto') continue;
      const x0 = x(n);
      const row = { model: args.model, threads, algo, batch: n };
      for (const b of spec.bs) {
        const s = (await time(() => extract(x0, 150, b), spec.reps)) / n;
        row[`b${b}`] = s;
        row[`b${b}Gflops`] = (2 * model.multiplyAdds(b)) / s / 1e9;
      }
      row.full = (await time(() => full(x0), spec.reps)) / n;
      row.fullGflops = (2 * model.multiplyAdds()) / row.full / 1e9;
      if (n === 1 && algo !== 'direct')
        row.threeT = await time(() => extract(x0, [90, 150, 300], spec.bs[1]), spec.reps);
      if (n === 1 && algo === 'auto' && spec.heads) {
        // What the heads' extraction costs, in full forwards of one image at one t.
        const { ts, difformer, feedback } = spec.heads;
        row.difformer = await time(() => extract(x0, ts, difformer), spec.reps);
        const feed = new DifFeed(model, { feedback });
        const xt = tf.tidy(() => model.qSample(x0, [150], tf.randomNormal(x0.shape, 0, 1, 'float32', 2)));
        row.difffeed = await time(async () => {
          const r = feed.forward(xt, [150], { capture: feedback }); // no gradient scope: nothing is recorded
          await Promise.all([...r.second.values()].map((m) => m.data()));
          tf.dispose([...r.second.values(), ...r.first.values()]);
        }, spec.reps);
        tf.dispose(xt);
        feed.dispose();
      }
      rows.push(row);
      x0.dispose();
      console.error(JSON.stringify(row));
      save(); // a crash later (e.g. the wasm heap running out at batch 4) keeps the rows measured so far
    }
  }
  save();
  model.dispose();
}

/** Per-image cost of the largest batch against batch 1, and the heads' extraction in full forwards (default algorithm). */
function batchAndHeadLines(r) {
  const f = (v) => v.toFixed(2);
  const hi = `b${MODELS[r.model].bs[1]}`;
  const b1 = r.rows.find((x) => x.algo === 'auto' && x.batch === 1);
  const big = r.rows.filter((x) => x.algo === 'auto' && x.batch > 1).at(-1);
  const lines = [];
  if (b1 && big)
    lines.push(
      `${r.model} ${r.threads}T auto: per image, batch ${big.batch} costs ${f(big.full / b1.full)}× batch 1 (full forward), ${f(big[hi] / b1[hi])}× at b = ${MODELS[r.model].bs[1]}`,
    );
  if (b1?.difformer !== undefined) {
    const { ts, difformer, feedback } = MODELS[r.model].heads;
    lines.push(
      `${r.model} ${r.threads}T auto: DifFormer's extraction (t ${ts.join(', ')} × b ${difformer.join(', ')}) ${f(b1.difformer)} s = ${f(b1.difformer / b1.full)} full forwards; DifFeed's (${feedback.join(', ')} fed back, both passes, one t) ${f(b1.difffeed)} s = ${f(b1.difffeed / b1.full)} full forwards`,
    );
  }
  return lines;
}

function table(results) {
  const f = (v, d = 2) => (v === undefined ? '—' : v.toFixed(d));
  const lines = [
    'model threads algo       batch | s/img: b_lo    b_hi    full | full GFLOP/s  ÷conv2d peak | b_hi/full  3t/1t(b_hi)',
  ];
  for (const r of results) {
    const [lo, hi] = MODELS[r.model].bs;
    for (const x of r.rows)
      lines.push(
        `${r.model.padEnd(5)} ${String(r.threads).padStart(7)} ${x.algo.padEnd(10)} ${String(x.batch).padStart(5)} |  ${f(x[`b${lo}`]).padStart(6)} ${f(x[`b${hi}`]).padStart(7)} ${f(x.full).padStart(7)} | ${f(x.fullGflops, 1).padStart(12)} ${f(x.fullGflops / r.peakConvGflops).padStart(13)} | ${f(x[`b${hi}`] / x.full).padStart(9)} ${x.threeT ? f(x.threeT / x[`b${hi}`]).padStart(11) : '—'.padStart(11)}`,
      );
    if (r.failed) lines.push(`      ${r.model} ${r.threads}T: ${r.failed}`);
    lines.push(
      `      ${r.model} ${r.threads}T: conv2d peak ${f(r.peakConvGflops, 1)} GFLOP/s; weights ${(r.weightBytes.resident / 2 ** 20).toFixed(0)} MiB resident + ${(r.weightBytes.streamed / 2 ** 20).toFixed(0)} MiB streamed; peak RSS ${(r.peakRss / 2 ** 30).toFixed(2)} GiB (${(r.peakRss / (4 * r.params)).toFixed(2)}× the float32 weights); wasm heap ${(r.heapPeak / 2 ** 30).toFixed(2)} GiB; create ${f(r.createS, 1)} s`,
    );
  }
  const by = (m, t) => results.find((r) => r.model === m && r.threads === t);
  for (const m of Object.keys(MODELS)) {
    const [a, b] = [by(m, 2), by(m, 1)];
    if (!a || !b) continue;
    for (const x of a.rows) {
      const y = b.rows.find((r) => r.algo === x.algo && r.batch === x.batch);
      const hi = `b${MODELS[m].bs[1]}`;
      if (y)
        lines.push(
          `${m} ${x.algo} batch ${x.batch}: 2 threads / 1 thread speed-up, full forward ${f(y.full / x.full)}×, b = ${MODELS[m].bs[1]} ${f(y[hi] / x[hi])}×`,
        );
    }
  }
  for (const r of results) lines.push(...batchAndHeadLines(r));
  return lines.join('\n');
}

if (args.child) {
  await child();
} else if (args.report) {
  // Tables from the per-child JSON files of an earlier (possibly interrupted) run.
  const files = fs
    .readdirSync(args.report)
    .filter((f) => f.endsWith('.json'))
    .sort();
  console.log(table(files.map((f) => JSON.parse(fs.readFileSync(path.join(args.report, f), 'utf8')))));
} else {
  const models = (args.models ?? 'tiny,64,256').split(',');
  const threads = (args.threads ?? '2,1').split(',').map(Number);
  const passOn = ['algos', 'batches', 'reps'].flatMap((k) => (args[k] ? [`--${k}`, args[k]] : []));
  const meta = runMeta(); // the commit and work tree as the run starts: the code that is measured
  const results = [];
  const tmp = fs.mkdtempSync(path.join(here, '..', '.tmp-bench-'));
  try {
    for (const model of models)
      for (const t of threads) {
        const file = path.join(tmp, `${model}-${t}.json`);
        console.log(`running ${model} with ${t} thread(s)…`);
        const r = spawnSync(
          process.execPath,
          [fileURLToPath(import.meta.url), '--child', file, '--model', model, '--threads', String(t), ...passOn],
          { stdio: ['ignore', 'inherit', 'inherit'] },
        );
        if (!fs.existsSync(file))
          throw new Error(`bench child ${model}/${t} failed with status ${r.status} before measuring anything`);
        const res = JSON.parse(fs.readFileSync(file, 'utf8'));
        if (r.status !== 0)
          res.failed = `the process ended with status ${r.status ?? r.signal} after ${res.rows.length} rows`;
        results.push(res);
      }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const text = table(results);
  console.log(`\n${text}`);
  const out = args.out ?? path.join(here, 'results', 'latest.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  // Everything bench/report.mjs needs for docs/benchmarks.md: when, which commit, which machine, which plan.
  const plan = {
    models,
    threads,
    algos: list(args.algos),
    batches: list(args.batches, Number),
    reps: args.reps ? Number(args.reps) : undefined,
  };
  const note = args.note && args.note !== 'true' ? args.note : undefined; // --note "…": printed under the page header
  fs.writeFileSync(
    `${out}.tmp`,
    JSON.stringify({ ...meta, finished: new Date().toISOString(), note, plan, results, table: text }, null, 2),
  );
  fs.renameSync(`${out}.tmp`, out);
  console.log(`wrote ${out}`);
}
