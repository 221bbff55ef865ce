import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { ADMUNet } from '../../src/unet/admUnet';
import { BACKENDS, compareArrays, gradientCheck, loadTinyUNet, setBackend } from '../helpers';

// Weights from every kind of layer: the first conv, a ResBlock conv and its FiLM linear, a norm,
// the attention's qkv, a resampling ResBlock's conv, the timestep MLP and the output conv.
const CHECKED = [
  'input_blocks.0.0.weight',
  'input_blocks.1.0.in_layers.2.weight',
  'input_blocks.1.0.emb_layers.1.weight',
  'middle_block.0.out_layers.0.weight',
  'middle_block.1.qkv.weight',
  'input_blocks.3.0.in_layers.2.weight',
  'output_blocks.2.2.in_layers.2.weight',
  'time_embed.0.weight',
  'out.2.weight',
];

for (const backend of BACKENDS) {
  describe(`ADMUNet training on ${backend}`, () => {
    let frozen: ADMUNet;
    let unet: ADMUNet;
    let x: tf.Tensor4D;
    let r: tf.Tensor4D;
    const t = [3, 500];
    beforeAll(async () => {
      await setBackend(backend);
      [frozen, unet] = [await loadTinyUNet(), await loadTinyUNet()];
      x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
      r = tf.randomNormal([2, 32, 32, 6], 0, 1, 'float32', 12) as tf.Tensor4D;
    });
    afterAll(() => {
      frozen.dispose();
      unet.dispose();
      tf.dispose([x, r]);
    });

    it('trainable weights give the frozen model’s forward', () => {
      const vars = unet.trainableWeights();
      expect(vars.size).toBe(frozen.stateDict().size);
      expect(unet.trainableWeights()).toBe(vars); // once
      tf.tidy(() => {
        const d = compareArrays(unet.forward(x, t).output!.dataSync(), frozen.forward(x, t).output!.dataSync());
        expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
      });
    });

    it(
      'every kind of weight gets the gradient a central difference gives, and nothing leaks',
      { timeout: 300_000 },
      () => {
        const vars = unet.trainableWeights();
        for (const name of CHECKED) expect(vars.has(name), name).toBe(true);
        const before = tf.memory().numTensors;
        const loss = () => tf.tidy(() => tf.sum(tf.mul(unet.forward(x, t).output!, r)) as tf.Scalar);
        // cpu runs this model ~30× slower: two weights there, the same gradient code as on wasm.
        for (const name of backend === 'cpu' ? [CHECKED[1], CHECKED[4]] : CHECKED) {
          const c = gradientCheck(loss, vars.get(name)!, 1e-2);
          expect(c.relErr, `${name}: analytic ${c.analytic}, numeric ${c.numeric}`).toBeLessThan(2e-2);
        }
        expect(tf.memory().numTensors).toBe(before);
      },
    );

    it('dropout: the same seed drops the same units, another seed others; rate 0 is no dropout; bad rates are refused', () => {
      tf.tidy(() => {
        const out = (dropout?: { rate: number; seed: number }) => unet.forward(x, t, { dropout }).output!.dataSync();
        const plain = out();
        const a = out({ rate: 0.3, seed: 1 });
        expect(Array.from(out({ rate: 0.3, seed: 1 }))).toEqual(Array.from(a));
        expect(Array.from(out({ rate: 0.3, seed: 2 }))).not.toEqual(Array.from(a));
        expect(Array.from(a)).not.toEqual(Array.from(plain));
        expect(Array.from(out({ rate: 0, seed: 1 }))).toEqual(Array.from(plain));
      });
      const before = tf.memory().numTensors;
      for (const dropout of [
        { rate: 1, seed: 0 },
        { rate: -0.1, seed: 0 },
        { rate: 0.1, seed: 0.5 },
      ])
        expect(() => unet.forward(x, t, { dropout })).toThrow(InputError);
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}

// Trained convs run by Winograd where their batch is large enough (and the filter gradient too on
// 16×16 maps and larger); 'winograd4' and 'winograd2' force it here on a small model.
describe('ADMUNet training with Winograd convs', () => {
  const flags = {
    image_size: 16,
    in_channels: 1,
    num_channels: 32,
    num_res_blocks: 1,
    channel_mult: '1,2',
    attention_resolutions: '',
    use_scale_shift_norm: true,
    resblock_updown: true,
  };
  const gradientsWith = (conv: 'direct' | 'winograd2' | 'winograd4') => {
    const unet = ADMUNet.create(flags, 3, { conv });
    const vars = unet.trainableWeights();
    const x = tf.randomNormal([2, 16, 16, 1], 0, 1, 'float32', 4) as tf.Tensor4D;
    const r = tf.randomNormal([2, 16, 16, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(unet.forward(x, [5, 700]).output!, r)) as tf.Scalar,
      [...vars.values()],
    );
    const byName = new Map([...vars].map(([name, v]) => [name, grads[v.name].dataSync()]));
    tf.dispose([x, r, value, ...Object.values(grads)]);
    unet.dispose();
    return byName;
  };
  for (const backend of BACKENDS) {
    it(`gives every weight the gradient tf.conv2d's convs give, with F(2×2) and F(4×4), leaking nothing, on ${backend}`, async () => {
      await setBackend(backend);
      const before = tf.memory().numTensors;
      const direct = gradientsWith('direct');
      for (const conv of ['winograd2', 'winograd4'] as const) {
        const got = gradientsWith(conv);
        expect([...got.keys()]).toEqual([...direct.keys()]);
        for (const [name, g] of got) {
          const d = compareArrays(g, direct.get(name)!, 1e-4, 1e-3);
          expect(d.ok, `${conv} ${name}: max abs ${d.maxAbs}`).toBe(true);
        }
      }
      expect(tf.memory().numTensors).toBe(before);
    });
  }
});

describe('ADMUNet.trainableWeights', () => {
  it('refuses a model whose weights are streamed', async () => {
    await setBackend('cpu');
    const streamed = await loadTinyUNet({ residency: 'stream', residentBudget: 0 });
    expect(() => streamed.trainableWeights()).toThrow(/residency: 'resident'/);
    streamed.dispose();
  });
});

// tf.gather's gradient needs UnsortedSegmentSum, which wasm lacks: the label embedding is looked up
// as a one-hot product, whose gradient every backend has.
describe('a class-conditional ADMUNet', () => {
  for (const backend of BACKENDS)
    it(`gets the gradient of label_emb a central difference gives, on ${backend}`, async () => {
      await setBackend(backend);
      const flags = {
        image_size: 8,
        num_channels: 32,
        num_res_blocks: 1,
        channel_mult: '1,1',
        attention_resolutions: '',
      };
      const unet = ADMUNet.create({ ...flags, class_cond: true, learn_sigma: false }, 5);
      const x = tf.randomNormal([3, 8, 8, 3], 0, 1, 'float32', 13) as tf.Tensor4D;
      const r = tf.randomNormal([3, 8, 8, 3], 0, 1, 'float32', 14) as tf.Tensor4D;
      try {
        const table = unet.trainableWeights().get('label_emb.weight')!;
        const y = [7, 999, 7];
        const loss = () => tf.tidy(() => tf.sum(tf.mul(unet.forward(x, [5, 300, 900], { y }).output!, r)) as tf.Scalar);
        const before = tf.memory().numTensors;
        const c = gradientCheck(loss, table, 1e-2);
        expect([7, 999]).toContain(Math.floor(c.index / table.shape[1]!)); // a row of a label in the batch
        expect(c.relErr, `analytic ${c.analytic}, numeric ${c.numeric}`).toBeLessThan(2e-2);
        // Rows of labels not in the batch get zeros.
        const { value, grads } = tf.variableGrads(loss, [table]);
        const g = grads[table.name].arraySync() as number[][];
        tf.dispose([value, ...Object.values(grads)]);
        expect(g[0].every((e) => e === 0)).toBe(true);
        expect(g[7].some((e) => e !== 0)).toBe(true);
        expect(tf.memory().numTensors).toBe(before);
      } finally {
        unet.dispose();
        tf.dispose([x, r]);
      }
    });
});
