// The example page's timings in headless Chromium on wasm, one thread and threaded, beside Node's on the same work
// (not a test). tfjs's threaded wasm sizes its pool as min(4, hardwareConcurrency / 2) threads, so on a 2-core
// machine it runs one; the `threaded×2` row reports 4 cores to the page to get a pool of 2 on these 2 cores.
//   npm run build && node bench/browser.mjs [--train 1024] [--test 512] [--epochs 2] [--out bench/results/browser-latest.json]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runMeta } from './meta.mjs';

const { values: a } = parseArgs({
  options: {
    train: { type: 'string', default: '1024' },
    test: { type: 'string', default: '512' },
    epochs: { type: 'string', default: '2' },
    out: { type: 'string', default: 'bench/results/browser-latest.json' },
  },
});
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const EXAMPLE = path.join(ROOT, 'examples/browser');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const RUN = { train: Number(a.train), test: Number(a.test), t: 10, b: 8, pool: 4, epochs: Number(a.epochs), batch: 64 };
const query = `?backend=wasm&train=${RUN.train}&test=${RUN.test}&epochs=${RUN.epochs}&batch=${RUN.batch}&sampleSteps=4`;

if (!fs.existsSync(path.join(EXAMPLE, 'node_modules/esbuild')))
  execFileSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: EXAMPLE, stdio: 'inherit' });
const { build } = await import(pathToFileURL(path.join(EXAMPLE, 'build.mjs')).href);
const { serve } = await import(pathToFileURL(path.join(EXAMPLE, 'serve.mjs')).href);
const { outdir, sizes } = await build({ quiet: true });
const puppeteer = (await import('puppeteer-core')).default;

/** One page run: `isolate` serves COOP/COEP (threaded wasm), `cores` is what the page's navigator says (the worker still sees the real count). */
async function page(name, { isolate, cores, threads }) {
  const served = await serve({ dir: outdir, isolate });
  const browser = await puppeteer.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });
  try {
    const p = await browser.newPage();
    if (cores)
      await p.evaluateOnNewDocument(
        (n) => Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', { get: () => n }),
        cores,
      );
    const t0 = performance.now();
    await p.goto(served.url + query + (threads ? `&threads=${threads}` : ''));
    await p.waitForFunction('window.__diffssl?.ready === true', { timeout: 600_000, polling: 200 });
    const s = await p.evaluate(
      '({ errors: window.__diffssl.errors, timings: window.__diffssl.timings, threads: window.__diffssl.wasmThreads, worker: window.__diffssl.worker, coi: crossOriginIsolated, linear: window.__diffssl.linearAccuracy })',
    );
    if (s.errors.length) throw new Error(`${name}: ${s.errors.join('; ')}`);
    return { name, wallMs: performance.now() - t0, ...s };
  } finally {
    await browser.close();
    await served.close();
  }
}

function node(threads) {
  const out = path.join(ROOT, '.tmp', `browser-bench-node-${threads}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  execFileSync(
    process.execPath,
    [path.join(ROOT, 'test/browser/nodeReference.mjs'), JSON.stringify({ ...RUN, threads, uploads: 0 }), out],
    {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const r = JSON.parse(fs.readFileSync(out, 'utf8'));
  return { name: `node wasm, ${threads} thread(s)`, timings: r.timings, threads, linear: r.linearAccuracy };
}

const rows = [
  await page('chromium wasm, not isolated (1 thread)', { isolate: false }),
  await page('chromium wasm, isolated (threaded build, pool of hardwareConcurrency/2)', { isolate: true }),
  await page('chromium wasm, isolated, 4 cores reported (pool of 2)', { isolate: true, cores: 4, threads: 2 }),
  node(1),
  node(2),
];
for (const r of rows) {
  const t = r.timings;
  console.log(
    `${r.name.padEnd(72)} threads ${String(r.threads ?? '?').padStart(2)}  features ${t.extractMsPerImage.toFixed(2)} ms/image  ` +
      `linear ${t.linearMsPerStep.toFixed(1)} ms/step  attention ${t.attentionMsPerStep.toFixed(1)} ms/step  linear top-1 ${(100 * r.linear).toFixed(1)} %`,
  );
}
fs.mkdirSync(path.dirname(a.out), { recursive: true });
fs.writeFileSync(a.out, JSON.stringify({ meta: runMeta(), run: RUN, bundleBytes: sizes, rows }, null, 1) + '\n');
