import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tensorDataset } from '../../src/data/dataset';
import { InputError } from '../../src/errors';
import { MLPHead } from '../../src/heads/mlpHead';
import {
  fineTune,
  FineTuneModel,
  GroupedOptimizer,
  withBatchSeeds,
  type FineTuneOptions,
} from '../../src/train/fineTune';
import { adam } from '../../src/train/optimizers';
import { trainStep } from '../../src/train/trainer';
import { ADMUNet } from '../../src/unet/admUnet';
import { setBackend } from '../helpers';

// 8×8, one channel, two levels, one ResBlock per level: blocks 1–4 encoder, 5 middle, 6–9 decoder.
const FLAGS = {
  image_size: 8,
  in_channels: 1,
  num_channels: 32,
  num_res_blocks: 1,
  channel_mult: '1,2',
  attention_resolutions: '',
  use_scale_shift_norm: true,
  resblock_updown: true,
  diffusion_steps: 1000,
  noise_schedule: 'linear',
};
const B = 6; // output_blocks.0
const N = 24;

let dir: string;
let images: tf.Tensor4D;
const labels = Int32Array.from({ length: N }, (_, i) => i % 3);

beforeAll(async () => {
  await setBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-finetune-'));
  // Three classes: a bright blob in one of three places, on seeded noise.
  images = tf.tidy(() => {
    const yy = tf.reshape(tf.linspace(-1, 1, 8), [1, 8, 1, 1]);
    const xx = tf.reshape(tf.linspace(-1, 1, 8), [1, 1, 8, 1]);
    const cx = tf.reshape(tf.tensor1d(Array.from(labels, (c) => [-0.6, 0, 0.6][c])), [N, 1, 1, 1]);
    const blob = tf.exp(tf.mul(tf.add(tf.square(tf.sub(xx, cx)), tf.square(yy)), -4));
    return tf.clipByValue(
      tf.add(tf.sub(tf.mul(blob, 1.6), 0.8), tf.randomNormal([N, 8, 8, 1], 0, 0.2, 'float32', 7)),
      -1,
      1,
    );
  }) as tf.Tensor4D;
});
afterAll(() => {
  images.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

const data = () => tensorDataset(images, labels);
const fresh = () => {
  const unet = ADMUNet.create(FLAGS, 3);
  const head = new MLPHead({ channels: unet.block(B).channels, pool: 2, classes: 3, seed: 1 });
  return { unet, head };
};
const PARTS: FineTuneOptions['parts'] = {
  head: { lr: 1e-2 },
  unet: { lr: 1e-3 },
  'input_blocks.0': 'freeze',
  time_embed: 'freeze',
};
const run = async (opts: Partial<FineTuneOptions>) => {
  const { unet, head } = fresh();
  try {
    const r = await fineTune(unet, head, data(), {
      t: 10,
      b: B,
      parts: PARTS,
      epochs: 2,
      batchSize: 8,
      seed: 0,
      ...opts,
    });
    return { r, weights: unet.stateDict(), head: head.trainableVariables.map((v) => v.dataSync().slice()) };
  } finally {
    unet.dispose();
    head.dispose();
  }
};
const bits = (m: Map<string, { data: Float32Array }>) =>
  new Map([...m].map(([k, v]) => [k, [...new Uint32Array(v.data.buffer)]]));

describe('FineTuneModel / fineTune', () => {
  it('trains the parts asked for: frozen weights and blocks after b stay bit-equal, the rest change', async () => {
    const { unet } = fresh();
    const before = unet.stateDict();
    unet.dispose();
    const { weights, r } = await run({ epochs: 1 });
    expect(r.globalStep).toBe(3);
    const changed = (k: string) => !before.get(k)!.data.every((x, i) => Object.is(x, weights.get(k)!.data[i]));
    const keys = [...before.keys()];
    const stays = keys.filter(
      (k) =>
        k.startsWith('input_blocks.0.') ||
        k.startsWith('time_embed.') ||
        k.startsWith('out.') ||
        /^output_blocks\.[1-9]\./.test(k),
    );
    const moves = keys.filter((k) => !stays.includes(k));
    expect(stays.length).toBeGreaterThan(10);
    expect(stays.filter(changed)).toEqual([]);
    // Every trained weight (encoder 2–4, middle, decoder block 6) moves; a zero-initialised last conv
    // may keep some entries for a step, but each tensor changes somewhere.
    expect(moves.filter((k) => !changed(k))).toEqual([]);
    expect(moves.some((k) => k.startsWith('middle_block.'))).toBe(true);
    expect(moves.some((k) => k.startsWith('output_blocks.0.'))).toBe(true);
  });

  it('steps each group with its own rate: one Adam step moves every weight by ≈ its lr', async () => {
    const { unet, head } = fresh();
    const model = new FineTuneModel(unet, head, { t: 10, b: B, parts: { head: { lr: 1e-2 }, unet: { lr: 1e-4 } } });
    const opt = model.optimizer();
    try {
      expect(model.groups.map((g) => [g.lr, g.parts])).toEqual([
        [1e-2, ['head']],
        [1e-4, ['unet']],
      ]);
      const before = model.trainableVariables.map((v) => v.dataSync().slice());
      const batch = await withBatchSeeds(data()).batch([0, 1, 2, 3, 4, 5, 6, 7], {
        training: true,
        seed: 9,
        epoch: 0,
        step: 0,
      });
      await trainStep(model, batch, opt);
      tf.dispose(batch.input);
      // Adam's first step is lr · g / (|g| + ε): ±lr wherever the gradient is not tiny.
      model.groups.forEach((g, gi) => {
        const offset = model.groups.slice(0, gi).reduce((s, x) => s + x.variables.length, 0);
        const steps = g.variables.flatMap((v, j) => {
          const now = v.dataSync();
          return Array.from(now, (x, i) => Math.abs(x - before[offset + j][i]));
        });
        const sorted = steps.filter((d) => d > 0).sort((a, b) => a - b);
        const median = sorted[sorted.length >> 1];
        expect(median / g.lr).toBeGreaterThan(0.98);
        expect(median / g.lr).toBeLessThan(1.02);
        expect(steps.reduce((m, x) => Math.max(m, x), 0)).toBeLessThan(g.lr * 1.01);
      });
    } finally {
      opt.dispose();
      unet.dispose();
      head.dispose();
    }
  });

  it('gradientCheckpoint passes through to the U-Net forward and gives the same step', async () => {
    const step = async (gradientCheckpoint: boolean) => {
      const { unet, head } = fresh();
      const model = new FineTuneModel(unet, head, { t: 10, b: B, parts: PARTS, gradientCheckpoint, dropout: 0.1 });
      const opt = model.optimizer();
      try {
        const batch = await withBatchSeeds(data()).batch([0, 1, 2, 3], { training: true, seed: 4, epoch: 0, step: 0 });
        const r = await trainStep(model, batch, opt);
        tf.dispose(batch.input);
        return { loss: r.loss, vars: model.trainableVariables.map((v) => v.dataSync().slice()) };
      } finally {
        opt.dispose();
        unet.dispose();
        head.dispose();
      }
    };
    const [plain, ck] = [await step(false), await step(true)];
    expect(ck.loss).toBe(plain.loss);
    ck.vars.forEach((v, i) => v.forEach((x, j) => expect(Math.abs(x - plain.vars[i][j])).toBeLessThan(1e-6)));
  });

  it('GroupedOptimizer equals one Adam per group, bit for bit, and its schedule keeps the ratios', () => {
    const mk = () => [
      tf.variable(tf.tensor1d([0.5, -1, 2])),
      tf.variable(
        tf.tensor2d([
          [1, 2],
          [3, -4],
        ]),
      ),
    ];
    const [a, b] = mk();
    const [c, d] = mk();
    const grouped = new GroupedOptimizer([
      { lr: 0.1, variables: [a] },
      { lr: 0.01, variables: [b] },
    ]);
    const [o1, o2] = [adam(0.1), adam(0.01)];
    for (let s = 0; s < 3; s++) {
      const g = tf.tidy(() => [
        tf.tensor1d([0.3, -0.2, s]),
        tf.tensor2d([
          [s, 1],
          [-2, 0.5],
        ]),
      ]);
      grouped.applyGradients([
        { name: a.name, tensor: g[0] },
        { name: b.name, tensor: g[1] },
      ]);
      o1.applyGradients([{ name: c.name, tensor: g[0] }]);
      o2.applyGradients([{ name: d.name, tensor: g[1] }]);
      tf.dispose(g);
    }
    expect(a.dataSync()).toEqual(c.dataSync());
    expect(b.dataSync()).toEqual(d.dataSync());
    expect(grouped.iterations).toBe(3);
    grouped.setLearningRate(0.05);
    expect(grouped.learningRate).toBe(0.05);
    expect(grouped.learningRates[1]).toBeCloseTo(0.005, 12);
    expect(() => new GroupedOptimizer([{ lr: 0, variables: [a] }])).toThrow(InputError);
    expect(
      () =>
        new GroupedOptimizer([
          { lr: 1, variables: [a] },
          { lr: 2, variables: [a] },
        ]),
    ).toThrow(/two groups/);
    tf.dispose([a, b, c, d]);
    [grouped, o1, o2].forEach((o) => o.dispose());
  });

  it('lowers the loss, and the same seed gives the same weights bit for bit', async () => {
    const one = await run({ epochs: 6 });
    const h = one.r.history;
    expect(h.at(-1)!.trainLoss).toBeLessThan(0.8 * h[0].trainLoss);
    const two = await run({ epochs: 6 });
    expect(bits(two.weights)).toEqual(bits(one.weights));
    expect(two.head).toEqual(one.head);
    const other = await run({ epochs: 1, seed: 1 });
    const sameStart = await run({ epochs: 1 });
    expect(bits(other.weights)).not.toEqual(bits(sameStart.weights));
  });

  it('resumes from a trainer checkpoint bit for bit', async () => {
    const ck = path.join(dir, 'resume');
    const whole = await run({ epochs: 4 });
    await run({ epochs: 2, checkpoint: { path: ck } });
    const resumed = await run({ epochs: 4, checkpoint: { path: ck }, resume: true });
    expect(resumed.r.startedAt).toEqual({ epoch: 2, step: 0 });
    expect(bits(resumed.weights)).toEqual(bits(whole.weights));
    expect(resumed.head).toEqual(whole.head);
    expect(resumed.r.history.map((e) => e.trainLoss)).toEqual(whole.r.history.map((e) => e.trainLoss));
  });

  it('leaks no tensors after a step, after a throwing call, and with the U-Net frozen', async () => {
    const { unet, head } = fresh();
    const model = new FineTuneModel(unet, head, { t: 10, b: B, parts: PARTS });
    const head3 = new MLPHead({ channels: unet.block(3).channels, pool: 2, classes: 3 });
    const frozen = new FineTuneModel(unet, head3, { t: 5, b: 3, parts: { head: { lr: 1e-2 } } });
    expect(frozen.trainsUNet).toBe(false);
    const opt = model.optimizer();
    const seeded = withBatchSeeds(data());
    const step = async (m: FineTuneModel, o: tf.Optimizer, lab?: number[]) => {
      const batch = await seeded.batch([0, 1, 2, 3], { training: true, seed: 1, epoch: 0, step: 0 });
      try {
        return await trainStep(m, lab ? { ...batch, labels: lab } : batch, o);
      } finally {
        tf.dispose(batch.input);
      }
    };
    try {
      await step(model, opt); // creates the optimizer's slots
      const n0 = tf.memory().numTensors;
      await step(model, opt);
      expect(tf.memory().numTensors).toBe(n0);
      await expect(step(model, opt, [0, 1, 2, 7])).rejects.toThrow(InputError); // label out of range, inside the tape
      expect(tf.memory().numTensors).toBe(n0);
      const bad = tf.zeros([2, 4, 4, 1]) as tf.Tensor4D;
      expect(() => model.logits(bad, { training: true })).toThrow(InputError);
      bad.dispose();
      expect(tf.memory().numTensors).toBe(n0);
      const o2 = frozen.optimizer();
      await step(frozen, o2);
      const n1 = tf.memory().numTensors;
      await step(frozen, o2);
      expect(tf.memory().numTensors).toBe(n1);
      o2.dispose();
    } finally {
      opt.dispose();
      unet.dispose();
      head.dispose();
      head3.dispose();
    }
  });

  it('refuses bad options with InputErrors', () => {
    const { unet, head } = fresh();
    const make = (o: object) => () =>
      new FineTuneModel(unet, head, { t: 10, b: B, parts: { head: { lr: 1e-3 } }, ...o } as never);
    try {
      expect(make({ parts: { head: { lr: 1e-3 }, input_block: { lr: 1 } } })).toThrow(/unknown part "input_block"/);
      expect(make({ parts: { head: { lr: 1e-3 }, 'input_blocks.4': { lr: 1 } } })).toThrow(/unknown part/);
      expect(make({ parts: { head: { lr: 1e-3 }, label_emb: { lr: 1 } } })).toThrow(/unknown part/);
      expect(make({ b: 0 })).toThrow(/unknown block 0/);
      expect(make({ b: 10 })).toThrow(/unknown block 10/);
      expect(make({ t: -1 })).toThrow(/t must be an integer in \[0, 1000\)/);
      expect(make({ t: 1000 })).toThrow(InputError);
      expect(make({ t: 1.5 })).toThrow(InputError);
      expect(make({ parts: { head: { lr: 0 } } })).toThrow(/lr must be a positive/);
      expect(make({ parts: { head: { lr: 1e-3 }, unet: { lr: -1 } } })).toThrow(/lr must be a positive/);
      expect(make({ parts: { head: 'freeze' } })).toThrow(/everything is frozen/);
      expect(make({ parts: { head: 'freeze', unet: 'freeze', middle_block: { lr: 1 } }, b: 4 })).toThrow(
        /everything is frozen/,
      ); // the middle block (5) is after block 4
      expect(make({ parts: { unet: { lr: 1 } } })).toThrow(/parts.head is required/);
      expect(make({ parts: { head: { rate: 1 } } })).toThrow(/must be \{ lr/);
      expect(make({ dropout: 1 })).toThrow(InputError);
      expect(make({ b: 3 })).toThrow(/head takes 64 channels; block 3 has 32/);
      expect(() => new FineTuneModel(unet, {} as never, { t: 1, b: 1, parts: { head: { lr: 1 } } })).toThrow(
        InputError,
      );
    } finally {
      unet.dispose();
      head.dispose();
    }
    const streamed = ADMUNet.create(FLAGS, 3, { residency: 'stream', residentBudget: 0 });
    const h2 = new MLPHead({ channels: streamed.block(B).channels, pool: 2, classes: 3 });
    try {
      expect(
        () => new FineTuneModel(streamed, h2, { t: 1, b: B, parts: { head: { lr: 1 }, unet: { lr: 1 } } }),
      ).toThrow(/needs its weights resident.*residency: 'resident'/);
      // A frozen U-Net may stream.
      expect(new FineTuneModel(streamed, h2, { t: 1, b: B, parts: { head: { lr: 1 } } }).trainsUNet).toBe(false);
    } finally {
      streamed.dispose();
      h2.dispose();
    }
  });
});
