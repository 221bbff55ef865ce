import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { turnedFilter } from '../../src/ops/conv3x3';
import { BACKENDS, setBackend } from '../helpers';

for (const backend of BACKENDS) {
  describe(`conv3x3 helpers on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('turnedFilter turns an HWIO filter 180° and swaps its channels, exactly', () => {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const w = tf.randomNormal([3, 3, 5, 7], 0, 1, 'float32', 9) as tf.Tensor4D;
        const got = turnedFilter(w);
        expect(got.shape).toEqual([3, 3, 7, 5]);
        const g = got.arraySync() as number[][][][];
        const v = w.arraySync() as number[][][][];
        for (let kh = 0; kh < 3; kh++)
          for (let kw = 0; kw < 3; kw++)
            for (let o = 0; o < 7; o++)
              for (let i = 0; i < 5; i++) expect(g[kh][kw][o][i]).toBe(v[2 - kh][2 - kw][i][o]);
      });
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}
