/**
 * Small tricks on tfjs's engine that the rest of the library relies on.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';

/**
 * Another tensor on the same data, without copying it: `tf.clone` runs the Identity kernel, which
 * on wasm copies the whole buffer (64 MiB for one 256×256×256 map), while a reshape to the same
 * shape only adds a reference. Dispose it like any tensor; differentiable.
 */
export function alias<T extends tf.Tensor>(x: T): T {
  return tf.reshape(x, x.shape) as T;
}

/**
 * Whether a gradient is being recorded around the caller (inside `tf.grad`, `tf.variableGrads`…):
 * then ops must stay on the tape, so memory tricks that step outside tfjs's ops are off.
 */
export function recordingGradients(): boolean {
  return (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth > 0;
}

/**
 * Throws an InputError that says what to do when tfjs has no backend registered: tfjs's own error at the first
 * tensor ("No backend found in registry") names no fix.
 */
export function requireBackend(who: string): void {
  if (Object.keys(tf.engine().registryFactory).length === 0)
    throw new InputError(
      `${who} needs a TensorFlow.js backend and none is registered: await useBestBackend() from diffssl first (or import one, e.g. @tensorflow/tfjs-backend-wasm, and await tf.setBackend)`,
    );
}
