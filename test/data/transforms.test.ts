import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { SeededRandom } from '../../src/util/random';
import { centerCrop, randomCropFlip } from '../../src/data/transforms';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

/** [h, w, 1] with value = column index (a horizontal ramp). */
const rampX = (h: number, w: number) =>
  tf.tidy(() => tf.tile(tf.reshape(tf.range(0, w, 1, 'float32'), [1, w, 1]), [h, 1, 1]) as tf.Tensor3D);

for (const backend of BACKENDS) {
  describe(`image transforms on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('center crop: identity at the right size, box halving of a 2× image, centred window of a wide one', () => {
      const before = tf.memory().numTensors;
      const img = tf.randomUniform([8, 8, 3], -1, 1, 'float32', 1) as tf.Tensor3D;
      const same = centerCrop(img, 8);
      expect(Array.from(same.dataSync())).toEqual(Array.from(img.dataSync()));
      // Every pixel repeated 2×2: halving gives the image back exactly.
      const big = tf.tidy(
        () => tf.reshape(tf.tile(tf.reshape(img, [8, 1, 8, 1, 3]), [1, 2, 1, 2, 1]), [16, 16, 3]) as tf.Tensor3D,
      );
      const halved = centerCrop(big, 8);
      expect(compareArrays(halved.dataSync(), img.dataSync(), 1e-6, 0).ok).toBe(true);
      // 8 × 12 → short side already 8, crop columns 2..9.
      const wide = rampX(8, 12);
      const c = centerCrop(wide, 8);
      expect(Array.from(c.dataSync()).slice(0, 8)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
      tf.dispose([img, same, big, halved, wide, c]);
      expect(tf.memory().numTensors).toBe(before);
      expect(() => centerCrop(tf.zeros([2, 2]) as unknown as tf.Tensor3D, 2)).toThrow(InputError);
    });

    it('random crop: short side within [S, ⌈S/0.8⌉], flips about half the time, same choices for the same seed', () => {
      const S = 16;
      const img = rampX(40, 40);
      const before = tf.memory().numTensors;
      let flips = 0;
      const slopes = new Set<number>();
      for (let seed = 0; seed < 40; seed++) {
        const a = randomCropFlip(img, S, new SeededRandom(seed));
        const b = randomCropFlip(img, S, new SeededRandom(seed));
        expect(a.shape).toEqual([S, S, 1]);
        const v = a.dataSync();
        expect(Array.from(b.dataSync())).toEqual(Array.from(v));
        // The ramp resized to short side s has slope 40/s per pixel (interior columns), negative when flipped.
        const slope = v[S / 2] - v[S / 2 - 1];
        if (slope < 0) flips++;
        const s = 40 / Math.abs(slope);
        expect(s).toBeGreaterThan(S - 0.01);
        expect(s).toBeLessThan(Math.ceil(S / 0.8) + 0.01);
        slopes.add(Math.round(s));
        tf.dispose([a, b]);
      }
      expect(flips).toBeGreaterThan(8);
      expect(flips).toBeLessThan(32);
      expect(slopes.size).toBeGreaterThan(2);
      expect(tf.memory().numTensors).toBe(before);
      const noFlip = randomCropFlip(img, S, new SeededRandom(1), { flip: false, minFrac: 1 });
      expect(noFlip.dataSync()[1] - noFlip.dataSync()[0]).toBeCloseTo(40 / S, 4);
      tf.dispose([img, noFlip]);
      expect(() => randomCropFlip(rampX(4, 4), 4, new SeededRandom(0), { minFrac: 0 })).toThrow(InputError);
    });
  });
}
