import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no gradients; @tensorflow/tfjs does this for its users.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors, type ReadTensor } from '../../src/io/safetensors';
import { ADMUNet } from '../../src/unet/admUnet';
import {
  BACKENDS,
  compareArrays,
  fixtureJson,
  FIXTURES,
  gradientCheck,
  loadTinyUNet,
  nchwToNhwc,
  setBackend,
  warmUp,
} from '../helpers';

const tensorOf = (t: ReadTensor) => {
  const { data, shape } = nchwToNhwc(t.data as Float32Array, t.shape);
  return tf.tensor4d(data, shape);
};

// The DifFeed fixture's second pass: the reference adds each feedback map into its mirror encoder
// block; the fixture stores those maps (`fb.b<b>`), the encoder outputs after the addition
// (`pass2.block_<m>`) and the feature handed to the head (`feat2.b15`).
for (const backend of BACKENDS) {
  describe(`forward with add (DifFeed pass 2) on ${backend}`, () => {
    let unet: ADMUNet;
    let act: Map<string, ReadTensor>;
    beforeAll(async () => {
      await setBackend(backend);
      unet = await loadTinyUNet();
      act = await readSafetensors(path.join(FIXTURES, 'heads', 'difffeed', 'activations.safetensors'));
      warmUp(unet);
    });
    afterAll(() => unet?.dispose());

    it('adding the feedback maps into the mirror blocks reproduces pass 2', () => {
      const {
        feedback_b_list: fbs,
        second_fw_b_list: [target],
      } = fixtureJson('heads/difffeed/config.json').finetune_args;
      const xt = tensorOf(act.get('t0.x_t')!);
      const t = Array.from(act.get('t0.t')!.data as BigInt64Array, Number);
      const add = new Map<number, tf.Tensor4D>(
        fbs.map((b: number) => [unet.mirror(b), tensorOf(act.get(`t0.fb.b${b}`)!)]),
      );
      const before = tf.memory().numTensors;
      const r = unet.forward(xt, t, { add, capture: [...add.keys(), target] });
      for (const m of add.keys()) {
        const d = compareArrays(
          r.features.get(m)!.dataSync(),
          nchwToNhwc(act.get(`t0.pass2.block_${m}`)!.data as Float32Array, act.get(`t0.pass2.block_${m}`)!.shape).data,
        );
        expect(d.ok, `pass2 block ${m}: max abs ${d.maxAbs}`).toBe(true);
      }
      const f2 = act.get(`t0.feat2.b${target}`)!;
      const d = compareArrays(r.features.get(target)!.dataSync(), nchwToNhwc(f2.data as Float32Array, f2.shape).data);
      expect(d.ok, `feat2 b${target}: max abs ${d.maxAbs}`).toBe(true);
      r.features.forEach((f) => f.dispose());
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([xt, ...add.values()]);
    });

    it('gradients flow from a captured block back to the added tensor, not into the weights, and agree with a central difference', () => {
      const xt = tensorOf(act.get('t0.x_t')!);
      const t = Array.from(act.get('t0.t')!.data as BigInt64Array, Number);
      const fb = tf.variable(tf.zeros([2, 16, 16, 32]) as tf.Tensor4D);
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => {
        const r = unet.forward(xt, t, { add: new Map([[5, fb as unknown as tf.Tensor4D]]), capture: [15] });
        return tf.mean(tf.square(r.features.get(15)!)) as tf.Scalar;
      }); // every trainable variable: the U-Net's weights are constants, so only fb appears
      expect(Object.keys(grads)).toEqual([fb.name]);
      const g = grads[fb.name];
      expect(g.shape).toEqual([2, 16, 16, 32]);
      const gs = g.dataSync();
      let second = gs.length / 2; // the second image's largest gradient element
      for (let k = second; k < gs.length; k++) if (Math.abs(gs[k]) > Math.abs(gs[second])) second = k;
      tf.dispose([value, g]);
      expect(tf.memory().numTensors).toBe(before);
      // The largest gradient element of each image against (L(fb + h) − L(fb − h)) / 2h, L = Σ feature·w (w fixed).
      const w = tf.randomNormal([2, 16, 16, 32], 0, 1, 'float32', 1);
      const loss = () =>
        tf.tidy(
          () =>
            tf.sum(
              tf.mul(
                unet
                  .forward(xt, t, { add: new Map([[5, fb as unknown as tf.Tensor4D]]), capture: [15] })
                  .features.get(15)!,
                w,
              ),
            ) as tf.Scalar,
        );
      const start = tf.memory().numTensors;
      for (const index of [undefined, second]) {
        // A large step: L is close to linear in the added map, and at h = 1e-2 float32 rounding of L (a sum
        // over 16k products) already moves the difference by ~2 % for the second image's smaller gradients.
        const c = gradientCheck(loss, fb, 1e-1, index);
        expect(c.relErr, `element ${c.index}: analytic ${c.analytic}, central difference ${c.numeric}`).toBeLessThan(
          1e-2,
        );
      }
      expect(tf.memory().numTensors).toBe(start);
      w.dispose();
      tf.dispose([xt, fb]);
    });
  });
}
