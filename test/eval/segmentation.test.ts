import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { SegmentationMeter, segmentationScores } from '../../src/eval/segmentation';
import { BACKENDS, setBackend } from '../helpers';

for (const backend of BACKENDS)
  describe(`SegmentationMeter on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    // 1×2×4 pixels, 4 classes; class 3 is in neither the masks nor the predictions; one pixel ignored.
    const truth = [0, 0, 1, 1, 2, 2, 255, 0];
    const pred = [0, 1, 1, 1, 2, 0, 3, 0];
    // Confusion (truth row, predicted column), by hand, ignoring pixel 6:
    //   0: [2, 1, 0, 0]   1: [0, 2, 0, 0]   2: [1, 0, 1, 0]   3: [0, 0, 0, 0]
    // IoU0 = 2 / (3 + 3 − 2) = 0.5, IoU1 = 2 / (2 + 3 − 2) = 2/3, IoU2 = 1 / (2 + 1 − 1) = 0.5, IoU3 = NaN.
    it('scores a hand-computed confusion matrix; absent classes are left out of the mean', () => {
      const s = segmentationScores(pred, truth, { classes: 4, shape: [1, 2, 4] });
      expect(Array.from(s.confusion)).toEqual([2, 1, 0, 0, 0, 2, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0]);
      expect(s.iou.slice(0, 3)).toEqual([0.5, 2 / 3, 0.5]);
      expect(s.iou[3]).toBeNaN();
      expect(s.mIoU).toBeCloseTo((0.5 + 2 / 3 + 0.5) / 3, 12);
      expect(s.pixelAccuracy).toBeCloseTo(5 / 7, 12);
      expect(s.meanAccuracy).toBeCloseTo((2 / 3 + 1 + 0.5) / 3, 12);
      expect(s.pixels).toBe(7);
    });

    it('takes logits or id tensors, and adds batches up to the scores of their union', () => {
      const oneHot = tf.tidy(() => tf.reshape(tf.oneHot(tf.tensor1d(pred, 'int32'), 4), [1, 2, 4, 4]));
      const ids = tf.tensor3d(pred, [1, 2, 4], 'int32');
      const truthT = tf.tensor3d(truth, [1, 2, 4], 'int32');
      const meter = new SegmentationMeter({ classes: 4 });
      const before = tf.memory().numTensors;
      meter.update(oneHot, truthT);
      meter.update(ids, truth);
      expect(tf.memory().numTensors).toBe(before);
      const both = meter.scores();
      const once = segmentationScores(pred, truth, { classes: 4, shape: [1, 2, 4] });
      expect(Array.from(both.confusion)).toEqual(Array.from(once.confusion, (c) => 2 * c));
      expect(both.mIoU).toBeCloseTo(once.mIoU, 12);
      meter.reset();
      expect(meter.scores().pixels).toBe(0);
      tf.dispose([oneHot, ids, truthT]);
    });

    it('refuses bad input with an InputError naming it', () => {
      const meter = new SegmentationMeter({ classes: 4 });
      expect(() => meter.update(pred, truth.slice(0, 6), [1, 2, 4])).toThrow(/masks hold 6 values/);
      expect(() =>
        meter.update(
          pred,
          truth.map((t) => (t === 2 ? 4 : t)),
          [1, 2, 4],
        ),
      ).toThrow(/masks\[4\] is 4/);
      expect(() =>
        meter.update(
          pred.map((p) => p + 1),
          truth,
          [1, 2, 4],
        ),
      ).toThrow(/prediction 6 is 4/);
      expect(() => new SegmentationMeter({ classes: 4, ignoreIndex: 0 })).toThrow(/ignoreIndex 0 is a class id/);
      const three = tf.zeros([1, 2, 4, 3]);
      const before = tf.memory().numTensors;
      expect(() => meter.update(three, truth)).toThrow(/logits have 3 classes/);
      expect(tf.memory().numTensors).toBe(before);
      three.dispose();
      expect(() => meter.update(pred, truth)).toThrow(InputError);
      expect(meter.scores().pixels).toBe(0); // nothing half-added
    });

    it('refuses NaN logits and masks of another side (naming both shapes), leaking nothing and adding nothing', () => {
      const meter = new SegmentationMeter({ classes: 4 });
      const nan = tf.tensor4d(
        Float32Array.from({ length: 32 }, (_, i) => (i === 5 ? NaN : 0)),
        [1, 2, 4, 4],
      ); // one NaN logit
      const wide = tf.zeros([1, 2, 5, 4]);
      const truthT = tf.tensor3d(truth, [1, 2, 4], 'int32');
      const before = tf.memory().numTensors;
      for (const [f, message] of [
        [() => meter.update(nan, truth), /logits hold NaN/],
        [() => meter.update(wide, truth), /masks hold 8 values, the predictions \[1,2,5\] need 10.*resize/],
        [() => meter.update(wide, truthT), /masks have shape \[1,2,4\], the predictions \[1,2,5\]/],
        [() => segmentationScores(wide, truth, { classes: 4, ignoreIndex: 3 }), /ignoreIndex 3 is a class id/],
      ] as [() => unknown, RegExp][]) {
        expect(f).toThrow(InputError);
        expect(f).toThrow(message);
      }
      expect(tf.memory().numTensors).toBe(before);
      expect(meter.scores().pixels).toBe(0);
      expect(meter.scores().mIoU).toBeNaN();
      tf.dispose([nan, wide, truthT]);
    });
  });
