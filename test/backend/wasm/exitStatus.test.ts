import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundleScript } from '../../helpers';

const ROOT = path.resolve(__dirname, '../../..');

// A user's script, bundled as a user's would be: it starts wasm through diffssl, then fails.
function run(body: string): { status: number | null; stderr: string } {
  const out = bundleScript(
    `import * as tf from '@tensorflow/tfjs-core';\nimport { useBestBackend } from ${JSON.stringify(path.join(ROOT, 'src/backend/useBestBackend'))};\n${body}`,
    'exit',
  );
  const res = spawnSync(process.execPath, [out], { encoding: 'utf8', timeout: 60_000, cwd: ROOT });
  fs.rmSync(out, { force: true });
  expect(res.error, 'the child did not finish').toBeUndefined();
  return { status: res.status, stderr: res.stderr };
}

describe('a script that fails after diffssl started wasm exits as Node scripts do', () => {
  for (const threads of [1, 2]) {
    const start = `const r = await useBestBackend({ force: 'wasm', threads: ${threads} });\nif (tf.getBackend() !== 'wasm') throw new Error('not on wasm');\ntf.tidy(() => tf.add(tf.ones([2]), 1).dataSync());\n`;

    it(`${threads === 1 ? 'single-threaded' : 'threaded'} wasm: an uncaught error → status 1 and the error's own short stack`, () => {
      const r = run(`${start}console.error('threaded:', r.reason);\nthrow new Error('the user script failed');`);
      expect(r.status, r.stderr.slice(0, 2000)).toBe(1);
      expect(r.stderr).toMatch(
        threads === 1 ? /threaded: .*one thread, as asked/ : /threaded: .*2 threads via the Node worker shim/,
      );
      expect(r.stderr).toMatch(/Error: the user script failed\n\s+at /);
      expect(r.stderr.length).toBeLessThan(4000);
    });

    it(`${threads === 1 ? 'single-threaded' : 'threaded'} wasm: an unhandled rejection → status 1; the user's own handler still runs`, () => {
      const r = run(`${start}Promise.reject(new Error('rejected by the user'));`);
      expect(r.status, r.stderr.slice(0, 2000)).toBe(1);
      expect(r.stderr).toMatch(/Error: rejected by the user/);
      expect(r.stderr.length).toBeLessThan(4000);
      const own = run(
        `process.on('uncaughtException', (e) => { console.error('handled by the user:', e.message); process.exit(3); });\n${start}throw new Error('boom');`,
      );
      expect(own.status, own.stderr.slice(0, 2000)).toBe(3);
      expect(own.stderr).toMatch(/handled by the user: boom/);
    });
  }
});
