import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { readSafetensors, type ReadTensor } from '../../src/io/safetensors';
import { hsic0, hsic1 } from '../../src/cka/hsic';
import { linearCKA, pairTerms, tuning } from '../../src/cka/linearCKA';
import { MinibatchCKA } from '../../src/cka/minibatch';
import { BACKENDS, FIXTURES, fixtureJson, setBackend } from '../helpers';
import { gaussian, matmul, orthogonal, referenceCKA } from './data';

/**
 * Tolerance against the fixture's float64 values: 1e-5 absolute on CKA.
 *
 * Why: the data are float32 and the reference works in float64 from those numbers. Here the columns are centred
 * in float64, the centred values are rounded to float32 (relative 6e-8 each), and the Gram/cross products run as
 * float32 matMuls whose dot products accumulate ~√k·6e-8 relative error over k terms (k ≤ 500 here), summed in
 * float64 afterwards. CKA is a ratio of such sums, so its error is of the same ~1e-6 relative order; the debiased
 * estimator subtracts terms ~n times larger than its result, which can amplify that by up to ~n. 1e-5 absolute
 * (CKA ∈ [−1, 1]) covers that with room, and is still 10× tighter than the contract's 1e-4. HSIC terms scale with
 * the data, so they are checked relatively (1e-5 of the largest HSIC of the case, which is what CKA feels).
 */
const CKA_ATOL = 1e-5;
const HSIC_RTOL = 1e-5;

interface Case {
  n: number;
  p1: number;
  p2: number;
  linear_cka: number;
  hsic_biased_xy: number;
  hsic_biased_xx: number;
  hsic_biased_yy: number;
  cka_debiased: number;
  hsic1_xy: number;
  hsic1_xx: number;
  hsic1_yy: number;
  minibatch: {
    batch_size: number;
    num_batches: number;
    cka_minibatch: number;
    per_batch: { hsic1_xy: number; hsic1_xx: number; hsic1_yy: number }[];
  };
}

const values = fixtureJson<{ cases: Record<string, Case> }>('cka/values.json');
const worst = new Map<string, number>();
const note = (key: string, err: number) => worst.set(key, Math.max(worst.get(key) ?? 0, err));
afterAll(() => {
  for (const [k, v] of worst) console.log(`cka parity ${k}: max abs error ${v.toExponential(2)}`);
});

function expectCka(key: string, got: number, want: number, what: string) {
  const err = Math.abs(got - want);
  note(key, err);
  expect(err, `${what}: got ${got}, want ${want}`).toBeLessThanOrEqual(CKA_ATOL);
}
function expectHsic(got: number, want: number, scale: number, what: string) {
  expect(Math.abs(got - want), `${what}: got ${got}, want ${want}`).toBeLessThanOrEqual(HSIC_RTOL * scale);
}

for (const backend of BACKENDS) {
  describe(`linear CKA against the cka fixture on ${backend}`, () => {
    let inputs: Map<string, ReadTensor>;
    beforeAll(async () => {
      await setBackend(backend);
      inputs = await readSafetensors(path.join(FIXTURES, 'cka', 'inputs.safetensors'));
    });
    const tensor = (name: string) => {
      const t = inputs.get(name)!;
      return tf.tensor2d(t.data as Float32Array, t.shape as [number, number]);
    };

    for (const [name, c] of Object.entries(values.cases)) {
      it(`${name}: biased and debiased CKA and their HSIC terms, both forms`, async () => {
        const before = tf.memory().numTensors;
        const [x, y] = [tensor(`${name}.X`), tensor(`${name}.Y`)];
        for (const form of ['gram', 'feature'] as const) {
          expectCka(`${backend} biased`, await linearCKA(x, y, { form }), c.linear_cka, `${name} biased (${form})`);
          expectCka(
            `${backend} debiased`,
            await linearCKA(x, y, { debiased: true, form }),
            c.cka_debiased,
            `${name} debiased (${form})`,
          );
          const names: [string, string] = ['x', 'y'];
          const b = await pairTerms(x, y, { debiased: false, form, names, requireVariance: true });
          const scale0 = Math.max(c.hsic_biased_xx, c.hsic_biased_yy);
          expectHsic(b.xy, c.hsic_biased_xy, scale0, `${name} hsic_biased_xy (${form})`);
          expectHsic(b.xx, c.hsic_biased_xx, scale0, `${name} hsic_biased_xx (${form})`);
          expectHsic(b.yy, c.hsic_biased_yy, scale0, `${name} hsic_biased_yy (${form})`);
          const u = await pairTerms(x, y, { debiased: true, form, names, requireVariance: true });
          const scale1 = Math.max(c.hsic1_xx, c.hsic1_yy);
          expectHsic(u.xy, c.hsic1_xy, scale1, `${name} hsic1_xy (${form})`);
          expectHsic(u.xx, c.hsic1_xx, scale1, `${name} hsic1_xx (${form})`);
          expectHsic(u.yy, c.hsic1_yy, scale1, `${name} hsic1_yy (${form})`);
        }
        tf.dispose([x, y]);
        expect(tf.memory().numTensors).toBe(before);
      });

      it(`${name}: minibatch CKA over ${c.minibatch.num_batches} batches of ${c.minibatch.batch_size}, and each batch's HSIC_1`, async () => {
        const before = tf.memory().numTensors;
        const [x, y] = [tensor(`${name}.X`), tensor(`${name}.Y`)];
        const m = c.minibatch.batch_size;
        const mb = new MinibatchCKA({ debiased: true });
        for (let i = 0; i < c.minibatch.num_batches; i++) {
          const [bx, by] = [tf.slice(x, i * m, m), tf.slice(y, i * m, m)];
          const terms = await mb.update(bx, by);
          const want = c.minibatch.per_batch[i];
          const scale = Math.max(want.hsic1_xx, want.hsic1_yy);
          expectHsic(terms.xy, want.hsic1_xy, scale, `${name} batch ${i} hsic1_xy`);
          expectHsic(terms.xx, want.hsic1_xx, scale, `${name} batch ${i} hsic1_xx`);
          expectHsic(terms.yy, want.hsic1_yy, scale, `${name} batch ${i} hsic1_yy`);
          tf.dispose([bx, by]);
        }
        expect(mb.batches).toBe(c.minibatch.num_batches);
        expect(mb.examples).toBe(c.n);
        expectCka(`${backend} minibatch`, await mb.result(), c.minibatch.cka_minibatch, `${name} minibatch`);
        tf.dispose([x, y]);
        expect(tf.memory().numTensors).toBe(before);
      });
    }

    it('the float64 Gram-matrix helpers hsic0/hsic1 match the fixture on nested arrays', () => {
      const c = values.cases.random_indep;
      const X = inputs.get('random_indep.X')!;
      const Y = inputs.get('random_indep.Y')!;
      const gram = (t: ReadTensor) => {
        const [n, p] = t.shape;
        const d = t.data as Float32Array;
        return Array.from({ length: n }, (_, i) =>
          Array.from({ length: n }, (_, j) => {
            let s = 0;
            for (let k = 0; k < p; k++) s += d[i * p + k] * d[j * p + k];
            return s;
          }),
        );
      };
      const [K, L] = [gram(X), gram(Y)];
      expect(Math.abs(hsic0(K, L) - c.hsic_biased_xy)).toBeLessThan(1e-9 * c.hsic_biased_yy);
      expect(Math.abs(hsic0(K, K) - c.hsic_biased_xx)).toBeLessThan(1e-9 * c.hsic_biased_xx);
      expect(Math.abs(hsic1(K, L) - c.hsic1_xy)).toBeLessThan(1e-9 * c.hsic1_yy);
      expect(Math.abs(hsic1(L, L) - c.hsic1_yy)).toBeLessThan(1e-9 * c.hsic1_yy);
      expect(() =>
        hsic1(
          K.slice(0, 3).map((r) => r.slice(0, 3)),
          L.slice(0, 3).map((r) => r.slice(0, 3)),
        ),
      ).toThrow(InputError);
      expect(() =>
        hsic0(
          K,
          L.slice(1).map((r) => r.slice(1)),
        ),
      ).toThrow(/same examples/);
    });
  });
}

for (const backend of BACKENDS) {
  describe(`linear CKA properties on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    const X = gaussian(40, 12, 1);
    const Z = matmul(X, gaussian(12, 30, 2)).map((r, i) =>
      r.map((v, j) => Math.tanh(v) + 0.3 * gaussian(40, 30, 3)[i][j]),
    );

    it('an orthogonal transform plus a shift, and an isotropic scaling, leave CKA unchanged', async () => {
      const before = tf.memory().numTensors;
      const Q = orthogonal(12, 4);
      const moved = matmul(X, Q).map((r) => r.map((v, k) => v + 10 * (k - 6)));
      const scaled = X.map((r) => r.map((v) => -3.7 * v + 1.5));
      for (const debiased of [false, true]) {
        const base = await linearCKA(X, Z, { debiased });
        expect(base).toBeGreaterThan(0.1);
        expect(Math.abs((await linearCKA(moved, Z, { debiased })) - base)).toBeLessThan(1e-5);
        expect(Math.abs((await linearCKA(scaled, Z, { debiased })) - base)).toBeLessThan(1e-5);
        expect(Math.abs((await linearCKA(X, moved, { debiased })) - 1)).toBeLessThan(1e-5);
        expect(Math.abs((await linearCKA(X, scaled, { debiased })) - 1)).toBeLessThan(1e-5);
      }
      // An anisotropic scaling is not an invariance: CKA must move.
      const stretched = X.map((r) => r.map((v, k) => (k === 0 ? 20 * v : v)));
      expect(Math.abs((await linearCKA(stretched, Z)) - (await linearCKA(X, Z)))).toBeGreaterThan(1e-3);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('a representation against itself gives 1, biased and debiased', async () => {
      const t = tf.tensor2d(Z);
      expect(Math.abs((await linearCKA(t, t)) - 1)).toBeLessThan(1e-12);
      expect(Math.abs((await linearCKA(t, t, { debiased: true })) - 1)).toBeLessThan(1e-12);
      t.dispose();
    });

    it('the Gram form equals the feature form, also when both are cut into many chunks', async () => {
      const wide = gaussian(24, 90, 5, 3);
      const narrow = gaussian(24, 7, 6);
      const want = referenceCKA(wide, narrow);
      const saved = tuning.chunkElements;
      try {
        for (const chunk of [saved, 100]) {
          tuning.chunkElements = chunk; // 100: 4 features per Gram chunk, 1 example per cross-product chunk
          for (const debiased of [false, true]) {
            const g = await linearCKA(wide, narrow, { form: 'gram', debiased });
            const f = await linearCKA(wide, narrow, { form: 'feature', debiased });
            expect(Math.abs(g - f), `chunk ${chunk}, debiased ${debiased}`).toBeLessThan(1e-6);
            if (!debiased) expect(Math.abs(g - want)).toBeLessThan(1e-6);
          }
        }
      } finally {
        tuning.chunkElements = saved;
      }
    });

    it('flattens every axis after the first, and reads tensors, nested arrays, typed rows and { data, shape } alike', async () => {
      const before = tf.memory().numTensors;
      const x4 = tf.randomNormal([10, 2, 3, 4], 0, 1, 'float32', 7);
      const y2 = tf.randomNormal([10, 5], 0, 1, 'float32', 8);
      const flat = tf.reshape(x4, [10, 24]);
      const want = await linearCKA(flat, y2);
      flat.dispose();
      const xData = x4.dataSync();
      const yRows = y2.arraySync() as number[][];
      const got = [
        await linearCKA(x4, y2),
        await linearCKA(x4.arraySync() as number[][][][], yRows),
        await linearCKA(
          { data: xData, shape: [10, 2, 3, 4] },
          yRows.map((r) => Float32Array.from(r)),
        ),
      ];
      for (const g of got) expect(Math.abs(g - want)).toBeLessThan(1e-6);
      // One feature per example as a 1-D input.
      const a = [1, 2, 3, 5, 8];
      expect(
        Math.abs(
          (await linearCKA(
            a,
            a.map((v) => 2 * v + 1),
          )) - 1,
        ),
      ).toBeLessThan(1e-6);
      tf.dispose([x4, y2]);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('bad input gets an InputError that names the problem', async () => {
      const before = tf.memory().numTensors;
      const x = gaussian(6, 3, 9);
      const y = gaussian(6, 2, 10);
      const rejects = async (p: Promise<unknown>, re: RegExp) => {
        const e = await p.then(
          () => undefined,
          (err) => err,
        );
        expect(e, `expected a rejection matching ${re}`).toBeInstanceOf(InputError);
        expect(String(e.message)).toMatch(re);
      };
      await rejects(linearCKA(x, y.slice(0, 5)), /x has 6 examples but y has 5/);
      await rejects(linearCKA(x.slice(0, 3), y.slice(0, 3), { debiased: true }), /debiased estimator.*needs n ≥ 4/);
      await rejects(linearCKA(x.slice(0, 1), y.slice(0, 1)), /needs n ≥ 2/);
      const nan = x.map((r) => [...r]);
      nan[2][1] = NaN;
      await rejects(linearCKA(nan, y), /^x contains NaN at \[2, 1\]/);
      const inf = tf.tensor2d(y.map((r, i) => r.map((v, j) => (i === 4 && j === 0 ? -Infinity : v))));
      await rejects(linearCKA(x, inf), /^y contains -Infinity at \[4, 0\]/);
      inf.dispose();
      await rejects(
        linearCKA(
          x.map(() => [1, 2, 3]),
          y,
        ),
        /x has zero variance.*CKA is undefined/,
      );
      await rejects(
        linearCKA(
          x,
          y.map(() => [4, 4]),
          { debiased: true },
        ),
        /y has zero variance/,
      );
      // Not constant, yet its unbiased self-HSIC is 0: one example differs from three equal ones.
      await rejects(
        linearCKA([[0], [0], [2], [0]], [[1], [2], [3], [5]], { debiased: true }),
        /unbiased HSIC_1 estimate of HSIC\(x, x\).*not positive/,
      );
      await rejects(linearCKA([[1, 2], [3]] as number[][], y.slice(0, 2)), /x is ragged/);
      await rejects(
        linearCKA(x.slice(0, 2), [
          [1, 'a'],
          [2, 3],
        ] as unknown as number[][]),
        /y\[0\]\[1\] is a string/,
      );
      const scalar = tf.scalar(1);
      await rejects(linearCKA(scalar, y), /x is a scalar/);
      scalar.dispose();
      await rejects(linearCKA([], y), /x has no examples/);
      await rejects(
        linearCKA({ data: [1, 2, 3], shape: [2, 2] }, y),
        /x.data has 3 values but its shape \[2,2\] needs 4/,
      );
      const gone = tf.tensor2d(x);
      gone.dispose();
      await rejects(linearCKA(gone, y), /x is a disposed tensor/);
      await rejects(
        linearCKA(x, y, { debiased: 'yes' } as unknown as { debiased: boolean }),
        /debiased must be true or false/,
      );
      await rejects(linearCKA(x, y, { form: 'fast' } as unknown as { form: 'auto' }), /form must be/);
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}
