// Each head of the paper learns a small fixed-seed task through the training helpers, on the
// adm-tiny fixture U-Net: loss falls and accuracy rises clearly, memory stays flat across steps.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FeatureSet } from '../../src/features/extractFeatures';
import { AttentionHead } from '../../src/heads/attentionHead';
import { LinearHead, MLPHead } from '../../src/heads/mlpHead';
import { Tokenizer } from '../../src/heads/tokenizer';
import { DifFormer } from '../../src/fusion/difFormer';
import { fromReference, type FinetuneArgs } from '../../src/diffsslModel';
import { ADMUNet } from '../../src/unet/admUnet';
import { cacheFeatures, type FeatureCache } from '../../src/data/featureCache';
import { ensureGradients } from '../../src/backend/gradients';
import { imagesFromTensor } from '../../src/data/images';
import { onTheFlyImages } from '../../src/data/onTheFly';
import { adam, sgd } from '../../src/train/optimizers';
import type { TrainableModel } from '../../src/train/trainableModel';
import type { Dataset } from '../../src/data/dataset';
import { evaluate, train, type EvalResult, type TrainResult } from '../../src/train/trainer';
import { SeededRandom } from '../../src/util/random';
import { BACKENDS, FIXTURES, fixtureJson, setBackend } from '../helpers';

const FLAGS = fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args;
const ARC = 'Use_CLS_Token:True:32,Insert_CLS_Token,Attention:32:2:2:1,Extract_CLS_Token';
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-heads-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/**
 * Four classes of 36×36 images told apart by colour (red, green, blue or grey dominant), with pixel
 * noise and a random brightness per image, clipped to [-1, 1] as images are. Colour is visible to every head, including the
 * attention heads, which see an unordered set of tokens (the reference adds no position embedding).
 */
function colours(n: number, seed: number): { images: tf.Tensor4D; labels: Int32Array } {
  const rng = new SeededRandom(seed);
  const side = 36;
  const base = [
    [0.5, -0.4, -0.4],
    [-0.4, 0.5, -0.4],
    [-0.4, -0.4, 0.5],
    [0.05, 0.05, 0.05],
  ];
  const data = new Float32Array(n * side * side * 3);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = (labels[i] = i % 4);
    const shift = 0.4 * (rng.uniform() - 0.5);
    for (let p = 0; p < side * side; p++)
      for (let ch = 0; ch < 3; ch++)
        data[(i * side * side + p) * 3 + ch] = Math.max(-1, Math.min(1, base[c][ch] + shift + 0.3 * rng.normal()));
  }
  return { images: tf.tensor4d(data, [n, side, side, 3]), labels };
}

/** Trains and checks the learning criteria; returns the result for further checks. */
async function learns<I>(
  model: TrainableModel<I>,
  data: Dataset<I>,
  val: Dataset<I>,
  opts: { epochs: number; batchSize: number; optimizer: tf.Optimizer; minTop1?: number },
): Promise<{ before: EvalResult; after: EvalResult; result: TrainResult }> {
  const before = await evaluate(model, val, { batchSize: 16 });
  const counts: number[] = [];
  const result = await train(model, data, {
    ...opts,
    seed: 1,
    evalData: val,
    evalEvery: opts.epochs,
    onProgress: () => counts.push(tf.memory().numTensors),
  });
  const after = result.history.at(-1)!.eval!;
  const h = result.history;
  expect(h.at(-1)!.trainLoss, `train loss ${h.map((e) => e.trainLoss.toFixed(3))}`).toBeLessThan(0.6 * h[0].trainLoss);
  expect(after.loss, `val loss ${before.loss} → ${after.loss}`).toBeLessThan(0.7 * before.loss);
  expect(after.top1, `val top-1 ${before.top1} → ${after.top1}`).toBeGreaterThanOrEqual(
    Math.max(opts.minTop1 ?? 0.85, before.top1 + 0.3),
  );
  // Slots of stateful optimizers appear at the first update; from the second on the count is flat.
  expect(new Set(counts.slice(1)).size, `tensors per step ${counts}`).toBe(1);
  return { before, after, result };
}

describe('heads learn on the adm-tiny U-Net', () => {
  let unet: ADMUNet;
  let trainSet: { images: tf.Tensor4D; labels: Int32Array };
  let valSet: { images: tf.Tensor4D; labels: Int32Array };
  let cache: FeatureCache;
  let valCache: FeatureCache;
  const T = [90, 150];
  const B = [4, 6];

  beforeAll(async () => {
    await setBackend('wasm');
    await ensureGradients();
    unet = await ADMUNet.load(path.join(FIXTURES, 'adm-tiny/weights.safetensors'), FLAGS);
    trainSet = colours(32, 1);
    valSet = colours(16, 2);
    // Features are extracted once on wasm; the caches live in JS memory and serve every backend.
    cache = await cacheFeatures(imagesFromTensor(trainSet.images, trainSet.labels), {
      model: unet,
      t: T,
      b: B,
      pool: 4,
      batchSize: 16,
    });
    valCache = await cacheFeatures(imagesFromTensor(valSet.images, valSet.labels), {
      model: unet,
      t: T,
      b: B,
      pool: 4,
      batchSize: 16,
      seed: 1,
    });
  });
  afterAll(async () => {
    unet?.dispose();
    tf.dispose([trainSet?.images, valSet?.images]);
    await cache?.close();
    await valCache?.close();
  });

  // Before the per-backend tests: the helper's setBackend('wasm') after cpu would start a new wasm
  // backend and orphan the U-Net's weights.
  describe('on the fly (fresh noise and crop/flip every step) on wasm', () => {
    const images = () => imagesFromTensor(trainSet.images, trainSet.labels);
    const valImages = () => imagesFromTensor(valSet.images, valSet.labels);

    it('the reference attention system from fromReference(finetune_args)', async () => {
      const args: FinetuneArgs = {
        head_type: 'attention',
        norm_type: 'layer',
        pre_pool_size: 4,
        fusion_arc: ARC,
        t_list: [150],
        first_fw_b_list: [6],
        second_fw_b_list: [-1],
        feedback_b_list: [-1],
        num_classes: 4,
      };
      const sys = fromReference(args, unet, { seed: 6 });
      const data = onTheFlyImages(images(), { size: 32, t: args.t_list });
      const val = onTheFlyImages(valImages(), { size: 32, t: args.t_list });
      const opt = adam(3e-3);
      await learns(sys, data, val, { epochs: 5, batchSize: 8, optimizer: opt });
      opt.dispose();
      sys.dispose();
    });

    it('DifFeed: feedback from decoder blocks 11 and 12 into encoder blocks 9 and 8, head on pass-2 block 12', async () => {
      const args: FinetuneArgs = {
        head_type: 'attention',
        norm_type: 'layer',
        pre_pool_size: 4,
        fusion_arc: ARC,
        feedback_arch: 'C_B_R',
        t_list: [150],
        first_fw_b_list: [-1],
        second_fw_b_list: [12],
        feedback_b_list: [11, 12],
        num_classes: 4,
      };
      // 4 epochs of 4 steps: each step runs the U-Net twice to block 12 and back-propagates through pass 2.
      const sys = fromReference(args, unet, { seed: 7 });
      expect(sys.feedback).not.toBeNull();
      const fbVars = new Set(sys.feedback!.trainableVariables);
      const before = new Map([...fbVars].map((v) => [v, v.dataSync().slice()]));
      const data = onTheFlyImages(images(), { size: 32, t: args.t_list });
      const val = onTheFlyImages(valImages(), { size: 32, t: args.t_list });
      const opt = adam(3e-3);
      await learns(sys, data, val, { epochs: 4, batchSize: 8, optimizer: opt });
      // The feedback networks were trained too (their conv weights moved).
      const moved = [...fbVars].filter(
        (v) => v.shape.length > 1 && Array.from(v.dataSync()).some((x, i) => x !== before.get(v)![i]),
      );
      expect(moved.length).toBe(2);
      opt.dispose();
      sys.dispose();
    });
  });

  for (const backend of BACKENDS) {
    describe(`from cached features on ${backend}`, () => {
      beforeAll(() => setBackend(backend));

      it('LinearHead (the GD baseline)', async () => {
        const head = new LinearHead({ channels: 32, pool: 2, classes: 4, seed: 1 });
        const model = {
          trainableVariables: head.trainableVariables,
          logits: (f: FeatureSet, o: { training: boolean }) => head.forward(f.get(150, 6), o),
        };
        const opt = sgd(0.05);
        await learns(model, cache, valCache, { epochs: 8, batchSize: 8, optimizer: opt });
        opt.dispose();
        head.dispose();
      });

      it('MLPHead (head_arc "16")', async () => {
        const head = new MLPHead({ channels: 32, pool: 2, hidden: [16], classes: 4, seed: 2 });
        const model = {
          trainableVariables: head.trainableVariables,
          logits: (f: FeatureSet, o: { training: boolean }) => head.forward(f.get(90, 4), o),
        };
        const opt = sgd(0.05);
        await learns(model, cache, valCache, { epochs: 10, batchSize: 8, optimizer: opt });
        opt.dispose();
        head.dispose();
      });

      it("Tokenizer + AttentionHead (the paper's attention head, from its constructors)", async () => {
        const tok = new Tokenizer({ channels: 32, side: 4, pool: 4, dim: 32, norm: 'layer', seed: 3 });
        const head = new AttentionHead({ arc: ARC, classes: 4, seed: 4 });
        const model = {
          trainableVariables: [...tok.trainableVariables, ...head.trainableVariables],
          logits: (f: FeatureSet, o: { training: boolean }) =>
            tf.tidy(() => head.forward(tok.forward(f.get(150, 4), o), o)),
        };
        const opt = adam(3e-3);
        await learns(model, cache, valCache, { epochs: 6, batchSize: 4, optimizer: opt });
        opt.dispose();
        tok.dispose();
        head.dispose();
      });

      it('DifFormer over 2 t × 2 blocks, BatchNorm tokenizers; checkpoint-resume is exact, running statistics included (first backend)', async () => {
        const make = () =>
          new DifFormer({
            blocks: B.map((b) => ({ b, channels: 32, size: 4 })),
            timesteps: 2,
            pool: 4,
            norm: 'batch',
            arc: ARC,
            classes: 4,
            seed: 5,
          });
        const asModel = (d: DifFormer) => ({
          trainableVariables: d.trainableVariables,
          logits: (f: FeatureSet, o: { training: boolean }) =>
            d.forward(
              T.map((t) => B.map((b) => ({ b, map: f.get(t, b) }))),
              o,
            ),
          saveWeights: (p: string) => d.saveWeights(p),
          loadWeights: (s: string | Uint8Array) => d.loadWeights(s),
        });
        const fusion = make();
        const opt = adam(3e-3);
        await learns(asModel(fusion), cache, valCache, { epochs: 6, batchSize: 4, optimizer: opt });
        const values = (d: DifFormer) =>
          new Map(d.state().map((e) => [e.name, e.kind === 'float' ? Array.from(e.variable.dataSync()) : [e.get()]]));
        const want = values(fusion);
        if (backend !== BACKENDS[0]) {
          // Resume bookkeeping is backend-independent (and tested in trainer.test.ts on every backend).
          fusion.dispose();
          opt.dispose();
          return;
        }
        // The same 6 epochs as 3 + resume + 3 from a fresh DifFormer.
        const dir = path.join(tmpRoot, `difformer-${backend}`);
        const a = make();
        const oa = adam(3e-3);
        await train(asModel(a), cache, {
          epochs: 3,
          batchSize: 4,
          optimizer: oa,
          seed: 1,
          evalData: valCache,
          evalEvery: 6,
          checkpoint: { path: dir },
        });
        const b = make();
        const ob = adam(3e-3);
        await train(asModel(b), cache, {
          epochs: 6,
          batchSize: 4,
          optimizer: ob,
          evalData: valCache,
          evalEvery: 6,
          checkpoint: { path: dir },
          resume: true,
        });
        const names = [...want.keys()];
        expect(names.some((n) => n.endsWith('running_mean'))).toBe(true);
        expect(names.some((n) => n.endsWith('num_batches_tracked'))).toBe(true);
        for (const [name, v] of values(b)) expect(v, name).toEqual(want.get(name));
        [fusion, a, b].forEach((d) => d.dispose());
        [opt, oa, ob].forEach((o) => o.dispose());
      });
    });
  }
});
