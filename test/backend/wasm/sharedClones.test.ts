import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { shareWasmClones } from '../../../src/backend/wasm/sharedClones';
import { compareArrays, setBackend } from '../../helpers';

describe('zero-copy clones on wasm', () => {
  beforeAll(async () => {
    await setBackend('wasm');
    expect(shareWasmClones()).toBe(true);
    expect(shareWasmClones()).toBe(true); // idempotent
  });

  it('a clone and a same-dtype cast share the data and outlive the original; other casts still convert', () => {
    const before = tf.memory();
    const ids = tf.engine().backend.numDataIds();
    const x = tf.tensor1d([1.5, -2.25, 3]);
    const c = tf.clone(x);
    const f = tf.cast(x, 'float32');
    const i = tf.cast(x, 'int32');
    expect(tf.memory().numDataBuffers - before.numDataBuffers).toBe(2); // x's data and the int32 copy only
    x.dispose();
    expect(Array.from(c.dataSync())).toEqual([1.5, -2.25, 3]);
    expect(Array.from(f.dataSync())).toEqual([1.5, -2.25, 3]);
    expect(Array.from(i.dataSync())).toEqual([1, -2, 3]);
    tf.dispose([c, f, i]);
    expect(tf.engine().backend.numDataIds()).toBe(ids); // the backend freed the shared data once
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers);
  });

  it('gradients through saved tensors equal the cpu backend’s, and nothing is left behind', async () => {
    const run = () =>
      tf.tidy(() => {
        const x = tf.randomNormal([4, 6], 0, 1, 'float32', 3);
        const w = tf.randomNormal([6, 5], 0, 1, 'float32', 4);
        const [gx, gw] = tf.grads((a, b) => tf.sum(tf.mul(tf.sigmoid(tf.matMul(a, b)), tf.square(tf.matMul(a, b)))))([
          x,
          w,
        ]);
        return [gx.dataSync(), gw.dataSync()];
      });
    const before = tf.memory();
    const onWasm = run();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers);
    await setBackend('cpu');
    const onCpu = run();
    await setBackend('wasm');
    for (let k = 0; k < 2; k++) {
      const d = compareArrays(onWasm[k], onCpu[k], 1e-5, 1e-4);
      expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
    }
  });
});
