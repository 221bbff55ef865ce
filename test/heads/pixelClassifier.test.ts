import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { PixelClassifier } from '../../src/heads/pixelClassifier';
import { segmentationDataset } from '../../src/data/dataset';
import { fashionMNISTMasks, loadFashionMNIST } from '../../src/data/fashionMnist';
import { SegmentationMeter } from '../../src/eval/segmentation';
import { adaptiveAvgPool2d } from '../../src/ops/adaptiveAvgPool';
import { train } from '../../src/train/trainer';
import { adam } from '../../src/train/optimizers';
import { ensureGradients } from '../../src/backend/gradients';
import { crossEntropy } from '../../src/train/loss';
import { BACKENDS, gradientCheck, setBackend } from '../helpers';

/** Each pixel with its 5×5 neighbourhood (25 values, background −1 outside the image). */
function neighbourhood(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const p = tf.pad(
      x,
      [
        [0, 0],
        [2, 2],
        [2, 2],
        [0, 0],
      ],
      -1,
    );
    const shifts: tf.Tensor4D[] = [];
    for (let dy = 0; dy < 5; dy++)
      for (let dx = 0; dx < 5; dx++) shifts.push(tf.slice(p, [0, dy, dx, 0], [-1, x.shape[1], x.shape[2], 1]));
    return tf.concat(shifts, 3);
  });
}

for (const backend of BACKENDS) {
  describe(`PixelClassifier on ${backend}`, () => {
    beforeAll(async () => {
      await setBackend(backend);
      await ensureGradients();
    });

    it('maps [N, H, W, C] to [N, H, W, classes] log-probabilities and rows to rows; a seed gives the same ensemble', () => {
      const x = tf.randomNormal([2, 5, 5, 6], 0, 1, 'float32', 1) as tf.Tensor4D;
      const [a, b] = [
        new PixelClassifier({ channels: 6, classes: 4, members: 3 }),
        new PixelClassifier({ channels: 6, classes: 4, members: 3 }),
      ];
      const before = tf.memory().numTensors;
      const y = a.forward(x);
      const flat = tf.reshape(x, [-1, 6]) as tf.Tensor2D;
      const rows = a.forward(flat);
      const yb = b.forward(x);
      expect(y.shape).toEqual([2, 5, 5, 4]);
      expect(rows.shape).toEqual([50, 4]);
      expect(Array.from(rows.dataSync())).toEqual(Array.from(y.dataSync()));
      expect(Array.from(yb.dataSync())).toEqual(Array.from(y.dataSync()));
      // Probabilities: exp sums to 1 per pixel.
      const sums = tf.tidy(() => tf.sum(tf.exp(y), 3).dataSync());
      sums.forEach((s) => expect(s).toBeCloseTo(1, 5));
      // Members differ (independent seeds), so the ensemble is not one member.
      const m0 = tf.tidy(() => tf.logSoftmax(a.members[0].logits(x)).dataSync());
      expect(Array.from(m0)).not.toEqual(Array.from(rows.dataSync()));
      tf.dispose([y, yb, rows, flat]);
      expect(tf.memory().numTensors).toBe(before);
      expect(a.state().map((e) => e.name)).toContain('members.2.layers.5.running_var');
      expect(a.config.hidden).toEqual([128, 32]);
      const wide = new PixelClassifier({ channels: 6, classes: 30, members: 1 });
      expect(wide.config.hidden).toEqual([256, 128]);
      wide.dispose();
      [a, b].forEach((h) => h.dispose());
      x.dispose();
    });

    it('gets the gradients a central difference gives: the ensemble (eval) and a member under train()’s loss (batch statistics)', () => {
      const x = tf.randomNormal([2, 4, 4, 6], 0, 1, 'float32', 11) as tf.Tensor4D;
      const clf = new PixelClassifier({ channels: 6, classes: 4, members: 2, hidden: [8, 5], seed: 2 });
      const r = tf.randomNormal([2, 4, 4, 4], 0, 1, 'float32', 12);
      const labels = Int32Array.from({ length: 32 }, (_, i) => (i % 5 === 4 ? 255 : i % 4));
      const byName = new Map(clf.state().map((e) => [e.name, e]));
      const variable = (name: string) => {
        const e = byName.get(name);
        if (e?.kind !== 'float') throw new Error(name);
        return e.variable;
      };
      // The ensemble in eval mode (running statistics): a random projection of its log mean probabilities.
      const ensembleLoss = () => tf.tidy(() => tf.sum(tf.mul(clf.forward(x), r)) as tf.Scalar);
      // A member as train() scores it: batch statistics, the pixel cross-entropy with ignored pixels.
      const memberLoss = () =>
        tf.tidy(
          () => crossEntropy(clf.members[1].logits(x, { training: true }), labels, { ignoreIndex: 255 }) as tf.Scalar,
        );
      const before = tf.memory().numTensors;
      // Steps: small enough that no ReLU flips and the bends of batch statistics over 32 rows stay inside
      // (a step of 1e-3 gives 7 % on a member's layers.0, 3e-4 converges to 0.03 %); large enough that float32
      // rounding of the loss stays small (the ensemble's loss sums 128 terms: 1e-3).
      for (const [name, loss, h] of [
        ['members.0.layers.0.weight', ensembleLoss, 1e-3],
        ['members.1.layers.6.weight', ensembleLoss, 1e-3],
        ['members.0.layers.2.weight', ensembleLoss, 1e-3],
        ['members.1.layers.0.weight', memberLoss, 3e-4],
        ['members.1.layers.3.bias', memberLoss, 3e-4],
        ['members.1.layers.5.weight', memberLoss, 3e-4],
      ] as [string, () => tf.Scalar, number][]) {
        const g = gradientCheck(loss, variable(name), h);
        expect(g.relErr, `${name}: ${g.analytic} vs ${g.numeric}`).toBeLessThan(2e-2);
      }
      expect(tf.memory().numTensors).toBe(before);
      clf.dispose();
      tf.dispose([x, r]);
    });

    it('refuses bad input with an InputError naming it', () => {
      const clf = new PixelClassifier({ channels: 6, classes: 4, members: 1 });
      const x = tf.zeros([2, 5, 5, 7]) as tf.Tensor4D;
      const before = tf.memory().numTensors;
      expect(() => clf.forward(x)).toThrow(/7 features per pixel, the classifier takes 6/);
      expect(() => clf.forward(tf.zeros([3]) as unknown as tf.Tensor2D)).toThrow(InputError);
      expect(tf.memory().numTensors).toBe(before + 1);
      expect(() => new PixelClassifier({ channels: 6, classes: 4, ignoreIndex: 3 })).toThrow(
        /ignoreIndex 3 is a class id/,
      );
      expect(
        () => new PixelClassifier({ channels: 6, classes: 4, hidden: [8] as unknown as [number, number] }),
      ).toThrow(/two widths/);
      clf.dispose();
      x.dispose();
    });
  });
}

describe('PixelClassifier learns the shipped masks (wasm)', () => {
  beforeAll(() => setBackend('wasm'));

  it(
    'each member trained by train() on sampled pixels; the ensemble’s mIoU rises well above its start and above its weakest member’s',
    { timeout: 180_000 },
    async () => {
      const [tr, te] = [await loadFashionMNIST({ split: 'train' }), await loadFashionMNIST({ split: 'test' })];
      const [n, nTest] = [500, 200];
      const images = tf.slice(tr.images, 0, n) as tf.Tensor4D;
      const testImages = tf.slice(te.images, 0, nTest) as tf.Tensor4D;
      const masks = fashionMNISTMasks(tr).slice(0, n * 784);
      const testMasks = fashionMNISTMasks(te).slice(0, nTest * 784);
      tr.dispose();
      te.dispose();
      // A pixel's class is its image's garment: a pixel's own neighbourhood says garment or background, the
      // image pooled to 7×7 (the same for every pixel) which garment, as a deep block's features would.
      const C = 25 + 49;
      // 8,000 sampled training pixels, as ddpm-segmentation trains on pixels, not images.
      const pick = Int32Array.from({ length: 8000 }, (_, i) => (i * 7919) % (n * 784));
      const rows = tf.tidy(() =>
        tf.concat(
          [
            tf.gather(tf.reshape(neighbourhood(images), [-1, 25]), tf.tensor1d(pick, 'int32')),
            tf.gather(
              tf.reshape(adaptiveAvgPool2d(images, 7), [n, 49]),
              tf.tensor1d(
                Int32Array.from(pick, (i) => Math.floor(i / 784)),
                'int32',
              ),
            ),
          ],
          1,
        ),
      );
      // Pixels within 8 grey levels of the masks' threshold (32) are ambiguous: unlabelled (255), not scored.
      const grey = images.dataSync();
      const labels = Int32Array.from(pick, (i) => (Math.abs((grey[i] + 1) * 127.5 - 32) < 8 ? 255 : masks[i]));
      expect(labels.filter((l) => l === 255).length).toBeGreaterThan(50);
      const testFeats = tf.tidy(() =>
        tf.concat(
          [
            neighbourhood(testImages),
            tf.tile(tf.reshape(adaptiveAvgPool2d(testImages, 7), [nTest, 1, 1, 49]), [1, 28, 28, 1]),
          ],
          3,
        ),
      ) as tf.Tensor4D;
      const clf = new PixelClassifier({ channels: C, classes: 11, members: 2, seed: 3 });
      const score = (f: (x: tf.Tensor4D) => tf.Tensor4D) => {
        const meter = new SegmentationMeter({ classes: 11 });
        tf.tidy(() => meter.update(f(testFeats), testMasks));
        return meter.scores();
      };
      const start = score((x) => clf.forward(x));
      for (const [i, member] of clf.members.entries())
        await train(member, segmentationDataset(rows, labels, { classes: 11 }), {
          epochs: 3,
          batchSize: 64,
          optimizer: adam(2e-3),
          seed: i,
        });
      const end = score((x) => clf.forward(x));
      const members = clf.members.map(
        (m) => score((x) => tf.reshape(m.logits(x), [nTest, 28, 28, 11]) as tf.Tensor4D).mIoU,
      );
      console.log(
        `PixelClassifier (5×5 pixels + the image at 7×7): mIoU ${start.mIoU.toFixed(3)} → ${end.mIoU.toFixed(3)} (members ${members.map((v) => v.toFixed(3)).join(', ')}), pixel accuracy ${start.pixelAccuracy.toFixed(3)} → ${end.pixelAccuracy.toFixed(3)}`,
      );
      // Measured: mIoU 0.015 → 0.592 (members 0.567, 0.585), pixel accuracy 0.075 → 0.853; other seeds (5, 9)
      // and no ignored band gave 0.577–0.599. Stopped at 0.4: well above the start, well below what it reaches.
      expect(start.mIoU).toBeLessThan(0.1);
      expect(end.mIoU).toBeGreaterThan(0.4);
      expect(end.mIoU).toBeGreaterThanOrEqual(Math.min(...members));
      expect(end.pixelAccuracy).toBeGreaterThan(0.7);
      clf.dispose();
      tf.dispose([images, testImages, testFeats, rows]);
    },
  );
});
