// examples/browser in a real Chromium (headless, wasm): the page's features, head accuracy, CKA canvas, worker and
// upload path, checked against the same computation in Node from the repository's build.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const EXAMPLE = path.join(ROOT, 'examples/browser');
const TMP = path.join(ROOT, '.tmp');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// Small enough for two cores: the whole page runs in about 20 s.
const RUN = { train: 512, test: 256, t: 10, b: 8, pool: 4, epochs: 4, batch: 64, uploads: 3 };
const QUERY = `?backend=wasm&train=${RUN.train}&test=${RUN.test}&epochs=${RUN.epochs}&batch=${RUN.batch}&sampleSteps=4`;

type Reference = {
  features: { train: number[]; test: number[]; shape: number[][] };
  linearAccuracy: number;
  attentionAccuracy: number;
  timings: Record<string, number>;
  uploads: { file: string; values: number[] }[];
};
type Served = { url: string; close: () => Promise<void> };

let browser: Browser | undefined;
let served: Served | undefined;
let page: Page;
let reference: Reference;
const problems: string[] = []; // console errors, page errors, failed requests
let clicksSentDuringTraining = 0;
let pageMs = 0;

const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 300_000 });

async function importFile<T>(file: string): Promise<T> {
  return (await import(/* @vite-ignore */ pathToFileURL(file).href)) as T;
}

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(
      `Chromium not found at ${CHROMIUM}: the browser test needs it. Install it with \`apt-get install -y chromium\`, ` +
        'or point CHROMIUM_PATH at a Chrome or Chromium binary',
    );
  if (!fs.existsSync(path.join(ROOT, 'dist/browser.js'))) run('npm', ['run', 'build'], ROOT);
  if (!fs.existsSync(path.join(EXAMPLE, 'node_modules/esbuild')))
    run('npm', ['install', '--no-audit', '--no-fund'], EXAMPLE);
  const { build } = await importFile<{ build: (o: { quiet: boolean }) => Promise<{ outdir: string }> }>(
    path.join(EXAMPLE, 'build.mjs'),
  );
  const { outdir } = await build({ quiet: true });
  const { serve } = await importFile<{ serve: (o: { dir: string }) => Promise<Served> }>(
    path.join(EXAMPLE, 'serve.mjs'),
  );
  served = await serve({ dir: outdir });
  const puppeteer = (await import('puppeteer-core')).default;
  browser = await puppeteer.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });
  page = await browser.newPage();
  await page.setViewport({ width: 1000, height: 1400 });
  page.on('console', (m) => void (m.type() === 'error' && problems.push(`console: ${m.text()}`)));
  page.on('pageerror', (e) => void problems.push(`pageerror: ${(e as Error).message ?? e}`));
  page.on('requestfailed', (r) => void problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

  const t0 = performance.now();
  await page.goto(served.url + QUERY);
  // Click while the worker trains: the main thread must take the clicks then, not after.
  await page.waitForFunction('window.__diffssl?.training === true || window.__diffssl?.ready === true', {
    timeout: 150_000,
    polling: 20,
  });
  for (let i = 0; i < 3; i++) {
    if (await page.evaluate('window.__diffssl.training')) clicksSentDuringTraining++;
    await page.click('#clicker');
  }
  await page.waitForFunction('window.__diffssl.ready === true', { timeout: 150_000, polling: 100 });
  pageMs = performance.now() - t0;

  // The same computation in Node, after the page, so the two do not share the two cores.
  const out = path.join(TMP, 'browser-node-reference.json');
  fs.mkdirSync(TMP, { recursive: true });
  run(process.execPath, [path.join(__dirname, 'nodeReference.mjs'), JSON.stringify({ ...RUN, threads: 1 }), out], ROOT);
  reference = JSON.parse(fs.readFileSync(out, 'utf8'));
}, 400_000);

afterAll(async () => {
  await browser?.close();
  await served?.close();
});

const state = <T>(expr: string): Promise<T> =>
  page.evaluate(`(() => { const s = window.__diffssl; return ${expr}; })()`) as Promise<T>;

describe('examples/browser in Chromium (wasm)', () => {
  it('finishes without errors on wasm, cross-origin isolated', async () => {
    const s = await state<{ errors: string[]; backend: string; coi: boolean; timings: object; worker: object }>(
      '({ errors: s.errors, backend: s.backend, coi: s.crossOriginIsolated, timings: s.timings, worker: s.worker })',
    );
    console.log(
      `page: ${(pageMs / 1000).toFixed(1)} s;`,
      JSON.stringify(s.timings),
      'node:',
      JSON.stringify(reference.timings),
    );
    expect(s.errors).toEqual([]);
    expect(problems).toEqual([]);
    expect(s.backend).toBe('wasm');
    expect(s.coi).toBe(true);
    expect(s.worker).toMatchObject({ backend: 'wasm' });
  });

  it('computes the same features as Node: |a − b| ≤ 1e-4 + 1e-4·|b| per element', async () => {
    const f = await state<{ shape: { train: number[]; test: number[] }; train: number[]; test: number[] }>(
      '({ shape: s.features.shape, train: Array.from(s.features.train), test: Array.from(s.features.test) })',
    );
    expect(f.shape.train).toEqual([RUN.train, 4, 4, 64]);
    expect([f.shape.train, f.shape.test]).toEqual(reference.features.shape);
    for (const split of ['train', 'test'] as const) {
      const [a, b] = [f[split], reference.features[split]];
      expect(a.length).toBe(b.length);
      const bad = a.findIndex((v, i) => !(Math.abs(v - b[i]) <= 1e-4 + 1e-4 * Math.abs(b[i])));
      console.log(
        `${split} features: max |page − node| = ${a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0)}`,
      );
      expect(bad, `${split} element ${bad}: page ${a[bad]}, node ${b[bad]}`).toBe(-1);
    }
  });

  it("trains the linear head to Node's test accuracy within 1 point", async () => {
    // Same features up to float rounding, same seed and steps: only rounding in the two wasm builds' kernels can
    // move an example across the decision boundary, so a point (2.6 of 256 images) bounds it generously.
    const s = await state<{ linear: number; attention: number }>(
      '({ linear: s.linearAccuracy, attention: s.attentionAccuracy })',
    );
    console.log(
      `linear head: page ${s.linear}, node ${reference.linearAccuracy}; attention: page ${s.attention}, node ${reference.attentionAccuracy}`,
    );
    expect(Math.abs(s.linear - reference.linearAccuracy)).toBeLessThanOrEqual(0.01);
    expect(s.linear).toBeGreaterThan(0.5); // 10 classes: well above chance
    expect(s.attention).toBeGreaterThan(0.2);
  });

  it('draws the CKA heatmap and the samples', async () => {
    const distinct = (id: string) =>
      page.evaluate((id) => {
        const c = document.getElementById(id) as HTMLCanvasElement;
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        return new Set(
          Array.from({ length: d.length / 4 }, (_, i) => d[4 * i] * 65536 + d[4 * i + 1] * 256 + d[4 * i + 2]),
        ).size;
      }, id);
    expect(await distinct('cka')).toBeGreaterThan(10);
    expect(await distinct('samples-canvas')).toBeGreaterThan(10);
    const cka = await state<{ matrix: number[][]; blocks: number[] }>('s.cka');
    cka.matrix.forEach((row, i) => expect(row[i]).toBeCloseTo(1, 6));
  });

  it('keeps the main thread responsive while the worker trains', async () => {
    const s = await state<{ clicks: number; during: number }>('({ clicks: s.clicks, during: s.clicksDuringTraining })');
    expect(clicksSentDuringTraining).toBeGreaterThan(0);
    expect(s.clicks).toBe(3);
    expect(s.during).toBeGreaterThan(0);
  });

  it('decodes uploaded images to 28×28 in [-1, 1] and classifies them', async () => {
    const input = await page.$('#files');
    await (input as unknown as { uploadFile: (...f: string[]) => Promise<void> }).uploadFile(
      ...reference.uploads.map((u) => u.file),
    );
    await page.waitForFunction(`window.__diffssl.predictions.some((p) => p.name === 'browser-upload-0.png')`, {
      timeout: 60_000,
    });
    const s = await state<{ predictions: { name: string; label: number }[]; inputs: number[] }>(
      '({ predictions: s.predictions, inputs: Array.from(s.lastInputs) })',
    );
    expect(s.predictions.map((p) => p.name)).toEqual(reference.uploads.map((u) => path.basename(u.file)));
    for (const p of s.predictions) expect(p.label).toBeGreaterThanOrEqual(0);
    // The PNG holds floor((x + 1)·127.5): one grey level (1/127.5) at most from the original.
    const original = reference.uploads.flatMap((u) => u.values);
    const worst = Math.max(...s.inputs.map((v, i) => Math.abs(v - original[i])));
    expect(worst).toBeLessThanOrEqual(1 / 127.5 + 1e-5);
  });

  it('works without a bundler: an import map, the package served as files, its default URLs for weights and data', async () => {
    const plain = await browser!.newPage();
    try {
      plain.on('pageerror', (e) => void problems.push(`importmap pageerror: ${(e as Error).message ?? e}`));
      await plain.goto(served!.url + 'importmap.html?n=8');
      await plain.waitForFunction('window.__diffssl?.ready === true', { timeout: 60_000 });
      const s = (await plain.evaluate('window.__diffssl')) as {
        errors: string[];
        backend: string;
        features: { shape: number[]; values: number[] };
      };
      expect(s.errors).toEqual([]);
      expect(s.backend).toBe('wasm');
      expect(s.features.shape).toEqual([8, 4, 4, 64]);
      // the first 8 shipped training images are the first 8 of Node's run
      const b = reference.features.train.slice(0, s.features.values.length);
      const bad = s.features.values.findIndex((v, i) => !(Math.abs(v - b[i]) <= 1e-4 + 1e-4 * Math.abs(b[i])));
      expect(bad, `element ${bad}: page ${s.features.values[bad]}, node ${b[bad]}`).toBe(-1);
      expect(problems).toEqual([]);
    } finally {
      await plain.close();
    }
  });

  it('saves a screenshot to .tmp/browser-screenshot.png', async () => {
    const file = path.join(TMP, 'browser-screenshot.png');
    await page.screenshot({ path: file as `${string}.png`, fullPage: true });
    expect(fs.statSync(file).size).toBeGreaterThan(10_000);
  });

  it('runs on WebGPU when this Chromium has an adapter (skipped otherwise, with the reason)', async (ctx) => {
    const gpuPage = await browser!.newPage();
    try {
      await gpuPage.goto(served!.url + '?backend=webgpu&auto=0');
      await gpuPage.waitForFunction('window.__diffssl?.ready === true', { timeout: 60_000 });
      const s = (await gpuPage.evaluate(
        '({ backend: window.__diffssl.backend, reason: window.__diffssl.backendReason })',
      )) as {
        backend: string;
        reason: string;
      };
      if (s.backend !== 'webgpu') {
        console.log(`WebGPU smoke test skipped: ${s.reason}`);
        ctx.skip();
      }
      expect(s.backend).toBe('webgpu');
    } finally {
      await gpuPage.close();
    }
  });
});
