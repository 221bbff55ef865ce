import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { SeededRandom } from '../../src/util/random';
import { resizeShortSide } from '../../src/data/pilResize';
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

    it('random crop: a window of the short side resized to some s in [S, ⌈S/0.8⌉], flipped about half the time, same for the same seed', () => {
      const S = 16;
      const img = tf.randomUniform([40, 44, 2], -1, 1, 'float32', 7) as tf.Tensor3D;
      const before = tf.memory().numTensors;
      // Every short side the transform may draw, resized as centerCrop's resize does (PIL's BOX then BICUBIC).
      const resized = new Map<number, { data: Float32Array; h: number; w: number }>();
      for (let s = S; s <= Math.ceil(S / 0.8); s++) {
        const r = tf.tidy(() => tf.clone(resizeShortSide(img, s)));
        resized.set(s, { data: r.dataSync() as Float32Array, h: r.shape[0], w: r.shape[1] });
        r.dispose();
      }
      /** The one (s, top, left, flip) whose window is `v` (to 1e-6). */
      const find = (v: Float32Array | Int32Array | Uint8Array, flips = [false, true]) => {
        const found: { s: number; top: number; left: number; flip: boolean }[] = [];
        for (const [s, { data, h, w }] of resized)
          for (let top = 0; top + S <= h; top++)
            for (let left = 0; left + S <= w; left++)
              for (const flip of flips) {
                let same = true;
                for (let y = 0; y < S && same; y++)
                  for (let x = 0; x < S && same; x++)
                    for (let c = 0; c < 2 && same; c++) {
                      const src = ((top + y) * w + left + (flip ? S - 1 - x : x)) * 2 + c;
                      same = Math.abs(v[(y * S + x) * 2 + c] - data[src]) <= 1e-6;
                    }
                if (same) found.push({ s, top, left, flip });
              }
        expect(found.length).toBe(1);
        return found[0];
      };
      let flips = 0;
      const sides = new Set<number>();
      const corners = new Set<string>();
      for (let seed = 0; seed < 40; seed++) {
        const a = randomCropFlip(img, S, new SeededRandom(seed));
        const b = randomCropFlip(img, S, new SeededRandom(seed));
        expect(a.shape).toEqual([S, S, 2]);
        const v = a.dataSync();
        expect(Array.from(b.dataSync())).toEqual(Array.from(v));
        const { s, top, left, flip } = find(v);
        if (flip) flips++;
        sides.add(s);
        corners.add(`${top},${left}`);
        tf.dispose([a, b]);
      }
      expect(flips).toBeGreaterThan(8);
      expect(flips).toBeLessThan(32);
      expect(sides.size).toBeGreaterThan(2);
      expect(corners.size).toBeGreaterThan(5);
      expect(tf.memory().numTensors).toBe(before);
      // minFrac 1: the short side is S; no flip asked, none made.
      const noFlip = randomCropFlip(img, S, new SeededRandom(1), { flip: false, minFrac: 1 });
      expect(find(noFlip.dataSync())).toMatchObject({ s: S, flip: false });
      tf.dispose([img, noFlip]);
      expect(tf.memory().numTensors).toBe(before - 1);
      expect(() => randomCropFlip(rampX(4, 4), 4, new SeededRandom(0), { minFrac: 0 })).toThrow(InputError);
    });
  });
}
