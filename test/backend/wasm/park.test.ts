import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { park, ParkingBuffers } from '../../../src/backend/wasm/park';
import { BACKENDS, setBackend } from '../../helpers';

for (const backend of BACKENDS) {
  describe(`park on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('gives back the same values once, holding the tensor outside the backend on wasm while parked', () => {
      const x = tf.randomNormal([2, 8, 8, 4], 0, 1, 'float32', 3);
      const want = Array.from(x.dataSync());
      const before = tf.memory().numTensors;
      const parked = park(x);
      // On wasm the data left the heap: the tensor is gone until taken.
      expect(tf.memory().numTensors).toBe(backend === 'wasm' ? before - 1 : before);
      const back = parked.take();
      expect(back.shape).toEqual([2, 8, 8, 4]);
      expect(Array.from(back.dataSync())).toEqual(want);
      expect(() => parked.take()).toThrow(/already taken/);
      parked.dispose();
      back.dispose();
      expect(tf.memory().numTensors).toBe(before - 1);
    });

    it('keeps small tensors and tensors on a recorded tape as they are', () => {
      const x = tf.ones([4, 4]);
      const small = park(x, 1024);
      expect(small.take()).toBe(x);
      const y = tf.ones([4, 4]);
      const g = tf.grad((v: tf.Tensor) => {
        const kept = park(tf.mul(v, 2)).take();
        return tf.sum(tf.square(kept));
      })(y);
      expect(Array.from(g.dataSync())).toEqual(new Array(16).fill(8));
      tf.dispose([x, y, g]);
    });

    it('parks into reusable buffers, given back on take and on dispose', () => {
      const buffers = new ParkingBuffers();
      const x = tf.randomNormal([1, 8, 8, 4], 0, 1, 'float32', 5);
      const want = Array.from(x.dataSync());
      const first = park(x, 0, buffers);
      const back = first.take();
      expect(Array.from(back.dataSync())).toEqual(want);
      // On wasm the buffer came back with the take; the next park of that size reuses it.
      expect(buffers.bytes).toBe(backend === 'wasm' ? 4 * 256 : 0);
      const second = park(tf.ones([1, 8, 8, 4]), 0, buffers);
      expect(buffers.bytes).toBe(0);
      expect(Array.from(second.take().dataSync())).toEqual(new Array(256).fill(1));
      const third = park(tf.zeros([1, 8, 8, 4]), 0, buffers);
      third.dispose();
      expect(buffers.bytes).toBe(backend === 'wasm' ? 4 * 256 : 0);
      tf.dispose(back);
    });

    it('dispose frees what was never taken', () => {
      const before = tf.memory().numTensors;
      const parked = park(tf.ones([64, 64]));
      parked.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}

describe('ParkingBuffers', () => {
  it('reuses a free buffer of the same length and allocates for another', () => {
    const buffers = new ParkingBuffers();
    const a = buffers.get(10);
    buffers.release(a);
    expect(buffers.get(10)).toBe(a);
    const b = buffers.get(20);
    expect(b).not.toBe(a);
    expect(b.length).toBe(20);
  });

  it('keeps free no more than the most bytes lent at once, dropping the oldest first', () => {
    const buffers = new ParkingBuffers();
    const a = buffers.get(10);
    const b = buffers.get(10);
    buffers.release(a);
    buffers.release(b);
    expect(buffers.bytes).toBe(80); // the peak: both were lent at once
    const c = buffers.get(15); // another length: a new buffer, while a and b wait
    buffers.release(c);
    // 140 bytes free would exceed the 80-byte peak: a, then b (the oldest) are dropped.
    expect(buffers.bytes).toBe(60);
    expect(buffers.get(15)).toBe(c);
    const d = buffers.get(10);
    expect(d).not.toBe(a);
    expect(d).not.toBe(b);
  });

  it('clear drops the free buffers', () => {
    const buffers = new ParkingBuffers();
    const a = buffers.get(4);
    buffers.release(a);
    buffers.clear();
    expect(buffers.bytes).toBe(0);
    expect(buffers.get(4)).not.toBe(a);
  });
});
