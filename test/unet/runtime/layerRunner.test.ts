import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { describe, expect, it, vi } from 'vitest';
import { ADMUNet } from '../../../src/unet/admUnet';
import { compareArrays, FIXTURES, fixtureJson, setBackend } from '../../helpers';

// How many groups left-side convs make their transformed filters in: the real rule, or `n` when set.
const groups = vi.hoisted(() => ({ n: 0 }));
vi.mock('../../../src/unet/runtime/convAlgorithm', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../../src/unet/runtime/convAlgorithm')>();
  return {
    ...actual,
    leftFilterGroups: (...a: Parameters<typeof actual.leftFilterGroups>) => groups.n || actual.leftFilterGroups(...a),
  };
});

const tinyFlags = fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args;
const file = path.join(FIXTURES, 'adm-tiny', 'weights.safetensors');

describe('left-side Winograd convs of streamed filters in groups of output channels', () => {
  for (const backend of ['wasm', 'cpu'])
    it(`give the forward and its input gradient of one group, and leave nothing behind (${backend})`, async () => {
      await setBackend(backend);
      // Every stride-1 conv Winograd, every filter streamed: on the tiny model's small maps all go on the left.
      const model = await ADMUNet.load(file, tinyFlags, { residency: 'stream', residentBudget: 0, conv: 'winograd4' });
      const x = tf.randomNormal([1, 32, 32, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
      const run = (n: number) => {
        groups.n = n;
        try {
          const before = tf.memory().numTensors;
          const out = model.forward(x, [40], { output: true }).output!;
          // The input gradient records the tape: the path that keeps the whole filter for it.
          const grad = tf.grad((v: tf.Tensor) =>
            tf.sum(tf.square(model.forward(v as tf.Tensor4D, [40], { output: true }).output!)),
          )(x);
          const got = [out.dataSync().slice(), grad.dataSync().slice()];
          tf.dispose([out, grad]);
          expect(tf.memory().numTensors).toBe(before);
          return got;
        } finally {
          groups.n = 0;
        }
      };
      const [one, three] = [run(1), run(3)];
      for (const k of [0, 1]) {
        const d = compareArrays(three[k], one[k], 1e-5, 1e-5);
        expect(d.ok, `${k ? 'gradient' : 'output'}: max abs ${d.maxAbs}`).toBe(true);
      }
      x.dispose();
      model.dispose();
    });
});
