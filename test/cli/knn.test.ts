import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setBackend } from '../helpers';
import { cli, extractTiny, oneLine } from './cliHarness';

let tmp: string;
beforeAll(async () => {
  await setBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-knn-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('diffssl knn', () => {
  it('one (t, b): chosen by --t/--b among several, or the directory’s only one', async () => {
    const [train, test, one, oneTest] = ['train', 'test', 'one', 'one-test'].map((d) => path.join(tmp, d));
    await extractTiny('fashion-mnist:train', 24, train, '90,150', '2,4');
    await extractTiny('fashion-mnist:test', 12, test, '90,150', '2,4');
    const r = await cli(['knn', train, '--test', test, '--t', '150', '--b', '4', '--k', '3,5']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(
      /^kNN at t=150, b=4 \(pool 1\), 24 training and 12 test images: k=3 top-1 [\d.]+% top-5 [\d.]+%; k=5 top-1 [\d.]+% top-5 [\d.]+%\n$/,
    );
    const j = await cli(['knn', train, '--test', test, '--t', '90', '--b', '2', '--k', '3,5', '--pool', '2', '--json']);
    expect(j.code, j.err).toBe(0);
    expect(j.out.trim().split('\n')).toHaveLength(1);
    const json = JSON.parse(j.out);
    expect(json).toMatchObject({ t: 90, b: 2, pool: 2, train: { images: 24 }, test: { images: 12 } });
    expect(json.results.map((s: { k: number }) => s.k)).toEqual([3, 5]);
    for (const s of json.results)
      for (const v of [s.top1, s.top5]) expect(v >= 0 && v <= 1, JSON.stringify(s)).toBe(true);

    await extractTiny('fashion-mnist:train', 16, one, '90', '4');
    await extractTiny('fashion-mnist:test', 8, oneTest, '90', '4');
    const o = await cli(['knn', one, '--test', oneTest, '--k', '3', '--json']);
    expect(o.code, o.err).toBe(0);
    expect(JSON.parse(o.out)).toMatchObject({ t: 90, b: 4, pool: 1, train: { images: 16 }, test: { images: 8 } });
    // The test features may hold more than the training ones.
    const m = await cli(['knn', one, '--test', test, '--k', '3', '--quiet']);
    expect(m.code, m.err).toBe(0);
    expect(m.out).toBe('');
  });

  it('bad inputs: one line and exit 1, or the usage and exit 2', async () => {
    const [train, test, one] = ['train', 'test', 'one'].map((d) => path.join(tmp, d));
    const cases: [string[], number, RegExp][] = [
      [['knn', train], 2, /knn needs --test DIR/],
      [
        ['knn', train, '--test', test, '--b', '2'],
        2,
        /knn: .*train holds the noise steps t=90,150; choose one with --t/,
      ],
      [['knn', train, '--test', test, '--t', '90'], 2, /knn: .*train holds the blocks b=2,4; choose one with --b/],
      [['knn', train, '--test', test, '--t', 'x', '--b', '2'], 2, /knn: --t takes an integer ≥ 0, got "x"/],
      [['knn', train, '--test', test, '--t', '90', '--b', '2', '--k', '0'], 2, /--k takes neighbour counts ≥ 1/],
      [['knn', train, '--test', test, '--t', '90', '--b', '7'], 1, /knn: .*train has no block b=7; it holds b=2,4/],
      [
        ['knn', train, '--test', test, '--t', '999', '--b', '2'],
        1,
        /knn: .*train has no noise step t=999; it holds t=90,150/,
      ],
      [['knn', path.join(tmp, 'nope'), '--test', test], 1, /knn: the training features .*nope do not exist/],
      [['knn', train, '--test', path.join(tmp, 'nope')], 1, /knn: the test features .*nope do not exist/],
      [
        ['knn', tmp, '--test', test],
        1,
        /knn: .* is not a diffssl extract directory \(no features\.json\); give the -o DIR/,
      ],
      [
        ['knn', train, '--test', one, '--t', '150', '--b', '4'],
        1,
        /knn: the test features lack t=150 b=4; extract them/,
      ],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli(args);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(code);
      if (code === 1) expect(oneLine(r.err)).toMatch(message);
      else expect(r.err.split('\n')[0]).toMatch(message);
    }
  });
});
