import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES } from '../helpers';

// The CLI bundled as tsup bundles the bin (tfjs left external), run as a child process: real exit
// statuses, the real environment and backend choice, stdout and stderr kept apart.
const ROOT = path.resolve(__dirname, '../..');
let bin: string;
let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-process-'));
  bin = path.join(ROOT, '.tmp', `cli-${process.pid}.mjs`);
  buildSync({
    entryPoints: [path.join(ROOT, 'src/cli/main.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: bin,
    external: ['@tensorflow/*'],
    logLevel: 'error',
  });
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(bin, { force: true });
});

const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [bin, ...args], {
    cwd: tmp,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
    timeout: 60_000,
  });

describe('the diffssl bin as a process', () => {
  it('a shard from JOB_COMPLETION_INDEX, merge exiting 3 naming the missing shard, bad usage exiting 2', () => {
    const model = ['--model', path.join(FIXTURES, 'adm-tiny', 'weights.safetensors')];
    const flags = ['--flags', path.join(FIXTURES, 'adm-tiny', 'config.json'), '--backend', 'cpu'];
    const args = [
      'extract',
      'fashion-mnist:test',
      '--limit',
      '4',
      '--t',
      '90',
      '--b',
      '2',
      '--pool',
      '1',
      ...model,
      ...flags,
      '-o',
      'feats',
      '--json',
    ];
    const r = run(args, { JOB_COMPLETION_INDEX: '1', DIFFSSL_SHARDS: '2' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({
      shard: { index: 1, count: 2 },
      rows: [2, 4],
      pending: [0],
      merged: false,
    });
    const m = run(['merge', 'feats']);
    expect(m.status).toBe(3);
    expect(m.stdout).toBe('');
    expect(m.stderr).toMatch(/^diffssl: merge: .*shard 0 of 2 is missing\n$/);
    const u = run(['extract', 'fashion-mnist:test', '--t', '90', '--b', '2', '-o', 'x', '--shard', '3/2']);
    expect(u.status).toBe(2);
    expect(u.stderr).toMatch(
      /^diffssl: extract: --shard: shard 3\/2: the index must be below 2 .*\n\nUsage:\n  diffssl extract DATA/,
    );
    expect(u.stderr).not.toMatch(/\n\s+at /);
  });
});
