import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { readSafetensors } from '../../src/io/safetensors';
import { interpolateBilinear } from '../../src/ops/interpolate';
import { BACKENDS, compareArrays, FIXTURES, gradientCheck, setBackend } from '../helpers';

const FILE = path.join(FIXTURES, 'resize', 'torch-interpolate.safetensors');

for (const backend of BACKENDS) {
  describe(`interpolateBilinear on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it("equals torch's F.interpolate(bilinear, align_corners=False) up and down, |a − b| ≤ 1e-4 + 1e-4·|b|", async () => {
      const fx = await readSafetensors(FILE);
      const cases = [...fx.keys()].filter((k) => k.endsWith('.input')).map((k) => k.slice(0, -'.input'.length));
      expect(cases.length).toBe(6);
      for (const c of cases) {
        const x = fx.get(`${c}.input`)!;
        const want = fx.get(`${c}.output`)!;
        const before = tf.memory().numTensors;
        const out = tf.tidy(() =>
          interpolateBilinear(tf.tensor4d(x.data as Float32Array, x.shape as never), want.shape[1]),
        );
        expect(out.shape, c).toEqual(want.shape);
        const d = compareArrays(out.dataSync(), want.data as Float32Array);
        expect(d.ok, `${c}: max abs ${d.maxAbs}`).toBe(true);
        out.dispose();
        expect(tf.memory().numTensors).toBe(before);
      }
    });

    it("a map of the asked size comes back as a copy; gradients match finite differences (tfjs's resize gradient does not)", () => {
      const x = tf.randomNormal([1, 4, 4, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
      const same = interpolateBilinear(x, 4);
      expect(same).not.toBe(x);
      expect(Array.from(same.dataSync())).toEqual(Array.from(x.dataSync()));
      const v = tf.variable(x);
      const g = gradientCheck(() => tf.sum(tf.square(interpolateBilinear(v as unknown as tf.Tensor4D, 7))), v);
      expect(g.relErr, JSON.stringify(g)).toBeLessThan(1e-3);
      tf.dispose([x, same, v]);
    });

    it('bad input is an InputError', () => {
      const x = tf.zeros([1, 4, 4, 1]) as tf.Tensor4D;
      expect(() => interpolateBilinear(x, 0)).toThrow(InputError);
      expect(() => interpolateBilinear(x, 2.5)).toThrow(/positive integers/);
      expect(() => interpolateBilinear(tf.zeros([4, 4]) as never, 2)).toThrow(/rank-4/);
      x.dispose();
    });
  });
}
