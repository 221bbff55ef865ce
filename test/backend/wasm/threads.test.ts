import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initThreadedWasm } from '../../../src/backend/wasm/threads';
import { bundleScript } from '../../helpers';

// A child process runs what a user's script would: the shim, some work, then a natural exit.
function childScript(body: string): string {
  return bundleScript(
    `import * as tf from '@tensorflow/tfjs-core';\nimport { initThreadedWasm } from ${JSON.stringify(path.resolve(__dirname, '../../../src/backend/wasm/threads'))};\n${body}`,
    'child',
  );
}

describe('threaded wasm in Node', () => {
  it('runs two threads, gives the same numbers as cpu, and lets the process exit by itself', () => {
    const script = childScript(`
      const r = await initThreadedWasm({ threads: 2 });
      const x = tf.randomNormal([2, 16, 16, 32], 0, 1, 'float32', 1);
      const w = tf.randomNormal([3, 3, 32, 64], 0, 0.1, 'float32', 2);
      const a = tf.conv2d(x, w, 1, 'same').dataSync();
      await import('@tensorflow/tfjs-backend-cpu');
      await tf.setBackend('cpu');
      const b = tf.conv2d(tf.tensor(x.dataSync(), x.shape), tf.tensor(w.dataSync(), w.shape), 1, 'same').dataSync();
      let worst = 0; for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      console.log(JSON.stringify({ ...r, worst }));
    `);
    const t0 = Date.now();
    const res = spawnSync(process.execPath, [script], {
      encoding: 'utf8',
      timeout: 60_000,
      cwd: path.resolve(__dirname, '../../..'),
    });
    fs.rmSync(script, { force: true });
    expect(res.error, 'the process did not exit on its own (workers kept it alive?)').toBeUndefined();
    expect(res.status, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout.trim().split('\n').pop()!);
    expect(out).toMatchObject({ threaded: true, threads: 2 });
    expect(out.reason).toMatch(/the SIMD kernels on 2/); // and their helper lets the process exit too
    expect(out.worst).toBeLessThan(1e-4);
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it('falls back to stock wasm when the shim cannot work (here: an unwritable temp dir)', async () => {
    const r = await initThreadedWasm({ tempDir: '/nonexistent/diffssl' });
    expect(r).toMatchObject({ threaded: false, threads: 1 });
    expect(r.reason).toMatch(/cannot write the worker scripts/);
    expect(tf.getBackend()).toBe('wasm');
    const y = tf.tidy(
      () =>
        tf
          .sum(tf.conv2d(tf.ones([1, 4, 4, 2]) as tf.Tensor4D, tf.ones([3, 3, 2, 1]) as tf.Tensor4D, 1, 'same'))
          .dataSync()[0],
    );
    expect(y).toBe(2 * (4 * 4 + 8 * 6 + 4 * 9)); // 4 corners see 4 taps, 8 edge pixels 6, 4 inner 9; per channel
  });

  it('switches from threaded to stock and back without leaving the backend broken', async () => {
    const on = await initThreadedWasm({ threads: 2 });
    expect(on.threaded).toBe(true);
    const off = await initThreadedWasm({ threads: 1 });
    expect(off).toMatchObject({ threaded: false, threads: 1 });
    const again = await initThreadedWasm({ threads: 2 });
    expect(again.threaded).toBe(true);
    expect(tf.tidy(() => tf.sum(tf.ones([3, 3])).dataSync()[0])).toBe(9);
  });
});
