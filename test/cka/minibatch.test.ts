import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { hsic0, hsic1 } from '../../src/cka/hsic';
import { linearCKA } from '../../src/cka/linearCKA';
import { MinibatchCKA } from '../../src/cka/minibatch';
import { BACKENDS, setBackend } from '../helpers';
import { gaussian, matmul } from './data';

const gram = (X: number[][]) => X.map((a) => X.map((b) => a.reduce((s, v, k) => s + v * b[k], 0)));

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e) => e,
  );
}

for (const backend of BACKENDS) {
  describe(`MinibatchCKA on ${backend}`, () => {
    beforeAll(() => setBackend(backend));
    const X = gaussian(50, 8, 21);
    const Y = matmul(X, gaussian(8, 20, 22)).map((r, i) => r.map((v, j) => v + gaussian(50, 20, 23)[i][j]));

    it('sums per-batch HSIC terms over batches of different sizes, then takes the ratio (biased and debiased)', async () => {
      const before = tf.memory().numTensors;
      const cuts = [0, 12, 30, 37, 50];
      for (const debiased of [false, true]) {
        const mb = new MinibatchCKA({ debiased });
        const f = debiased ? hsic1 : hsic0;
        let [xy, xx, yy] = [0, 0, 0];
        for (let i = 0; i + 1 < cuts.length; i++) {
          const [a, b] = [X.slice(cuts[i], cuts[i + 1]), Y.slice(cuts[i], cuts[i + 1])];
          const [K, L] = [gram(a), gram(b)];
          xy += f(K, L);
          xx += f(K, K);
          yy += f(L, L);
          const ta = tf.tensor2d(a);
          await mb.update(ta, b);
          ta.dispose();
        }
        expect(mb.batches).toBe(4);
        expect(mb.examples).toBe(50);
        expect(Math.abs(mb.hsic.xy - xy)).toBeLessThan(1e-5 * xx);
        expect(Math.abs((await mb.result()) - xy / Math.sqrt(xx * yy))).toBeLessThan(1e-5);
      }
      expect(tf.memory().numTensors).toBe(before);
    });

    it('one batch is linearCKA; updates not awaited are still counted by result()', async () => {
      const mb = new MinibatchCKA();
      await mb.update(X, Y);
      expect(Math.abs((await mb.result()) - (await linearCKA(X, Y)))).toBeLessThan(1e-12);
      const concurrent = new MinibatchCKA({ debiased: true });
      const sequential = new MinibatchCKA({ debiased: true });
      for (let i = 0; i < 50; i += 10) {
        void concurrent.update(X.slice(i, i + 10), Y.slice(i, i + 10));
        await sequential.update(X.slice(i, i + 10), Y.slice(i, i + 10));
      }
      expect(Math.abs((await concurrent.result()) - (await sequential.result()))).toBeLessThan(1e-12);
      expect(concurrent.batches).toBe(5);
      mb.reset();
      expect(mb.batches).toBe(0);
      await expect(mb.result()).rejects.toThrow(/no batch was added/);
    });

    it('rejects bad batches with an InputError and keeps the sums of the good ones', async () => {
      const mb = new MinibatchCKA({ debiased: true });
      await mb.update(X.slice(0, 10), Y.slice(0, 10));
      const kept = mb.hsic;
      const tooSmall = await rejection(mb.update(X.slice(10, 13), Y.slice(10, 13)));
      expect(tooSmall).toBeInstanceOf(InputError);
      expect(tooSmall.message).toMatch(/MinibatchCKA batch 2 has 3 examples: the debiased estimator .* needs n ≥ 4/);
      expect((await rejection(mb.update(X.slice(10, 20), Y.slice(10, 19)))).message).toMatch(
        /x has 10 examples but y has 9/,
      );
      expect(
        (
          await rejection(
            mb.update(
              X.slice(10, 20).map((r) => r.slice(1)),
              Y.slice(10, 20),
            ),
          )
        ).message,
      ).toMatch(/7 features in x .* earlier batches had 8/);
      const nan = Y.slice(10, 20).map((r) => [...r]);
      nan[3][3] = NaN;
      expect((await rejection(mb.update(X.slice(10, 20), nan))).message).toMatch(/^y contains NaN at \[3, 3\]/);
      expect(mb.hsic).toEqual(kept);
      expect(mb.batches).toBe(1);
      expect(() => new MinibatchCKA({ debiased: 1 as unknown as boolean })).toThrow(InputError);
    });

    it('a representation constant in every batch has zero variance: an error, not NaN', async () => {
      const mb = new MinibatchCKA();
      await mb.update(
        X.slice(0, 5).map(() => [1, 2]),
        Y.slice(0, 5),
      );
      await mb.update(
        X.slice(5, 10).map(() => [3, 2]),
        Y.slice(5, 10),
      );
      await expect(mb.result()).rejects.toThrow(/x has zero variance \(every example is the same within each batch\)/);
    });
  });
}
