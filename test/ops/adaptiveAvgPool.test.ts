import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { readSafetensors } from '../../src/io/safetensors';
import { adaptiveAvgPool2d, adaptivePoolMatrix } from '../../src/ops/adaptiveAvgPool';
import { BACKENDS, compareArrays, FIXTURES, nchwToNhwc, setBackend } from '../helpers';

for (const backend of BACKENDS) {
  describe(`adaptiveAvgPool2d on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    // The head fixtures record the reference's AdaptiveAvgPool2d input and output.
    for (const [dir, b] of [
      ['attention-bn', 15],
      ['attention', 15],
      ['linear', 15],
    ] as const) {
      it(`matches nn.AdaptiveAvgPool2d on heads/${dir} (b${b})`, async () => {
        const act = await readSafetensors(path.join(FIXTURES, 'heads', dir, 'activations.safetensors'));
        const [feat, pooled] = [act.get(`t0.feat.b${b}`), act.get(`t0.pooled.b${b}`)];
        if (!feat || !pooled) return; // (linear records no pooled map)
        const x = nchwToNhwc(feat.data as Float32Array, feat.shape);
        const want = nchwToNhwc(pooled.data as Float32Array, pooled.shape);
        const before = tf.memory().numTensors;
        const out = tf.tidy(() => adaptiveAvgPool2d(tf.tensor4d(x.data, x.shape), want.shape[1]));
        expect(out.shape).toEqual(want.shape);
        const d = compareArrays(out.dataSync(), want.data, 1e-5, 1e-5);
        expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
        out.dispose();
        expect(tf.memory().numTensors).toBe(before);
      });
    }

    it('uneven windows overlap as in PyTorch (5 → 3: [0,1], [1,2,3], [3,4])', () => {
      const m = Array.from(adaptivePoolMatrix(5, 3), (v) => +v.toFixed(4));
      expect(m).toEqual([0.5, 0.5, 0, 0, 0, 0, 1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 0.5, 0.5].map((v) => +v.toFixed(4)));
      const x = tf.tensor4d(
        Float32Array.from({ length: 25 }, (_, i) => i),
        [1, 5, 5, 1],
      );
      const y = adaptiveAvgPool2d(x, 3);
      // top-left window: rows 0–1, cols 0–1 → mean(0, 1, 5, 6) = 3
      expect(y.dataSync()[0]).toBeCloseTo(3, 5);
      // centre: rows 1–3, cols 1–3 → 12
      expect(y.dataSync()[4]).toBeCloseTo(12, 5);
      tf.dispose([x, y]);
    });

    it('has a gradient (the heads train through it)', () => {
      const x = tf.randomNormal([2, 7, 7, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const g = tf.grad((v: tf.Tensor) => tf.sum(adaptiveAvgPool2d(v as tf.Tensor4D, 3)))(x);
      // each input counts once per window containing it, weighted by 1/window size
      expect(g.shape).toEqual([2, 7, 7, 3]);
      expect(tf.tidy(() => tf.sum(g).dataSync()[0])).toBeCloseTo(2 * 9 * 3, 3);
      tf.dispose([x, g]);
    });

    it('rejects bad sizes', () => {
      const x = tf.zeros([1, 4, 4, 1]) as tf.Tensor4D;
      expect(() => adaptiveAvgPool2d(x, 0)).toThrow(InputError);
      expect(() => adaptiveAvgPool2d(tf.zeros([4, 4]) as never, 2)).toThrow(/rank-4/);
      x.dispose();
    });
  });
}
