// Dense features of more images than the process may hold, streamed to disk: peak memory is the batch's, not the
// data set's. The child is bench/dense-memory.mjs (a larger case of which docs/performance.md reports) on a bundle
// of src/, with V8's JS heap capped at 128 MiB.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundleScript } from '../helpers';

const ROOT = path.resolve(__dirname, '../..');

describe('dense extraction to a directory in bounded memory', () => {
  it('writes 600 MiB of dense maps (900 images) with RSS that stops growing after the first third, under 512 MiB', () => {
    const lib = bundleScript(`export * from ${JSON.stringify(path.join(ROOT, 'src/index.ts'))};`, 'dense-lib');
    try {
      const r = spawnSync(
        process.execPath,
        [
          path.join(ROOT, 'bench/dense-memory.mjs'),
          '--images',
          '900',
          '--batch',
          '32',
          '--threads',
          '1',
          '--heap-mib',
          '128',
          '--dist',
          lib,
        ],
        { encoding: 'utf8', timeout: 300_000 },
      );
      expect(r.status, r.stderr).toBe(0);
      const m = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
      console.log(`dense extraction: ${JSON.stringify(m)}`);
      expect(m.heapLimitMiB).toBe(128);
      expect(m.featureMiB).toBeGreaterThan(590);
      // the data set is larger than the memory allowed; the last two thirds add (almost) nothing
      expect(m.rssPeakMiB).toBeLessThan(512);
      expect(m.featureMiB).toBeGreaterThan(m.rssPeakMiB);
      // A batch's features live in ArrayBuffers until a GC, so RSS steps by a batch or two (0–51 MiB seen); keeping
      // the features would add 400 MiB here, keeping a quarter of them 100
      const batchMiB = (m.featureMiB / 900) * 32;
      expect(m.rssPeakMiB - m.rssFirstThirdMiB).toBeLessThan(4 * batchMiB);
    } finally {
      fs.rmSync(lib, { force: true });
    }
  }, 320_000);
});
