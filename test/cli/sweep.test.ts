import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePNG } from '../decodePNG';
import { FIXTURES, setBackend } from '../helpers';
import { cli, oneLine } from './cliHarness';

const MODEL = [
  '--model',
  path.join(FIXTURES, 'adm-tiny', 'weights.safetensors'),
  '--flags',
  path.join(FIXTURES, 'adm-tiny', 'config.json'),
];
let tmp: string;
beforeAll(async () => {
  await setBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-sweep-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const extract = async (data: string, limit: number, out: string, t = '90,150') => {
  const r = await cli([
    'extract',
    data,
    '--limit',
    String(limit),
    '--t',
    t,
    '--b',
    '2,4',
    '--pool',
    '2',
    ...MODEL,
    '-o',
    out,
    '--quiet',
  ]);
  expect(r.code, r.err).toBe(0);
};

describe('diffssl sweep', () => {
  it('linear probe and kNN over t × b of two extractions: CSV, JSON, two heatmaps', async () => {
    const [train, test, out] = ['train', 'test', 'sweep'].map((d) => path.join(tmp, d));
    await extract('fashion-mnist:train', 24, train);
    await extract('fashion-mnist:test', 12, test);
    const r = await cli(['sweep', train, '--test', test, '-o', out, '--k', '3,5', '--probe-steps', '20']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(
      /^4 \(t, b\) pairs, 24 training and 12 test images; best linear probe [\d.]+% at t=\d+, b=\d → /,
    );
    const csv = fs.readFileSync(path.join(out, 'sweep.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('t,b,probe_top1,probe_train_top1,probe_weight_decay,knn3_top1,knn5_top1');
    expect(csv.slice(1).map((l) => l.split(',').slice(0, 2).join(','))).toEqual(['90,2', '90,4', '150,2', '150,4']);
    for (const l of csv.slice(1))
      for (const v of l.split(',').slice(2).map(Number)) expect(v >= 0 && v <= 1, l).toBe(true);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'sweep.json'), 'utf8'));
    expect(json.results).toHaveLength(4);
    expect(json.results[0]).toMatchObject({ t: 90, b: 2, knn: { k3: expect.any(Number), k5: expect.any(Number) } });
    for (const f of ['probe.png', 'knn.png'])
      expect(decodePNG(fs.readFileSync(path.join(out, f))).width).toBeGreaterThan(50);
    const j = await cli(['sweep', train, '--test', test, '-o', out, '--k', '3', '--probe-steps', '5', '--json']);
    expect(j.code, j.err).toBe(0);
    expect(JSON.parse(j.out)).toMatchObject({
      t: [90, 150],
      b: [2, 4],
      k: [3],
      train: { images: 24 },
      test: { images: 12 },
    });
  });

  it('bad inputs', async () => {
    const train = path.join(tmp, 'train');
    const other = path.join(tmp, 'other');
    await extract('fashion-mnist:test', 4, other, '90');
    const unmerged = path.join(tmp, 'unmerged');
    const s = await cli([
      'extract',
      'fashion-mnist:test',
      '--limit',
      '4',
      '--t',
      '90',
      '--b',
      '2',
      ...MODEL,
      '-o',
      unmerged,
      '--shard',
      '0/2',
      '--quiet',
    ]);
    expect(s.code, s.err).toBe(0);
    const cases: [string[], number, RegExp][] = [
      [['sweep', train, '-o', tmp], 2, /sweep needs --test DIR/],
      [['sweep', train, '--test', other], 2, /sweep needs -o DIR/],
      [
        ['sweep', train, '--test', path.join(tmp, 'nope'), '-o', path.join(tmp, 'x')],
        1,
        /the test features .*nope do not exist/,
      ],
      [
        ['sweep', train, '--test', unmerged, '-o', path.join(tmp, 'x')],
        1,
        /unmerged has no features\.json: merge its shards first/,
      ],
      [
        ['sweep', train, '--test', other, '-o', path.join(tmp, 'x')],
        1,
        /the test features lack t=150 b=2, .*extract them with the same --t and --b/,
      ],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli(args);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(code);
      if (code === 1) expect(oneLine(r.err)).toMatch(message);
      else expect(r.err.split('\n')[0]).toMatch(message);
    }
    expect(fs.existsSync(path.join(tmp, 'x'))).toBe(false);
  });
});
