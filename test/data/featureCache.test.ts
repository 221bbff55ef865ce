import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, InputError } from '../../src/errors';
import { extractFeatures, type FeatureSet } from '../../src/features/extractFeatures';
import { ADMUNet } from '../../src/unet/admUnet';
import { cacheFeatures, FeatureCache, CACHE_MANIFEST } from '../../src/data/featureCache';
import { ensureGradients } from '../../src/backend/gradients';
import { imagesFromTensor, type ImageSource } from '../../src/data/images';
import { batchNoise, onTheFlyFeatures, onTheFlyImages } from '../../src/data/onTheFly';
import { centerCrop } from '../../src/data/transforms';
import { mixSeed } from '../../src/data/dataset';
import { sgd } from '../../src/train/optimizers';
import { evaluate, train } from '../../src/train/trainer';
import { SeededRandom } from '../../src/util/random';
import { BACKENDS, compareArrays, FIXTURES, fixtureJson, setBackend } from '../helpers';
import type { CacheProgressInfo } from '../../src/util/progress';
import { expectProgress } from '../util/progressReports';

const FLAGS = fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args;
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cache-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => path.join(tmpRoot, `c${dirs++}`);

/** Two classes of 40×40 images: bright left half vs bright right half, plus noise, clipped to [-1, 1] as images are. */
function halves(n: number, seed: number): { images: tf.Tensor4D; labels: Int32Array } {
  const rng = new SeededRandom(seed);
  const side = 40;
  const data = new Float32Array(n * side * side * 3);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++)
        for (let c = 0; c < 3; c++)
          data[((i * side + y) * side + x) * 3 + c] = Math.max(
            -1,
            Math.min(1, (x < side / 2 === (labels[i] === 0) ? 0.6 : -0.6) + 0.3 * rng.normal()),
          );
  }
  return { images: tf.tensor4d(data, [n, side, side, 3]), labels };
}

const sameSet = (a: FeatureSet, b: FeatureSet, atol = 0) => {
  for (const { t, b: blk, map } of a.entries()) {
    const d = compareArrays(map.dataSync(), b.get(t, blk).dataSync(), atol, 0);
    expect(d.ok, `t ${t} b ${blk}: max abs ${d.maxAbs}`).toBe(true);
  }
};

for (const backend of BACKENDS) {
  // File layout, resume and copy bookkeeping do not depend on the backend: tested on the first one
  // only (the U-Net forwards they need take minutes on cpu); the numerics run on every backend.
  const ioTest = backend === BACKENDS[0] ? it : it.skip;
  describe(`feeding heads on ${backend}`, () => {
    let unet: ADMUNet;
    let set: { images: tf.Tensor4D; labels: Int32Array };
    let source: ImageSource;

    beforeAll(async () => {
      await setBackend(backend);
      await ensureGradients();
      unet = await ADMUNet.load(path.join(FIXTURES, 'adm-tiny/weights.safetensors'), FLAGS);
      // Warm up: the U-Net makes its resident weight tensors on first use; memory checks start after.
      const warm = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
      const out = unet.forward(warm, [0]);
      tf.dispose([warm, out.output, ...out.features.values()]);
      set = halves(6, 1);
      source = imagesFromTensor(set.images, set.labels);
    });
    afterAll(() => {
      unet?.dispose();
      tf.dispose(set?.images);
    });

    it('on the fly: fresh noise and augmentation per seed, the same for the same seed; evaluation center-crops', async () => {
      const before = tf.memory().numTensors;
      const data = onTheFlyImages(source, { size: 32, t: [90, 150] });
      const ctx = { training: true, seed: 5, epoch: 0, step: 0 };
      const a = await data.batch([3, 0, 5], ctx);
      const b = await data.batch([3, 0, 5], ctx);
      const c = await data.batch([3, 0, 5], { ...ctx, seed: 6 });
      expect(a.input.shape).toEqual([3, 32, 32, 3]);
      expect(Array.from(a.labels)).toEqual([1, 0, 1]);
      const noise = a.options!.noise as tf.Tensor4D[];
      expect(noise.map((e) => e.shape)).toEqual([
        [3, 32, 32, 3],
        [3, 32, 32, 3],
      ]);
      expect(Array.from(b.input.dataSync())).toEqual(Array.from(a.input.dataSync()));
      expect(Array.from((b.options!.noise as tf.Tensor[])[1].dataSync())).toEqual(Array.from(noise[1].dataSync()));
      expect(compareArrays(c.input.dataSync(), a.input.dataSync(), 1e-3, 0).ok).toBe(false);
      expect(compareArrays((c.options!.noise as tf.Tensor[])[0].dataSync(), noise[0].dataSync(), 1e-3, 0).ok).toBe(
        false,
      );
      // Noise of example k depends on its own seed only, not on the batch around it.
      const single = batchNoise([1, 32, 32, 3], 2, [mixSeed(5, 1)]);
      expect(Array.from(single[1].dataSync())).toEqual(
        Array.from(noise[1].dataSync().subarray(32 * 32 * 3, 2 * 32 * 32 * 3)),
      );
      const ev = await data.batch([3], { ...ctx, training: false });
      const img = source.get(3) as { image: tf.Tensor3D };
      const want = centerCrop(img.image, 32);
      expect(Array.from(ev.input.dataSync())).toEqual(Array.from(want.dataSync()));
      [a, b, c, ev].forEach((x) => tf.dispose([x.input, ...(x.options!.noise as tf.Tensor[])]));
      tf.dispose([...single, img.image, want]);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('on-the-fly features are the U-Net features of the on-the-fly images and noise', async () => {
      const before = tf.memory().numTensors;
      const ctx = { training: true, seed: 9, epoch: 1, step: 2 };
      const imgs = await onTheFlyImages(source, { size: 32, t: [90, 150] }).batch([1, 2], ctx);
      const feats = await onTheFlyFeatures(source, { model: unet, t: [90, 150], b: [2, 5], pool: 4 }).batch(
        [1, 2],
        ctx,
      );
      const want = await extractFeatures(imgs.input, {
        model: unet,
        t: [90, 150],
        b: [2, 5],
        noise: imgs.options!.noise as tf.Tensor4D[],
        pool: 4,
      });
      expect(feats.input.get(150, 5).shape).toEqual([2, 4, 4, 32]);
      sameSet(want, feats.input);
      tf.dispose([imgs.input, ...(imgs.options!.noise as tf.Tensor[])]);
      feats.input.dispose();
      want.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });

    // What the cache should hold for images idx: the eval transform, and noise seeded per image (seed 3, copy 0).
    async function cachedFeatures(idx: number[]) {
      const x0 = tf.tidy(
        () =>
          tf.stack(
            idx.map((i) =>
              centerCrop(
                tf.reshape(tf.slice(set.images, [i, 0, 0, 0], [1, -1, -1, -1]), [40, 40, 3]) as tf.Tensor3D,
                32,
              ),
            ),
          ) as tf.Tensor4D,
      );
      const noise = batchNoise(
        x0.shape,
        2,
        idx.map((i) => mixSeed(3, 0, i)),
      );
      try {
        return await extractFeatures(x0, { model: unet, t: [150, 90], b: [3, 1], noise, pool: 4 });
      } finally {
        tf.dispose([x0, ...noise]);
      }
    }

    it('a cache holds the features of fixed per-image noise, the same in memory and on disk, whatever the batch size', async () => {
      const before = tf.memory().numTensors;
      const opts = { model: unet, t: [150, 90], b: [3, 1], pool: 4, seed: 3 };
      const mem = await cacheFeatures(source, { ...opts, batchSize: 3 });
      if (backend !== BACKENDS[0]) {
        // Content only: the cache equals extractFeatures with per-image noise.
        const idx = [5, 0];
        const m = await mem.batch(idx, { training: false, seed: 0, epoch: 0, step: 0 });
        const want = await cachedFeatures(idx);
        sameSet(want, m.input, 1e-5);
        m.input.dispose();
        want.dispose();
        await mem.close();
        expect(tf.memory().numTensors).toBe(before);
        return;
      }
      const dir = freshDir();
      const disk = await cacheFeatures(source, { ...opts, batchSize: 4, dir, shardSize: 4 });
      expect(disk.inMemory).toBe(false);
      expect(fs.readdirSync(dir).filter((f) => f.startsWith('shard-')).length).toBe(2);
      const reopened = await FeatureCache.open(dir, { inMemory: true });
      expect(mem.size).toBe(6);
      expect(Array.from(disk.labels)).toEqual(Array.from(set.labels));
      const idx = [5, 0, 4];
      const ctx = { training: true, seed: 0, epoch: 3, step: 0 };
      const [m, d, r] = [await mem.batch(idx, ctx), await disk.batch(idx, ctx), await reopened.batch(idx, ctx)];
      sameSet(m.input, d.input);
      sameSet(m.input, r.input);
      expect(Array.from(m.labels)).toEqual(idx.map((i) => set.labels[i]));
      const want = await cachedFeatures(idx);
      sameSet(want, m.input, 1e-5);
      [m, d, r].forEach((x) => x.input.dispose());
      want.dispose();
      await Promise.all([mem.close(), disk.close(), reopened.close()]);
      expect(tf.memory().numTensors).toBe(before);
    });

    ioTest(
      'an interrupted disk cache resumes from its finished shards; F16 storage stays within half precision',
      async () => {
        const dir = freshDir();
        const ctl = new AbortController();
        const opts = { model: unet, t: 150, b: 5, pool: 2, batchSize: 2, shardSize: 4, dir };
        const stopped: CacheProgressInfo[] = [];
        await expect(
          cacheFeatures(source, {
            ...opts,
            signal: ctl.signal,
            onProgress: (p) => (stopped.push(p), p.done === 4 && ctl.abort()),
          }),
        ).rejects.toThrow(/aborted/);
        expectProgress(stopped, 'cache', false);
        expect(fs.existsSync(path.join(dir, CACHE_MANIFEST))).toBe(false);
        await expect(FeatureCache.open(dir)).rejects.toThrow(CheckpointError);
        const progress: CacheProgressInfo[] = [];
        const resumed = await cacheFeatures(source, { ...opts, resume: true, onProgress: (p) => progress.push(p) });
        // Shard 0 (4 images) was reused in one go; the rest computed two at a time.
        expectProgress(progress, 'cache');
        expect(progress.map((p) => [p.done, p.reused])).toEqual([
          [4, 4],
          [6, 4],
        ]);
        // No estimate from a reused shard, which took no U-Net time.
        expect(progress[0].etaMs).toBeUndefined();
        const fresh = await cacheFeatures(source, { ...opts, dir: undefined });
        const f16 = await cacheFeatures(source, { ...opts, dir: freshDir(), dtype: 'F16' });
        const all = Array.from({ length: 6 }, (_, i) => i);
        const ctx = { training: false, seed: 0, epoch: 0, step: 0 };
        const [a, b, h] = [await resumed.batch(all, ctx), await fresh.batch(all, ctx), await f16.batch(all, ctx)];
        sameSet(a.input, b.input);
        const d = compareArrays(h.input.get(150, 5).dataSync(), b.input.get(150, 5).dataSync(), 0, 1 / 1024);
        expect(d.ok, `f16 max abs ${d.maxAbs}`).toBe(true);
        [a, b, h].forEach((x) => x.input.dispose());
        await Promise.all([resumed.close(), fresh.close(), f16.close()]);
      },
    );

    ioTest('copies: epoch e trains on draw e mod copies, evaluation on draw 0', async () => {
      const cache = await cacheFeatures(source, { model: unet, t: 150, b: 3, pool: 2, augment: true, copies: 2 });
      const get = async (training: boolean, epoch: number) => {
        const bt = await cache.batch([0, 1], { training, seed: 0, epoch, step: 0 });
        const v = bt.input.get(150, 3).dataSync().slice();
        bt.input.dispose();
        return v;
      };
      const [e0, e1, e2, ev] = [await get(true, 0), await get(true, 1), await get(true, 2), await get(false, 5)];
      expect(Array.from(e2)).toEqual(Array.from(e0));
      expect(Array.from(ev)).toEqual(Array.from(e0));
      expect(compareArrays(e1, e0, 1e-3, 0).ok).toBe(false);
      await cache.close();
      await expect(cache.batch([0], { training: false, seed: 0, epoch: 0, step: 0 })).rejects.toThrow(InputError);
      await expect(cacheFeatures(source, { model: unet, t: 150, b: 99 })).rejects.toThrow(InputError);
      await expect(cacheFeatures(source, { model: unet, t: 150, b: 3, copies: 0 })).rejects.toThrow(InputError);
    });

    it('a small head trained from the cache learns the task', async () => {
      const train_ = halves(16, 2);
      const val_ = halves(8, 3);
      const cache = await cacheFeatures(imagesFromTensor(train_.images, train_.labels), {
        model: unet,
        t: 150,
        b: 3,
        pool: 2,
        batchSize: 16,
      });
      const valCache = await cacheFeatures(imagesFromTensor(val_.images, val_.labels), {
        model: unet,
        t: 150,
        b: 3,
        pool: 2,
        batchSize: 8,
        seed: 1,
      });
      const rng = new SeededRandom(4);
      const w = tf.variable(tf.tensor2d(rng.normals(2 * 2 * 32 * 2, 0, 0.05), [128, 2]));
      const bias = tf.variable(tf.zeros([2]));
      const head = {
        trainableVariables: [w, bias],
        logits: (fs_: FeatureSet) =>
          tf.tidy(() => tf.add(tf.matMul(tf.reshape(fs_.get(150, 3), [-1, 128]), w), bias) as tf.Tensor2D),
      };
      const opt = sgd(0.05);
      const before = await evaluate(head, valCache, { batchSize: 8 });
      const r = await train(head, cache, {
        epochs: 15,
        batchSize: 4,
        optimizer: opt,
        evalData: valCache,
        evalEvery: 15,
      });
      const after = r.history.at(-1)!.eval!;
      expect(r.history.at(-1)!.trainLoss).toBeLessThan(0.5 * r.history[0].trainLoss);
      expect(after.loss).toBeLessThan(before.loss);
      expect(after.top1).toBeGreaterThanOrEqual(0.9);
      tf.dispose([w, bias, train_.images, val_.images]);
      opt.dispose();
      await cache.close();
      await valCache.close();
    });
  });
}
