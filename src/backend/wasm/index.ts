/**
 * What model code may use of the wasm backend's internals: heap access, parking out of the heap
 * and the SIMD kernels. Everything here falls back to ordinary tfjs (or returns null) on other
 * backends; the threaded build's set-up (`threads.ts`) is the library's business, not the model's.
 * @module
 */
export { heapOffset, heapTensor, heapView, tensorFromFill, wasmHeap, type WasmHeap } from './heap.js';
export { park, ParkingBuffers, type Parked } from './park.js';
export { simdKernels, type SimdKernels } from './simdKernels.js';
