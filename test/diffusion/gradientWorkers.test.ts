import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureGradients } from '../../src/backend/gradients';
import { RUN_FILE } from '../../src/diffusion/diffusionCheckpoint';
import { denoisingGrads } from '../../src/diffusion/denoisingLoss';
import { GradientWorkers, rowsPerWorker, setTrainWorkerScript } from '../../src/diffusion/gradientWorkers';
import type { DiffusionTrainOptions } from '../../src/diffusion/trainDiffusion';
import { InputError } from '../../src/errors';
import { ADMUNet } from '../../src/unet/admUnet';
import { compareArrays, setBackend, TINY_DIFFUSION_FLAGS, trainTiny } from '../helpers';

// trainDiffusion({ workers }) with the worker built from the sources as tsup builds dist/trainWorker.js.
const ROOT = path.resolve(__dirname, '../..');
const FLAGS = TINY_DIFFUSION_FLAGS;
let dir: string;
let worker: string;
let images: tf.Tensor4D;

beforeAll(async () => {
  await setBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-workers-'));
  // Under the repository, so that the bundle finds @tensorflow/* in node_modules.
  worker = path.join(ROOT, '.tmp', `trainWorker-${process.pid}-${Date.now()}.mjs`);
  buildSync({
    entryPoints: [path.join(ROOT, 'src/diffusion/trainWorker.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: worker,
    external: ['@tensorflow/*'],
    logLevel: 'error',
  });
  images = tf.tidy(() => tf.sub(tf.mul(tf.randomUniform([12, 8, 8, 1], 0, 1, 'float32', 4), 2), 1) as tf.Tensor4D);
});
afterAll(() => {
  setTrainWorkerScript(undefined);
  images.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(worker, { force: true });
});

const run = (opts: Partial<DiffusionTrainOptions>, sub?: string, script = worker) => {
  setTrainWorkerScript(script);
  return trainTiny(images, {
    steps: 3,
    batchSize: 6,
    ...opts,
    ...(sub ? { checkpoint: { dir: path.join(dir, sub), every: 2 } } : {}),
  });
};

/** A stand-in worker script: answers the start, then does `onStep` on the first step. */
const fakeWorker = (name: string, onStep: string) => {
  const file = path.join(dir, `${name}.mjs`);
  fs.writeFileSync(
    file,
    `import { parentPort } from 'node:worker_threads';
parentPort.on('message', (m) => { if (m.kind === 'init') parentPort.postMessage({ kind: 'ready' }); else { ${onStep} } });`,
  );
  return file;
};

describe('trainDiffusion with workers', () => {
  it("the workers' summed gradient is the whole batch's gradient in this thread, up to rounding", async () => {
    setTrainWorkerScript(worker);
    await ensureGradients();
    const unet = ADMUNet.create(FLAGS, 3);
    const vars = unet.trainableWeights();
    const x0 = tf.slice(images, 0, 7);
    const noise = tf.randomNormal([7, 8, 8, 1], 0, 1, 'float32', 9) as tf.Tensor4D;
    const t = [0, 999, 5, 400, 150, 90, 700];
    const pool = await GradientWorkers.start(3, unet, vars, false);
    try {
      pool.publish(vars);
      const before = tf.memory().numTensors;
      const theirs = await pool.grads(
        x0.dataSync() as Float32Array,
        noise.dataSync() as Float32Array,
        [7, 8, 8, 1],
        t,
        undefined,
      );
      expect(tf.memory().numTensors).toBe(before + vars.size);
      const mine = tf.tidy(() => denoisingGrads(unet, vars, x0, noise, t, { recompute: false }));
      expect(theirs.loss).toBeCloseTo(mine.value.dataSync()[0], 6);
      for (const [k, v] of vars) {
        const d = compareArrays(theirs.grads.get(k)!.dataSync(), mine.grads[v.name].dataSync(), 1e-6, 1e-4);
        expect(d.ok, `${k}: max abs ${d.maxAbs}`).toBe(true);
      }
      tf.dispose([mine.value, ...Object.values(mine.grads), ...theirs.grads.values()]);
    } finally {
      await pool.stop();
      tf.dispose([x0, noise]);
      unet.dispose();
    }
  });

  it('a run with workers follows the one-thread run, and repeats itself for the same seed', async () => {
    const one = await run({ seed: 1, workers: 1 });
    const before = tf.memory().numTensors;
    const two = await run({ seed: 1, workers: 2 });
    expect(tf.memory().numTensors).toBe(before);
    for (let i = 0; i < 3; i++) expect(two.losses[i]).toBeCloseTo(one.losses[i], 5);
    const again = await run({ seed: 1, workers: 2 });
    expect(again.losses).toEqual(two.losses);
    for (const [k, v] of two.weights) expect(again.weights.get(k)!.data).toEqual(v.data);
    for (const [k, v] of two.ema) expect(again.ema.get(k)!.data).toEqual(v.data);
  });

  it('N steps straight equal N/2, a resume, then N/2, bit for bit, with three workers, dropout and clipping, leaking nothing', async () => {
    const opts = { seed: 2, workers: 3, dropout: 0.1, clipGradNorm: 0.5, emaRate: 0.9 };
    const before = tf.memory().numTensors;
    const straight = await run({ ...opts, steps: 4 }, 'straight');
    expect(tf.memory().numTensors).toBe(before);
    await run({ ...opts, steps: 2 }, 'resumed');
    const resumed = await run({ ...opts, steps: 4 }, 'resumed');
    expect(resumed.ran).toBe(2);
    expect(resumed.losses).toEqual(straight.losses);
    const bytes = (sub: string) => fs.readFileSync(path.join(dir, sub, RUN_FILE));
    expect(Buffer.compare(bytes('straight'), bytes('resumed'))).toBe(0);
    for (const [k, v] of straight.weights) expect(resumed.weights.get(k)!.data).toEqual(v.data);
  });

  it('a worker that fails or dies rejects the run with its number and reason, and nothing leaks', async () => {
    const before = tf.memory().numTensors;
    const failing = fakeWorker(
      'failing',
      "parentPort.postMessage({ kind: 'error', name: 'RangeError', message: 'boom' });",
    );
    await expect(run({ workers: 2 }, undefined, failing)).rejects.toThrow(
      /training worker \d failed: RangeError: boom/,
    );
    const dying = fakeWorker('dying', 'process.exit(3);');
    await expect(run({ workers: 2 }, undefined, dying)).rejects.toThrow(/training worker \d stopped \(exit code 3\)/);
    const broken = path.join(dir, 'broken.mjs');
    fs.writeFileSync(broken, "throw new Error('cannot start');");
    await expect(run({ workers: 2 }, undefined, broken)).rejects.toThrow(/training worker \d failed: cannot start/);
    await expect(run({ workers: 2 }, undefined, path.join(dir, 'absent.mjs'))).rejects.toThrow(
      /cannot find its worker script .*absent\.mjs: in a checkout of diffssl run npm run build first/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('bad worker counts are InputErrors before any work', async () => {
    const before = tf.memory().numTensors;
    for (const workers of [0, 1.5, -2, 'two' as never])
      await expect(run({ workers })).rejects.toThrow(/workers must be a positive integer/);
    await expect(run({ workers: 7 })).rejects.toThrow(InputError);
    await expect(run({ workers: 7 })).rejects.toThrow(/workers \(7\) must not exceed batchSize \(6\)/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('splits a batch into even parts, the larger first', () => {
    expect(rowsPerWorker(32, 2)).toEqual([16, 16]);
    expect(rowsPerWorker(7, 3)).toEqual([3, 2, 2]);
    expect(rowsPerWorker(2, 2)).toEqual([1, 1]);
  });
});
