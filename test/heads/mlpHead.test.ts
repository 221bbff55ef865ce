import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { LinearHead, MLPHead, parseHeadArc } from '../../src/heads/mlpHead';
import { adaptivePoolMatrix } from '../../src/ops/adaptiveAvgPool';
import { BACKENDS, compareArrays, gradientCheck, setBackend } from '../helpers';
import { expectMatch, headFixture, headWeights, tensorOf } from './fixtures';

const worst = new Map<string, number>();
afterAll(() => {
  for (const [k, v] of worst) console.log(`linear/MLP head parity ${k}: max abs ${v.toExponential(2)}`);
});

describe('head_arc', () => {
  it("parses '', '48' and '48_24' as the reference does; rejects the rest", () => {
    expect(parseHeadArc('')).toEqual([]);
    expect(parseHeadArc('48')).toEqual([48]);
    expect(parseHeadArc('2048_1024')).toEqual([2048, 1024]);
    for (const bad of ['48_', '_48', 'a', '0', '4.5']) expect(() => parseHeadArc(bad), bad).toThrow(InputError);
  });
});

for (const backend of BACKENDS) {
  describe(`LinearHead and MLPHead on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    for (const [head, b] of [
      ['linear', 15],
      ['mlp', 10],
    ] as const) {
      it(`${head}: pooled map, flattened input (NCHW order) and logits match the reference's Head`, async () => {
        const { cfg, act } = await headFixture(head);
        const args = cfg.finetune_args;
        const model =
          args.head_arc === ''
            ? new LinearHead({ channels: 32, pool: args.pre_pool_size, classes: args.num_classes })
            : new MLPHead({
                channels: 32,
                pool: args.pre_pool_size,
                hidden: parseHeadArc(args.head_arc),
                classes: args.num_classes,
              });
        await model.loadWeights(headWeights(head), { prefix: 'head.' });
        const x = tensorOf(act.get(`t0.feat.b${b}`)!) as tf.Tensor4D;
        const got = new Map<string, Float32Array>();
        const before = tf.memory().numTensors;
        const logits = model.forward(x, { tap: (k, t) => got.set(k, t.dataSync() as Float32Array) });
        let err = 0;
        for (const key of ['pooled', 'head_in', 'logits'])
          err = Math.max(err, expectMatch(got.get(key)!, act.get(key)!, key));
        worst.set(`${head}/${backend}`, err);
        logits.dispose();
        expect(tf.memory().numTensors).toBe(before);
        x.dispose();
        model.dispose();
      });
    }

    it('a pool larger than the map repeats pixels, as nn.AdaptiveAvgPool2d does', () => {
      const head = new LinearHead({ channels: 1, pool: 3, classes: 1 });
      const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
      const got = new Map<string, Float32Array>();
      tf.dispose(head.forward(x, { tap: (k, t) => got.set(k, t.dataSync() as Float32Array) }));
      const m = adaptivePoolMatrix(2, 3); // rows 0, {0,1}, 1
      const want = [];
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 3; j++)
          want.push(
            [0, 1].reduce(
              (s, a) => s + [0, 1].reduce((t, c) => t + m[i * 2 + a] * m[j * 2 + c] * [1, 2, 3, 4][a * 2 + c], 0),
              0,
            ),
          );
      expect(compareArrays(got.get('pooled')!, want, 1e-6, 1e-6).ok).toBe(true);
      expect(Array.from(got.get('pooled')!)).toEqual([1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4]);
      x.dispose();
      head.dispose();
    });

    it('every layer gets a gradient that agrees with a central difference; nothing leaks', () => {
      const head = new MLPHead({ channels: 4, pool: 2, hidden: [6, 5], classes: 3, seed: 2 });
      expect(head.state().map((e) => e.name)).toEqual([
        'fcs.0.weight',
        'fcs.0.bias',
        'fcs.1.weight',
        'fcs.1.bias',
        'fcs.2.weight',
        'fcs.2.bias',
      ]);
      const x = tf.randomNormal([4, 5, 5, 4], 0, 1, 'float32', 3) as tf.Tensor4D;
      const y = tf.oneHot(tf.tensor1d([0, 1, 2, 1], 'int32'), 3);
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(y, head.forward(x)) as tf.Scalar,
        head.trainableVariables,
      );
      expect(Object.keys(grads).length).toBe(6);
      tf.dispose([value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(before);
      // One element of each variable: the analytic gradient of L = Σ logits·w (w fixed) against (L(θ+h) − L(θ−h)) / 2h.
      const w = tf.randomNormal([4, 3], 0, 1, 'float32', 4);
      const loss = () => tf.sum(tf.mul(head.forward(x), w)) as tf.Scalar;
      const start = tf.memory().numTensors;
      head.trainableVariables.forEach((v, i) => {
        const c = gradientCheck(loss, v, 1e-2);
        expect(
          c.relErr,
          `variable ${i} (${head.state()[i].name}) element ${c.index}: analytic ${c.analytic}, central difference ${c.numeric}`,
        ).toBeLessThan(1e-2);
      });
      expect(tf.memory().numTensors).toBe(start);
      tf.dispose([x, y, w]);
      head.dispose();
    });

    it('bad configurations and inputs are InputErrors', () => {
      expect(() => new LinearHead({ channels: 4, pool: 0, classes: 3 })).toThrow(/pool/);
      expect(() => new MLPHead({ channels: 4, pool: 2, hidden: [3, -1], classes: 3 })).toThrow(/hidden\[1\]/);
      expect(() => new LinearHead({ channels: 4, pool: 2, classes: 0 })).toThrow(/classes/);
      const head = new LinearHead({ channels: 4, pool: 2, classes: 3 });
      expect(() => head.forward(tf.ones([1, 4, 4, 3]) as tf.Tensor4D)).toThrow(/channels/);
      head.dispose();
    });
  });
}
