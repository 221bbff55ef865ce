import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clipByGlobalNorm, trainDiffusion, type DiffusionTrainOptions } from '../../src/diffusion/trainDiffusion';
import { RUN_FILE } from '../../src/diffusion/diffusionCheckpoint';
import { CheckpointError, InputError } from '../../src/errors';
import { ADMUNet } from '../../src/unet/admUnet';
import type { DiffusionTrainProgressInfo } from '../../src/util/progress';
import { compareArrays, setBackend, TINY_DIFFUSION_FLAGS, trainTiny } from '../helpers';

const FLAGS = TINY_DIFFUSION_FLAGS;

let dir: string;
let images: tf.Tensor4D;

beforeAll(async () => {
  await setBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-train-'));
  // Sixteen smooth blobs: something a denoiser can learn in a few steps.
  images = tf.tidy(() => {
    const yy = tf.reshape(tf.linspace(-1, 1, 8), [1, 8, 1, 1]);
    const xx = tf.reshape(tf.linspace(-1, 1, 8), [1, 1, 8, 1]);
    const c = tf.reshape(tf.linspace(-0.5, 0.5, 16), [16, 1, 1, 1]);
    return tf.sub(
      tf.mul(tf.exp(tf.neg(tf.add(tf.square(tf.sub(yy, c)), tf.square(tf.add(xx, c))))), 2),
      1,
    ) as tf.Tensor4D;
  });
});
afterAll(() => {
  images.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

const model = () => ADMUNet.create(FLAGS, 3);
const run = (opts: DiffusionTrainOptions, sub?: string) =>
  trainTiny(images, { batchSize: 8, ...opts, ...(sub ? { checkpoint: { dir: path.join(dir, sub), every: 2 } } : {}) });

describe('trainDiffusion', () => {
  it('lowers L_simple on a tiny config with a fixed seed, reports progress, and leaks no tensors', async () => {
    const before = tf.memory().numTensors;
    const seen: DiffusionTrainProgressInfo[] = [];
    const r = await run({ steps: 24, seed: 0, onProgress: (p) => seen.push(p) });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(r.losses.slice(-6))).toBeLessThan(0.7 * mean(r.losses.slice(0, 6)));
    expect(seen.map((p) => p.done)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(seen.every((p) => p.kind === 'pretrain' && p.total === 24 && p.imagesPerSecond > 0)).toBe(true);
    expect(seen.at(-1)!.loss).toBe(r.losses.at(-1));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('the same seed gives the same run, another seed another one', async () => {
    const [a, b, c] = [
      await run({ steps: 3, seed: 5 }),
      await run({ steps: 3, seed: 5 }),
      await run({ steps: 3, seed: 0 }),
    ];
    expect(a.losses).toEqual(b.losses);
    expect(a.losses).not.toEqual(c.losses);
  });

  it('N steps straight equal N/2, a resume, then N/2, bit for bit (weights, EMA, Adam moments, losses)', async () => {
    const opts = { seed: 1, emaRate: 0.9, clipGradNorm: 0.5, dropout: 0.1 };
    const straight = await run({ ...opts, steps: 6 }, 'straight');
    const half = await run({ ...opts, steps: 3 }, 'resumed');
    expect(half.ran).toBe(3);
    const before = tf.memory().numTensors;
    const resumed = await run({ ...opts, steps: 6 }, 'resumed');
    expect(resumed.ran).toBe(3);
    expect(tf.memory().numTensors).toBe(before);
    expect(resumed.losses).toEqual(straight.losses);
    const bytes = (sub: string) => fs.readFileSync(path.join(dir, sub, RUN_FILE));
    expect(Buffer.compare(bytes('straight'), bytes('resumed'))).toBe(0);
    for (const [k, v] of straight.ema) expect(resumed.ema.get(k)!.data).toEqual(v.data);
    for (const [k, v] of straight.weights) expect(resumed.weights.get(k)!.data).toEqual(v.data);
    // The checkpoint also holds the EMA as a model file ADMUNet.load reads.
    const ema = await ADMUNet.load(path.join(dir, 'straight', 'ema.safetensors'), FLAGS);
    for (const [k, v] of ema.stateDict()) expect(v.data).toEqual(straight.ema.get(k)!.data);
    ema.dispose();
  });

  it('gradientCheckpoint gives the same run, and a run may resume with it switched on', async () => {
    const opts = { seed: 2, dropout: 0.1 };
    const plain = await run({ ...opts, steps: 4 }, 'plain');
    await run({ ...opts, steps: 2 }, 'switched');
    const before = tf.memory().numTensors;
    const switched = await run({ ...opts, steps: 4, gradientCheckpoint: true }, 'switched');
    expect(switched.ran).toBe(2);
    expect(tf.memory().numTensors).toBe(before);
    for (let i = 0; i < 4; i++) expect(switched.losses[i]).toBeCloseTo(plain.losses[i], 5);
    for (const [k, v] of plain.weights) {
      // Adam turns float rounding in tiny gradients into steps of up to lr: 1e-4 is far below one wrong step (1e-3).
      const d = compareArrays(switched.weights.get(k)!.data, v.data, 1e-4, 1e-4);
      expect(d.ok, `${k}: max abs ${d.maxAbs}`).toBe(true);
    }
  });

  it("one step is Adam's first update (|Δw| = lr where the gradient is not tiny) and the EMA is rate·w0 + (1 − rate)·w1", async () => {
    const m0 = model();
    const w0 = m0.stateDict();
    m0.dispose();
    const r = await run({ steps: 1, emaRate: 0.25, lr: 1e-3, seed: 2 });
    let [moved, tooFar, emaOff] = [0, 0, 0];
    for (const [k, { data }] of r.weights) {
      const before = w0.get(k)!.data;
      const ema = r.ema.get(k)!.data;
      for (let i = 0; i < data.length; i++) {
        const d = Math.abs(data[i] - before[i]);
        const slack = 2e-6 + 1e-6 * Math.abs(before[i]); // float32 rounding of w ± lr
        // Adam's first step moves by lr·|g|/(|g| + ε): lr exactly, up to rounding, unless |g| is near ε.
        if (d > 1e-3 + slack) tooFar++;
        if (Math.abs(d - 1e-3) < slack) moved++;
        if (Math.abs(ema[i] - (0.25 * before[i] + 0.75 * data[i])) > 1e-6 + 1e-6 * Math.abs(data[i])) emaOff++;
      }
    }
    expect(tooFar).toBe(0);
    expect(emaOff).toBe(0);
    expect(moved).toBeGreaterThan(1000);
  });

  it('with emaWarmup the EMA after the first update is (2/11)·w0 + (9/11)·w1', async () => {
    const m0 = model();
    const w0 = m0.stateDict();
    m0.dispose();
    const r = await run({ steps: 1, emaRate: 0.9999, emaWarmup: true, seed: 2 });
    let off = 0;
    for (const [k, { data }] of r.weights) {
      const [before, ema] = [w0.get(k)!.data, r.ema.get(k)!.data];
      for (let i = 0; i < data.length; i++)
        if (Math.abs(ema[i] - ((2 / 11) * before[i] + (9 / 11) * data[i])) > 1e-6 + 1e-6 * Math.abs(data[i])) off++;
    }
    expect(off).toBe(0);
  });

  it('refuses bad options, images and mismatched checkpoints with typed errors, leaking nothing', async () => {
    const unet = model();
    const before = tf.memory().numTensors;
    const bad: [DiffusionTrainOptions, RegExp][] = [
      [{ steps: 0 }, /steps/],
      [{ steps: 1, batchSize: 17 }, /fewer than one batch/],
      [{ steps: 1, lr: -1 }, /lr/],
      [{ steps: 1, emaRate: 2 }, /emaRate/],
      [{ steps: 1, dropout: 1 }, /dropout/],
      [{ steps: 1, clipGradNorm: 0 }, /clipGradNorm/],
      [{ steps: 1, seed: 1.5 }, /seed/],
      [{ steps: 1, betas: [0.9, 1] }, /betas/],
      [{ steps: 1, emaWarmup: 1 as unknown as boolean }, /emaWarmup/],
      [{ steps: 1, gradientCheckpoint: 'yes' as unknown as boolean }, /gradientCheckpoint/],
    ];
    for (const [opts, msg] of bad) await expect(trainDiffusion(unet, images, opts)).rejects.toThrow(msg);
    await expect(trainDiffusion(unet, tf.mul(images, 100) as tf.Tensor4D, { steps: 1 })).rejects.toThrow(InputError);
    await expect(trainDiffusion(unet, tf.zeros([16, 4, 4, 1]), { steps: 1 })).rejects.toThrow(InputError);
    expect(tf.memory().numTensors).toBe(before + 2); // the two bad image tensors made above
    unet.dispose();

    await run({ steps: 2, seed: 0 }, 'settings');
    await expect(run({ steps: 4, seed: 9 }, 'settings')).rejects.toThrow(/other settings/);
    await expect(run({ steps: 1, seed: 0 }, 'settings')).rejects.toThrow(/past the 1 steps/);
    const file = path.join(dir, 'settings', RUN_FILE);
    fs.truncateSync(file, fs.statSync(file).size - 100);
    await expect(run({ steps: 4, seed: 0 }, 'settings')).rejects.toThrow(CheckpointError);
  });

  it('clipByGlobalNorm scales to the given norm only when above it', () => {
    tf.tidy(() => {
      const g = new Map([
        ['a', tf.tensor1d([3, 0])],
        ['b', tf.tensor1d([0, 4])],
      ]);
      clipByGlobalNorm(g, 10);
      expect(Array.from(g.get('a')!.dataSync())).toEqual([3, 0]);
      clipByGlobalNorm(g, 1);
      expect(g.get('a')!.dataSync()[0]).toBeCloseTo(0.6, 5);
      expect(g.get('b')!.dataSync()[1]).toBeCloseTo(0.8, 5);
    });
  });
});
