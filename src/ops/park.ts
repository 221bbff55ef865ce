import * as tf from '@tensorflow/tfjs-core';
import { recordingGradients } from './noGrad.js';
import { heapView, tensorFromFill, wasmHeap } from './wasmHeap.js';

/** A tensor set aside until it is needed again; see {@link park}. */
export interface Parked<T extends tf.Tensor> {
  /** The tensor's shape, parked or not. */
  readonly shape: T['shape'];
  /** The tensor again, owned by the caller. Once only. */
  take(): T;
  /** Frees it without taking it (a no-op once taken). */
  dispose(): void;
}

/**
 * Sets `x` aside, taking ownership of it. On wasm, outside gradient recording, a float32 tensor of
 * at least `minBytes` is copied to JS memory and freed from the heap until {@link Parked.take}
 * uploads it again: the U-Net's encoder maps wait there for their decoder blocks (192 MiB at
 * 256×256 for one image), and a heap that never shrinks fragments around such long-lived blocks,
 * which left the 256 model's heap near twice its live tensors. Elsewhere `x` is kept as it is.
 */
export function park<T extends tf.Tensor>(x: T, minBytes = 0): Parked<T> {
  const heap = x.dtype === 'float32' && 4 * x.size >= minBytes ? wasmHeap() : null;
  const shape = x.shape;
  // The tensor itself, or its values in JS memory once it has left the heap; null once taken.
  let held: T | Float32Array | null = x;
  if (heap && !recordingGradients()) {
    held = heapView(heap, x).slice();
    x.dispose();
  }
  return {
    shape,
    take: () => {
      if (!held) throw new Error('park: this tensor was already taken');
      const values = held;
      held = null;
      return values instanceof Float32Array ? (tensorFromFill(shape, (dst) => dst.set(values)) as T) : values;
    },
    dispose: () => {
      if (held instanceof tf.Tensor) held.dispose();
      held = null;
    },
  };
}
