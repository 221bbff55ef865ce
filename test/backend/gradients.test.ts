// Gradients without a ritual: a fresh process with only tfjs-core, its cpu backend and diffssl trains a
// head for one step without calling ensureGradients, however diffssl reached it (ESM and CommonJS
// builds, a tsx-like loader, an app bundle that carries tfjs-core inside).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
// Inside the repository, so that a child resolves @tensorflow/* from its node_modules.
const work = fs.mkdtempSync(path.join(ROOT, '.tmp', 'gradients-'));
// Outside it, so that a bundle runs with no node_modules to fall back on.
const away = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-gradients-'));
afterAll(() => [work, away].forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

// What a user's script does: pick the cpu backend, train a linear head one step, say what happened.
const BODY = `
  await tf.setBackend('cpu');
  if (tf.getGradient('Add') != null) throw new Error('gradients were registered before train');
  const head = new d.LinearHead({ channels: 2, pool: 1, classes: 3 });
  const before = head.trainableVariables[0].dataSync().slice();
  const x = tf.randomNormal([4, 2, 2, 2], 0, 1, 'float32', 1);
  const r = await d.train(head, d.tensorDataset(x, [0, 1, 2, 0]), { epochs: 1, batchSize: 4, optimizer: d.sgd(0.5) });
  const after = head.trainableVariables[0].dataSync();
  console.log(JSON.stringify({ globalStep: r.globalStep, moved: after.some((v, i) => v !== before[i]) }));
`;
const ESM_SCRIPT = (lib: string) =>
  `import * as tf from '@tensorflow/tfjs-core';\nimport '@tensorflow/tfjs-backend-cpu';\nimport * as d from ${JSON.stringify(lib)};\n${BODY}`;
const CJS_SCRIPT = (lib: string) =>
  `const tf = require('@tensorflow/tfjs-core');\nrequire('@tensorflow/tfjs-backend-cpu');\nconst d = require(${JSON.stringify(lib)});\n(async () => {${BODY}})().catch((e) => { console.error(e); process.exitCode = 1; });`;

/** The library built as tsup builds dist/: src/index.ts, tfjs left to the user. */
function buildLibrary(format: 'esm' | 'cjs'): string {
  const outfile = path.join(work, `diffssl.${format === 'esm' ? 'mjs' : 'cjs'}`);
  buildSync({
    entryPoints: [path.join(ROOT, 'src/index.ts')],
    bundle: true,
    format,
    platform: 'neutral',
    target: 'node20',
    outfile,
    external: ['@tensorflow/*', 'node:*'],
    logLevel: 'error',
  });
  return outfile;
}

function run(script: string, args: string[] = []) {
  const res = spawnSync(process.execPath, [...args, script], {
    encoding: 'utf8',
    timeout: 90_000,
    cwd: path.dirname(script),
  });
  expect(res.error).toBeUndefined();
  expect(res.status, res.stderr).toBe(0);
  return JSON.parse(res.stdout.trim().split('\n').pop()!);
}

const write = (file: string, text: string) => (fs.writeFileSync(file, text), file);

describe('training registers tfjs gradients by itself', () => {
  it('in an ES module script using the ESM build', () => {
    const script = write(path.join(work, 'esm.mjs'), ESM_SCRIPT(buildLibrary('esm')));
    expect(run(script)).toEqual({ globalStep: 1, moved: true });
  });

  it('in a CommonJS script using the CommonJS build', () => {
    const script = write(path.join(work, 'cjs.cjs'), CJS_SCRIPT(buildLibrary('cjs')));
    expect(run(script)).toEqual({ globalStep: 1, moved: true });
  });

  it('under a loader that resolves extensionless imports but not directories (as tsx does)', () => {
    // tsx's failure: `../gradients` in tfjs-core's files names a file and a directory, and a failed
    // import stays failed in Node's module cache, so the fix has to be in place before the first try.
    const loader = write(
      path.join(work, 'tsx-like.mjs'),
      `import { register } from 'node:module';\nregister('data:text/javascript,' + encodeURIComponent(${JSON.stringify(
        "export async function resolve(s, c, n) { try { return await n(s, c); } catch (e) { if (e.code !== 'ERR_MODULE_NOT_FOUND' || /\\.[cm]?[jt]s$/.test(s)) throw e; return n(s + '.js', c); } }",
      )}));\n`,
    );
    const script = write(path.join(work, 'tsx.mjs'), ESM_SCRIPT(buildLibrary('esm')));
    expect(run(script, ['--import', loader])).toEqual({ globalStep: 1, moved: true });
  });

  it('in an app bundle that carries tfjs-core and runs where no node_modules is', () => {
    const entry = write(path.join(work, 'app.ts'), ESM_SCRIPT(path.join(ROOT, 'src/index.ts')));
    const outfile = path.join(away, 'app.mjs');
    // ES module entries as a web bundler picks them (tfjs's CommonJS mains are marked side-effect free),
    // and the usual require shim for the CommonJS parts of a Node bundle.
    buildSync({
      entryPoints: [entry],
      bundle: true,
      format: 'esm',
      platform: 'node',
      mainFields: ['module', 'main'],
      outfile,
      logLevel: 'error',
      banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    });
    expect(
      fs.readFileSync(outfile, 'utf8').includes('tfjs-core/dist/register_all_gradients.js'),
      'the gradients were not bundled',
    ).toBe(true);
    expect(run(outfile)).toEqual({ globalStep: 1, moved: true });
  });
});
