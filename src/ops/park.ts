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
  if (!heap || recordingGradients()) {
    let kept: T | null = x;
    return {
      shape: x.shape,
      take: () => {
        if (!kept) throw new Error('park: this tensor was already taken');
        const t = kept;
        kept = null;
        return t;
      },
      dispose: () => {
        kept?.dispose();
        kept = null;
      },
    };
  }
  let data: Float32Array | null = heapView(heap, x).slice();
  const shape = x.shape;
  x.dispose();
  return {
    shape,
    take: () => {
      if (!data) throw new Error('park: this tensor was already taken');
      const values = data;
      data = null;
      return tensorFromFill(shape, (dst) => dst.set(values)) as T;
    },
    dispose: () => {
      data = null;
    },
  };
}
