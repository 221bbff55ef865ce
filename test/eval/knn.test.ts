import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { KNN, knnEvaluate, poolFeatures } from '../../src/eval/knn';
import { BACKENDS, compareArrays, setBackend } from '../helpers';
import { clusters } from '../train/toy';

for (const backend of BACKENDS) {
  describe(`kNN on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('poolFeatures: adaptive average pool, flatten, unit rows', () => {
      const before = tf.memory().numTensors;
      // One example, 2×2 map, 2 channels: channel means 2.5 and −1 → pooled [2.5, −1] / ‖·‖.
      const map = tf.tensor4d([1, -1, 2, -1, 3, -1, 4, -1], [1, 2, 2, 2]);
      const p = poolFeatures(map, 1);
      const n = Math.hypot(2.5, -1);
      expect(compareArrays(p.dataSync(), [2.5 / n, -1 / n], 1e-6, 0).ok).toBe(true);
      const p2 = poolFeatures(map, 2);
      expect(p2.shape).toEqual([1, 8]);
      const z = tf.zeros([1, 3]);
      const zero = poolFeatures(z, 1);
      expect(Array.from(zero.dataSync())).toEqual([0, 0, 0]);
      const small = tf.zeros([1, 2, 2, 1]);
      expect(() => poolFeatures(small, 3)).toThrow(InputError);
      tf.dispose([map, p, p2, z, zero, small]);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('weighted votes on a hand-checked toy bank', () => {
      // Unit vectors at angles 0°, 10°, 80°, 90° with labels 0, 1, 1, 2; the query at 30°.
      const deg = [0, 10, 80, 90];
      const bank = tf.tensor2d(
        deg.flatMap((a) => [Math.cos((a * Math.PI) / 180), Math.sin((a * Math.PI) / 180)]),
        [4, 2],
      );
      const query = tf.tensor2d([[Math.cos(Math.PI / 6), Math.sin(Math.PI / 6)]]);
      const knn = new KNN({ chunkRows: 3 }); // two bank chunks: the merge is exercised
      knn.add(bank, [0, 1, 1, 2]);
      const nb = knn.neighbours(query, 3);
      expect(Array.from(nb.indices)).toEqual([1, 0, 2]); // 20°, 30°, 50° away
      expect(
        compareArrays(
          nb.similarities,
          [Math.cos(Math.PI / 9), Math.cos(Math.PI / 6), Math.cos((50 * Math.PI) / 180)],
          1e-6,
          0,
        ).ok,
      ).toBe(true);
      // k = 1: the 10° example (label 1). k = 2: votes e^(cos20°/τ) for 1 vs e^(cos30°/τ) for 0 → 1.
      // k = 3: label 1 gets e^(cos20°/τ) + e^(cos50°/τ), still ahead. Query label 0: ranked second.
      const [k1, k2, k3] = knn.evaluate(query, [0], { k: [1, 2, 3] });
      expect(k1).toEqual({ k: 1, top1: 0, top5: 1 });
      expect(k2).toEqual({ k: 2, top1: 0, top5: 1 });
      expect(k3.top1).toBe(0);
      // τ huge → near-uniform weights: with k = 3 label 1 has two votes, still wins; label 1 as truth is right.
      expect(knn.evaluate(query, [1], { k: [3], temperature: 1e6 })[0].top1).toBe(1);
      // Uniform weighting with k = 2: one vote each for 1 and 0, tie → lower class (0) first.
      expect(knn.evaluate(query, [0], { k: [2], weighting: 'uniform' })[0].top1).toBe(1);
      // Exp weighting breaks that tie towards the nearer neighbour (label 1).
      expect(knn.evaluate(query, [1], { k: [2] })[0].top1).toBe(1);
      tf.dispose([bank, query]);
    });

    it('separates well-separated clusters at k = 20 and 200, the same whatever the chunking', () => {
      const dim = 16,
        classes = 5;
      const tr = clusters(7, 400, dim, classes, 3);
      const te = clusters(7, 500, dim, classes, 3);
      const trainX = tf.tensor2d(tr.x, [400, dim]);
      const testX = tf.tensor2d(te.x.slice(400 * dim), [100, dim]);
      const before = tf.memory().numTensors;
      const res = knnEvaluate({ features: trainX, labels: tr.y }, { features: testX, labels: te.y.slice(400) });
      expect(res.map((r) => r.k)).toEqual([20, 200]);
      expect(res[0].top1).toBeGreaterThan(0.9);
      expect(res[0].top5).toBe(1);
      const chunked = new KNN({ chunkRows: 37 });
      chunked.add(trainX, tr.y);
      const again = chunked.evaluate(testX, te.y.slice(400), { queryChunk: 13 });
      expect(again).toEqual(res);
      const a = chunked.neighbours(testX, 50, 7);
      const one = new KNN();
      one.add(trainX, tr.y);
      const b = one.neighbours(testX, 50);
      expect(Array.from(a.indices)).toEqual(Array.from(b.indices));
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([trainX, testX]);
      expect(() => one.evaluate(tf.zeros([1, 3]), [0])).toThrow(/3 dimensions/);
      expect(() => new KNN().neighbours(tf.zeros([1, 3]), 1)).toThrow(/empty/);
      expect(() => one.evaluate(tf.zeros([1, dim]), [0], { k: [0] })).toThrow(InputError);
    });
  });
}
