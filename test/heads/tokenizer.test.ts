import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { Tokenizer } from '../../src/heads/tokenizer';
import { BACKENDS, setBackend } from '../helpers';
import { expectMatch, headFixture, headWeights, tensorOf } from './fixtures';

const worst = new Map<string, number>();

for (const backend of BACKENDS) {
  describe(`Tokenizer on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    // The reference's pre_layer[b] fed with the fixture's own U-Net feature: every stage recorded.
    for (const [head, b, norm, pool, dim] of [
      ['attention', 15, 'layer', 4, 64],
      ['attention-bn', 15, 'batch', 6, 64], // 16 → 6: uneven, overlapping windows
      ['difffeed-all', 15, 'layer', 4, 32],
    ] as const) {
      it(`${head} b${b}: pooled, normed, conv and tokens match (norm ${norm}, pool ${pool})`, async () => {
        const { act } = await headFixture(head);
        const second = act.has(`t0.feat2.b${b}`) ? '2' : '';
        const tok = new Tokenizer({ channels: 32, side: 16, pool, dim, norm });
        await tok.loadWeights(headWeights(head), { prefix: `head.pre_layer.${b}.` });
        const x = tensorOf(act.get(`t0.feat${second}.b${b}`)!) as tf.Tensor4D;
        const got = new Map<string, Float32Array>();
        const before = tf.memory().numTensors;
        const tokens = tok.forward(x, { tap: (k, t) => got.set(k, t.dataSync() as Float32Array) });
        expect(tokens.shape).toEqual([2, tok.poolSide ** 2, dim]);
        let err = 0;
        for (const stage of ['pooled', 'normed', 'conv', 'tokens'])
          err = Math.max(err, expectMatch(got.get(stage)!, act.get(`t0.${stage}${second}.b${b}`)!, stage));
        worst.set(`${head}/${backend}`, err);
        tokens.dispose();
        expect(tf.memory().numTensors).toBe(before);
        x.dispose();
        tok.dispose();
      });
    }

    it('difformer: min(side, pool) per block (8 → 8, 16 → 16, 32 → 16) gives the recorded tokens', async () => {
      const { act } = await headFixture('difformer');
      for (const [b, side] of [
        [10, 8],
        [15, 16],
        [18, 32],
      ]) {
        const tok = new Tokenizer({ channels: 32, side, pool: 16, dim: 64, norm: 'layer' });
        expect(tok.poolSide).toBe(Math.min(side, 16));
        await tok.loadWeights(headWeights('difformer'), { prefix: `head.pre_layer.${b}.` });
        const x = tensorOf(act.get(`t0.feat.b${b}`)!) as tf.Tensor4D;
        const tokens = tok.forward(x);
        expectMatch(tokens.dataSync(), act.get(`t0.tokens.b${b}`)!, `b${b} tokens`);
        tf.dispose([x, tokens]);
        tok.dispose();
      }
    });

    it('BatchNorm tokenizer: training mode updates the running statistics, eval mode does not; trainable variables exclude them', () => {
      const tok = new Tokenizer({ channels: 8, side: 4, pool: 2, dim: 6, norm: 'batch', seed: 1 });
      const names = tok.state().map((e) => e.name);
      expect(names).toEqual([
        '1.weight',
        '1.bias',
        '1.running_mean',
        '1.running_var',
        '1.num_batches_tracked',
        '2.weight',
        '2.bias',
      ]);
      expect(tok.trainableVariables.length).toBe(4);
      const x = tf.randomNormal([3, 4, 4, 8], 1, 2, 'float32', 2) as tf.Tensor4D;
      const rm = () => Array.from((tok.state()[2] as { variable: tf.Variable }).variable.dataSync());
      const start = rm();
      tf.dispose(tok.forward(x));
      expect(rm()).toEqual(start);
      tf.dispose(tok.forward(x, { training: true }));
      expect(rm()).not.toEqual(start);
      expect((tok.state()[4] as { get(): number }).get()).toBe(1);
      x.dispose();
      tok.dispose();
    });

    it('the pool adapts to any input side, as nn.AdaptiveAvgPool2d; channels must match', () => {
      const tok = new Tokenizer({ channels: 4, side: 16, pool: 4, dim: 3, norm: 'layer' });
      const small = tf.ones([1, 2, 2, 4]) as tf.Tensor4D; // a 2×2 map is repeated up to 4×4
      const t = tok.forward(small);
      expect(t.shape).toEqual([1, 16, 3]);
      expect(() => tok.forward(tf.ones([1, 16, 16, 5]) as tf.Tensor4D)).toThrow(InputError);
      expect(() => tok.forward(tf.ones([16, 16, 4]) as unknown as tf.Tensor4D)).toThrow(/rank-4/);
      tf.dispose([small, t]);
      tok.dispose();
    });

    it('bad configurations are InputErrors', () => {
      expect(() => new Tokenizer({ channels: 0, side: 16, pool: 4, dim: 8, norm: 'layer' })).toThrow(/channels/);
      expect(() => new Tokenizer({ channels: 4, side: 16, pool: 4, dim: 8, norm: 'group' as 'layer' })).toThrow(/norm/);
      expect(() => new Tokenizer({ channels: 4, side: 16, pool: 2.5, dim: 8, norm: 'layer' })).toThrow(/pool/);
    });
  });
}

afterAll(() => {
  for (const [k, v] of worst) console.log(`tokenizer parity ${k}: max abs ${v.toExponential(2)}`);
});
