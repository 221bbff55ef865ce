import * as tf from '@tensorflow/tfjs-core';
import { recordingGradients } from '../engine.js';
import { heapView, tensorFromFill, wasmHeap } from './heap.js';

/** A tensor set aside until it is needed again; see {@link park}. */
export interface Parked<T extends tf.Tensor> {
  /** The tensor's shape, parked or not. */
  readonly shape: T['shape'];
  /** The tensor again, owned by the caller. Once only. */
  take(): T;
  /** Frees it without taking it (a no-op once taken). */
  dispose(): void;
  /** Exempts it from the enclosing `tf.tidy` (`tf.keep`), for a holder that outlives that scope. */
  keep(): void;
}

/**
 * JS buffers for parked values, reused from one forward to the next. Writing into freshly allocated
 * memory costs its page faults, many times the copy itself (docs/tuning.md#parking). The free buffers are capped at the most bytes ever parked at once (the oldest
 * are dropped first): enough for the next forward of the same shapes to allocate nothing.
 */
export class ParkingBuffers {
  private free: Float32Array[] = [];
  private freeBytes = 0;
  private lentBytes = 0;
  private peakBytes = 0;

  /** A buffer of exactly `length` floats (contents undefined), reused when one is free. */
  get(length: number): Float32Array {
    let i = this.free.length - 1;
    while (i >= 0 && this.free[i].length !== length) i--;
    const buffer = i >= 0 ? this.free.splice(i, 1)[0] : new Float32Array(length);
    if (i >= 0) this.freeBytes -= buffer.byteLength;
    this.lentBytes += buffer.byteLength;
    this.peakBytes = Math.max(this.peakBytes, this.lentBytes);
    return buffer;
  }

  /** Gives back a buffer from {@link get}. */
  release(buffer: Float32Array): void {
    this.lentBytes -= buffer.byteLength;
    this.free.push(buffer);
    this.freeBytes += buffer.byteLength;
    while (this.freeBytes > this.peakBytes) this.freeBytes -= this.free.shift()!.byteLength;
  }

  /** Bytes held for reuse. */
  get bytes(): number {
    return this.freeBytes;
  }

  /** Drops the free buffers (buffers still lent are unaffected). */
  clear(): void {
    this.free = [];
    this.freeBytes = 0;
    this.peakBytes = this.lentBytes;
  }
}

/**
 * Sets `x` aside, taking ownership of it. On wasm, outside gradient recording, a float32 tensor of
 * at least `minBytes` is copied to JS memory (into a buffer of `buffers` when given) and freed from
 * the heap until {@link Parked.take} uploads it again: the U-Net's encoder maps wait there for their
 * decoder blocks (192 MiB at 256×256 for one image), and a heap that never shrinks fragments around
 * such long-lived blocks, which left the heap far larger than its live tensors
 * (docs/tuning.md#parking). Elsewhere `x` is kept as it is.
 */
export function park<T extends tf.Tensor>(x: T, minBytes = 0, buffers?: ParkingBuffers): Parked<T> {
  const heap = x.dtype === 'float32' && 4 * x.size >= minBytes ? wasmHeap() : null;
  const shape = x.shape;
  // The tensor itself, or its values in JS memory once it has left the heap; null once taken.
  let held: T | Float32Array | null = x;
  if (heap && !recordingGradients()) {
    const values = buffers ? buffers.get(x.size) : new Float32Array(x.size);
    values.set(heapView(heap, x));
    held = values;
    x.dispose();
  }
  const release = () => {
    if (held instanceof tf.Tensor) held.dispose();
    else if (held && buffers) buffers.release(held);
    held = null;
  };
  return {
    shape,
    take: () => {
      if (!held) throw new Error('park: this tensor was already taken');
      const values = held;
      if (!(values instanceof Float32Array)) {
        held = null;
        return values;
      }
      const t = tensorFromFill(shape, (dst) => dst.set(values)) as T;
      release();
      return t;
    },
    dispose: release,
    keep: () => {
      if (held instanceof tf.Tensor) tf.keep(held);
    },
  };
}
