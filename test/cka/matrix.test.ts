import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { extractFeatures } from '../../src/features/extractFeatures';
import { ADMUNet } from '../../src/unet/admUnet';
import { MinibatchCKAMatrix, ckaMatrix } from '../../src/cka/matrix';
import { linearCKA } from '../../src/cka/linearCKA';
import { MinibatchCKA } from '../../src/cka/minibatch';
import { BACKENDS, fixtureJson, setBackend } from '../helpers';
import { gaussian, matmul } from './data';

const maxDiff = (a: number[][], b: number[][]) =>
  Math.max(...a.flatMap((r, i) => r.map((v, j) => Math.abs(v - b[i][j]))));

for (const backend of BACKENDS) {
  describe(`ckaMatrix and MinibatchCKAMatrix on ${backend}`, () => {
    beforeAll(() => setBackend(backend));
    const n = 36;
    const A = gaussian(n, 10, 31);
    const B = matmul(A, gaussian(10, 25, 32)).map((r) => r.map(Math.tanh));
    const C = gaussian(n, 60, 33, 2);
    const D = B.map((r, i) => r.map((v, j) => v + C[i][j % 60]));
    const reps = [A, B, C, D];

    it('is symmetric with a unit diagonal and equals pairwise linearCKA', async () => {
      const before = tf.memory().numTensors;
      const tensors = [tf.tensor2d(A), tf.tensor(B.flat(), [n, 5, 5]), C, { data: D.flat(), shape: [n, 25] }];
      for (const debiased of [false, true]) {
        const m = await ckaMatrix(tensors, { debiased });
        expect(m.length).toBe(4);
        for (let i = 0; i < 4; i++) {
          expect(m[i][i]).toBe(1);
          for (let j = 0; j < 4; j++) {
            expect(m[i][j]).toBe(m[j][i]);
            if (i !== j)
              expect(Math.abs(m[i][j] - (await linearCKA(reps[i], reps[j], { debiased })))).toBeLessThan(1e-6);
          }
        }
      }
      tf.dispose(tensors.filter((t): t is tf.Tensor => t instanceof tf.Tensor));
      expect(tf.memory().numTensors).toBe(before);
    });

    it('over batches equals MinibatchCKA on every pair; rows × cols equals the block of the full matrix', async () => {
      const before = tf.memory().numTensors;
      const batches = [
        [0, 10],
        [10, 24],
        [24, 36],
      ];
      for (const debiased of [false, true]) {
        const sym = new MinibatchCKAMatrix({ debiased, labels: ['a', 'b', 'c', 'd'] });
        const rect = new MinibatchCKAMatrix({ debiased });
        const pairs = reps.map(() => reps.map(() => new MinibatchCKA({ debiased, form: 'gram' })));
        for (const [s, e] of batches) {
          const cut = reps.map((r) => tf.tensor2d(r.slice(s, e)));
          await sym.update(cut);
          await rect.update(
            new Map([
              ['first', cut[0]],
              ['second', cut[1]],
            ]),
            new Map([
              ['third', cut[2]],
              ['fourth', cut[3]],
              ['again', cut[0]],
            ]),
          );
          for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) await pairs[i][j].update(cut[i], cut[j]);
          tf.dispose(cut);
        }
        const m = await sym.result();
        expect(sym.batches).toBe(3);
        expect(sym.examples).toBe(n);
        expect(sym.rowLabels).toEqual(['a', 'b', 'c', 'd']);
        expect(sym.colLabels).toEqual(['a', 'b', 'c', 'd']);
        for (let i = 0; i < 4; i++)
          for (let j = 0; j < 4; j++)
            if (i !== j) expect(Math.abs(m[i][j] - (await pairs[i][j].result()))).toBeLessThan(1e-12);
        const r = await rect.result();
        expect(rect.rowLabels).toEqual(['first', 'second']);
        expect(rect.colLabels).toEqual(['third', 'fourth', 'again']);
        expect(
          maxDiff(r, [
            [m[0][2], m[0][3], 1],
            [m[1][2], m[1][3], m[1][0]],
          ]),
        ).toBeLessThan(1e-12);
      }
      expect(tf.memory().numTensors).toBe(before);
    });

    it('rejects inconsistent batches with an InputError naming the representation', async () => {
      const before = tf.memory().numTensors;
      const acc = new MinibatchCKAMatrix({ debiased: true });
      await expect(acc.result()).rejects.toThrow(/no batch was added/);
      await expect(acc.update([A, B.slice(1)])).rejects.toThrow(
        /reps\[1\] \(1\) has 35 examples but reps\[0\] \(0\) has 36/,
      );
      await expect(acc.update([A.slice(0, 3), B.slice(0, 3)])).rejects.toThrow(
        /batch of 3 examples: the debiased estimator .* needs n ≥ 4/,
      );
      await acc.update([A, B]);
      await expect(acc.update([A, B, C])).rejects.toThrow(/3 rows in this batch, 2 in earlier ones/);
      await expect(acc.update([A, C])).rejects.toThrow(
        /reps\[1\] \(1\) has 60 features per example, 25 in earlier batches/,
      );
      await expect(acc.update([A], [B])).rejects.toThrow(/the first batch gave one list/);
      const nan = B.map((r) => [...r]);
      nan[7][2] = Infinity;
      await expect(acc.update([A, nan])).rejects.toThrow(/^reps\[1\] \(1\) contains Infinity at \[7, 2\]/);
      expect(acc.batches).toBe(1);
      await expect(ckaMatrix([A, A.map(() => A[0])])).rejects.toThrow(/representation 1 has zero variance/);
      await expect(ckaMatrix([])).rejects.toThrow(InputError);
      await expect(ckaMatrix('abc' as unknown as number[][][])).rejects.toThrow(/must be an array of representations/);
      expect(() => new MinibatchCKAMatrix({ labels: [1, 2] as unknown as string[] })).toThrow(
        /labels must be an array of strings/,
      );
      await expect(new MinibatchCKAMatrix({ labels: ['only one'] }).update([A, B])).rejects.toThrow(
        /1 labels for 2 rows/,
      );
      const byName = new MinibatchCKAMatrix();
      await byName.update(
        new Map([
          ['x', A],
          ['y', B],
        ]),
      );
      await expect(
        byName.update(
          new Map([
            ['y', A],
            ['x', B],
          ]),
        ),
      ).rejects.toThrow(/this batch's rows are \[y, x\], earlier ones were \[x, y\]/);
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}

// The README's example: CKA between blocks of a random-weights U-Net, fed straight from extractFeatures.
describe('CKA of U-Net blocks from extractFeatures (wasm)', () => {
  let unet: ADMUNet;
  let x0: tf.Tensor4D;
  beforeAll(async () => {
    await setBackend('wasm');
    unet = ADMUNet.create(fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args, 0);
    x0 = tf.randomUniform([12, 32, 32, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
  });
  afterAll(() => {
    unet?.dispose();
    x0?.dispose();
  });

  it('takes a FeatureSet as a labelled list, and its maps one by one', async () => {
    const feats = await extractFeatures(x0, { t: [90, 300], b: [5, 10, 15], model: unet, seed: 0 });
    const other = tf.tidy(() => {
      const flat = tf.reshape(x0, [12, -1]);
      return [
        tf.matMul(flat, tf.randomNormal([3072, 16], 0, 1, 'float32', 1)),
        tf.relu(tf.matMul(flat, tf.randomNormal([3072, 40], 0, 1, 'float32', 2))),
      ];
    });
    // Counted after the forward pass: the model may keep tensors of its own (weights made resident on use).
    const before = tf.memory().numTensors;
    const ab = await linearCKA(feats.get(90, 5), feats.get(90, 15));
    expect(ab).toBeGreaterThan(0);
    expect(ab).toBeLessThan(1);

    const acc = new MinibatchCKAMatrix();
    await acc.update(feats);
    const all = await acc.result();
    expect(acc.rowLabels).toEqual(['t=90 b=5', 't=90 b=10', 't=90 b=15', 't=300 b=5', 't=300 b=10', 't=300 b=15']);
    expect(Math.abs(all[0][2] - ab)).toBeLessThan(1e-6);

    // Blocks × blocks at t = 90 and t × t at b = 10 are blocks of the same matrix.
    const blocks = await ckaMatrix([5, 10, 15].map((b) => feats.get(90, b)));
    const steps = await ckaMatrix([90, 300].map((t) => feats.get(t, 10)));
    expect(
      maxDiff(
        blocks,
        all.slice(0, 3).map((r) => r.slice(0, 3)),
      ),
    ).toBeLessThan(1e-9);
    expect(Math.abs(steps[0][1] - all[1][4])).toBeLessThan(1e-9);

    // U-Net blocks × another model's layers given as tensors (here: random projections of the input pixels).
    const cross = new MinibatchCKAMatrix({ colLabels: ['layer1', 'layer2'] });
    await cross.update(
      [5, 10, 15].map((b) => feats.get(90, b)),
      other,
    );
    const r = await cross.result();
    expect(r.length).toBe(3);
    expect(r[0].length).toBe(2);
    expect(Math.abs(r[2][1] - (await linearCKA(feats.get(90, 15), other[1])))).toBeLessThan(1e-6);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(other);
    feats.dispose();
  });
});
