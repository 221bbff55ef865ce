import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Parking, PartedBatch, Skips } from '../../../src/unet/runtime/batchParts';
import { BACKENDS, setBackend } from '../../helpers';

const maxDiff = (a: tf.Tensor, b: () => tf.Tensor): number =>
  tf.tidy(() => tf.max(tf.abs(tf.sub(a, b()))).dataSync()[0]);

for (const backend of BACKENDS) {
  describe(`batch parts on ${backend}`, () => {
    beforeAll(() => setBackend(backend));
    // Parks everything it can, so that the wasm path (out of the heap and back) is what runs there.
    const parking = new Parking(0);

    it('splits a batch per example and joins it again, values and order kept', () => {
      const x = tf.randomNormal([3, 4, 4, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
      const before = tf.memory().numTensors;
      const h = new PartedBatch(x, parking);
      h.regroup(true);
      expect(h.count).toBe(3);
      expect(h.shape).toEqual([1, 4, 4, 2]);
      const seen: number[] = [];
      const captured = h.apply(
        (p, example) => {
          seen.push(example!);
          const y = tf.mul(p, 2) as tf.Tensor4D;
          p.dispose();
          return y;
        },
        () => {},
        true,
      )!;
      expect(seen).toEqual([0, 1, 2]);
      const out = h.finish((p) => tf.add(p, 1) as tf.Tensor4D);
      h.dispose();
      expect(out.shape).toEqual([3, 4, 4, 2]);
      expect(maxDiff(out, () => tf.add(tf.mul(x, 2), 1))).toBe(0);
      expect(maxDiff(captured, () => tf.mul(x, 2))).toBe(0);
      tf.dispose([out, captured]);
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
    });

    it('regroups skips to the parts that take them, and frees everything when a block throws', () => {
      const x = tf.randomNormal([2, 4, 4, 2], 0, 1, 'float32', 2) as tf.Tensor4D;
      const before = tf.memory().numTensors;
      const h = new PartedBatch(x, parking);
      const hs = new Skips(new Set([1]), parking);
      h.apply(
        (p) => p,
        (y) => hs.keep(1, y),
        false,
      );
      h.regroup(true);
      const skip = hs.take(1, h.count);
      const first = skip(0);
      expect(first.shape).toEqual([1, 4, 4, 2]);
      expect(maxDiff(first, () => tf.slice(x, 0, 1))).toBe(0);
      first.dispose();
      expect(() =>
        h.apply(
          (p) => {
            p.dispose();
            throw new Error('block failed');
          },
          () => {},
          true,
        ),
      ).toThrow('block failed');
      h.dispose();
      hs.dispose();
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
    });
  });
}
