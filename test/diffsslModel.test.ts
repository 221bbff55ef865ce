import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no gradients; training code (and these tests) import them once.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, WeightsError } from '../src/errors';
import { readSafetensors } from '../src/io/safetensors';
import { DifFormer } from '../src/fusion/difFormer';
import { MLPHead } from '../src/heads/mlpHead';
import { fromReference, type DiffSSLModel, type FinetuneArgs } from '../src/diffsslModel';
import { ADMUNet } from '../src/unet/admUnet';
import { BACKENDS, fixtureJson, FIXTURES, gradientCheck, loadTinyUNet, setBackend } from './helpers';
import { expectMatch, headFixture, headWeights, referenceParity, tensorOf } from './heads/fixtures';
import { extractFeatures } from '../src/features/extractFeatures';

/** Max abs error per fixture and backend, printed at the end for the report. */
const worst = new Map<string, { logits: number; all: number; keys: number }>();
afterAll(() => {
  for (const [k, w] of worst)
    console.log(
      `heads parity ${k}: logits max abs ${w.logits.toExponential(2)}, all ${w.keys} recorded tensors max abs ${w.all.toExponential(2)}`,
    );
});

for (const backend of BACKENDS) {
  describe(`fromReference on ${backend}`, () => {
    let unet: ADMUNet;
    beforeAll(async () => {
      await setBackend(backend);
      unet = await loadTinyUNet();
    });
    afterAll(() => unet?.dispose());

    // DifFormer and DifFeed fixtures run in test/fusion and test/feedback (each file stays short).
    for (const head of ['attention', 'attention-bn', 'linear', 'mlp']) {
      it(`${head}: logits and every recorded intermediate match the reference (eval); no tensor leaks`, async () => {
        worst.set(`${head}/${backend}`, await referenceParity(head, unet));
      });
    }

    it('logitsFromFeatures: the head alone on features extracted beforehand gives the same logits', async () => {
      for (const head of ['attention-bn', 'mlp']) {
        const { cfg, act } = await headFixture(head);
        const args = cfg.finetune_args;
        const model = fromReference(args, unet);
        await model.loadWeights(headWeights(head));
        const x0 = tensorOf(act.get('x0')!) as tf.Tensor4D;
        const noise = args.t_list.map((_: number, i: number) => tensorOf(act.get(`t${i}.noise`)!) as tf.Tensor4D);
        const feats = await extractFeatures(x0, { t: args.t_list, b: args.first_fw_b_list, model: unet, noise });
        const logits = model.logitsFromFeatures(feats);
        expectMatch(logits.dataSync(), act.get('logits')!, `${head} logits`);
        tf.dispose([logits, x0, ...noise]);
        feats.dispose();
        model.dispose();
      }
      const fb = fromReference(fixtureJson('heads/difffeed/config.json').finetune_args, unet);
      expect(() => fb.logitsFromFeatures({ get: () => tf.zeros([1, 16, 16, 32]) as tf.Tensor4D })).toThrow(/DifFeed/);
      fb.dispose();
    });

    it('save → load round-trips every weight exactly, under the reference names and shapes', async () => {
      for (const head of ['attention-bn', 'difffeed', 'mlp']) {
        const cfg = fixtureJson(`heads/${head}/config.json`);
        const file = path.join(FIXTURES, 'heads', head, 'weights.safetensors');
        const a = fromReference(cfg.finetune_args, unet);
        await a.loadWeights(file);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-heads-'));
        const out = path.join(dir, 'w.safetensors');
        await a.saveWeights(out);
        const [orig, saved] = [await readSafetensors(file), await readSafetensors(out)];
        expect([...saved.keys()].sort()).toEqual([...orig.keys()].sort());
        for (const [k, t] of orig) {
          expect(saved.get(k)!.shape, k).toEqual(t.shape);
          expect(saved.get(k)!.dtype, k).toEqual(t.dtype);
          expect(Array.from(saved.get(k)!.data as ArrayLike<number | bigint>), k).toEqual(
            Array.from(t.data as ArrayLike<number | bigint>),
          );
        }
        // A fresh model (other random init) loaded from the saved file is the same model.
        const b = fromReference(cfg.finetune_args, unet, { seed: 7 });
        await b.loadWeights(out);
        const [sa, sb] = [a.stateDict(), b.stateDict()];
        for (const [k, v] of sa)
          expect(Array.from(sb.get(k)!.data as ArrayLike<number | bigint>), k).toEqual(
            Array.from(v.data as ArrayLike<number | bigint>),
          );
        a.dispose();
        b.dispose();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('the head is what head_type says, sized from the U-Net block table', () => {
      const lin = fromReference(fixtureJson('heads/mlp/config.json').finetune_args, unet);
      expect(lin.head).toBeInstanceOf(MLPHead);
      expect(lin.feedback).toBeNull();
      const fus = fromReference(fixtureJson('heads/difformer/config.json').finetune_args, unet);
      expect(fus.head).toBeInstanceOf(DifFormer);
      const tok = (fus.head as DifFormer).tokenizers;
      expect([...tok.keys()].sort((a, b) => a - b)).toEqual([10, 15, 18]);
      expect([10, 15, 18].map((b) => tok.get(b)!.poolSide)).toEqual([8, 16, 16]); // min(side, pre_pool_size 16)
      const fb = fromReference(fixtureJson('heads/difffeed-all/config.json').finetune_args, unet);
      expect(fb.feedback!.links.map((l) => [l.from, l.to])).toEqual(
        fixtureJson('heads/difffeed-all/config.json').derived.feedback_map.map((m: any) => [
          m.feedback_block,
          m.mirror_encoder_block,
        ]),
      );
      [lin, fus, fb].forEach((m) => m.dispose());
    });

    it('[-1] means "not used" as in finetune.py', () => {
      const args = {
        ...fixtureJson('heads/attention/config.json').finetune_args,
        second_fw_b_list: [-1],
        feedback_b_list: [-1],
      };
      const m = fromReference(args, unet);
      expect(m.feedback).toBeNull();
      expect(m.secondBlocks).toEqual([]);
      m.dispose();
    });

    it('bad configurations get typed errors and leave nothing allocated', () => {
      const base: FinetuneArgs = fixtureJson('heads/difffeed/config.json').finetune_args;
      const lin: FinetuneArgs = fixtureJson('heads/linear/config.json').finetune_args;
      const before = tf.memory().numTensors;
      const bad: [string, FinetuneArgs, RegExp][] = [
        ['unknown block', { ...base, second_fw_b_list: [42] }, /unknown block 42/],
        ['unknown first block', { ...lin, first_fw_b_list: [0] }, /unknown block 0/],
        ['feedback block in the encoder', { ...base, feedback_b_list: [5, 12] }, /not a decoder block/],
        ['feedback block = middle block', { ...base, feedback_b_list: [10] }, /not a decoder block/],
        ['unsorted feedback list', { ...base, feedback_b_list: [18, 12] }, /ascending/],
        ['feedback without blocks', { ...base, feedback_b_list: [] }, /feedback_b_list/],
        ['unknown head_type', { ...base, head_type: 'mlp' }, /head_type/],
        ['unknown norm_type', { ...base, norm_type: 'group' }, /norm_type/],
        [
          'unknown fusion_arc layer',
          { ...base, fusion_arc: 'Use_CLS_Token:True:64,Insert_CLS_Token,Atention:64:4:4:2,Extract_CLS_Token' },
          /unknown layer "Atention/,
        ],
        [
          'fusion_arc dims that do not fit',
          { ...base, fusion_arc: 'Use_CLS_Token:True:64,Insert_CLS_Token,Attention:32:4:4:2,Extract_CLS_Token' },
          /width 32/,
        ],
        [
          'heads that do not divide dim',
          { ...base, fusion_arc: 'Use_CLS_Token:True:64,Insert_CLS_Token,Attention:64:5:4:2,Extract_CLS_Token' },
          /divisible/,
        ],
        ['linear head with two t', { ...lin, t_list: [90, 150] }, /linear/],
        ['t outside the schedule', { ...lin, t_list: [1000] }, /t_list/],
        ['bad head_arc', { ...lin, head_arc: '48_x' }, /head_arc/],
        ['unsupported feedback_arch', { ...base, feedback_arch: 'C_B_R_C' }, /feedback_arch/],
        ['zero pool', { ...lin, pre_pool_size: 0 }, /pre_pool_size/],
      ];
      for (const [what, args, msg] of bad) {
        let err: unknown;
        try {
          fromReference(args, unet).dispose();
        } catch (e) {
          err = e;
        }
        expect(err, what).toBeInstanceOf(InputError);
        expect((err as Error).message, what).toMatch(msg);
      }
      expect(tf.memory().numTensors).toBe(before);
    });

    it('weights that do not fit: one WeightsError listing every missing, unexpected and mis-shaped key', async () => {
      const m = fromReference(fixtureJson('heads/attention/config.json').finetune_args, unet);
      // attention-bn has BatchNorm keys where attention has LayerNorm ones, 8 heads, 1 block, 6×6 pooling
      const err = await m
        .loadWeights(path.join(FIXTURES, 'heads', 'attention-bn', 'weights.safetensors'))
        .catch((e) => e);
      expect(err).toBeInstanceOf(WeightsError);
      const w = err as WeightsError;
      expect(w.missing).toContain('head.intra_inter_block_attention.layers.2.norm1.weight');
      expect(w.unexpected).toContain('head.pre_layer.15.1.running_mean');
      expect(w.mismatched.map(([k]) => k)).toContain('head.pre_layer.15.1.weight');
      m.dispose();
    });

    it('logits: bad noise and images are typed errors', () => {
      const m = fromReference(fixtureJson('heads/difformer/config.json').finetune_args, unet);
      const x0 = tf.zeros([2, 32, 32, 3]) as tf.Tensor4D;
      const e1 = tf.zeros([2, 32, 32, 3]) as tf.Tensor4D;
      expect(() => m.logits(x0, { noise: [e1] })).toThrow(/one tensor per t/);
      expect(() => m.logits(x0, { noise: [e1, e1, tf.zeros([1, 32, 32, 3]) as tf.Tensor4D] })).toThrow(InputError);
      expect(() => m.logits(tf.zeros([2, 3, 32, 32]) as tf.Tensor4D, {})).toThrow(/NCHW/);
      tf.dispose([x0, e1]);
      m.dispose();
    });
  });
}

for (const backend of BACKENDS) {
  describe(`a training step through fromReference on ${backend}`, () => {
    let unet: ADMUNet;
    beforeAll(async () => {
      await setBackend(backend);
      unet = await loadTinyUNet();
    });
    afterAll(() => unet?.dispose());

    for (const head of ['attention-bn', 'mlp']) {
      it(`${head}: a cross-entropy gradient reaches exactly the head's variables; BatchNorm counts the batch; memory returns to baseline`, () => {
        const model: DiffSSLModel = fromReference(fixtureJson(`heads/${head}/config.json`).finetune_args, unet, {
          seed: 3,
        });
        const x0 = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
        const labels = tf.oneHot(tf.tensor1d([3, 7], 'int32'), 10);
        const vars = model.trainableVariables;
        const loss = () =>
          tf.losses.softmaxCrossEntropy(labels, model.logits(x0, { seed: 5, training: true })) as tf.Scalar;
        const warm = tf.variableGrads(loss, vars); // warm-up: the U-Net may cache per-shape constants
        tf.dispose([warm.value, ...Object.values(warm.grads)]);
        const before = tf.memory().numTensors;
        const { value, grads } = tf.variableGrads(loss, vars);
        expect(Object.keys(grads).sort()).toEqual(vars.map((v) => v.name).sort());
        const opt = tf.train.sgd(0.01);
        opt.applyGradients(grads);
        tf.dispose([value, ...Object.values(grads)]);
        opt.dispose();
        expect(tf.memory().numTensors).toBe(before);
        if (head === 'attention-bn')
          expect(model.stateDict().get('head.pre_layer.15.1.num_batches_tracked')!.data).toEqual(BigInt64Array.of(2n));
        // The first head variable's gradient against a central difference of L = Σ logits·w (w fixed, same noise).
        const w = tf.randomNormal([2, 10], 0, 1, 'float32', 6);
        const c = gradientCheck(
          () => tf.sum(tf.mul(model.logits(x0, { seed: 5, training: true }), w)) as tf.Scalar,
          vars[0],
          1e-3,
        );
        expect(c.relErr, `element ${c.index}: analytic ${c.analytic}, central difference ${c.numeric}`).toBeLessThan(
          1e-2,
        );
        expect(tf.memory().numTensors).toBe(before + 1);
        tf.dispose([x0, labels, w]);
        model.dispose();
      });
    }
  });
}
