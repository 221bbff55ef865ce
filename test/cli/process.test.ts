import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShardedFeatures } from '../../src/data/featureShards';
import { FIXTURES, setBackend } from '../helpers';

// The CLI bundled as tsup bundles the bin (tfjs left external), run as a child process: real exit
// statuses, the real environment and backend choice, stdout and stderr kept apart.
const ROOT = path.resolve(__dirname, '../..');
let bin: string;
let tmp: string;
beforeAll(async () => {
  // The test reads the features back (any backend holds float32 exactly).
  await setBackend('cpu');
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

interface Exited {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts the bin without waiting: the child, and a promise of how it ended. */
function start(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [bin, ...args], { cwd: tmp, env: { PATH: process.env.PATH ?? '', ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<Exited>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
  return { child, exited };
}

const TINY = [
  '--model',
  path.join(FIXTURES, 'adm-tiny', 'weights.safetensors'),
  '--flags',
  path.join(FIXTURES, 'adm-tiny', 'config.json'),
  '--backend',
  'cpu',
];
// 6 images, two steps, two blocks: a second or two per process on the CPU backend.
const EXTRACT = [
  'extract',
  'fashion-mnist:test',
  '--limit',
  '6',
  '--t',
  '90,150',
  '--b',
  '1,2',
  '--pool',
  '2',
  ...TINY,
];

/** Every (t, b) map's bytes and the labels of a merged directory, in row order. */
async function rowsOf(dir: string): Promise<{ labels: number[]; maps: Map<string, Buffer> }> {
  const f = await ShardedFeatures.open(path.join(tmp, dir));
  const maps = new Map<string, Buffer>();
  for (const t of f.t)
    for (const b of f.b) {
      const x = await f.read(t, b);
      maps.set(`${t}:${b}`, Buffer.from((x.dataSync() as Float32Array).buffer));
      x.dispose();
    }
  return { labels: [...f.labels], maps };
}

/** The straight run: one process, every image in one batch. */
let straightRun: Promise<Awaited<ReturnType<typeof rowsOf>>> | undefined;
const straight = () =>
  (straightRun ??= (async () => {
    const r = run([...EXTRACT, '-o', 'straight', '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    return rowsOf('straight');
  })());

function expectSameRows(a: Awaited<ReturnType<typeof rowsOf>>, b: Awaited<ReturnType<typeof rowsOf>>): void {
  expect(a.labels).toHaveLength(6);
  expect(a.labels).toEqual(b.labels);
  expect([...a.maps.keys()]).toEqual(['90:1', '90:2', '150:1', '150:2']);
  expect([...a.maps.keys()]).toEqual([...b.maps.keys()]);
  for (const [k, bytes] of a.maps) expect(bytes.equals(b.maps.get(k)!), `map ${k}`).toBe(true);
}

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

  it('three processes with JOB_COMPLETION_INDEX=0..2 at once, then merge, give the rows of one process bit for bit', async () => {
    const shards = [0, 1, 2].map((k) =>
      start([...EXTRACT, '--batch', '1', '-o', 'indexed', '--shards', '3', '--json'], {
        JOB_COMPLETION_INDEX: String(k),
      }),
    );
    const ends = await Promise.all(shards.map((s) => s.exited));
    ends.forEach((e, k) => {
      expect(e.status, e.stderr).toBe(0);
      expect(JSON.parse(e.stdout)).toMatchObject({ shard: { index: k, count: 3 }, rows: [2 * k, 2 * k + 2] });
    });
    const m = run(['merge', 'indexed', '--json']);
    expect(m.status, m.stderr).toBe(0);
    expect(JSON.parse(m.stdout)).toMatchObject({ complete: true, images: 6, shards: 3 });
    expectSameRows(await rowsOf('indexed'), await straight());
  });

  it('an extract killed mid-run (SIGKILL) resumes without a lost or a duplicated row', async () => {
    const own = path.join(tmp, 'killed', 'shard-00000-of-00001');
    const parts = () =>
      fs.existsSync(own) ? fs.readdirSync(own).filter((f) => /^part-\d+\.safetensors$/.test(f)) : [];
    // One image per part file, so the run is killed between (or while writing) part files.
    const { child, exited } = start([...EXTRACT, '--batch', '1', '-o', 'killed', '--quiet']);
    const deadline = Date.now() + 60_000;
    while (parts().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGKILL');
    const killed = await exited;
    expect(killed.signal, 'the extract ended before it could be killed').toBe('SIGKILL');
    expect(fs.existsSync(path.join(own, 'complete.json'))).toBe(false);
    const kept = parts().length;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(6);
    const r = run([...EXTRACT, '--batch', '1', '-o', 'killed', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    // Every whole part of the killed run is reused (a part it was writing is a temp file, removed).
    expect(j).toMatchObject({ reused: kept, written: 6 - kept, merged: true });
    expect(fs.readdirSync(own).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expectSameRows(await rowsOf('killed'), await straight());
  });
});
