import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, InputError, ShardError } from '../../src/errors';
import { extractFeatures, type FeatureSet } from '../../src/features/extractFeatures';
import {
  extractToDirectory,
  mergeShards,
  parseShard,
  shardFromEnv,
  shardRange,
  ShardedFeatures,
  type ExtractToDirectoryOptions,
} from '../../src/data/featureShards';
import { imagesFromTensor, type ImageSource } from '../../src/data/images';
import { ADMUNet } from '../../src/unet/admUnet';
import { seededNormal } from '../../src/util/noise';
import type { ShardProgressInfo } from '../../src/util/progress';
import { interpolateBilinear } from '../../src/ops/interpolate';
import { bundleScript, compareArrays, setBackend } from '../helpers';
import { expectProgress } from '../util/progressReports';

const ROOT = path.resolve(__dirname, '../..');
const FLAGS = { image_size: 8, num_channels: 32, channel_mult: '1,2', num_res_blocks: 1, in_channels: 1 };
const N = 11;
const SETTINGS = { t: [50, 400], b: [2, 5], pool: 4, seed: 3, ensemble: 2 };

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-shards-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => path.join(tmpRoot, `d${dirs++}`);
const bits = (m: tf.Tensor) => Array.from(new Uint32Array(new Float32Array(m.dataSync()).buffer));
const sameBits = (a: FeatureSet, b: FeatureSet) => {
  expect(a.t).toEqual(b.t);
  expect(a.b).toEqual(b.b);
  for (const { t, b: blk, map } of a.entries()) {
    expect(map.shape).toEqual(b.get(t, blk).shape);
    expect(bits(map), `t ${t} b ${blk}`).toEqual(bits(b.get(t, blk)));
  }
};
const shardDir = (dir: string, k: number, n: number) =>
  path.join(dir, `shard-${String(k).padStart(5, '0')}-of-${String(n).padStart(5, '0')}`);

/** The error `p` rejects with. */
async function failure(p: Promise<unknown>): Promise<ShardError> {
  try {
    await p;
  } catch (e) {
    return e as ShardError;
  }
  throw new Error('expected a rejection');
}

describe('sharded feature extraction', () => {
  let unet: ADMUNet;
  let x0: tf.Tensor4D;
  let labels: number[];
  let images: ImageSource;
  let oneDir: string;
  let whole: FeatureSet;
  const opts = (dir: string, more: Partial<ExtractToDirectoryOptions> = {}): ExtractToDirectoryOptions => ({
    model: unet,
    ...SETTINGS,
    batch: 3,
    dir,
    ...more,
  });

  beforeAll(async () => {
    await setBackend('wasm');
    unet = ADMUNet.create(FLAGS, 1);
    x0 = tf.randomUniform([N, 8, 8, 1], -1, 1, 'float32', 17) as tf.Tensor4D;
    labels = Array.from({ length: N }, (_, i) => (i * 7) % 3);
    images = imagesFromTensor(x0, labels);
    oneDir = freshDir();
    await extractToDirectory(images, opts(oneDir));
    whole = await (await mergeShards(oneDir)).load();
  });
  afterAll(() => {
    whole?.dispose();
    unet?.dispose();
    x0?.dispose();
  });

  it('one process equals extractFeatures with the documented noise streams, bit for bit, and reads back any rows', async () => {
    // Draw k of step t for image i: seededNormal([1, S, S, C], seed, t, k, i); t-major, then draw.
    const noise = SETTINGS.t.flatMap((t) =>
      [0, 1].map((k) =>
        tf.tidy(() =>
          tf.concat(
            Array.from({ length: N }, (_, i) => seededNormal<tf.Rank.R4>([1, 8, 8, 1], SETTINGS.seed, t, k, i)),
          ),
        ),
      ),
    ) as tf.Tensor4D[];
    const direct = await extractFeatures(x0, {
      model: unet,
      t: SETTINGS.t,
      b: SETTINGS.b,
      pool: SETTINGS.pool,
      ensemble: 2,
      noise,
    });
    sameBits(whole, direct);
    direct.dispose();
    tf.dispose(noise);

    const feats = await ShardedFeatures.open(oneDir);
    expect(feats.size).toBe(N);
    expect(Array.from(feats.labels)).toEqual(labels);
    expect(feats.t).toEqual(SETTINGS.t);
    expect(feats.b).toEqual(SETTINGS.b);
    expect(feats.shape(50, 2)).toEqual([4, 4, 32]);
    expect(feats.info).toMatchObject({ pool: 4, seed: 3, ensemble: 2, dtype: 'F32', shards: 1, imagesHash: null });
    expect(feats.info.modelHash).toMatch(/^[0-9a-f]{64}$/);
    // Rows 2..8 cross three part files (batch 3).
    const some = await feats.read(400, 5, 2, 7);
    const want = tf.slice(whole.get(400, 5), 2, 7);
    expect(bits(some)).toEqual(bits(want));
    tf.dispose([some, want]);
    const part = await feats.load({ t: 50, b: [5, 2], start: 10, count: 1 });
    expect(part.t).toEqual([50]);
    expect(part.b).toEqual([5, 2]);
    const last = tf.slice(whole.get(50, 2), 10, 1);
    expect(bits(part.get(50, 2))).toEqual(bits(last));
    tf.dispose(last);
    part.dispose();
    await expect(feats.read(50, 2, 5, 7)).rejects.toThrow(/rows \[5, 12\) are not within \[0, 11\)/);
    await expect(feats.read(51, 2)).rejects.toThrow(InputError);
  });

  it('three shards from JOB_COMPLETION_INDEX merge into one process’s features; a finished shard re-runs as a no-op', async () => {
    const dir = freshDir();
    const reports: ShardProgressInfo[][] = [];
    for (const k of [2, 0, 1]) {
      const shard = shardFromEnv({ JOB_COMPLETION_INDEX: String(k), DIFFSSL_SHARDS: '3' });
      expect(shard).toEqual({ index: k, count: 3 });
      const seen: ShardProgressInfo[] = [];
      const r = await extractToDirectory(images, opts(dir, { shard, onProgress: (p) => seen.push(p) }));
      expect([r.start, r.end]).toEqual(
        [
          [0, 3],
          [3, 7],
          [7, 11],
        ][k],
      );
      expect(r).toMatchObject({ written: r.end - r.start, reused: 0, dir: shardDir(dir, k, 3) });
      expectProgress(seen, 'shard');
      expect(seen[0].shard).toEqual({ index: k, count: 3 });
      reports.push(seen);
    }
    const merged = await mergeShards(dir);
    expect(merged.info.shards).toBe(3);
    expect(Array.from(merged.labels)).toEqual(labels);
    const all = await merged.load();
    sameBits(all, whole);
    all.dispose();
    expect(fs.readdirSync(shardDir(dir, 1, 3)).sort()).toEqual([
      'complete.json',
      'manifest.json',
      'part-000000003.safetensors',
      'part-000000006.safetensors',
    ]);

    const file = path.join(shardDir(dir, 1, 3), 'part-000000003.safetensors');
    const mtime = fs.statSync(file).mtimeMs;
    const seen: ShardProgressInfo[] = [];
    const again = await extractToDirectory(
      images,
      opts(dir, { shard: { index: 1, count: 3 }, onProgress: (p) => seen.push(p) }),
    );
    expect(again).toMatchObject({ written: 0, reused: 4 });
    expect(seen.map((p) => [p.done, p.total, p.reused])).toEqual([[4, 4, 4]]);
    expect(fs.statSync(file).mtimeMs).toBe(mtime);
  });

  it('an extraction killed (SIGKILL) after its first part file resumes with no row lost or repeated', async () => {
    const dir = freshDir();
    const src = (p: string) => JSON.stringify(path.join(ROOT, 'src', p));
    // The same model, images and settings as this file's, in a child; images past the first part are slow.
    const script = bundleScript(
      `import * as tf from '@tensorflow/tfjs-core';
import { useBestBackend } from ${src('backend/useBestBackend')};
import { ADMUNet } from ${src('unet/admUnet')};
import { imagesFromTensor } from ${src('data/images')};
import { extractToDirectory, shardFromEnv } from ${src('data/featureShards')};
await useBestBackend({ force: 'wasm', threads: 1 });
const unet = ADMUNet.create(${JSON.stringify(FLAGS)}, 1);
const base = imagesFromTensor(tf.tensor4d(${JSON.stringify(Array.from(x0.dataSync()))}, [${x0.shape}]), ${JSON.stringify(labels)});
const images = { size: base.size, get: async (i) => { if (i >= 5) await new Promise((r) => setTimeout(r, 2000)); return base.get(i); } };
await extractToDirectory(images, { model: unet, ...${JSON.stringify(SETTINGS)}, batch: 2, dir: ${JSON.stringify(dir)}, shard: shardFromEnv(process.env) });
console.log('finished');
`,
      'shards-kill',
    );
    const own = shardDir(dir, 1, 3);
    const first = path.join(own, 'part-000000003.safetensors');
    try {
      const child = spawn(process.execPath, [script], {
        cwd: ROOT,
        env: { ...process.env, JOB_COMPLETION_INDEX: '1', DIFFSSL_SHARDS: '3' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_, signal) => resolve(signal)));
      const deadline = Date.now() + 90_000;
      while (!fs.existsSync(first) && child.exitCode === null && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(fs.existsSync(first), `no part file appeared: ${out}`).toBe(true);
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      expect(out).not.toMatch(/finished/);
    } finally {
      fs.rmSync(script, { force: true });
    }
    expect(fs.existsSync(path.join(own, 'complete.json'))).toBe(false);
    expect(fs.existsSync(path.join(own, 'part-000000005.safetensors'))).toBe(false);
    // What a kill during a write leaves behind: a temp file, removed by the next run.
    const tmp = path.join(own, '.part-000000005.safetensors.999.x.tmp');
    fs.writeFileSync(tmp, 'half a file');
    await expect(mergeShards(dir)).rejects.toThrow(ShardError);

    // The resumed run may use another batch size: it continues after row 4.
    const seen: ShardProgressInfo[] = [];
    const r = await extractToDirectory(
      images,
      opts(dir, { shard: parseShard('1/3'), batch: 3, onProgress: (p) => seen.push(p) }),
    );
    expect(r).toMatchObject({ start: 3, end: 7, reused: 2, written: 2 });
    expect(seen.map((p) => [p.done, p.reused])).toEqual([
      [2, 2],
      [4, 2],
    ]);
    expectProgress(seen, 'shard');
    expect(fs.existsSync(tmp)).toBe(false);
    for (const k of [0, 2]) await extractToDirectory(images, opts(dir, { shard: { index: k, count: 3 } }));
    const all = await (await mergeShards(dir)).load();
    sameBits(all, whole);
    all.dispose();
  });

  it('merge names every missing, duplicated and mismatched shard, gap and overlap in a ShardError', async () => {
    const dir = freshDir();
    for (const k of [0, 1, 2]) await extractToDirectory(images, opts(dir, { shard: { index: k, count: 3 } }));
    const variant = (edit: (d: string) => void) => {
      const d = freshDir();
      fs.cpSync(dir, d, { recursive: true });
      edit(d);
      return d;
    };
    const editComplete = (d: string, k: number, f: (c: any) => void) => {
      const file = path.join(shardDir(d, k, 3), 'complete.json');
      const c = JSON.parse(fs.readFileSync(file, 'utf8'));
      f(c);
      fs.writeFileSync(file, JSON.stringify(c));
    };

    let e = await failure(mergeShards(variant((d) => fs.rmSync(path.join(shardDir(d, 2, 3), 'complete.json')))));
    expect(e).toBeInstanceOf(ShardError);
    expect(e.missing).toEqual([2]);
    expect(e.message).toMatch(/shard 2 of 3 is missing \(shard-00002-of-00003: started, not complete\)/);

    e = await failure(mergeShards(variant((d) => fs.rmSync(shardDir(d, 0, 3), { recursive: true }))));
    expect(e.missing).toEqual([0]);
    expect(e.message).toMatch(/shard 0 of 3 is missing/);

    e = await failure(
      mergeShards(variant((d) => fs.cpSync(shardDir(d, 1, 3), `${shardDir(d, 1, 3)}-retry`, { recursive: true }))),
    );
    expect(e.duplicated).toEqual([1]);
    expect(e.message).toMatch(/shard 1 of 3 is complete twice \(shard-00001-of-00003, shard-00001-of-00003-retry\)/);

    e = await failure(mergeShards(variant((d) => editComplete(d, 2, (c) => (c.settings.seed = 99)))));
    expect(e.mismatched).toEqual(['shard-00002-of-00003: seed is 99, shard-00000-of-00003 has 3']);
    expect(e.missing).toEqual([2]);

    e = await failure(mergeShards(variant((d) => editComplete(d, 1, (c) => (c.settings.model = 'another')))));
    expect(e.mismatched[0]).toMatch(
      /^shard-00001-of-00003: model is "another", shard-00000-of-00003 has "[0-9a-f]{64}"$/,
    );

    e = await failure(mergeShards(variant((d) => editComplete(d, 1, (c) => c.parts.pop()))));
    expect(e.mismatched).toEqual(['shard-00001-of-00003: rows [6, 7) are in no part (a gap)']);

    e = await failure(mergeShards(variant((d) => editComplete(d, 2, (c) => c.parts.push(c.parts[0])))));
    expect(e.mismatched).toEqual(['shard-00002-of-00003: rows [7, 10) are in two parts (an overlap)']);

    await expect(mergeShards(freshDir())).rejects.toThrow(/holds no feature shards/);
    await expect(ShardedFeatures.open(dir)).rejects.toThrow(CheckpointError);
    expect((await mergeShards(dir)).size).toBe(N);
  });

  it('a re-run with other settings, shard count or images in the same directory is a ShardError saying which', async () => {
    const dir = freshDir();
    const ac = new AbortController();
    // Stopped after its first part, so that the re-runs below meet an unfinished shard.
    await expect(
      extractToDirectory(
        images,
        opts(dir, { shard: { index: 0, count: 3 }, batch: 1, signal: ac.signal, onProgress: () => ac.abort() }),
      ),
    ).rejects.toThrow(/aborted after 1 of 3 images; finished parts stay/);

    let e = await failure(extractToDirectory(images, opts(dir, { shard: { index: 1, count: 3 }, seed: 4 })));
    expect(e).toBeInstanceOf(ShardError);
    expect(e.mismatched).toEqual(['shard-00000-of-00003: seed is 3, this run has 4']);
    e = await failure(extractToDirectory(images, opts(dir, { shard: { index: 0, count: 3 }, t: [50], pool: 2 })));
    expect(e.mismatched).toEqual([
      'shard-00000-of-00003: t is [50,400], this run has [50]',
      'shard-00000-of-00003: pool is 4, this run has 2',
    ]);
    e = await failure(extractToDirectory(images, opts(dir, { shard: { index: 0, count: 2 } })));
    expect(e.mismatched).toEqual(['shard-00000-of-00003: the run has 3 shards, this run 2']);
    e = await failure(
      extractToDirectory(
        images,
        opts(dir, { shard: { index: 0, count: 3 }, imageIds: ['a'].concat(Array(N - 1).fill('b')) }),
      ),
    );
    expect(e.mismatched[0]).toMatch(/^shard-00000-of-00003: imagesHash is null, this run has "[0-9a-f]{64}"$/);

    // Other images, same count, no ids: caught by the content of the part it would reuse.
    const flipped = tf.neg(x0) as tf.Tensor4D;
    e = await failure(
      extractToDirectory(imagesFromTensor(flipped, labels), opts(dir, { shard: { index: 0, count: 3 } })),
    );
    flipped.dispose();
    expect(e.mismatched).toEqual(['shard-00000-of-00003: images of rows [0, 1)']);
    expect(e.message).toMatch(/holds other images than rows \[0, 1\) of these/);

    // The same images finish the shard.
    expect(await extractToDirectory(images, opts(dir, { shard: { index: 0, count: 3 } }))).toMatchObject({
      reused: 1,
      written: 2,
    });

    for (const bad of [
      { ensemble: 0 },
      { batch: 0 },
      { seed: 1.5 },
      { dtype: 'F8' as 'F16' },
      { shard: { index: 3, count: 3 } },
    ])
      await expect(extractToDirectory(images, opts(freshDir(), bad))).rejects.toThrow(InputError);
    await expect(extractToDirectory(images, opts(freshDir(), { imageIds: ['a'] }))).rejects.toThrow(
      /imageIds must be one string per image \(11\)/,
    );
  });

  it('dense maps stream to the directory a batch at a time, resized as F.interpolate; a re-run must agree on dense', async () => {
    const [plainDir, denseDir] = [freshDir(), freshDir()];
    await extractToDirectory(images, opts(plainDir, { pool: undefined, ensemble: 1 }));
    await extractToDirectory(images, opts(denseDir, { pool: undefined, ensemble: 1, dense: 8 }));
    const plain = await (await mergeShards(plainDir)).load();
    const dense = await mergeShards(denseDir);
    expect(dense.info.dense).toBe(8);
    expect((await ShardedFeatures.open(plainDir)).info.dense).toBeNull(); // merged by the load above
    for (const t of SETTINGS.t)
      for (const b of SETTINGS.b) {
        expect(dense.shape(t, b).slice(0, 2)).toEqual([8, 8]);
        const got = await dense.read(t, b);
        const want = interpolateBilinear(plain.get(t, b), 8);
        const d = compareArrays(got.dataSync(), want.dataSync(), 1e-6, 1e-6);
        expect(d.ok, `t ${t} b ${b}: ${d.maxAbs}`).toBe(true);
        tf.dispose([got, want]);
      }
    plain.dispose();
    const e = await failure(extractToDirectory(images, opts(denseDir, { pool: undefined, ensemble: 1 })));
    expect(e.mismatched).toEqual(['shard-00000-of-00001: dense is 8, this run has undefined']);
    await expect(extractToDirectory(images, opts(freshDir(), { dense: 8 }))).rejects.toThrow(/exclude each other/);
  });

  it('an empty shard (more shards than images) completes without a forward', async () => {
    const dir = freshDir();
    expect(shardRange({ index: 0, count: 20 }, N)).toEqual({ start: 0, end: 0 });
    const r = await extractToDirectory(images, opts(dir, { shard: { index: 0, count: 20 }, modelHash: 'm' }));
    expect(r).toMatchObject({ start: 0, end: 0, written: 0, reused: 0 });
    expect(fs.readdirSync(r.dir).sort()).toEqual(['complete.json', 'manifest.json']);
    const e = await failure(mergeShards(dir));
    expect(e.missing).toEqual(Array.from({ length: 19 }, (_, k) => k + 1));
  });

  it('gives back every tensor it made', async () => {
    const before = tf.memory().numTensors;
    const dir = freshDir();
    await extractToDirectory(images, opts(dir, { batch: 4, maxBatch: 3 }));
    const feats = await mergeShards(dir);
    const all = await feats.load();
    expect(tf.memory().numTensors).toBe(before + 4);
    sameBits(all, whole);
    all.dispose();
    (await feats.read(50, 5, 3, 2)).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('which shard', () => {
  it('parseShard reads k/n and refuses anything else', () => {
    expect(parseShard('0/1')).toEqual({ index: 0, count: 1 });
    expect(parseShard(' 2 / 3 ')).toEqual({ index: 2, count: 3 });
    expect(() => parseShard('3/2')).toThrow(/the index must be below 2/);
    expect(() => parseShard('2/2')).toThrow(InputError);
    expect(() => parseShard('-1/2')).toThrow(/a shard is written k\/n/);
    expect(() => parseShard('a/b')).toThrow(InputError);
    expect(() => parseShard('0/0')).toThrow(/at least 1/);
    expect(() => parseShard('1')).toThrow(InputError);
    expect(() => parseShard('1.5/3')).toThrow(InputError);
  });

  it('shardFromEnv reads Kubernetes Indexed Jobs and Slurm arrays, else undefined', () => {
    expect(shardFromEnv({})).toBeUndefined();
    expect(shardFromEnv({ HOME: '/root' }, 4)).toBeUndefined();
    expect(shardFromEnv({ JOB_COMPLETION_INDEX: '2' }, 4)).toEqual({ index: 2, count: 4 });
    expect(shardFromEnv({ JOB_COMPLETION_INDEX: '0', DIFFSSL_SHARDS: '3' })).toEqual({ index: 0, count: 3 });
    expect(shardFromEnv({ JOB_COMPLETION_INDEX: '1', DIFFSSL_SHARDS: '3' }, 3)).toEqual({ index: 1, count: 3 });
    expect(() => shardFromEnv({ JOB_COMPLETION_INDEX: '1' })).toThrow(/not the number of shards.*DIFFSSL_SHARDS/);
    expect(() => shardFromEnv({ JOB_COMPLETION_INDEX: '4' }, 4)).toThrow(InputError);
    expect(() => shardFromEnv({ JOB_COMPLETION_INDEX: 'x' }, 4)).toThrow(/JOB_COMPLETION_INDEX must be/);
    expect(() => shardFromEnv({ JOB_COMPLETION_INDEX: '1', DIFFSSL_SHARDS: '3' }, 4)).toThrow(
      /4 shards were asked for, but DIFFSSL_SHARDS says 3/,
    );
    const slurm = {
      SLURM_ARRAY_TASK_ID: '5',
      SLURM_ARRAY_TASK_MIN: '4',
      SLURM_ARRAY_TASK_MAX: '6',
      SLURM_ARRAY_TASK_COUNT: '3',
    };
    expect(shardFromEnv(slurm)).toEqual({ index: 1, count: 3 });
    expect(shardFromEnv({ ...slurm, SLURM_ARRAY_TASK_ID: '6' }, 3)).toEqual({ index: 2, count: 3 });
    expect(
      shardFromEnv({
        SLURM_ARRAY_TASK_ID: '4',
        SLURM_ARRAY_TASK_MIN: '0',
        SLURM_ARRAY_TASK_STEP: '2',
        SLURM_ARRAY_TASK_COUNT: '3',
      }),
    ).toEqual({
      index: 2,
      count: 3,
    });
    expect(() => shardFromEnv({ ...slurm }, 2)).toThrow(/2 shards were asked for, but SLURM_ARRAY_TASK_COUNT says 3/);
    // --array=1,5,7: not a contiguous range.
    expect(() =>
      shardFromEnv({ SLURM_ARRAY_TASK_ID: '7', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '3' }),
    ).toThrow(/needs a contiguous array/);
    expect(() => shardFromEnv({ SLURM_ARRAY_TASK_ID: '2' })).toThrow(/SLURM_ARRAY_TASK_COUNT is not/);
    expect(() =>
      shardFromEnv({ SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_MIN: '3', SLURM_ARRAY_TASK_COUNT: '2' }),
    ).toThrow(InputError);
  });

  it('shardRange splits n images into contiguous ranges that cover them once', () => {
    for (const [n, count] of [
      [11, 3],
      [10, 4],
      [2, 5],
      [7, 1],
    ]) {
      let next = 0;
      for (let index = 0; index < count; index++) {
        const { start, end } = shardRange({ index, count }, n);
        expect(start).toBe(next);
        expect(end - start).toBeGreaterThanOrEqual(Math.floor(n / count));
        expect(end - start).toBeLessThanOrEqual(Math.ceil(n / count));
        next = end;
      }
      expect(next).toBe(n);
    }
    expect(() => shardRange({ index: 1, count: 1 }, 5)).toThrow(InputError);
  });
});
