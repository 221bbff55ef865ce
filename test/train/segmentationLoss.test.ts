import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { crossEntropy } from '../../src/train/loss';
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

/** Mean per-pixel cross-entropy and its gradient in float64, ignored pixels excluded. */
function reference(logits: Float32Array, masks: Int32Array) {
  let sum = 0,
    count = 0;
  const grad = new Float64Array(logits.length);
  for (let p = 0; p < masks.length; p++) {
    if (masks[p] === 255) continue;
    const row = Array.from(logits.subarray(p * K, (p + 1) * K));
    const m = Math.max(...row);
    const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
    sum += m + Math.log(z) - row[masks[p]];
    count++;
    row.forEach((v, j) => (grad[p * K + j] = Math.exp(v - m) / z - (j === masks[p] ? 1 : 0)));
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
