import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ckaMatrix } from '../../src/cka/matrix';
import { ShardedFeatures } from '../../src/data/featureShards';
import { decodePNG } from '../decodePNG';
import { setBackend } from '../helpers';
import { cli, oneLine, TINY_MODEL } from './cliHarness';

let tmp: string;
beforeAll(async () => {
  await setBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-cka-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Symmetric, unit diagonal, entries in [0, 1]. */
function expectCKA(m: number[][], n: number): void {
  expect(m).toHaveLength(n);
  for (let i = 0; i < n; i++) {
    expect(m[i]).toHaveLength(n);
    expect(m[i][i]).toBeCloseTo(1, 5);
    for (let j = 0; j < n; j++) {
      expect(m[i][j]).toBeCloseTo(m[j][i], 6);
      expect(m[i][j] >= -1e-6 && m[i][j] <= 1 + 1e-6, `${i},${j}: ${m[i][j]}`).toBe(true);
    }
  }
}

// Twelve shipped test images, blocks 2, 4, 6 at t = 90, pooled 2×2: the set both cka and extract read below.
const BLOCKS_AT_90 = ['fashion-mnist:test', '--limit', '12', '--b', '2,4,6', '--t', '90', '--pool', '2'];

describe('diffssl cka', () => {
  it('blocks × blocks at one t: cka.json, cka.png and one JSON object', async () => {
    const out = path.join(tmp, 'blocks');
    const r = await cli(['cka', ...BLOCKS_AT_90, ...TINY_MODEL, '-o', out, '--json']);
    expect(r.code, r.err).toBe(0);
    expect(r.out.trim().split('\n')).toHaveLength(1);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({
      images: 12,
      batches: 1,
      t: [90],
      b: [2, 4, 6],
      across: 'b',
      labels: ['b=2', 'b=4', 'b=6'],
    });
    expectCKA(j.matrix, 3);
    const file = JSON.parse(fs.readFileSync(path.join(out, 'cka.json'), 'utf8'));
    expect(file).toMatchObject({
      format: 'diffssl.cka-matrix',
      rows: ['b=2', 'b=4', 'b=6'],
      cols: ['b=2', 'b=4', 'b=6'],
      examples: 12,
    });
    expect(file.values).toEqual(j.matrix);
    expect(decodePNG(fs.readFileSync(path.join(out, 'cka.png'))).width).toBeGreaterThan(50);

    // The same noise as diffssl extract: the matrix is ckaMatrix of the features extract writes.
    const feats = path.join(tmp, 'feats');
    const e = await cli(['extract', ...BLOCKS_AT_90, '--batch', '5', ...TINY_MODEL, '-o', feats, '--quiet']);
    expect(e.code, e.err).toBe(0);
    const sf = await ShardedFeatures.open(feats);
    const maps = [await sf.read(90, 2), await sf.read(90, 4), await sf.read(90, 6)];
    const expected = await ckaMatrix(maps);
    tf.dispose(maps);
    for (let i = 0; i < 3; i++) for (let k = 0; k < 3; k++) expect(j.matrix[i][k]).toBeCloseTo(expected[i][k], 4);
  });

  it('steps × steps at one b, in minibatches, with the default backbone; a progress bar on a terminal only', async () => {
    const out = path.join(tmp, 'steps');
    const r = await cli([
      'cka',
      'fashion-mnist:test',
      '--limit',
      '40',
      '--t',
      '10,50,150',
      '--b',
      '9',
      '--batch',
      '16',
      '-o',
      out,
    ]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^linear CKA of 3 steps at b=9 over 40 images \(3 batches\) → .*cka\.json, .*cka\.png\n$/);
    expect(r.err).toBe('');
    const tty = await cli(
      [
        'cka',
        'fashion-mnist:test',
        '--limit',
        '8',
        '--t',
        '10,50',
        '--b',
        '9',
        '--batch',
        '4',
        '-o',
        path.join(tmp, 'tty'),
      ],
      { isTTY: true },
    );
    expect(tty.code, tty.err).toBe(0);
    expect(tty.err).toMatch(/\r\[#+\] 100% {2}8 \/ 8 images .* done\n$/);
    const file = JSON.parse(fs.readFileSync(path.join(out, 'cka.json'), 'utf8'));
    expect(file.rows).toEqual(['t=10', 't=50', 't=150']);
    expectCKA(file.values, 3);
    // Features of nearby steps are more alike than those of distant ones.
    expect(file.values[0][1]).toBeGreaterThan(file.values[0][2]);
  });

  it('bad inputs: one line and exit 1, or the usage and exit 2', async () => {
    const x = path.join(tmp, 'x');
    const cases: [string[], number, RegExp][] = [
      [
        ['cka', 'fashion-mnist:test', '--b', '2,4', '--t', '10,50', ...TINY_MODEL, '-o', x],
        2,
        /cka: --t 10,50 and --b 2,4 both list several values/,
      ],
      [
        ['cka', 'fashion-mnist:test', '--b', '2', '--t', '10', ...TINY_MODEL, '-o', x],
        2,
        /cka compares several blocks at one step/,
      ],
      [['cka', 'fashion-mnist:test', '--b', '2,4', ...TINY_MODEL, '-o', x], 2, /cka needs --t LIST/],
      [['cka', 'fashion-mnist:test', '--b', '2,4', '--t', '10'], 2, /cka needs -o DIR/],
      [
        ['cka', 'fashion-mnist:test', '--b', '2,4', '--t', '10', '--batch', '1', '-o', x],
        2,
        /--batch takes at least 2 images/,
      ],
      [
        ['cka', 'fashion-mnist:nope', '--b', '2,4', '--t', '10', ...TINY_MODEL, '-o', x],
        2,
        /unknown dataset fashion-mnist:nope/,
      ],
      [
        ['cka', 'fashion-mnist:test', '--b', '2,99', '--t', '10', ...TINY_MODEL, '-o', x],
        1,
        /cka: unknown block 99: this model has blocks 1\.\.\d+/,
      ],
      [
        ['cka', 'fashion-mnist:test', '--b', '2,4', '--t', '1000', ...TINY_MODEL, '-o', x],
        1,
        /cka: --t 1000 is out of range: this model's steps are 0\.\.999/,
      ],
      [
        ['cka', path.join(tmp, 'nope'), '--b', '2,4', '--t', '10', ...TINY_MODEL, '-o', x],
        1,
        /cka: .*nope does not exist/,
      ],
      [
        ['cka', 'fashion-mnist:test', '--limit', '1', '--b', '2,4', '--t', '10', ...TINY_MODEL, '-o', x],
        1,
        /gives 1 image; CKA needs at least 2/,
      ],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli(args);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(code);
      if (code === 1) expect(oneLine(r.err)).toMatch(message);
      else expect(r.err.split('\n')[0]).toMatch(message);
    }
    expect(fs.existsSync(x)).toBe(false);
  });
});
