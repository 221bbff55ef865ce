import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DifFormer, type FusionInput } from '../../src/fusion/difFormer';
import { ADMUNet } from '../../src/unet/admUnet';
import { BACKENDS, gradientCheck, loadTinyUNet, setBackend } from '../helpers';
import { expectMatch, headFixture, headWeights, referenceParity, tensorOf } from '../heads/fixtures';

const ARC = 'Use_CLS_Token:True:64,Insert_CLS_Token,Attention:64:4:4:2,Extract_CLS_Token';
const worst = new Map<string, string>();
afterAll(() => {
  for (const [k, v] of worst) console.log(`DifFormer parity ${k}: ${v}`);
});

for (const backend of BACKENDS) {
  describe(`DifFormer on ${backend}`, () => {
    let unet: ADMUNet;
    beforeAll(async () => {
      await setBackend(backend);
      unet = await loadTinyUNet();
    });
    afterAll(() => unet?.dispose());

    it("from the fixture's U-Net features: tokens, each t's CLS feature, the classifier input and the logits match", async () => {
      const { act } = await headFixture('difformer');
      const fusion = new DifFormer({
        blocks: [10, 15, 18].map((b) => unet.block(b)),
        timesteps: 3,
        pool: 16,
        norm: 'layer',
        arc: ARC,
        classes: 10,
      });
      await fusion.loadWeights(headWeights('difformer'), { prefix: 'head.' });
      const maps = [0, 1, 2].map((i) =>
        [10, 15, 18].map((b) => ({ b, map: tensorOf(act.get(`t${i}.feat.b${b}`)!) as tf.Tensor4D })),
      );
      const got = new Map<string, Float32Array>();
      const before = tf.memory().numTensors;
      const logits = fusion.forward(maps, { tap: (k, t) => got.set(k, t.dataSync() as Float32Array) });
      let err = 0;
      for (const key of [
        't0.tokens.b10',
        't0.tokens.b15',
        't0.tokens.b18',
        't0.cls',
        't1.cls',
        't2.cls',
        'head_in',
        'logits',
      ])
        err = Math.max(err, expectMatch(got.get(key)!, act.get(key)!, key));
      worst.set(`module/${backend}`, `max abs ${err.toExponential(2)}`);
      logits.dispose();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose(maps.flat().map((m) => m.map));
      fusion.dispose();
    });

    it('through fromReference with the U-Net: logits and every recorded intermediate match; no tensor leaks', async () => {
      const r = await referenceParity('difformer', unet);
      worst.set(
        `fromReference/${backend}`,
        `logits max abs ${r.logits.toExponential(2)}, ${r.keys} recorded tensors max abs ${r.all.toExponential(2)}`,
      );
    });

    it('one tokenizer per block shared by every t; a gradient reaches every parameter and agrees with a central difference; nothing leaks', () => {
      const blocks = [
        { b: 3, channels: 8, size: 8 },
        { b: 7, channels: 16, size: 4 },
      ];
      const fusion = new DifFormer({
        blocks,
        timesteps: 2,
        pool: 4,
        norm: 'batch',
        arc: 'Use_CLS_Token:True:16,Insert_CLS_Token,Attention:16:2:2:1,Extract_CLS_Token',
        classes: 4,
        seed: 1,
      });
      expect([...fusion.tokenizers.keys()]).toEqual([3, 7]);
      const names = fusion.state().map((e) => e.name);
      expect(names.filter((n) => n.startsWith('pre_layer.3.'))).toEqual([
        'pre_layer.3.1.weight',
        'pre_layer.3.1.bias',
        'pre_layer.3.1.running_mean',
        'pre_layer.3.1.running_var',
        'pre_layer.3.1.num_batches_tracked',
        'pre_layer.3.2.weight',
        'pre_layer.3.2.bias',
      ]);
      expect(names.slice(-2)).toEqual(['head.weight', 'head.bias']);
      const maps = [0, 1].map((t) =>
        blocks.map(({ b, channels, size }) => ({
          b,
          map: tf.randomNormal([3, size, size, channels], 0, 1, 'float32', 10 * t + b) as tf.Tensor4D,
        })),
      );
      const y = tf.oneHot(tf.tensor1d([0, 1, 3], 'int32'), 4);
      const vars = fusion.trainableVariables;
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(y, fusion.forward(maps, { training: true })) as tf.Scalar,
        vars,
      );
      expect(Object.keys(grads).length).toBe(vars.length);
      tf.dispose([value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(before);
      // In training mode each tokenizer's BatchNorm saw one batch per t.
      expect(
        fusion.state().find((e) => e.name === 'pre_layer.7.1.num_batches_tracked')!.kind === 'count' &&
          (fusion.state().find((e) => e.name === 'pre_layer.7.1.num_batches_tracked') as { get(): number }).get(),
      ).toBe(2);
      // One element of each variable: the analytic gradient of L = Σ logits·w (w fixed; training mode,
      // so through BatchNorm's batch statistics) against (L(θ+h) − L(θ−h)) / 2h.
      const w = tf.randomNormal([3, 4], 0, 1, 'float32', 5);
      const loss = () => tf.sum(tf.mul(fusion.forward(maps, { training: true }), w)) as tf.Scalar;
      const trainable = names.filter((n) => !/running_|num_batches/.test(n));
      const start = tf.memory().numTensors;
      vars.forEach((v, i) => {
        // The CLS token starts at zero, where LayerNorm (ε 1e-5, so √ε ≈ 3e-3) curves sharply: a smaller step there.
        const c = gradientCheck(loss, v, trainable[i].endsWith('cls_token') ? 1e-3 : 1e-2);
        expect(
          c.relErr,
          `${trainable[i]} element ${c.index}: analytic ${c.analytic}, central difference ${c.numeric}`,
        ).toBeLessThan(1e-2);
      });
      expect(tf.memory().numTensors).toBe(start);
      tf.dispose([y, w, ...maps.flat().map((m) => m.map)]);
      fusion.dispose();
    });

    it('bad configurations and inputs are InputErrors', () => {
      const blocks = [{ b: 3, channels: 8, size: 8 }];
      const base = {
        blocks,
        timesteps: 1,
        pool: 4,
        norm: 'layer' as const,
        arc: 'Use_CLS_Token:True:8,Insert_CLS_Token,Attention:8:2:2:1,Extract_CLS_Token',
        classes: 3,
      };
      const before = tf.memory().numTensors;
      expect(() => new DifFormer({ ...base, blocks: [] })).toThrow(/at least one block/);
      expect(() => new DifFormer({ ...base, blocks: [blocks[0], blocks[0]] })).toThrow(/twice/);
      expect(() => new DifFormer({ ...base, timesteps: 0 })).toThrow(/timesteps/);
      expect(
        () =>
          new DifFormer({
            ...base,
            arc: 'Use_CLS_Token:True:8,Insert_CLS_Token,Attention:8:2:2:1,Extract_CLS_Token,Dense:8:4:relu',
          }),
      ).toThrow(/width 4/);
      expect(tf.memory().numTensors).toBe(before); // nothing half-built is left behind
      const fusion = new DifFormer(base);
      const m = tf.zeros([2, 8, 8, 8]) as tf.Tensor4D;
      const inputs = (list: FusionInput[]) => [list];
      expect(() => fusion.forward([])).toThrow(/one list of maps per t/);
      expect(() => fusion.forward(inputs([{ b: 4, map: m }]))).toThrow(/no tokenizer for block 4/);
      expect(() =>
        fusion.forward(
          inputs([
            { b: 3, map: m },
            { b: 3, map: tf.zeros([1, 8, 8, 8]) as tf.Tensor4D },
          ]),
        ),
      ).toThrow(/batch size/);
      expect(() => fusion.forward(inputs([]))).toThrow(/non-empty/);
      m.dispose();
      fusion.dispose();
    });
  });
}
