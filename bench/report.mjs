// docs/benchmarks.md from saved bench results (never from a run of its own):
//
//   node bench/report.mjs [results.json] [--train bench/results/train-latest.json] [--torch bench/results/torch-latest.json]
//                         [--out docs/benchmarks.md]
//   npm run bench:report                  (bench/results/latest.json → docs/benchmarks.md)
//
// The page has the run's header (date, commit, machine, Node and tfjs versions, the plan it ran), one table
// per model, the thread and batch ratios, the training-step table when a bench/train.mjs result is given (or
// bench/results/train-latest.json exists), and then every archived section in bench/history/*.md, newest
// first, copied as written: measurements from earlier versions that no rerun here reproduces.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const argv = process.argv.slice(2);
const flag = (name) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : undefined);
const positional = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')));
const input = positional[0] ?? path.join(here, 'results', 'latest.json');
const out = flag('out') ?? path.join(root, 'docs', 'benchmarks.md');
const defaultTrain = path.join(here, 'results', 'train-latest.json');
const trainFile = flag('train') ?? (fs.existsSync(defaultTrain) ? defaultTrain : undefined);
// The PyTorch anchor of the same sitting (../shared/anchor/bench_torch.py --out bench/results/torch-latest.json).
const defaultTorch = path.join(here, 'results', 'torch-latest.json');
const torchFile = flag('torch') ?? (fs.existsSync(defaultTorch) ? defaultTorch : undefined);
const torch = torchFile ? JSON.parse(fs.readFileSync(torchFile, 'utf8')) : undefined;
const TORCH_NAMES = { tiny: 'adm-tiny', 64: '64x64_diffusion', 256: '256x256_diffusion_uncond' };

// Blocks measured per model when an older results file does not record them (bench/run.mjs's MODELS).
const BLOCKS = { tiny: [5, 10], 64: [16, 22], 256: [19, 24] };
const MODEL_NAMES = {
  tiny: 'adm-tiny architecture (32×32)',
  64: '`64x64_diffusion`',
  256: '`256x256_diffusion_uncond`',
};

if (!fs.existsSync(input)) {
  console.error(`no bench results at ${input}: run \`npm run bench\` first (or name a results file)`);
  process.exit(1);
}
const run = JSON.parse(fs.readFileSync(input, 'utf8'));
const f = (v, d = 2) => (v === undefined || v === null || !Number.isFinite(v) ? '—' : v.toFixed(d));
const gib = (bytes) => (bytes / 2 ** 30).toFixed(2);
const mib = (bytes) => (bytes / 2 ** 20).toFixed(0);
const rel = (p) => path.relative(root, path.resolve(p)).split(path.sep).join('/');

const when = (iso) => iso.replace('T', ' ').replace(/(:\d\d)\.\d+Z$/, '$1 UTC');

function header(r) {
  const m = r.machine;
  const lines = ['| | |', '|---|---|'];
  lines.push(
    `| date | ${r.date ? `${when(r.date)}${r.finished ? ` to ${when(r.finished).slice(11)}` : ''}` : 'not recorded'} |`,
  );
  lines.push(
    `| commit | ${r.commit ? `\`${r.commit}\`${r.dirty ? ' with uncommitted changes' : ''}` : 'not recorded'} |`,
  );
  lines.push(`| machine | ${m ? `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}` : 'not recorded'} |`);
  if (m?.loadAverage) lines.push(`| load average at the start | ${m.loadAverage.join(', ')} (1, 5, 15 min) |`);
  lines.push(
    `| runtime | Node ${r.node ?? '?'}${r.tfjs ? `, tfjs-core ${r.tfjs}` : ''}${r.tfjsWasm ? `, tfjs-backend-wasm ${r.tfjsWasm}` : ''} |`,
  );
  if (r.plan) {
    const p = r.plan;
    const opts = [`--models ${p.models.join(',')}`, `--threads ${p.threads.join(',')}`];
    if (p.algos) opts.push(`--algos ${p.algos.join(',')}`);
    if (p.batches) opts.push(`--batches ${p.batches.join(',')}`);
    if (p.reps) opts.push(`--reps ${p.reps}`);
    const reduced = p.algos || p.batches || p.reps || p.models.join() !== 'tiny,64,256' || p.threads.join() !== '2,1';
    lines.push(
      `| command | \`node bench/run.mjs ${opts.join(' ')}\`${reduced ? ' (a reduced run)' : ' (the full run)'} |`,
    );
  }
  if (r.note) lines.push('', r.note);
  return lines.join('\n');
}

function modelSection(model, results) {
  const [lo, hi] = results[0].bs ?? BLOCKS[model];
  const out = [`### ${MODEL_NAMES[model] ?? model}`, ''];
  out.push(
    `| threads | conv | batch | b = ${lo} s/img | b = ${hi} s/img | full s/img | full GFLOP/s | ÷ conv2d peak | b = ${hi} ÷ full | 3 t ÷ 1 t (b = ${hi}) |`,
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of results)
    for (const x of r.rows)
      out.push(
        `| ${r.threads} | \`${x.algo}\` | ${x.batch} | ${f(x[`b${lo}`])} | ${f(x[`b${hi}`])} | ${f(x.full)} | ${f(x.fullGflops, 1)} | ${f(x.fullGflops / r.peakConvGflops)} | ${f(x[`b${hi}`] / x.full)} | ${x.threeT ? f(x.threeT / x[`b${hi}`]) : '—'} |`,
      );
  out.push('');
  for (const r of results) {
    const w = r.weightBytes;
    out.push(
      `- ${r.threads} thread${r.threads > 1 ? 's' : ''}: conv2d peak ${f(r.peakConvGflops, 1)} GFLOP/s; ${(r.params / 1e6).toFixed(1)} M parameters, weights ${mib(w.resident)} MiB resident + ${mib(w.streamed)} MiB streamed; peak RSS ${gib(r.peakRss)} GiB (${f(r.peakRss / (4 * r.params))}× the float32 weights); wasm heap ${gib(r.heapPeak)} GiB; create ${f(r.createS, 1)} s${r.reps ? `; ${r.reps} rep${r.reps > 1 ? 's' : ''} per row` : ''}. Backend: ${r.backend}.`,
    );
    if (r.failed) out.push(`- ${r.threads} thread${r.threads > 1 ? 's' : ''}: **${r.failed}**.`);
  }
  const [two, one] = [results.find((r) => r.threads === 2), results.find((r) => r.threads === 1)];
  if (two && one)
    for (const x of two.rows) {
      const y = one.rows.find((r) => r.algo === x.algo && r.batch === x.batch);
      if (y)
        out.push(
          `- \`${x.algo}\` batch ${x.batch}, 2 threads over 1: full forward ${f(y.full / x.full)}×, b = ${hi} ${f(y[`b${hi}`] / x[`b${hi}`])}×.`,
        );
    }
  for (const r of results) {
    const who = `${r.threads} thread${r.threads > 1 ? 's' : ''}, \`auto\``;
    const b1 = r.rows.find((x) => x.algo === 'auto' && x.batch === 1);
    const big = r.rows.filter((x) => x.algo === 'auto' && x.batch > 1).at(-1);
    if (b1 && big)
      out.push(
        `- ${who}: per image, a batch of ${big.batch} (one forward) costs ${f(big.full / b1.full)}× batch 1 for the full forward, ${f(big[`b${hi}`] / b1[`b${hi}`])}× at b = ${hi}.`,
      );
    if (b1?.difformer !== undefined)
      out.push(
        `- ${who}: DifFormer's extraction (t = 90, 150, 300 × b = 19, 24, 30) took ${f(b1.difformer)} s, ${f(b1.difformer / b1.full)} full forwards (the reference runs 3); DifFeed's (24 and 30 fed back, both passes, one t) ${f(b1.difffeed)} s, ${f(b1.difffeed / b1.full)} full forwards (the reference runs 2).`,
      );
  }
  if (torch?.models?.[TORCH_NAMES[model]]) {
    const tm = torch.models[TORCH_NAMES[model]];
    for (const [batch, rows] of Object.entries(tm.batches)) {
      const feat = rows[`until_b${tm.b_feat}`]?.median_s;
      const full = rows.full?.median_s;
      const ours = results
        .find((r) => r.threads === 2)
        ?.rows.find((x) => x.algo === 'auto' && x.batch === Number(batch));
      const ratio = (a, b) =>
        a !== undefined && b !== undefined ? ` (diffssl \`auto\`, 2 threads: ${f(a / b)}×)` : '';
      out.push(
        `- PyTorch anchor (\`${rel(torchFile)}\`), batch ${batch}, per image: until b = ${tm.b_feat} ${f(feat / batch)} s${ratio(ours?.[`b${hi}`], feat / batch)}, full ${f(full / batch)} s${ratio(ours?.full, full / batch)}.`,
      );
    }
  }
  return out.join('\n');
}

function trainSection(t) {
  const out = [
    '## Training steps',
    '',
    `From \`${rel(trainFile)}\` (\`node bench/train.mjs\`)${t.date ? `, ${when(t.date)}` : ''}${t.commit ? `, commit \`${t.commit}\`${t.dirty ? ' with uncommitted changes' : ''}` : ''}${t.node ? `, Node ${t.node}` : ''}. Medians after a warm-up, in milliseconds; "faster" compares two ways of computing the same thing in one process.`,
    '',
  ];
  out.push('| backend | case | how | ms | |', '|---|---|---|---:|---|');
  for (const r of t.rows)
    out.push(
      `| ${r.backend} | ${r.case} | ${r.a} | ${f(r.ms, 1)} | ${r.vs !== undefined ? `${f(r.vs / r.ms)}× faster than ${r.b}` : ''} |`,
    );
  return out.join('\n');
}

const byModel = new Map();
for (const r of run.results) byModel.set(r.model, [...(byModel.get(r.model) ?? []), r]);
const history = fs.existsSync(path.join(here, 'history'))
  ? fs
      .readdirSync(path.join(here, 'history'))
      .filter((n) => n.endsWith('.md'))
      .sort()
      .reverse()
  : [];

const page = [
  '# Benchmarks',
  '',
  `<!-- Generated by bench/report.mjs from ${rel(input)}; edit bench/report.mjs or bench/history/, not this page. -->`,
  '',
  'Measurements of the U-Net forward on the bundled wasm backend, made by `bench/run.mjs` (`npm run bench`) and',
  'turned into this page by `npm run bench:report`. Why the numbers look as they do is in',
  '[performance.md](performance.md); the measurements behind the tuning thresholds are in [tuning.md](tuning.md).',
  '',
  'How to read the tables: models get seeded random weights (nothing is downloaded); times are seconds per image,',
  "the median of the row's repetitions after one warm-up full pass (with two repetitions, the slower one). b = …",
  'columns time `extractFeatures` up to that block (the pass stops there); "full" is the whole forward at t = 150.',
  'GFLOP/s count one multiply-add as two operations; "÷ conv2d peak" divides by the GFLOP/s of one large',
  '64×64×256→256 `tf.conv2d` measured in the same process. "3 t ÷ 1 t" is three steps (t = 90, 150, 300) in one',
  '`extractFeatures` call over one. Every ratio compares numbers from the same process; absolute times on a shared',
  'machine drift by tens of percent from run to run.',
  '',
  'To refresh this page: `npm run bench` (or a reduced run, see the flags at the top of `bench/run.mjs`), then',
  '`npm run bench:report`; `node bench/train.mjs` first adds the training-step table. Sections of earlier runs',
  'come from `bench/history/`.',
  '',
  '## Latest run',
  '',
  header(run),
  '',
  ...[...byModel].map(([m, rs]) => `${modelSection(m, rs)}\n`),
  ...(trainFile ? [trainSection(JSON.parse(fs.readFileSync(trainFile, 'utf8'))), ''] : []),
  ...history.map((n) => fs.readFileSync(path.join(here, 'history', n), 'utf8').trimEnd() + '\n'),
]
  .join('\n')
  .replace(/\n{3,}/g, '\n\n');

fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, page.endsWith('\n') ? page : `${page}\n`);
console.log(
  `wrote ${rel(out)} from ${rel(input)}${trainFile ? ` and ${rel(trainFile)}` : ''}${history.length ? ` (+ ${history.length} archived)` : ''}`,
);
