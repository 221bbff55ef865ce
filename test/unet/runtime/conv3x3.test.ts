import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { conv3x3Gemm, hwioFromRows, withFastInputGrad } from '../../../src/ops/conv3x3';
import { groupNorm } from '../../../src/unet/groupNorm';
import { ADMUNet } from '../../../src/unet/admUnet';
import type { ConvAlgorithm } from '../../../src/unet/runtime/convAlgorithm';
import { BACKENDS, compareArrays, convCase, setBackend } from '../../helpers';

const rows = (k: tf.Tensor4D) => tf.transpose(tf.reshape(k, [9 * k.shape[2], k.shape[3]])) as tf.Tensor2D;

for (const backend of BACKENDS) {
  describe(`3×3 convolution paths and GroupNorm on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    for (const [n, h, w, cin, cout] of [
      [1, 8, 8, 16, 24],
      [2, 5, 7, 12, 5],
    ]) {
      it(`the filter-left GEMM equals tf.conv2d with padding 1 on [${n},${h},${w},${cin}] → ${cout}`, () => {
        const before = tf.memory().numTensors;
        tf.tidy(() => {
          const { x, k, b, want } = convCase(n, h, w, cin, cout);
          const d = compareArrays(conv3x3Gemm(x, rows(k), b).dataSync(), want.dataSync(), 1e-5, 1e-5);
          expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
          expect(Array.from(hwioFromRows(rows(k)).dataSync())).toEqual(Array.from(k.dataSync()));
        });
        expect(tf.memory().numTensors).toBe(before);
      });
    }

    it('the fast input gradient of the GEMM path (filter as rows) equals autodiff of tf.conv2d', () => {
      const x = tf.randomNormal([2, 6, 5, 9], 0, 1, 'float32', 7) as tf.Tensor4D;
      const k = tf.randomNormal([3, 3, 9, 3], 0, 0.3, 'float32', 8) as tf.Tensor4D;
      const wT = rows(k);
      const loss = (f: (v: tf.Tensor4D) => tf.Tensor4D) => (v: tf.Tensor) => tf.sum(tf.square(f(v as tf.Tensor4D)));
      const auto = tf.grad(loss((v) => tf.conv2d(v, k, 1, 1)))(x);
      const fast = tf.grad(loss((v) => withFastInputGrad(v, wT, (z) => conv3x3Gemm(z, wT, tf.zeros([3])))))(x);
      const d = compareArrays(fast.dataSync(), auto.dataSync(), 1e-4, 1e-4);
      expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
      tf.dispose([x, k, wT, auto, fast]);
    });

    it('GroupNorm with a folded FiLM equals the norm followed by y·(1 + scale) + shift, from moments', () => {
      tf.tidy(() => {
        const [n, h, w, c] = [2, 6, 5, 64];
        const x = tf.add(tf.randomNormal([n, h, w, c], 0, 2, 'float32', 1), 3) as tf.Tensor4D;
        const [gamma, beta] = [tf.randomNormal([c], 1, 0.2, 'float32', 2), tf.randomNormal([c], 0, 0.2, 'float32', 3)];
        const [scale, shift] = [
          tf.randomNormal([n, c], 0, 0.5, 'float32', 4),
          tf.randomNormal([n, c], 0, 0.5, 'float32', 5),
        ] as tf.Tensor2D[];
        const g = tf.reshape(x, [n, h * w, 32, c / 32]);
        const { mean, variance } = tf.moments(g, [1, 3], true);
        const plain = tf.add(
          tf.mul(tf.reshape(tf.div(tf.sub(g, mean), tf.sqrt(tf.add(variance, 1e-5))), [n, h, w, c]), gamma),
          beta,
        );
        const want = tf.add(tf.mul(plain, tf.reshape(tf.add(scale, 1), [n, 1, 1, c])), tf.reshape(shift, [n, 1, 1, c]));
        for (const [got, ref] of [
          [groupNorm(x, gamma, beta), plain],
          [groupNorm(x, gamma, beta, { scale, shift }), want],
        ]) {
          const d = compareArrays(got.dataSync(), ref.dataSync(), 1e-5, 1e-5);
          expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
        }
      });
    });

    it('auto uses Winograd F(4,3) on maps of 32×32 with 128 channels, precise F(2,3), both within parity tolerance of direct', () => {
      const flags = {
        image_size: 32,
        num_channels: 128,
        num_res_blocks: 1,
        channel_mult: '1,1',
        attention_resolutions: '',
        num_head_channels: 64,
        resblock_updown: true,
        use_scale_shift_norm: true,
        learn_sigma: true,
      };
      const unet = ADMUNet.create(flags, 3, { conv: 'direct' });
      const x = tf.randomUniform([1, 32, 32, 3], -1, 1, 'float32', 4) as tf.Tensor4D;
      const run = (conv: ConvAlgorithm) => {
        unet.conv = conv;
        return tf.tidy(() => unet.forward(x, [200], { capture: [2] }).features.get(2)!);
      };
      const [direct, auto, precise, fast, w2, w4] = (
        ['direct', 'auto', 'precise', 'fast', 'winograd2', 'winograd4'] as const
      ).map(run);
      // Bytes, not toEqual: a failing toEqual on 131,072 floats takes minutes to print.
      const same = (a: tf.Tensor, b: tf.Tensor) =>
        Buffer.compare(
          Buffer.from((a.dataSync() as Float32Array).buffer),
          Buffer.from((b.dataSync() as Float32Array).buffer),
        ) === 0;
      for (const [name, got] of [
        ['auto', auto],
        ['precise', precise],
      ] as const) {
        const d = compareArrays(got.dataSync(), direct.dataSync(), 1e-4, 1e-4);
        expect(d.ok && d.maxAbs > 0, `${name}: max abs ${d.maxAbs}`).toBe(true);
      }
      // Block 2 is all on the 32×32 map.
      expect(same(auto, w4), 'auto = winograd4').toBe(true);
      expect(same(precise, w2), 'precise = winograd2').toBe(true);
      expect(same(fast, auto), 'fast = auto').toBe(true);
      expect(same(auto, precise)).toBe(false);
      tf.dispose([x, direct, auto, precise, fast, w2, w4]);
      unet.dispose();
    });

    it('streamed filters on maps of few tiles (Winograd with the filters on the left) give what resident ones give through tf.conv2d', () => {
      // Maps of 16×16 and 8×8: F(2×2) has 64 and 16 tiles there, F(4×4) 16 and 4.
      const flags = {
        image_size: 16,
        num_channels: 128,
        num_res_blocks: 1,
        channel_mult: '1,1',
        attention_resolutions: '',
        num_head_channels: 64,
        resblock_updown: false,
        use_scale_shift_norm: true,
        learn_sigma: false,
      };
      const resident = ADMUNet.create(flags, 5, { conv: 'direct', residency: 'resident' });
      const streamed = ADMUNet.create(flags, 5, { residency: 'stream', residentBudget: 0 });
      // Batch 3 as well: the filters stay on the left, whose side follows the tiles of one example.
      for (const n of [1, 3]) {
        const x = tf.randomUniform([n, 16, 16, 3], -1, 1, 'float32', 6) as tf.Tensor4D;
        const run = (unet: ADMUNet) => tf.tidy(() => unet.forward(x, Array(n).fill(300)).output!);
        const want = run(resident);
        const before = tf.memory().numTensors;
        for (const [conv, tol] of [
          ['auto', 1e-4],
          ['precise', 1e-4],
          ['winograd4', 1e-3],
        ] as const) {
          streamed.conv = conv;
          const got = run(streamed);
          const d = compareArrays(got.dataSync(), want.dataSync(), tol, tol);
          expect(d.ok && d.maxAbs > 0, `batch ${n}, ${conv}: max abs ${d.maxAbs}`).toBe(true);
          got.dispose();
          expect(tf.memory().numTensors).toBe(before);
        }
        tf.dispose([x, want]);
      }
      resident.dispose();
      streamed.dispose();
    });
  });
}
