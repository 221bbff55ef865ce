import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linearCKA } from '../src/cka/linearCKA';
import { fromReference, type FinetuneArgs } from '../src/diffsslModel';
import { InputError } from '../src/errors';
import { knnEvaluate } from '../src/eval/knn';
import { extractFeatures } from '../src/features/extractFeatures';
import { AttentionHead } from '../src/heads/attentionHead';
import { MLPHead } from '../src/heads/mlpHead';
import { Tokenizer } from '../src/heads/tokenizer';
import { ADMUNet } from '../src/unet/admUnet';
import { FIXTURES, fixtureJson, setBackend } from './helpers';

/** Runs `f`, expects an InputError matching `message`, and that no tensor outlives the call. */
async function throwsWithoutLeak(f: () => unknown, message: RegExp): Promise<void> {
  const before = tf.memory().numTensors;
  let error: unknown;
  try {
    await f();
  } catch (e) {
    error = e;
  }
  expect(error, `expected an InputError matching ${message}`).toBeInstanceOf(InputError);
  expect((error as Error).message).toMatch(message);
  expect(tf.memory().numTensors, `tensors left after the error ${message}`).toBe(before);
}

const load = (name: string) =>
  ADMUNet.load(
    path.join(FIXTURES, name, 'weights.safetensors'),
    fixtureJson(`${name}/config.json`).create_model_and_diffusion_args,
  );

describe('every documented error of every public entry point that runs ops leaves no tensor behind', () => {
  let uncond: ADMUNet;
  let cond: ADMUNet;
  let gone: ADMUNet;
  let x0: tf.Tensor4D;
  let noise: tf.Tensor4D;
  beforeAll(async () => {
    await setBackend('wasm');
    [uncond, cond, gone] = await Promise.all([load('adm-tiny'), load('adm-small-cond'), load('adm-tiny')]);
    gone.dispose();
    x0 = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
    noise = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
  });
  afterAll(() => {
    uncond?.dispose();
    cond?.dispose();
    tf.dispose([x0, noise]);
  });

  // The errors that come from inside the U-Net's forward, after extractFeatures has made x_t.
  const forwardErrors: [string, () => ADMUNet, number[] | undefined, RegExp][] = [
    ['class-conditional model without y', () => cond, undefined, /class-conditional: pass y/],
    ['a label that is not an integer', () => cond, [1.5, 2], /y\[0\] = 1.5/],
    ['a label outside the classes', () => cond, [1000, 2], /y\[0\] = 1000/],
    ['y for an unconditional model', () => uncond, [1, 2], /unconditional/],
    ['a disposed model', () => gone, undefined, /disposed/],
  ];

  it('extractFeatures', async () => {
    for (const [, model, y, message] of forwardErrors) {
      await throwsWithoutLeak(
        () => extractFeatures(x0, { t: [10, 90], b: [3, 4], model: model(), y, seed: 0 }),
        message,
      );
      await throwsWithoutLeak(
        () => extractFeatures(x0, { t: [10, 90], b: 4, model: model(), y, seed: 0, maxBatch: 3, pool: 2 }),
        message,
      );
    }
    await throwsWithoutLeak(() => extractFeatures(x0, { t: [90, 1000], b: 4, model: uncond }), /t\[1\] = 1000/);
    await throwsWithoutLeak(() => extractFeatures(x0, { t: 90, b: 99, model: uncond }), /unknown block 99/);
    await throwsWithoutLeak(
      () => extractFeatures(x0, { t: [10, 90], b: 4, model: uncond, noise: [noise] }),
      /noise has 1 tensor but t has 2 steps/,
    );
    await throwsWithoutLeak(
      () => extractFeatures(x0, { t: 90, b: 4, model: uncond, seed: 0.5 }),
      /seed must be an integer/,
    );
    await throwsWithoutLeak(
      () => extractFeatures(x0, { t: 90, b: 4, model: uncond, pool: 0 }),
      /pool must be a positive integer/,
    );
    const small = tf.zeros([2, 16, 16, 3]) as tf.Tensor4D;
    await throwsWithoutLeak(() => extractFeatures(small, { t: 90, b: 4, model: uncond }), /16×16/);
    small.dispose();
  });

  it('ADMUNet.forward, embed and qSample', async () => {
    for (const [, model, y, message] of forwardErrors) {
      await throwsWithoutLeak(() => model().forward(x0, [10, 90], { y }), message);
      await throwsWithoutLeak(() => model().forward(x0, [10, 90], { y, capture: [4] }), message);
      await throwsWithoutLeak(() => model().embed([10, 90], y), message);
    }
    await throwsWithoutLeak(() => uncond.forward(x0, [10, 1000]), /t\[1\] = 1000/);
    await throwsWithoutLeak(() => uncond.forward(x0, [10, 90], { capture: [99] }), /unknown block 99/);
    await throwsWithoutLeak(
      () => uncond.forward(x0, [10, 90], { capture: [6], add: new Map([[4, noise]]) }),
      /add: the tensor for block 4/,
    );
    await throwsWithoutLeak(() => uncond.qSample(x0, [10, 1000], noise), /t\[1\] = 1000/);
    const one = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    await throwsWithoutLeak(() => uncond.qSample(x0, [10, 90], one), /noise must have the shape/);
    one.dispose();
  });

  it('DiffSSLModel.logits', async () => {
    const args: FinetuneArgs = { ...fixtureJson('heads/attention/config.json').finetune_args, t_list: [10, 90] };
    for (const [, model, y, message] of forwardErrors) {
      if (model() === gone) continue; // fromReference reads the block table, which a disposed model still has
      const system = fromReference(args, model());
      await throwsWithoutLeak(() => system.logits(x0, { y, seed: 0 }), message);
      system.dispose();
    }
    const system = fromReference(args, uncond);
    await throwsWithoutLeak(() => system.logits(x0, { noise: [noise] }), /one tensor per t/);
    await throwsWithoutLeak(() => system.logits(x0, { seed: -0.5 }), /seed must be an integer/);
    system.dispose();
    const onGone = fromReference(args, uncond);
    const unetOfGone = Object.create(onGone, { unet: { value: gone } });
    await throwsWithoutLeak(() => onGone.logits.call(unetOfGone, x0, { seed: 0 }), /disposed/);
    onGone.dispose();
  });

  it('heads: MLPHead, Tokenizer, AttentionHead and DifFormer forward/logits', async () => {
    const [narrow, rank3, tokens, thin, map] = [
      tf.zeros([2, 4, 4, 8]),
      tf.zeros([2, 4, 4]),
      tf.zeros([2, 4, 16]),
      tf.zeros([2, 4, 8]),
      tf.zeros([2, 8, 8, 32]),
    ];
    const mlp = new MLPHead({ channels: 32, pool: 2, hidden: [], classes: 3 });
    await throwsWithoutLeak(() => mlp.forward(narrow as tf.Tensor4D), /8 channels/);
    await throwsWithoutLeak(() => mlp.logits(rank3 as unknown as tf.Tensor4D), /rank-4/);
    mlp.dispose();
    const tok = new Tokenizer({ channels: 32, side: 8, pool: 4, dim: 16, norm: 'layer' });
    await throwsWithoutLeak(() => tok.forward(narrow as tf.Tensor4D), /8 channels/);
    tok.dispose();
    const encoder = new AttentionHead({
      arc: 'Use_CLS_Token:True:16,Insert_CLS_Token,Attention:16:2:2:1,Extract_CLS_Token',
    });
    await throwsWithoutLeak(() => encoder.forward(tokens as tf.Tensor3D), /without classes/);
    await throwsWithoutLeak(() => encoder.encode(thin as tf.Tensor3D), /tokens must be/);
    encoder.dispose();
    const system = fromReference(fixtureJson('heads/attention/config.json').finetune_args, uncond);
    const head = system.head as import('../src/fusion/difFormer').DifFormer;
    await throwsWithoutLeak(() => head.forward([]), /one list of maps per t/);
    await throwsWithoutLeak(() => head.logits([[{ b: 99, map: map as tf.Tensor4D }]]), /no tokenizer for block 99/);
    system.dispose();
    tf.dispose([narrow, rank3, tokens, thin, map]);
  });

  it('knnEvaluate and linearCKA', async () => {
    const train = { features: tf.randomNormal([6, 4, 4, 8]) as tf.Tensor4D, labels: [0, 1, 0, 1, 0, 1] };
    const test = { features: tf.randomNormal([3, 4, 4, 8]) as tf.Tensor4D, labels: [0, 1, 1] };
    const [other, x, fewer, nan, flat] = [
      tf.randomNormal([3, 4, 4, 4]),
      tf.randomNormal([8, 5]),
      tf.randomNormal([7, 5]),
      tf.fill([8, 5], NaN),
      tf.ones([8, 5]),
    ];
    await throwsWithoutLeak(() => knnEvaluate(train, { ...test, labels: [0, 1] }), /label/);
    await throwsWithoutLeak(() => knnEvaluate(train, test, { pool: 8 }), /pool 8 is larger/);
    await throwsWithoutLeak(() => knnEvaluate(train, { ...test, features: other }), /dimensions/);
    await throwsWithoutLeak(() => knnEvaluate(train, test, { k: [0] }), /k must be/);
    await throwsWithoutLeak(() => linearCKA(x, fewer), /examples/);
    await throwsWithoutLeak(() => linearCKA(x, nan), /NaN|Inf/);
    await throwsWithoutLeak(() => linearCKA(x, flat), /variance/);
    tf.dispose([train.features, test.features, other, x, fewer, nan, flat]);
  });
});
