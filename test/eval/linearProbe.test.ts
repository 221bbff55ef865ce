import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { linearProbe } from '../../src/eval/linearProbe';
import { InputError } from '../../src/errors';
import { SeededRandom } from '../../src/util/random';
import { setBackend } from '../helpers';

// Three Gaussian classes in 6-D whose means differ along a direction that is also scaled badly
// (×1000 on one feature): standardisation must make it learnable.
function blobs(n: number, seed: number, shuffleLabels = false): { x: tf.Tensor2D; y: Int32Array } {
  const r = new SeededRandom(seed);
  const y = Int32Array.from({ length: n }, (_, i) => i % 3);
  const x = new Float32Array(n * 6);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < 6; j++) x[i * 6 + j] = (r.normal() + (j === y[i] ? 3 : 0)) * (j === 0 ? 1000 : 1);
  if (shuffleLabels) for (let i = 0; i < n; i++) y[i] = Math.floor(r.uniform() * 3);
  return { x: tf.tensor2d(x, [n, 6]), y };
}

describe('linearProbe', () => {
  beforeAll(() => setBackend('wasm'));

  it('separates separable classes, stays at chance on random labels, and is deterministic', async () => {
    const before = tf.memory().numTensors;
    const [tr, te] = [blobs(300, 1), blobs(150, 2)];
    const r = await linearProbe(tr.x, tr.y, te.x, te.y);
    expect(r.accuracy).toBeGreaterThan(0.95);
    expect(r.trainAccuracy).toBeGreaterThan(0.95);
    expect([1e-4, 1e-3, 1e-2]).toContain(r.weightDecay);
    // one prediction per test row, and the accuracy is theirs
    expect(r.testPredictions.length).toBe(150);
    expect(r.accuracy).toBe(r.testPredictions.filter((p, i) => p === te.y[i]).length / 150);
    expect(await linearProbe(tr.x, tr.y, te.x, te.y)).toEqual(r);
    const [rtr, rte] = [blobs(300, 3, true), blobs(600, 4, true)];
    const chance = await linearProbe(rtr.x, rtr.y, rte.x, rte.y, { weightDecay: 1e-3 });
    expect(chance.accuracy).toBeLessThan(0.45);
    expect(chance.weightDecay).toBe(1e-3);
    tf.dispose([tr.x, te.x, rtr.x, rte.x]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses bad shapes, labels and options with InputError, leaking nothing', async () => {
    const { x, y } = blobs(30, 5);
    const other = tf.zeros([10, 4]) as tf.Tensor2D;
    const flat = tf.zeros([30]) as unknown as tf.Tensor2D;
    const before = tf.memory().numTensors;
    const bad: [() => Promise<unknown>, RegExp][] = [
      [() => linearProbe(flat, y, x, y), /trainX must be a 2-D/],
      [() => linearProbe(x, y, other, new Int32Array(10)), /6 features per row, testX 4/],
      [() => linearProbe(x, y.slice(0, 5), x, y), /trainY/],
      [() => linearProbe(x, y, x, y, { weightDecay: -1 }), /weightDecay/],
      [() => linearProbe(x, y, x, y, { weightDecay: [] }), /weightDecay/],
      [() => linearProbe(x, y, x, y, { lr: 0 }), /lr/],
      [() => linearProbe(x, y, x, y, { steps: 1.5 }), /steps/],
    ];
    for (const [call] of bad) await expect(call()).rejects.toThrow(InputError);
    for (const [call, msg] of bad) await expect(call()).rejects.toThrow(msg);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, other, flat]);
  });
});
