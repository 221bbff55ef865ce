import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { downsampleAvg, upsampleNearest } from '../../src/unet/resample';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

for (const backend of BACKENDS) {
  describe(`resampling on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('the gradient of downsampleAvg (odd sides too) equals the reference formula', () => {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const [N, H, W, C] = [2, 5, 6, 3];
        const x = tf.randomNormal([N, H, W, C], 0, 1, 'float32', 5) as tf.Tensor4D;
        const r = tf.randomNormal([N, 2, 3, C], 0, 1, 'float32', 6);
        const down = tf
          .grad((v) => tf.sum(tf.mul(downsampleAvg(v as tf.Tensor4D), r)))(x)
          .arraySync() as number[][][][];
        const rr = r.arraySync() as number[][][][];
        for (let n = 0; n < N; n++)
          for (let y = 0; y < H; y++)
            for (let c = 0; c < W; c++)
              for (let k = 0; k < C; k++) {
                const want = y < 4 ? rr[n][y >> 1][c >> 1][k] / 4 : 0; // the odd last row is dropped
                expect(down[n][y][c][k]).toBeCloseTo(want, 6);
              }
      });
      expect(tf.memory().numTensors).toBe(before);
    });

    it('upsampleNearest repeats each pixel 2×2; downsampleAvg averages 2×2 blocks and drops an odd last row and column', () => {
      const before = tf.memory().numTensors;
      const [N, H, W, C] = [2, 3, 4, 2];
      const xs = Float32Array.from({ length: N * H * W * C }, (_, i) => i);
      const x = tf.tensor4d(xs, [N, H, W, C]);
      const up = upsampleNearest(x);
      expect(up.shape).toEqual([N, 2 * H, 2 * W, C]);
      const u = up.dataSync();
      for (let n = 0; n < N; n++)
        for (let y = 0; y < 2 * H; y++)
          for (let z = 0; z < 2 * W; z++)
            for (let c = 0; c < C; c++)
              expect(u[((n * 2 * H + y) * 2 * W + z) * C + c]).toBe(xs[((n * H + (y >> 1)) * W + (z >> 1)) * C + c]);
      const odd = tf.tensor4d(
        Float32Array.from({ length: 25 }, (_, i) => i),
        [1, 5, 5, 1],
      );
      const down = downsampleAvg(odd);
      expect(down.shape).toEqual([1, 2, 2, 1]);
      expect(Array.from(down.dataSync())).toEqual([
        (0 + 1 + 5 + 6) / 4,
        (2 + 3 + 7 + 8) / 4,
        (10 + 11 + 15 + 16) / 4,
        (12 + 13 + 17 + 18) / 4,
      ]);
      tf.dispose([x, up, odd, down]);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('downsampleAvg passes a quarter of each output gradient to each pixel of its block, for every image of a batch', () => {
      const x = tf.randomNormal([2, 4, 6, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const w = tf.randomNormal([2, 2, 3, 3], 0, 1, 'float32', 2);
      const before = tf.memory().numTensors;
      const [g, want] = tf.tidy(() => [
        tf.grad((v: tf.Tensor) => tf.sum(tf.mul(downsampleAvg(v as tf.Tensor4D), w)))(x),
        tf.reshape(tf.tile(tf.reshape(tf.div(w, 4), [2, 2, 1, 3, 1, 3]), [1, 1, 2, 1, 2, 1]), [2, 4, 6, 3]),
      ]);
      const d = compareArrays(g.dataSync(), want.dataSync(), 1e-6, 1e-6);
      expect(d.ok, `${d.bad} elements off, first ${d.firstBad}`).toBe(true);
      tf.dispose([g, want]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, w]);
    });

    // tfjs-backend-cpu's own ResizeNearestNeighborGrad is wrong for a batch of more than one image: this
    // guards upsampleNearest's own gradient on every backend.
    it('the gradient of upsampleNearest sums each 2×2 block of the output gradient, for every image of a batch', () => {
      const x = tf.randomNormal([2, 3, 4, 2], 0, 1, 'float32', 3) as tf.Tensor4D;
      const w = tf.randomNormal([2, 6, 8, 2], 0, 1, 'float32', 4);
      const before = tf.memory().numTensors;
      const [g, want] = tf.tidy(() => [
        tf.grad((v: tf.Tensor) => tf.sum(tf.mul(upsampleNearest(v as tf.Tensor4D), w)))(x),
        tf.sum(tf.reshape(w, [2, 3, 2, 4, 2, 2]), [2, 4]),
      ]);
      const d = compareArrays(g.dataSync(), want.dataSync(), 1e-5, 1e-5);
      tf.dispose([g, want]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, w]);
      expect(d.ok, `${d.bad} of ${want.size} elements off, first ${d.firstBad}`).toBe(true);
    });
  });
}
