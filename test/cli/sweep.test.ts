import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShardedFeatures } from '../../src/data/featureShards';
import { decodePNG } from '../decodePNG';
import { setBackend } from '../helpers';
import { cli, extractTiny, oneLine, TINY_MODEL } from './cliHarness';

let tmp: string;
beforeAll(async () => {
  await setBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-sweep-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('diffssl sweep', () => {
  it('linear probe and kNN over t × b of two extractions: CSV, JSON, two heatmaps', async () => {
    const [train, test, out] = ['train', 'test', 'sweep'].map((d) => path.join(tmp, d));
    await extractTiny('fashion-mnist:train', 24, train, '90,150', '2,4');
    await extractTiny('fashion-mnist:test', 12, test, '90,150', '2,4');
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

  // Sweeps from DATA: 12 training and 12 test images, batches of 4 so that every shard's rows are whole batches.
  const DATA = ['fashion-mnist:train', '--test', 'fashion-mnist:test', '--limit', '12'];
  const GRID = [
    '--t',
    '90,150',
    '--b',
    '2,4',
    '--pool',
    '2',
    '--batch',
    '4',
    ...TINY_MODEL,
    '--k',
    '3',
    '--probe-steps',
    '10',
  ];
  /** sweep.json with OUT written as "OUT", so that sweeps into two folders compare. */
  const sweepJson = (out: string) => fs.readFileSync(path.join(out, 'sweep.json'), 'utf8').replaceAll(out, 'OUT');

  it('from DATA: one pass over each set into OUT/features, then the probes, as extract + sweep of the directories', async () => {
    const out = path.join(tmp, 'data-sweep');
    const before = tf.memory().numTensors;
    const r = await cli(['sweep', ...DATA, ...GRID, '-o', out, '--json']);
    expect(r.code, r.err).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    const j = JSON.parse(r.out);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'sweep.json'), 'utf8'))).toEqual(j);
    expect(j).toMatchObject({
      train: {
        dir: path.join(out, 'features', 'train'),
        data: 'Fashion-MNIST train (shipped subset)',
        images: 12,
        pool: 2,
        seed: 0,
        ensemble: 1,
      },
      test: { dir: path.join(out, 'features', 'test'), data: 'Fashion-MNIST test (shipped subset)', images: 12 },
      ensemble: 1,
      t: [90, 150],
      b: [2, 4],
      k: [3],
    });
    expect(j.results.map((x: { t: number; b: number }) => `${x.t},${x.b}`)).toEqual(['90,2', '90,4', '150,2', '150,4']);
    for (const x of j.results) for (const v of [x.probe, x.probeTrain, x.knn.k3]) expect(v >= 0 && v <= 1).toBe(true);
    for (const f of ['sweep.csv', 'probe.png', 'knn.png']) expect(fs.existsSync(path.join(out, f))).toBe(true);
    // The features are the ones extract writes for the same images and settings, bit for bit.
    const own = path.join(tmp, 'own-test');
    const e = await cli([
      'extract',
      'fashion-mnist:test',
      '--limit',
      '12',
      ...GRID.slice(0, 8),
      ...TINY_MODEL,
      '-o',
      own,
    ]);
    expect(e.code, e.err).toBe(0);
    const [a, b] = [await ShardedFeatures.open(path.join(out, 'features', 'test')), await ShardedFeatures.open(own)];
    expect([...a.labels]).toEqual([...b.labels]);
    const [x, y] = [await a.read(150, 4), await b.read(150, 4)];
    expect(Buffer.from(x.dataSync().buffer).equals(Buffer.from(y.dataSync().buffer))).toBe(true);
    tf.dispose([x, y]);
    // Sweeping the two directories it wrote gives the same numbers.
    const dirs = path.join(tmp, 'data-sweep-dirs');
    const d = await cli([
      'sweep',
      j.train.dir,
      '--test',
      j.test.dir,
      '-o',
      dirs,
      '--k',
      '3',
      '--probe-steps',
      '10',
      '--json',
    ]);
    expect(d.code, d.err).toBe(0);
    expect(JSON.parse(d.out).results).toEqual(j.results);
  });

  it('sharded: every shard but the last exits 3 naming the pending ones; the last gives the unsharded sweep.json', async () => {
    const one = path.join(tmp, 'data-sweep');
    if (!fs.existsSync(path.join(one, 'sweep.json')))
      expect((await cli(['sweep', ...DATA, ...GRID, '-o', one, '--quiet'])).code).toBe(0);
    const out = path.join(tmp, 'sharded-sweep');
    const s0 = await cli(['sweep', ...DATA, ...GRID, '-o', out, '--shard', '0/3']);
    expect(s0.code).toBe(3);
    expect(s0.out).toMatch(
      /^train shard 0\/3: rows \[0, 4\) of Fashion-MNIST train .*: 4 images extracted\ntest shard 0\/3: rows \[0, 4\)/,
    );
    expect(oneLine(s0.err)).toMatch(
      /^diffssl: sweep: shard 0\/3 is complete; shards 1, 2 of 3 still pending \(training: 1, 2; test: 1, 2\); the last shard to finish runs the probes/,
    );
    expect(fs.existsSync(path.join(out, 'sweep.json'))).toBe(false);
    // Shard 2 from a Kubernetes Indexed Job, with --json: one object on stdout.
    const s2 = await cli(['sweep', ...DATA, ...GRID, '-o', out, '--shards', '3', '--json'], {
      env: { JOB_COMPLETION_INDEX: '2' },
    });
    expect(s2.code).toBe(3);
    expect(JSON.parse(s2.out)).toMatchObject({
      complete: false,
      shard: { index: 2, count: 3 },
      pending: { train: [1], test: [1] },
    });
    expect(oneLine(s2.err)).toMatch(/shard 1 of 3 still pending/);
    // The last shard, from a Slurm array 0-2, merges both and runs the probes.
    const s1 = await cli(['sweep', ...DATA, ...GRID, '-o', out], {
      env: { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_COUNT: '3' },
    });
    expect(s1.code, s1.err).toBe(0);
    expect(s1.err).toBe('');
    expect(s1.out).toMatch(
      /^train shard 1\/3: .*\ntest shard 1\/3: .*\n4 \(t, b\) pairs, 12 training and 12 test images; best/,
    );
    expect(sweepJson(out)).toBe(sweepJson(one));
    // A re-run without --shard over the finished run extracts nothing and gives the same again.
    const again = await cli(['sweep', ...DATA, ...GRID, '-o', out]);
    expect(again.code, again.err).toBe(0);
    expect(again.out.match(/already complete/g)).toHaveLength(6);
    expect(sweepJson(out)).toBe(sweepJson(one));

    // Shards whose workers were lost: a re-run without --shard extracts them, then runs the probes.
    const lost = path.join(tmp, 'lost-sweep');
    expect((await cli(['sweep', ...DATA, ...GRID, '-o', lost, '--shard', '1/3', '--quiet'])).code).toBe(3);
    const rest = await cli(['sweep', ...DATA, ...GRID, '-o', lost, '--quiet']);
    expect(rest.code, rest.err).toBe(0);
    expect(sweepJson(lost)).toBe(sweepJson(one));
  });

  it('--ensemble K is passed to the extraction and recorded in sweep.json; --test-limit', async () => {
    const out = path.join(tmp, 'ensemble-sweep');
    const r = await cli([
      'sweep',
      'fashion-mnist:train',
      '--test',
      'fashion-mnist:test',
      '--limit',
      '6',
      '--test-limit',
      '4',
      '--t',
      '90',
      '--b',
      '2',
      '--ensemble',
      '2',
      ...TINY_MODEL,
      '--k',
      '3',
      '--probe-steps',
      '5',
      '-o',
      out,
      '--quiet',
    ]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe('');
    const j = JSON.parse(fs.readFileSync(path.join(out, 'sweep.json'), 'utf8'));
    expect(j).toMatchObject({
      ensemble: 2,
      train: { ensemble: 2, images: 6 },
      test: { ensemble: 2, images: 4 },
      k: [3],
      knnPool: 1,
      probeSteps: 5,
    });
    expect((await ShardedFeatures.open(path.join(out, 'features', 'train'))).info.ensemble).toBe(2);
  });

  it('bad inputs', async () => {
    const train = path.join(tmp, 'train');
    const other = path.join(tmp, 'other');
    await extractTiny('fashion-mnist:test', 4, other, '90', '2,4');
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
      ...TINY_MODEL,
      '-o',
      unmerged,
      '--shard',
      '0/2',
      '--quiet',
    ]);
    expect(s.code, s.err).toBe(0);
    // sweep of two DATA into tmp/x (which no case creates), at t=90, b=2.
    const FROM_DATA = [
      'sweep',
      'fashion-mnist:train',
      '--test',
      'fashion-mnist:test',
      '-o',
      path.join(tmp, 'x'),
      '--t',
      '90',
      '--b',
      '2',
    ];
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
        /unmerged are not merged yet \(no features\.json\); run diffssl merge .*unmerged, which names any shards still missing/,
      ],
      [
        ['sweep', train, '--test', other, '-o', path.join(tmp, 'x')],
        1,
        /the test features lack t=150 b=2, .*extract them with the same --t and --b/,
      ],
      [
        ['sweep', 'fashion-mnist:train', '--test', 'fashion-mnist:test', '-o', path.join(tmp, 'x'), '--b', '2'],
        2,
        /sweep needs --t LIST to extract DATA \(fashion-mnist:train is not a feature directory\)/,
      ],
      [
        ['sweep', train, '--test', 'fashion-mnist:test', '-o', path.join(tmp, 'x')],
        2,
        /train is a feature directory but --test fashion-mnist:test is not; give two feature directories/,
      ],
      [
        ['sweep', 'fashion-mnist:train', '--test', train, '-o', path.join(tmp, 'x'), '--t', '90', '--b', '2'],
        2,
        /--test .*train is a feature directory but fashion-mnist:train is not/,
      ],
      [
        ['sweep', train, '--test', other, '-o', path.join(tmp, 'x'), '--ensemble', '2'],
        2,
        /sweep: --ensemble goes with DATA; .*train is a feature directory, which holds its own settings/,
      ],
      [[...FROM_DATA, '--shard', '3/2'], 2, /sweep: --shard: shard 3\/2: the index must be below 2/],
      [[...FROM_DATA, '--shards', '2'], 2, /sweep: --shards 2 needs the shard index from the scheduler/],
      [[...FROM_DATA.slice(0, -1), '2,99', ...TINY_MODEL], 1, /sweep: unknown block 99: this model has blocks 1\.\.19/],
      [
        ['sweep', path.join(tmp, 'nothing'), ...FROM_DATA.slice(2), ...TINY_MODEL],
        1,
        /sweep: .*nothing does not exist; DATA is an image folder/,
      ],
      [
        ['sweep', train, '--test', other, '-o', path.join(tmp, 'a-file')],
        1,
        /sweep: .*a-file is a file; -o names the results’ folder, a folder \(created if absent\): give another path/,
      ],
      [
        ['sweep', train, '--test', other, '-o', path.join(tmp, 'x'), '--test-limit', '2'],
        2,
        /sweep: --test-limit goes with DATA/,
      ],
    ];
    fs.writeFileSync(path.join(tmp, 'a-file'), '');
    for (const [args, code, message] of cases) {
      const r = await cli(args);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(code);
      if (code === 1) expect(oneLine(r.err)).toMatch(message);
      else expect(r.err.split('\n')[0]).toMatch(message);
    }
    expect(fs.existsSync(path.join(tmp, 'x'))).toBe(false);
  });
});
