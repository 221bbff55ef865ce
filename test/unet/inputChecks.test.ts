import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromReference, type FinetuneArgs } from '../../src/diffsslModel';
import { InputError } from '../../src/errors';
import { extractFeatures } from '../../src/features/extractFeatures';
import { ADMUNet } from '../../src/unet/admUnet';
import { resolveConfig } from '../../src/unet/config';
import { fixtureJson, loadTinyUNet, setBackend } from '../helpers';

const RESCALE = /x \/ 127\.5 - 1.*checkRange: false/;

describe('inputs that would give silent garbage are typed errors', () => {
  let unet: ADMUNet;
  let x0: tf.Tensor4D;
  let bad: [tf.Tensor4D, RegExp][];
  beforeAll(async () => {
    await setBackend('wasm');
    unet = await loadTinyUNet();
    x0 = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 5) as tf.Tensor4D;
    const pixels = tf.randomUniform([2, 32, 32, 3], 0, 255, 'float32', 6) as tf.Tensor4D;
    const withValue = (v: number) =>
      tf.tidy(() =>
        tf.where(tf.equal(tf.reshape(tf.range(0, x0.size), x0.shape), 7), tf.fill(x0.shape, v), x0),
      ) as tf.Tensor4D;
    bad = [
      [pixels, RESCALE],
      [tf.mul(x0, 2) as tf.Tensor4D, RESCALE],
      [withValue(NaN), /x0 holds 1 NaN value: .*checkRange: false/],
      [withValue(Infinity), /x0 holds infinite values/],
      [withValue(-Infinity), /x0 holds infinite values/],
    ];
  });
  afterAll(() => {
    unet?.dispose();
    tf.dispose([x0, ...(bad ?? []).map(([x]) => x)]);
  });

  it('images far outside [-1, 1] or not finite: extractFeatures, ADMUNet.qSample and DiffSSLModel.logits say how to rescale', async () => {
    const system = fromReference({ ...fixtureJson('heads/attention/config.json').finetune_args } as FinetuneArgs, unet);
    const noise = tf.zerosLike(x0) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    for (const [x, message] of bad) {
      await expect(extractFeatures(x, { t: 90, b: 4, model: unet, seed: 0 })).rejects.toThrow(message);
      expect(() => unet.qSample(x, [90, 90], noise)).toThrow(message);
      expect(() => system.logits(x, { seed: 0 })).toThrow(message);
      expect(() => unet.qSample(x, [90, 90], noise)).toThrow(InputError);
    }
    expect(tf.memory().numTensors).toBe(before);
    // The documented opt-out, and x_t (legitimately outside [-1, 1]) is not checked by forward.
    const [pixels] = bad[0];
    const f = await extractFeatures(pixels, { t: 90, b: 4, model: unet, seed: 0, checkRange: false });
    const xt = unet.qSample(pixels, [90, 90], noise, { checkRange: false });
    const r = unet.forward(xt, [90, 90], { capture: [4] });
    const logits = system.logits(pixels, { seed: 0, checkRange: false });
    expect(logits.shape).toEqual([2, 10]);
    tf.dispose([xt, logits, noise, ...r.features.values()]);
    f.dispose();
    system.dispose();
    // Images in [-1, 1] pass.
    (await extractFeatures(x0, { t: 90, b: 4, model: unet, seed: 0 })).dispose();
  });

  it('flags of the wrong type, from plain JS or a JSON config, are errors naming the flag', () => {
    const flags = fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args;
    expect(() => resolveConfig({ ...flags, class_cond: 'false' })).toThrow(
      /class_cond must be true or false, got "false" \(a string\)/,
    );
    expect(() => resolveConfig(JSON.parse(JSON.stringify({ ...flags, learn_sigma: 'false' })))).toThrow(
      /learn_sigma must be true or false/,
    );
    expect(() => resolveConfig({ ...flags, use_scale_shift_norm: 1 })).toThrow(/use_scale_shift_norm/);
    expect(() => resolveConfig({ ...flags, num_heads: '4' })).toThrow(/num_heads must be an integer/);
    expect(() => resolveConfig({ ...flags, attention_resolutions: [16, 8] })).toThrow(
      /attention_resolutions must be a comma list/,
    );
    expect(() =>
      resolveConfig({ imageSize: 32, numChannels: 32, numResBlocks: 1, classCond: 'false' as unknown as boolean }),
    ).toThrow(/classCond must be true or false/);
    expect(resolveConfig({ ...flags, class_cond: false, learn_sigma: false }).outChannels).toBe(3);
  });

  it('wording: the index of a bad t, "not an integer", and "1 channel"', async () => {
    await expect(extractFeatures(x0, { t: [90, 1000], b: 4, model: unet })).rejects.toThrow(
      /t\[1\] = 1000 is outside \[0, 1000\)/,
    );
    await expect(extractFeatures(x0, { t: [90, 1.5], b: 4, model: unet })).rejects.toThrow(
      /t\[1\] = 1.5 is not an integer/,
    );
    expect(() => unet.forward(x0, [90, 2.5])).toThrow(/t\[1\] = 2.5 is not an integer/);
    const gray = tf.zeros([2, 32, 32, 1]) as tf.Tensor4D;
    expect(() => unet.checkImages(gray, 'x0')).toThrow(/x0 has 1 channel but/);
    gray.dispose();
  });
});
