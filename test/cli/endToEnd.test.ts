// The CLI's main job end to end, in-process, on the adm-tiny fixture U-Net and a handful of Fashion-MNIST
// images: extract (train, test) → sweep → train linear at the sweep's best (t, b) → eval → knn → cka, every
// command with --json, and the numbers checked against each other across commands: extract's counts in
// every later command, eval equal to train's final test result, knn equal to sweep's cells, cka equal to
// the CKA of extract's features.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ckaMatrix } from '../../src/cka/matrix';
import { ShardedFeatures } from '../../src/data/featureShards';
import { setBackend } from '../helpers';
import { cliJson, TINY_MODEL } from './cliHarness';

const TRAIN_IMAGES = 24;
const TEST_IMAGES = 12;
const T = [90, 150];
const B = [2, 4];
const POOL = 2;
const EXTRACT = ['--t', T.join(','), '--b', B.join(','), '--pool', String(POOL), ...TINY_MODEL];

let tmp: string;
beforeAll(async () => {
  await setBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-e2e-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const inUnit = (v: unknown) => typeof v === 'number' && v >= 0 && v <= 1;

describe('the CLI end to end', () => {
  it('extract → sweep → train at the best (t, b) → eval → knn → cka, consistent across commands', async () => {
    const [trainDir, testDir, sweepDir, runDir, ckaDir] = ['train', 'test', 'sweep', 'run', 'cka'].map((d) =>
      path.join(tmp, d),
    );

    // extract: both sets, one shard each, merged.
    const extracted = [];
    for (const [data, limit, dir] of [
      ['fashion-mnist:train', TRAIN_IMAGES, trainDir],
      ['fashion-mnist:test', TEST_IMAGES, testDir],
    ] as const) {
      const e = await cliJson(['extract', data, '--limit', String(limit), ...EXTRACT, '-o', dir]);
      expect(e).toMatchObject({
        dir,
        images: limit,
        shard: { index: 0, count: 1 },
        rows: [0, limit],
        written: limit,
        reused: 0,
        pending: [],
        merged: true,
      });
      extracted.push(e);
    }

    // sweep: every (t, b) of the two directories, with the kNN defaults (k 20,200, pool 1) that knn has too.
    const s = await cliJson(['sweep', trainDir, '--test', testDir, '-o', sweepDir, '--probe-steps', '20']);
    expect(JSON.parse(fs.readFileSync(path.join(sweepDir, 'sweep.json'), 'utf8'))).toEqual(s);
    expect(s).toMatchObject({
      train: { dir: trainDir, images: TRAIN_IMAGES, pool: POOL, seed: 0, ensemble: 1 },
      test: { dir: testDir, images: TEST_IMAGES, pool: POOL, seed: 0, ensemble: 1 },
      t: T,
      b: B,
      k: [20, 200],
      knnPool: 1,
      probeSteps: 20,
    });
    expect(s.results.map((r: { t: number; b: number }) => [r.t, r.b])).toEqual(T.flatMap((t) => B.map((b) => [t, b])));
    for (const r of s.results)
      for (const v of [r.probe, r.probeTrain, r.knn.k20, r.knn.k200]) expect(inUnit(v), JSON.stringify(r)).toBe(true);
    // best is the cell of the highest probe accuracy (the first such in row order).
    const top = Math.max(...s.results.map((r: { probe: number }) => r.probe));
    const bestCell = s.results.find((r: { probe: number }) => r.probe === top);
    expect(s.best).toEqual({ t: bestCell.t, b: bestCell.b, probe: top });
    // Accuracies are fractions of the test images.
    for (const r of s.results)
      for (const v of [r.probe, r.knn.k20, r.knn.k200])
        expect(Math.abs(v * TEST_IMAGES - Math.round(v * TEST_IMAGES))).toBeLessThan(1e-9);
    const { t, b } = s.best;

    // train: a linear head on the training features at the sweep's best (t, b), tested on the test features.
    const tr = await cliJson([
      'train',
      'linear',
      '--features',
      trainDir,
      '--test',
      testDir,
      '--t',
      String(t),
      '--b',
      String(b),
      '--epochs',
      '2',
      '--batch',
      '8',
      '-o',
      runDir,
      ...TINY_MODEL,
    ]);
    expect(tr).toMatchObject({
      run: runDir,
      head: 'linear',
      status: 'trained',
      t: [t],
      b: [b],
      pool: POOL,
      input: 'features',
      images: TRAIN_IMAGES,
      epochs: 2,
      test: { examples: TEST_IMAGES, source: testDir },
    });
    expect(tr.history.map((h: { epoch: number }) => h.epoch)).toEqual([1, 2]);
    // The final test result is the last epoch's evaluation.
    expect(tr.history.at(-1).test).toEqual({
      loss: tr.test.loss,
      top1: tr.test.top1,
      top5: tr.test.top5,
      examples: TEST_IMAGES,
    });
    expect(tr.test.top5).toBeGreaterThanOrEqual(tr.test.top1);
    // The run's record and its --json agree.
    const record = JSON.parse(fs.readFileSync(tr.files.record, 'utf8'));
    expect(record).toMatchObject({ status: 'done', epochs: 2, history: tr.history, test: tr.test });

    // eval: the run on the same test features gives train's final test result exactly (same weights, as
    // saved; same examples in the same order; features are fixed, so no noise is drawn).
    const ev = await cliJson(['eval', runDir, '--features', testDir]);
    expect(ev).toMatchObject({ run: runDir, head: 'linear', source: testDir, examples: TEST_IMAGES });
    expect(ev.top1).toBe(tr.test.top1);
    expect(ev.top5).toBe(tr.test.top5);
    expect(ev.loss).toBeCloseTo(tr.test.loss, 6);

    // On images instead of features the test features are computed through the U-Net with noise drawn per
    // batch from the run's seed (not extract's per-image noise): eval on train's --test DATA at the run's
    // batch (its default) gives train's final test result exactly; another --batch draws other noise.
    const onImages = path.join(tmp, 'run-images');
    const test = ['fashion-mnist:test', '--limit', String(TEST_IMAGES)];
    const tri = await cliJson([
      'train',
      'linear',
      '--features',
      trainDir,
      '--test',
      test[0],
      '--test-limit',
      test[2],
      '--t',
      String(t),
      '--b',
      String(b),
      '--epochs',
      '1',
      '--batch',
      '8',
      '-o',
      onImages,
      ...TINY_MODEL,
    ]);
    expect(tri.test).toMatchObject({ examples: TEST_IMAGES, source: 'fashion-mnist:test' });
    const evi = await cliJson(['eval', onImages, ...test]);
    expect({ loss: evi.loss, top1: evi.top1, top5: evi.top5 }).toEqual({
      loss: tri.test.loss,
      top1: tri.test.top1,
      top5: tri.test.top5,
    });

    // knn at the same (t, b), with the same kNN settings as the sweep: its cells, exactly.
    const kn = await cliJson(['knn', trainDir, '--test', testDir, '--t', String(t), '--b', String(b)]);
    expect(kn).toMatchObject({
      train: { dir: trainDir, images: TRAIN_IMAGES },
      test: { dir: testDir, images: TEST_IMAGES },
      t,
      b,
      pool: s.knnPool,
    });
    expect(kn.results.map((r: { k: number }) => r.k)).toEqual(s.k);
    for (const r of kn.results) {
      expect(r.top1).toBe(bestCell.knn[`k${r.k}`]);
      expect(r.top5).toBeGreaterThanOrEqual(r.top1);
    }

    // cka: the blocks at the best t over the test images, with extract's noise (same seed) and pool.
    const c = await cliJson([
      'cka',
      'fashion-mnist:test',
      '--limit',
      String(TEST_IMAGES),
      '--t',
      String(t),
      '--b',
      B.join(','),
      '--pool',
      String(POOL),
      ...TINY_MODEL,
      '-o',
      ckaDir,
    ]);
    expect(c).toMatchObject({
      data: extracted[1].data,
      images: TEST_IMAGES,
      batches: 1,
      t: [t],
      b: B,
      across: 'b',
      labels: B.map((v) => `b=${v}`),
      debiased: false,
    });
    const m: number[][] = c.matrix;
    expect(m).toHaveLength(B.length);
    for (let i = 0; i < B.length; i++) {
      expect(m[i][i]).toBeCloseTo(1, 5);
      for (let j = 0; j < B.length; j++) {
        expect(m[i][j]).toBe(m[j][i]);
        expect(m[i][j] >= -1e-6 && m[i][j] <= 1 + 1e-6).toBe(true);
      }
    }
    // … and it is the CKA of the very features extract wrote for the test images.
    const f = await ShardedFeatures.open(testDir);
    const maps = await Promise.all(B.map((v) => f.read(t, v)));
    const expected = await ckaMatrix(maps);
    tf.dispose(maps);
    for (let i = 0; i < B.length; i++)
      for (let j = 0; j < B.length; j++) expect(m[i][j]).toBeCloseTo(expected[i][j], 4);
    const file = JSON.parse(fs.readFileSync(path.join(ckaDir, 'cka.json'), 'utf8'));
    expect(file).toMatchObject({ rows: c.labels, cols: c.labels, values: m, examples: TEST_IMAGES });
  });
});
