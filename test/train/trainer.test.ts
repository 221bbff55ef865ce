import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CheckpointError, InputError } from '../../src/errors';
import { CHECKPOINT_FILE } from '../../src/train/checkpoint';
import { batchesOf, epochOrder, tensorDataset } from '../../src/data/dataset';
import { ensureGradients } from '../../src/backend/gradients';
import { adam, momentum, sgd, StepLR } from '../../src/train/optimizers';
import { evaluate, train, type StepProgress } from '../../src/train/trainer';
import { topKCorrect } from '../../src/eval/accuracy';
import { BACKENDS, setBackend } from '../helpers';
import { arrayDataset, clusters, mlp } from './toy';
import { expectProgress } from '../util/progressReports';

const DIM = 8,
  CLASSES = 4;
const trainSet = clusters(1, 96, DIM, CLASSES);
const valSet = clusters(1, 200, DIM, CLASSES); // same centres (same seed), more points
const data = arrayDataset(trainSet.x, trainSet.y, DIM);
const val = arrayDataset(valSet.x.slice(96 * DIM), valSet.y.slice(96), DIM);

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-train-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => path.join(tmpRoot, `run-${dirCount++}`);

const optimizers = {
  sgd: () => sgd(0.1),
  momentum: () => momentum(0.05, 0.9),
  adam: () => adam(0.01),
};

describe('epoch order', () => {
  it('is a seeded permutation, different per epoch and the same on every call', () => {
    const a = epochOrder(50, 7, 0);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(epochOrder(50, 7, 0)).toEqual(a);
    expect(epochOrder(50, 7, 1)).not.toEqual(a);
    expect(epochOrder(50, 8, 0)).not.toEqual(a);
    expect(Array.from(epochOrder(5, 7, 0, false))).toEqual([0, 1, 2, 3, 4]);
    expect(batchesOf(epochOrder(10, 0, 0, false), 4, true)).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
    expect(batchesOf(epochOrder(10, 0, 0, false), 4, false).map((b) => b.length)).toEqual([4, 4, 2]);
  });
});

for (const backend of BACKENDS) {
  describe(`train on ${backend}`, () => {
    beforeAll(async () => {
      await setBackend(backend);
      await ensureGradients();
    });
    afterEach(() => vi.restoreAllMocks());

    it('learns a fixed-seed task: loss falls and accuracy rises clearly; memory returns to baseline after every step', async () => {
      const model = mlp(2, DIM, 16, CLASSES);
      const opt = sgd(0.2);
      const before = await evaluate(model, val, { batchSize: 50 });
      const counts: number[] = [];
      const progress: StepProgress[] = [];
      const result = await train(model, data, {
        epochs: 8,
        batchSize: 16,
        optimizer: opt,
        schedule: new StepLR(opt, { stepSize: 4, gamma: 0.5 }),
        seed: 3,
        evalData: val,
        evalEvery: 4,
        onProgress: (p) => {
          progress.push(p);
          counts.push(tf.memory().numTensors);
        },
      });
      const after = result.history.at(-1)!.eval!;
      expect(result.status).toBe('done');
      expect(result.globalStep).toBe(8 * 6);
      expect(result.history.map((h) => h.lr)).toEqual([0.2, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1]);
      expect(result.history.map((h) => h.eval !== undefined)).toEqual([
        false,
        false,
        false,
        true,
        false,
        false,
        false,
        true,
      ]);
      expect(result.history[7].trainLoss).toBeLessThan(0.5 * result.history[0].trainLoss);
      expect(after.loss).toBeLessThan(0.5 * before.loss);
      expect(after.top1).toBeGreaterThan(before.top1 + 0.3);
      expect(after.top1).toBeGreaterThan(0.85);
      expect(after.top5).toBe(1); // 4 classes: every label is in the top 5
      // After the first update (which creates nothing here: plain SGD has no slots) the count never moves.
      expect(new Set(counts).size).toBe(1);
      expect(progress[0]).toMatchObject({
        kind: 'train',
        done: 1,
        total: 48,
        epoch: 0,
        epochs: 8,
        step: 1,
        steps: 6,
        globalStep: 1,
        lr: 0.2,
      });
      expectProgress(progress, 'train');
      model.dispose();
      opt.dispose();
    });

    it('numTensors stays flat across steps with momentum and Adam slots too, and after training returns to the baseline plus the slots', async () => {
      for (const make of [optimizers.momentum, optimizers.adam]) {
        const model = mlp(4, DIM, 8, CLASSES);
        const base = tf.memory().numTensors;
        const opt = make();
        const counts: number[] = [];
        await train(model, data, {
          epochs: 2,
          batchSize: 32,
          optimizer: opt,
          onProgress: () => counts.push(tf.memory().numTensors),
        });
        expect(new Set(counts).size).toBe(1);
        opt.dispose();
        expect(tf.memory().numTensors).toBe(base);
        model.dispose();
      }
    });

    it('evaluate gives the loss and top-k of the logits of every example', async () => {
      const model = mlp(5, DIM, 8, CLASSES);
      const r = await evaluate(model, val, { batchSize: 30 });
      const x = tf.tensor2d(valSet.x.slice(96 * DIM), [104, DIM]);
      const logits = model.logits(x, { training: false }) as tf.Tensor2D;
      const [c1, c2] = topKCorrect(logits, valSet.y.slice(96), [1, 2]);
      expect(r.examples).toBe(104);
      expect(r.top1).toBeCloseTo(c1 / 104, 12);
      expect(r.top5).toBe(1);
      expect(c2).toBeGreaterThanOrEqual(c1);
      tf.dispose([x, logits]);
      model.dispose();
    });

    for (const [name, make] of Object.entries(optimizers)) {
      it(`${name}: stop after 2 epochs and resume to 4 gives exactly the weights of 4 epochs straight`, async () => {
        const straight = mlp(6, DIM, 8, CLASSES);
        const o1 = make();
        await train(straight, data, {
          epochs: 4,
          batchSize: 16,
          optimizer: o1,
          schedule: new StepLR(o1, { stepSize: 3, gamma: 0.5 }),
          seed: 11,
        });
        const want = straight.snapshot();

        const dir = freshDir();
        const first = mlp(6, DIM, 8, CLASSES);
        const o2 = make();
        await train(first, data, {
          epochs: 2,
          batchSize: 16,
          optimizer: o2,
          schedule: new StepLR(o2, { stepSize: 3, gamma: 0.5 }),
          seed: 11,
          checkpoint: { path: dir },
        });
        // A different initialisation and a fresh optimizer: everything must come from the checkpoint.
        const second = mlp(99, DIM, 8, CLASSES);
        const o3 = make();
        const r = await train(second, data, {
          epochs: 4,
          batchSize: 16,
          optimizer: o3,
          schedule: new StepLR(o3, { stepSize: 3, gamma: 0.5 }),
          checkpoint: { path: dir },
          resume: true,
        });
        expect(r.startedAt).toEqual({ epoch: 2, step: 0 });
        expect(r.history.map((h) => h.epoch)).toEqual([0, 1, 2, 3]);
        expect(r.globalStep).toBe(4 * 6);
        const got = second.snapshot();
        got.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(want[i])));
        [straight, first, second].forEach((m) => m.dispose());
        [o1, o2, o3].forEach((o) => o.dispose());
      });
    }

    it('an abort mid-epoch saves the position; resuming continues from that very step', async () => {
      const straight = mlp(7, DIM, 8, CLASSES);
      const o1 = optimizers.adam();
      await train(straight, data, { epochs: 3, batchSize: 16, optimizer: o1, seed: 5 });
      const want = straight.snapshot();

      const dir = freshDir();
      const first = mlp(7, DIM, 8, CLASSES);
      const o2 = optimizers.adam();
      const ctl = new AbortController();
      const r1 = await train(first, data, {
        epochs: 3,
        batchSize: 16,
        optimizer: o2,
        seed: 5,
        checkpoint: { path: dir },
        signal: ctl.signal,
        onProgress: (p) => p.globalStep === 9 && ctl.abort(),
      });
      expect(r1.status).toBe('aborted');
      const saved = JSON.parse(fs.readFileSync(path.join(dir, CHECKPOINT_FILE), 'utf8'));
      expect(saved).toMatchObject({ epoch: 1, step: 3, globalStep: 9 });
      const second = mlp(8, DIM, 8, CLASSES);
      const o3 = optimizers.adam();
      const resumed: StepProgress[] = [];
      const r2 = await train(second, data, {
        epochs: 3,
        batchSize: 16,
        optimizer: o3,
        checkpoint: { path: dir },
        resume: true,
        onProgress: (p) => resumed.push(p),
      });
      expect(r2.startedAt).toEqual({ epoch: 1, step: 3 });
      // A resumed run counts from where it stopped, to the end of the whole run.
      expectProgress(resumed, 'train');
      expect(resumed[0]).toMatchObject({ done: 10, total: 18, globalStep: 10 });
      second.snapshot().forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(want[i])));
      // The interrupted epoch's report covers all of its steps, as in the straight run.
      expect(r2.history.length).toBe(3);
      [straight, first, second].forEach((m) => m.dispose());
      [o1, o2, o3].forEach((o) => o.dispose());
    });

    it('a save that fails at any write leaves the previous checkpoint intact and resumable', async () => {
      const straight = mlp(9, DIM, 8, CLASSES);
      const o0 = optimizers.momentum();
      await train(straight, data, { epochs: 3, batchSize: 32, optimizer: o0, seed: 2 });
      const want = straight.snapshot();
      straight.dispose();
      o0.dispose();

      // Count the writes of one save, then fail each of them in turn.
      const probe = await fs.promises.open(path.join(tmpRoot, 'probe'), 'w');
      const proto = Object.getPrototypeOf(probe) as { write: (...a: unknown[]) => Promise<unknown> };
      await probe.close();
      const realWrite = proto.write;
      let writes = 0;
      const spy = vi.spyOn(proto, 'write').mockImplementation(function (this: unknown, ...a: unknown[]) {
        writes++;
        return realWrite.apply(this, a);
      });
      const dir0 = freshDir();
      const m0 = mlp(9, DIM, 8, CLASSES);
      const oo = optimizers.momentum();
      await train(m0, data, { epochs: 1, batchSize: 32, optimizer: oo, seed: 2, checkpoint: { path: dir0 } });
      const perSave = writes;
      spy.mockRestore();
      m0.dispose();
      oo.dispose();
      expect(perSave).toBeGreaterThanOrEqual(4);

      for (let failAt = 1; failAt <= perSave; failAt++) {
        const dir = freshDir();
        const m1 = mlp(9, DIM, 8, CLASSES);
        const o1 = optimizers.momentum();
        await train(m1, data, { epochs: 2, batchSize: 32, optimizer: o1, seed: 2, checkpoint: { path: dir } });
        const pointer = fs.readFileSync(path.join(dir, CHECKPOINT_FILE), 'utf8');
        const filesBefore = fs.readdirSync(dir).sort();
        let n = 0;
        const failing = vi.spyOn(proto, 'write').mockImplementation(function (this: unknown, ...a: unknown[]) {
          if (++n === failAt)
            return Promise.reject(
              Object.assign(new Error('ENOSPC: no space left on device (simulated)'), { code: 'ENOSPC' }),
            );
          return realWrite.apply(this, a);
        });
        // Epoch 3's save fails at its failAt-th write.
        await expect(
          train(m1, data, { epochs: 3, batchSize: 32, optimizer: o1, seed: 2, checkpoint: { path: dir }, resume: dir }),
        ).rejects.toThrow(/ENOSPC/);
        failing.mockRestore();
        expect(fs.readFileSync(path.join(dir, CHECKPOINT_FILE), 'utf8'), `failAt ${failAt}`).toBe(pointer);
        // No temp files left; the only files are the old save's (plus, possibly, finished files of the failed save that nothing names).
        const after = fs.readdirSync(dir);
        expect(after.filter((f) => f.endsWith('.tmp'))).toEqual([]);
        filesBefore.forEach((f) => expect(after).toContain(f));
        m1.dispose();
        o1.dispose();
        const m2 = mlp(123, DIM, 8, CLASSES);
        const o2 = optimizers.momentum();
        const r = await train(m2, data, {
          epochs: 3,
          batchSize: 32,
          optimizer: o2,
          checkpoint: { path: dir },
          resume: true,
        });
        expect(r.startedAt).toEqual({ epoch: 2, step: 0 });
        m2.snapshot().forEach((g, i) => expect(Array.from(g), `failAt ${failAt}`).toEqual(Array.from(want[i])));
        // The next successful save pruned whatever the failed one left behind.
        expect(fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).length).toBe(2);
        m2.dispose();
        o2.dispose();
      }
    });

    it('rejects bad options, async logits, and a resume that cannot be exact, with typed errors', async () => {
      const model = mlp(10, DIM, 8, CLASSES);
      const opt = sgd(0.1);
      await expect(train(model, data, { epochs: 0, batchSize: 8, optimizer: opt })).rejects.toThrow(InputError);
      await expect(train(model, data, { epochs: 1, batchSize: 200, optimizer: opt })).rejects.toThrow(
        /fewer than one batch/,
      );
      await expect(train(model, data, { epochs: 1, batchSize: 8, optimizer: {} as tf.Optimizer })).rejects.toThrow(
        InputError,
      );
      await expect(train(model, data, { epochs: 1, batchSize: 8, optimizer: opt, resume: true })).rejects.toThrow(
        /checkpoint.path/,
      );
      await expect(train(model, data, { epochs: 1, batchSize: 8, optimizer: opt, resume: freshDir() })).rejects.toThrow(
        CheckpointError,
      );
      const asyncModel = {
        trainableVariables: model.trainableVariables,
        logits: async (x: tf.Tensor2D) => model.logits(x, { training: true }),
      };
      await expect(train(asyncModel, data, { epochs: 1, batchSize: 8, optimizer: opt })).rejects.toThrow(/synchronous/);
      const badLabels = {
        size: 8,
        batch: (idx: number[]) => ({
          input: tf.zeros([idx.length, DIM]) as tf.Tensor2D,
          labels: idx.map(() => CLASSES),
        }),
      };
      const baseline = tf.memory().numTensors;
      await expect(train(model, badLabels, { epochs: 1, batchSize: 8, optimizer: opt })).rejects.toThrow(
        /labels\[0\] is 4/,
      );
      await expect(train(asyncModel, data, { epochs: 1, batchSize: 8, optimizer: opt })).rejects.toThrow(/synchronous/);
      await new Promise((r) => setTimeout(r, 0));
      expect(tf.memory().numTensors).toBe(baseline);
      const dir = freshDir();
      await train(model, data, { epochs: 1, batchSize: 16, optimizer: opt, checkpoint: { path: dir } });
      await expect(
        train(model, data, { epochs: 2, batchSize: 16, optimizer: opt, checkpoint: { path: dir } }),
      ).rejects.toThrow(/already holds a checkpoint/);
      await expect(
        train(model, data, { epochs: 2, batchSize: 32, optimizer: opt, checkpoint: { path: dir }, resume: true }),
      ).rejects.toThrow(/batchSize = 16/);
      await expect(
        train(model, data, { epochs: 2, batchSize: 16, optimizer: adam(0.1), checkpoint: { path: dir }, resume: true }),
      ).rejects.toThrow(/SGD optimizer state/);
      const other = mlp(10, DIM, 9, CLASSES);
      await expect(
        train(other, data, { epochs: 2, batchSize: 16, optimizer: sgd(0.1), checkpoint: { path: dir }, resume: true }),
      ).rejects.toThrow(/trainable variables/);
      fs.writeFileSync(path.join(dir, CHECKPOINT_FILE), '{"format": "something else"}');
      await expect(
        train(model, data, { epochs: 2, batchSize: 16, optimizer: opt, checkpoint: { path: dir }, resume: true }),
      ).rejects.toThrow(CheckpointError);
      model.dispose();
      other.dispose();
      opt.dispose();
    });

    it('tensorDataset batches rows of an in-memory tensor', async () => {
      const x = tf.tensor2d(trainSet.x, [96, DIM]);
      const ds = tensorDataset(x, trainSet.y, CLASSES);
      const b = await ds.batch([5, 0], { training: true, seed: 0, epoch: 0, step: 0 });
      expect(Array.from(b.labels)).toEqual([trainSet.y[5], trainSet.y[0]]);
      expect(Array.from((b.input as tf.Tensor).dataSync())).toEqual([
        ...trainSet.x.slice(5 * DIM, 6 * DIM),
        ...trainSet.x.slice(0, DIM),
      ]);
      tf.dispose([x, b.input]);
      expect(() => tensorDataset(x, [1, 2], CLASSES)).toThrow(InputError);
    });
  });
}
