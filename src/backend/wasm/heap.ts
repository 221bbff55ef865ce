/**
 * Direct access to the wasm backend's heap, for the few places where tfjs-backend-wasm's generic
 * kernels copy far more than needed (its `slice` reads the whole input back to JS first) or where
 * data can be written straight into the heap (streamed weights). Relies on internals of
 * tfjs-backend-wasm 4.22.0; every caller falls back to ordinary ops when {@link wasmHeap} is null.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

interface WasmData {
  memoryOffset: number;
  dtype: string;
}
/** The wasm backend's internals that these helpers use. */
export interface WasmHeap {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(id: object): WasmData | undefined };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

/** The active backend's heap accessors, or null when the backend is not the known wasm one. */
export function wasmHeap(): WasmHeap | null {
  if (tf.getBackend() !== 'wasm') return null;
  const b = tf.backend() as unknown as Partial<WasmHeap>;
  if (!b.wasm?.HEAPU8 || typeof b.makeOutput !== 'function' || !b.dataIdMap) return null;
  return b as WasmHeap;
}

/** Where a float32 tensor's data starts in the wasm heap, in bytes (fixed for the tensor's life). */
export function heapOffset(heap: WasmHeap, t: tf.TensorInfo): number {
  const d = heap.dataIdMap.get(t.dataId);
  if (!d || d.dtype !== 'float32') throw new Error('not a float32 tensor of the active wasm backend');
  return d.memoryOffset;
}

/** A float32 view of a tensor's data in the wasm heap (valid until the heap grows). */
export function heapView(heap: WasmHeap, t: tf.TensorInfo): Float32Array {
  return new Float32Array(
    heap.wasm.HEAPU8.buffer,
    heapOffset(heap, t),
    t.shape.reduce((a, b) => a * b, 1),
  );
}

/**
 * A new float32 tensor whose values `fill` writes straight into the heap (no intermediate JS copy
 * on wasm). Tracked like any tensor: inside `tf.tidy` it is disposed with the scope.
 */
export function tensorFromFill(shape: number[], fill: (dst: Float32Array) => void): tf.Tensor {
  const heap = wasmHeap();
  if (!heap) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    fill(data);
    return tf.tensor(data, shape, 'float32');
  }
  const t = heapTensor(heap, shape);
  fill(heapView(heap, t));
  return t;
}

/** A new float32 tensor in the heap whose values are not set: the caller writes every one. */
export function heapTensor(heap: WasmHeap, shape: number[]): tf.Tensor {
  return tf.engine().makeTensorFromTensorInfo(heap.makeOutput(shape, 'float32'));
}
