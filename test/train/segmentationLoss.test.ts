import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { crossEntropy } from '../../src/train/loss';
import { evaluate, train } from '../../src/train/trainer';
import { sgd } from '../../src/train/optimizers';
import { segmentationDataset } from '../../src/data/dataset';
import type { TrainableModel } from '../../src/train/trainableModel';
import { pixelCrossEntropy } from '../../src/train/segmentationLoss';
import { ensureGradients } from '../../src/backend/gradients';
import { SeededRandom } from '../../src/util/random';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

const [N, H, W, K] = [2, 3, 4, 5];

function fixture() {
  const rng = new SeededRandom(7);
  const logits = Float32Array.from({ length: N * H * W * K }, () => 4 * rng.normal());
  const masks = Int32Array.from({ length: N * H * W }, (_, i) => (i % 7 === 3 ? 255 : Math.floor(rng.uniform() * K)));
  return { logits, masks };
}

/**
 * Mean per-pixel cross-entropy and its gradient in float64, ignored pixels excluded; with class weights,
 * PyTorch's weighted mean (each pixel scaled by its class's weight, divided by the total weight).
 */
function reference(logits: Float32Array, masks: Int32Array, weights?: number[]) {
  let sum = 0,
    count = 0;
  const grad = new Float64Array(logits.length);
  for (let p = 0; p < masks.length; p++) {
    if (masks[p] === 255) continue;
    const w = weights ? weights[masks[p]] : 1;
    const row = Array.from(logits.subarray(p * K, (p + 1) * K));
    const m = Math.max(...row);
    const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
    sum += w * (m + Math.log(z) - row[masks[p]]);
    count += w;
    row.forEach((v, j) => (grad[p * K + j] = w * (Math.exp(v - m) / z - (j === masks[p] ? 1 : 0))));
  }
  return { loss: sum / count, grad: Array.from(grad, (g) => g / count) };
}

for (const backend of BACKENDS) {
  describe(`pixelCrossEntropy on ${backend}`, () => {
    beforeAll(async () => {
      await setBackend(backend);
      await ensureGradients();
    });

    it('equals the float64 mean over the scored pixels, and so does its gradient; ignored pixels get none', () => {
      const { logits, masks } = fixture();
      const ref = reference(logits, masks);
      const x = tf.tensor4d(logits, [N, H, W, K]);
      const before = tf.memory().numTensors;
      const loss = pixelCrossEntropy(x, masks);
      expect(compareArrays(loss.dataSync(), [ref.loss]).ok).toBe(true);
      const g = tf.grad((l: tf.Tensor) => pixelCrossEntropy(l as tf.Tensor4D, masks))(x);
      const d = compareArrays(g.dataSync(), ref.grad);
      expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
      for (let p = 0; p < masks.length; p++)
        if (masks[p] === 255) for (let j = 0; j < K; j++) expect(g.dataSync()[p * K + j]).toBe(0);
      tf.dispose([loss, g]);
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
    });

    it('weights each pixel by its class as PyTorch (weighted mean), gradient included; a zero weight drops a class', () => {
      const { logits, masks } = fixture();
      const weights = [0.5, 2, 1, 0, 3];
      const ref = reference(logits, masks, weights);
      const x = tf.tensor4d(logits, [N, H, W, K]);
      const before = tf.memory().numTensors;
      const loss = pixelCrossEntropy(x, masks, { classWeights: weights });
      const d = compareArrays(loss.dataSync(), [ref.loss]);
      expect(d.ok, d.firstBad).toBe(true);
      const g = tf.grad((l: tf.Tensor) => pixelCrossEntropy(l as tf.Tensor4D, masks, { classWeights: weights }))(x);
      const dg = compareArrays(g.dataSync(), ref.grad);
      expect(dg.ok, dg.firstBad).toBe(true);
      for (let p = 0; p < masks.length; p++)
        if (masks[p] === 3 || masks[p] === 255)
          for (let j = 0; j < K; j++) expect(Math.abs(g.dataSync()[p * K + j])).toBe(0); // ±0
      // Unit weights are the unweighted loss; the rows' losses ('none') are scaled by their class's weight.
      const unit = pixelCrossEntropy(x, masks, { classWeights: [1, 1, 1, 1, 1] });
      expect(compareArrays(unit.dataSync(), [reference(logits, masks).loss]).ok).toBe(true);
      const rows = tf.reshape(x, [-1, K]) as tf.Tensor2D;
      const [plainT, weightedT] = [
        crossEntropy(rows, masks, { ignoreIndex: 255, reduction: 'none' }),
        crossEntropy(rows, masks, { ignoreIndex: 255, reduction: 'none', classWeights: weights }),
      ];
      const [plain, weighted] = [plainT.dataSync(), weightedT.dataSync()];
      for (let p = 0; p < masks.length; p++)
        expect(weighted[p]).toBeCloseTo(masks[p] === 255 ? 0 : plain[p] * weights[masks[p]], 5);
      tf.dispose([loss, g, unit, rows, plainT, weightedT]);
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
    });

    it('is crossEntropy on one row per pixel; an int tensor mask gives the same; all ignored gives 0', () => {
      const { logits, masks } = fixture();
      const x = tf.tensor4d(logits, [N, H, W, K]);
      const rows = crossEntropy(tf.reshape(x, [-1, K]) as tf.Tensor2D, masks, { ignoreIndex: 255, reduction: 'sum' });
      const summed = pixelCrossEntropy(x, tf.tensor3d(masks, [N, H, W], 'int32'), { reduction: 'sum' });
      expect(compareArrays(summed.dataSync(), rows.dataSync()).ok).toBe(true);
      const none = pixelCrossEntropy(x, new Int32Array(N * H * W).fill(255));
      expect(none.dataSync()[0]).toBe(0);
      const other = pixelCrossEntropy(
        x,
        Int32Array.from(masks, (m) => (m === 255 ? -1 : m)),
        { ignoreIndex: -1 },
      );
      expect(compareArrays(other.dataSync(), pixelCrossEntropy(x, masks).dataSync()).ok).toBe(true);
      tf.dispose([x, rows, summed, none, other]);
    });

    it('refuses bad masks and logits with an InputError that says what is wrong, leaking nothing', () => {
      const { logits, masks } = fixture();
      const x = tf.tensor4d(logits, [N, H, W, K]);
      const nan = tf.fill([N, H, W, K], NaN) as tf.Tensor4D;
      const rank2 = tf.zeros([3, K]) as unknown as tf.Tensor4D;
      const sideways = tf.zeros([N, H, H], 'int32');
      const before = tf.memory().numTensors;
      const bad: [string, () => unknown, RegExp][] = [
        ['wrong side', () => pixelCrossEntropy(x, masks.slice(0, N * H * (W - 1))), /predictions \[2,3,4\].*resize/],
        ['wrong tensor side', () => pixelCrossEntropy(x, sideways), /masks have shape \[2,3,3\]/],
        [
          'class out of range',
          () =>
            pixelCrossEntropy(
              x,
              Int32Array.from(masks, (m, i) => (i === 5 ? K : m)),
            ),
          /masks\[5\] is 5/,
        ],
        [
          'negative class',
          () =>
            pixelCrossEntropy(
              x,
              Int32Array.from(masks, (m, i) => (i === 2 ? -1 : m)),
            ),
          /masks\[2\] is -1/,
        ],
        [
          'ignore index is a class',
          () => pixelCrossEntropy(x, masks, { ignoreIndex: 2 }),
          /ignoreIndex 2 is a class id/,
        ],
        ['NaN logits', () => pixelCrossEntropy(nan, masks), /NaN/],
        [
          'too few class weights',
          () => pixelCrossEntropy(x, masks, { classWeights: [1, 2] }),
          /classWeights has 2 entries.*5 classes/,
        ],
        [
          'negative class weight',
          () => pixelCrossEntropy(x, masks, { classWeights: [1, 1, -1, 1, 1] }),
          /classWeights\[2\] is -1/,
        ],
        ['rank-2 logits', () => pixelCrossEntropy(rank2, masks), /\[N, H, W, classes\]/],
      ];
      for (const [what, f, message] of bad) {
        expect(f, what).toThrow(InputError);
        expect(f, what).toThrow(message);
      }
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([nan, rank2, sideways]);
      x.dispose();
    });
  });
}

describe('train() and evaluate() with an ignore index (wasm)', () => {
  beforeAll(async () => {
    await setBackend('wasm');
    await ensureGradients();
  });

  /** A linear model over rows that ignores label 255, from fixed weights. */
  function linear(): TrainableModel<tf.Tensor2D> & { w: tf.Variable } {
    const w = tf.variable(
      tf.tensor2d(
        Float32Array.from({ length: 12 }, (_, i) => ((i * 37) % 11) / 11 - 0.5),
        [3, 4],
      ),
    );
    return { w, trainableVariables: [w], ignoreIndex: 255, logits: (x) => tf.matMul(x, w) as tf.Tensor2D };
  }

  it('ignored rows change no weight whatever their input; loss and top-1 count the scored rows only', async () => {
    const rng = new SeededRandom(3);
    const x = Float32Array.from({ length: 12 * 3 }, () => rng.normal());
    const labels = Int32Array.from({ length: 12 }, (_, i) => ([2, 5, 9].includes(i) ? 255 : i % 4));
    // The same data with the ignored rows' inputs replaced by large values.
    const x2 = Float32Array.from(x, (v, i) => ([2, 5, 9].includes(Math.floor(i / 3)) ? 40 : v));
    const [a, b] = [linear(), linear()];
    const [ta, tb] = [tf.tensor2d(x, [12, 3]), tf.tensor2d(x2, [12, 3])];
    const before = tf.memory().numTensors;
    const opts = { epochs: 3, batchSize: 4, seed: 0 };
    const [oa, ob] = [sgd(0.5), sgd(0.5)];
    const ra = await train(a, segmentationDataset(ta, labels, { classes: 4 }), { ...opts, optimizer: oa });
    await train(b, segmentationDataset(tb, labels, { classes: 4 }), { ...opts, optimizer: ob });
    expect(Array.from(b.w.dataSync())).toEqual(Array.from(a.w.dataSync()));
    expect(ra.history[2].trainTop1).toBeLessThanOrEqual(1);
    const e = await evaluate(a, segmentationDataset(tb, labels, { classes: 4 }), { batchSize: 5 });
    // By hand: the mean loss and top-1 over the 9 scored rows.
    const w = a.w.dataSync();
    let loss = 0,
      right = 0;
    for (let i = 0; i < 12; i++) {
      if (labels[i] === 255) continue;
      const z = [0, 1, 2, 3].map((k) => x[i * 3] * w[k] + x[i * 3 + 1] * w[4 + k] + x[i * 3 + 2] * w[8 + k]);
      const m = Math.max(...z);
      loss += m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)) - z[labels[i]];
      if (z.indexOf(m) === labels[i]) right++;
    }
    expect(compareArrays([e.loss, e.top1], [loss / 9, right / 9]).ok).toBe(true);
    expect(e.examples).toBe(12);
    oa.dispose();
    ob.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([a.w, b.w, ta, tb]);
  });
});
