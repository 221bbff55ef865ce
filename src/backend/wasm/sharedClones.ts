/**
 * Zero-copy `Identity` and same-dtype `Cast` on the wasm backend. tfjs-backend-wasm's own kernels
 * copy the data, and tfjs-core runs an Identity for every tensor the gradient tape saves
 * (`Engine.clone`) and a float32 Cast inside several gradients (Mul's casts both inputs): in one
 * training step of the default backbone that was about 2,700 copies, a few hundred of them of whole
 * activation maps (docs/training.md#where-a-steps-time-goes). The cpu backend (and wasm's own
 * Reshape) share the data by reference count instead; tfjs tensors are immutable, so that is safe.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

interface RefCounting {
  incRef(dataId: tf.DataId): void;
}

let installed = false;

/**
 * Registers the sharing kernels for the `wasm` backend, once: later calls (and calls before the
 * wasm backend's kernels are registered, or for a build without reference counting) do nothing.
 * Any other Cast (another dtype) and string tensors keep the stock kernels.
 * @returns whether the sharing kernels are in place.
 */
export function shareWasmClones(): boolean {
  if (installed) return true;
  const identity = tf.getKernel('Identity', 'wasm');
  const cast = tf.getKernel('Cast', 'wasm');
  if (!identity || !cast) return false;
  const share = (args: Parameters<tf.KernelFunc>[0], stock: tf.KernelFunc) => {
    const x = args.inputs.x as tf.TensorInfo;
    const backend = args.backend as unknown as Partial<RefCounting>;
    const dtype = (args.attrs?.dtype as tf.DataType | undefined) ?? x.dtype;
    if (x.dtype === 'string' || dtype !== x.dtype || typeof backend.incRef !== 'function') return stock(args);
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  for (const stock of [identity, cast]) {
    tf.unregisterKernel(stock.kernelName, 'wasm');
    tf.registerKernel({ ...stock, kernelFunc: (args) => share(args, stock.kernelFunc) });
  }
  return (installed = true);
}
