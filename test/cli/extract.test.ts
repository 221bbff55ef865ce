import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShardedFeatures } from '../../src/data/featureShards';
import { encodePNG } from '../../src/io/png';
import { FIXTURES, setBackend } from '../helpers';
import { pattern } from '../imageFiles';
import { cli, oneLine, TINY_MODEL } from './cliHarness';

const FAST = ['--t', '90,150', '--b', '2,3', '--pool', '2', '--batch', '2', ...TINY_MODEL];

let tmp: string;
let folder: string;
let dirs = 0;
const fresh = () => path.join(tmp, `out${dirs++}`);

beforeAll(async () => {
  await setBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-extract-'));
  // An ImageFolder of 5 small PNGs in two classes, of two sizes (resized to the model's 32).
  folder = path.join(tmp, 'images');
  for (const [cls, k, side] of [
    ['cat', 0, 20],
    ['cat', 1, 36],
    ['dog', 2, 20],
    ['dog', 3, 24],
    ['dog', 4, 40],
  ] as const) {
    fs.mkdirSync(path.join(folder, cls), { recursive: true });
    fs.writeFileSync(path.join(folder, cls, `${k}.png`), await encodePNG(pattern(side, side, 3, k + 1), side, side));
  }
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('diffssl extract and merge', () => {
  it('an ImageFolder: parts, a manifest, merged features with the folder’s labels; a re-run is a no-op', async () => {
    const out = fresh();
    const r = await cli(['extract', folder, ...FAST, '-o', out], { isTTY: true });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(
      /^shard 0\/1: rows \[0, 5\) of image folder .* \(5 images, 2 classes\): 5 images extracted\n/,
    );
    expect(r.out).toMatch(/all 1 shard complete: merged into /);
    expect(r.err).toMatch(/\r\[#+\] 100% {2}5 \/ 5 images .* done\n$/);
    const f = await ShardedFeatures.open(out);
    expect(f.size).toBe(5);
    expect([...f.labels]).toEqual([0, 0, 1, 1, 1]);
    expect(f.t).toEqual([90, 150]);
    expect(f.shape(150, 3)).toEqual([2, 2, 32]);
    const parts = fs.readdirSync(path.join(out, 'shard-00000-of-00001')).sort();
    expect(parts).toEqual([
      'complete.json',
      'manifest.json',
      'part-000000000.safetensors',
      'part-000000002.safetensors',
      'part-000000004.safetensors',
    ]);
    const mtime = fs.statSync(path.join(out, 'shard-00000-of-00001', 'part-000000000.safetensors')).mtimeMs;
    const again = await cli(['extract', folder, ...FAST, '-o', out, '--json']);
    expect(again.code, again.err).toBe(0);
    const j = JSON.parse(again.out);
    expect(j).toMatchObject({ written: 0, reused: 5, pending: [], merged: true, shard: { index: 0, count: 1 } });
    expect(fs.statSync(path.join(out, 'shard-00000-of-00001', 'part-000000000.safetensors')).mtimeMs).toBe(mtime);
    // Other settings in the same directory are refused, naming the difference.
    const other = await cli(['extract', folder, ...FAST.map((a) => (a === '90,150' ? '90' : a)), '-o', out]);
    expect(other.code).toBe(1);
    expect(oneLine(other.err)).toMatch(
      /holds features made with other settings .*t is \[90,150\], this run has \[90\]/,
    );
  });

  it('an unreadable file: fatal with its name, or left out with --skip-bad (named on stderr, the rest extracted)', async () => {
    const bad = path.join(tmp, 'with-bad');
    fs.cpSync(folder, bad, { recursive: true });
    fs.writeFileSync(path.join(bad, 'cat', '9.png'), Buffer.from('not a png at all'));
    const stop = await cli(['extract', bad, ...FAST, '-o', fresh()]);
    expect(stop.code).toBe(1);
    expect(stop.out).toBe('');
    expect(oneLine(stop.err)).toMatch(/^diffssl: .*cat\/9\.png/);
    expect(stop.err).not.toMatch(/\n\s+at /);

    const out = fresh();
    const skip = await cli(['extract', bad, ...FAST, '-o', out, '--skip-bad']);
    expect(skip.code, skip.err).toBe(0);
    expect(skip.err).toMatch(/^diffssl: extract: left out: .*cat\/9\.png/m);
    expect(skip.out).toMatch(/\(5 images, 1 unreadable skipped, 2 classes\): 5 images extracted/);
    const clean = fresh();
    expect((await cli(['extract', folder, ...FAST, '-o', clean])).code).toBe(0);
    const [a, b] = [await ShardedFeatures.open(out), await ShardedFeatures.open(clean)];
    expect([...a.labels]).toEqual([...b.labels]);
    const [x, y] = [await a.read(150, 3), await b.read(150, 3)];
    expect(Array.from(x.dataSync())).toEqual(Array.from(y.dataSync()));
    x.dispose();
    y.dispose();
  });

  it('three shards by --shard and by the scheduler environment, then merge; a missing shard exits 3', async () => {
    const out = fresh();
    const args = ['extract', 'fashion-mnist:test', '--limit', '7', ...FAST, '-o', out];
    const s0 = await cli([...args, '--shard', '0/3']);
    expect(s0.code, s0.err).toBe(0);
    expect(s0.out).toMatch(/^shard 0\/3: rows \[0, 2\) of Fashion-MNIST test \(shipped subset\): 2 images extracted\n/);
    expect(s0.out).toMatch(/pending shards: 1, 2 of 3; run them, then diffssl merge /);
    // Shard 2 from a Kubernetes Indexed Job, the count from --shards.
    const s2 = await cli([...args, '--shards', '3', '--json'], { env: { JOB_COMPLETION_INDEX: '2' } });
    expect(s2.code, s2.err).toBe(0);
    expect(JSON.parse(s2.out)).toMatchObject({
      shard: { index: 2, count: 3 },
      rows: [4, 7],
      pending: [1],
      merged: false,
    });

    const m = await cli(['merge', out]);
    expect(m.code).toBe(3);
    expect(m.out).toBe('');
    expect(oneLine(m.err)).toMatch(/^diffssl: merge: .* shard 1 of 3 is missing/);
    const mj = await cli(['merge', out, '--json']);
    expect(mj.code).toBe(3);
    expect(JSON.parse(mj.out)).toMatchObject({ complete: false, missing: [1] });

    // Shard 1 from a Slurm array 10-12: task 11 is index 1 of 3; the last shard merges.
    const s1 = await cli([...args], {
      env: { SLURM_ARRAY_TASK_ID: '11', SLURM_ARRAY_TASK_MIN: '10', SLURM_ARRAY_TASK_COUNT: '3' },
    });
    expect(s1.code, s1.err).toBe(0);
    expect(s1.out).toMatch(/^shard 1\/3: rows \[2, 4\)/);
    expect(s1.out).toMatch(/all 3 shards complete: merged/);
    const ok = await cli(['merge', out, '--json']);
    expect(ok.code, ok.err).toBe(0);
    const j = JSON.parse(ok.out);
    expect(j).toMatchObject({ complete: true, images: 7, t: [90, 150], b: [2, 3], shards: 3, pool: 2 });
    expect(j.shapes['90:2']).toEqual([2, 2, 32]);
    const f = await ShardedFeatures.open(out);
    expect([...f.labels]).toHaveLength(7);
    expect((await cli(['merge', out])).out).toMatch(/^merged 3 shards: 7 images, t 90,150, b 2,3 → /);
  });

  it('an IDX file with --labels and a text list of image paths', async () => {
    const idx = path.join(FIXTURES, '..', '..', 'data', 'fashion-mnist', 't10k-images-idx3-ubyte.gz');
    const labels = path.join(FIXTURES, '..', '..', 'data', 'fashion-mnist', 't10k-labels-idx1-ubyte.gz');
    const out = fresh();
    const r = await cli(['extract', idx, '--labels', labels, '--limit', '3', ...FAST, '-o', out, '--json']);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ images: 3, written: 3 });
    const fm = fresh();
    expect((await cli(['extract', 'fashion-mnist:test', '--limit', '3', ...FAST, '-o', fm])).code).toBe(0);
    const a = await ShardedFeatures.open(out);
    const b = await ShardedFeatures.open(fm);
    expect([...a.labels]).toEqual([...b.labels]);
    const [x, y] = [await a.read(150, 3), await b.read(150, 3)];
    expect(Array.from(x.dataSync())).toEqual(Array.from(y.dataSync()));
    x.dispose();
    y.dispose();

    const list = path.join(tmp, 'list.txt');
    fs.writeFileSync(list, '# two images\nimages/dog/3.png\n\nimages/cat/0.png\n');
    const l = await cli(['extract', list, ...FAST, '-o', fresh(), '--json']);
    expect(l.code, l.err).toBe(0);
    expect(JSON.parse(l.out)).toMatchObject({ images: 2, written: 2, data: `list ${list} (2 images)` });
  });

  it('--dense S writes every block at S×S; with --pool it is one line and exit 1', async () => {
    const out = fresh();
    const dense = ['--t', '90', '--b', '2,10', '--batch', '2', ...TINY_MODEL];
    const r = await cli(['extract', folder, ...dense, '--dense', '32', '-o', out, '--json']);
    expect(r.code, r.err).toBe(0);
    const f = await ShardedFeatures.open(out);
    expect(f.info.dense).toBe(32);
    expect(f.shape(90, 2).slice(0, 2)).toEqual([32, 32]);
    expect(f.shape(90, 10).slice(0, 2)).toEqual([32, 32]);
    const both = await cli(['extract', folder, ...dense, '--dense', '32', '--pool', '2', '-o', fresh()]);
    expect(both.code).toBe(1);
    expect(oneLine(both.err)).toMatch(/dense and pool exclude each other/);
  });

  it('bad inputs: one line each, exit 2 for usage and 1 for a file or value the model refuses', async () => {
    const bad = path.join(tmp, 'bad');
    fs.mkdirSync(path.join(bad, 'x'), { recursive: true });
    fs.writeFileSync(path.join(bad, 'x', 'broken.png'), 'not a png');
    const out = path.join(tmp, 'never');
    const cases: [string[], number, RegExp][] = [
      [
        ['extract', path.join(tmp, 'nothing'), ...FAST, '-o', out],
        1,
        /extract: .*nothing does not exist; DATA is an image folder/,
      ],
      // A file that is not an image is found when its batch is loaded (the shard's manifest is written by then).
      [['extract', bad, ...FAST, '-o', path.join(tmp, 'broken-out')], 1, /broken\.png/],
      [
        ['extract', folder, ...FAST.map((a) => (a === '2,3' ? '2,99' : a)), '-o', out],
        1,
        /unknown block 99: this model has blocks 1\.\.\d+ \(see diffssl info\)/,
      ],
      [
        ['extract', folder, ...FAST.map((a) => (a === '90,150' ? '90,1000' : a)), '-o', out],
        1,
        /--t 1000 is out of range: this model's steps are 0\.\.999/,
      ],
      [['extract', folder, ...FAST, '-o', out, '--shard', '3/2'], 2, /--shard: shard 3\/2: the index must be below 2/],
      [['extract', folder, ...FAST, '-o', out, '--shard', 'a/b'], 2, /--shard: a shard is written k\/n/],
      [
        ['extract', folder, ...FAST, '-o', out, '--shards', '3'],
        2,
        /--shards 3 needs the shard index from the scheduler/,
      ],
      [
        ['extract', folder, ...FAST, '-o', out, '--ensemble', 'big'],
        2,
        /--ensemble takes a positive integer, got "big"/,
      ],
      [['extract', folder, ...FAST, '-o', out, '--seed', '-1'], 2, /--seed takes an integer ≥ 0, got "-1"/],
      [['extract', folder, ...FAST], 2, /extract needs -o DIR/],
      [['extract', folder, '--b', '2', '-o', out], 2, /extract needs --t LIST/],
      [['extract', ...FAST, '-o', out], 2, /extract needs DATA, got nothing/],
      [
        ['extract', 'mnist:train', ...FAST, '-o', out],
        2,
        /unknown dataset mnist:train; the named datasets are fashion-mnist:train/,
      ],
      [['extract', folder, '--labels', 'l.gz', ...FAST, '-o', out], 2, /--labels goes with an IDX images file/],
      [['merge', path.join(tmp, 'nowhere')], 1, /merge: .*nowhere does not exist/],
      [['merge', bad], 1, /holds no feature shards/],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli(args, { env: {} });
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(code);
      expect(r.out).toBe('');
      if (code === 1) expect(oneLine(r.err)).toMatch(message);
      else expect(r.err.split('\n')[0]).toMatch(message);
    }
    expect(fs.existsSync(out)).toBe(false);
  });
});
