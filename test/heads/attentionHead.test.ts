import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { AttentionHead } from '../../src/heads/attentionHead';
import { BACKENDS, gradientCheck, setBackend } from '../helpers';
import { expectMatch, headFixture, headWeights, tensorOf } from './fixtures';

const worst = new Map<string, number>();
afterAll(() => {
  for (const [k, v] of worst) console.log(`AttentionHead parity ${k}: max abs ${v.toExponential(2)}`);
});

for (const backend of BACKENDS) {
  describe(`AttentionHead on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    // The reference's intra_inter_block_attention fed with the fixture's own tokens.
    for (const head of ['attention', 'attention-bn', 'difffeed', 'difffeed-all']) {
      it(`${head}: every Transformer block and the CLS feature match`, async () => {
        const { cfg, act } = await headFixture(head);
        const att = new AttentionHead({ arc: cfg.finetune_args.fusion_arc });
        await att.loadWeights(headWeights(head), { prefix: 'head.intra_inter_block_attention.' });
        const second = act.has('t0.tokens2.b15') ? '2' : '';
        const tokens = tensorOf(act.get(`t0.tokens${second}.b15`)!) as tf.Tensor3D;
        const got = new Map<string, Float32Array>();
        const before = tf.memory().numTensors;
        const cls = att.encode(tokens, { tap: (k, t) => got.set(k, t.dataSync() as Float32Array) });
        expect(cls.shape).toEqual([2, att.outDim]);
        let err = 0;
        const blocks = cfg.derived.fusion_arc_parsed.num_blocks;
        for (let j = 0; j < blocks; j++)
          err = Math.max(err, expectMatch(got.get(`attn_block${j}`)!, act.get(`t0.attn_block${j}`)!, `attn_block${j}`));
        err = Math.max(err, expectMatch(cls.dataSync(), act.get('t0.cls')!, 'cls'));
        worst.set(`${head}/${backend}`, err);
        cls.dispose();
        expect(tf.memory().numTensors).toBe(before);
        tokens.dispose();
        att.dispose();
      });
    }

    it('with classes: logits, and a gradient for every parameter (CLS token, every block, the classifier) that agrees with a central difference; nothing leaks', () => {
      const att = new AttentionHead({
        arc: 'Use_CLS_Token:True:16,Insert_CLS_Token,Attention:16:4:2:2,Extract_CLS_Token',
        classes: 5,
        seed: 1,
      });
      const names = att.state().map((e) => e.name);
      expect(names[0]).toBe('cls_token');
      expect(names).toContain('layers.1.attn.qkv.weight');
      expect(names).toContain('layers.2.mlp.fc2.bias');
      expect(names).not.toContain('layers.1.attn.qkv.bias'); // qkv has no bias
      expect(names.slice(-2)).toEqual(['head.weight', 'head.bias']);
      const x = tf.randomNormal([3, 7, 16], 0, 1, 'float32', 2) as tf.Tensor3D;
      const y = tf.oneHot(tf.tensor1d([0, 3, 4], 'int32'), 5);
      const before = tf.memory().numTensors;
      const vars = att.trainableVariables;
      expect(vars.length).toBe(names.length);
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(y, att.forward(x)) as tf.Scalar,
        vars,
      );
      expect(Object.keys(grads).length).toBe(vars.length);
      tf.dispose([value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(before);
      // One element of each variable: the analytic gradient of L = Σ logits·w (w fixed) against (L(θ+h) − L(θ−h)) / 2h.
      const w = tf.randomNormal([3, 5], 0, 1, 'float32', 3);
      const loss = () => tf.sum(tf.mul(att.forward(x), w)) as tf.Scalar;
      const start = tf.memory().numTensors;
      vars.forEach((v, i) => {
        // The CLS token starts at zero, where LayerNorm (ε 1e-5, so √ε ≈ 3e-3) curves sharply: a smaller step there.
        const c = gradientCheck(loss, v, names[i].endsWith('cls_token') ? 1e-3 : 1e-2);
        expect(
          c.relErr,
          `${names[i]} element ${c.index}: analytic ${c.analytic}, central difference ${c.numeric}`,
        ).toBeLessThan(1e-2);
      });
      expect(tf.memory().numTensors).toBe(start);
      tf.dispose([x, y, w]);
      att.dispose();
    });

    it('Dense layers take their nn.Sequential index; FullyPool averages the tokens', () => {
      const att = new AttentionHead({
        arc: 'Use_CLS_Token:True:8,Insert_CLS_Token,Attention:8:2:4:1,FullyPool,Dense:8:8:relu,Dense:8:8:identity',
      });
      // Insert 0, block 1, FullyPool 2, Dense 3 (+ ReLU 4), Dense 5
      expect(
        att
          .state()
          .map((e) => e.name)
          .filter((n) => !n.startsWith('layers.1.')),
      ).toEqual(['cls_token', 'layers.3.weight', 'layers.3.bias', 'layers.5.weight', 'layers.5.bias']);
      const x = tf.ones([2, 3, 8]) as tf.Tensor3D;
      const out = att.encode(x);
      expect(out.shape).toEqual([2, 8]);
      tf.dispose([x, out]);
      att.dispose();
    });

    it('inconsistent arcs and inputs are InputErrors', () => {
      expect(
        () => new AttentionHead({ arc: 'Use_CLS_Token::8,Insert_CLS_Token,Attention:8:2:4:1,Extract_CLS_Token' }),
      ).toThrow(/CLS token/);
      expect(
        () => new AttentionHead({ arc: 'Use_CLS_Token:True:8,Insert_CLS_Token,Attention:16:2:4:1,Extract_CLS_Token' }),
      ).toThrow(/width 16/);
      expect(() => new AttentionHead({ arc: 'Use_CLS_Token:True:8,Insert_CLS_Token,Attention:8:2:4:1' })).toThrow(
        /must end with a vector/,
      );
      expect(
        () => new AttentionHead({ arc: 'Use_CLS_Token:True:8,Insert_CLS_Token,Extract_CLS_Token,Dense:4:2:relu' }),
      ).toThrow(/Dense:4:2 gets width 8/);
      const att = new AttentionHead({
        arc: 'Use_CLS_Token:True:8,Insert_CLS_Token,Attention:8:2:4:1,Extract_CLS_Token',
      });
      const x = tf.ones([2, 3, 4]) as tf.Tensor3D;
      expect(() => att.encode(x)).toThrow(InputError);
      expect(() => att.forward(tf.ones([2, 3, 8]) as tf.Tensor3D)).toThrow(/without classes/);
      x.dispose();
      att.dispose();
    });
  });
}
