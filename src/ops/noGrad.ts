/**
 * PyTorch's `torch.no_grad()` for tfjs: run a computation whose results are constants to any
 * gradient taken around it.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * Runs `fn` with the gradient tape off and returns its tensors as constants.
 *
 * Why: inside `tf.variableGrads`/`tf.grads` every op is recorded and the tensors each op saves
 * for its gradient are kept alive until the gradient is done, even for ops no trainable
 * variable depends on. A frozen U-Net pass under a training step would hold all its
 * intermediates. tfjs has no `no_grad`; the forward function of a `tf.customGrad` runs with the
 * tape off, so `fn` runs inside one. customGrad returns a single tensor, hence the results are
 * packed into one flat tensor and unpacked afterwards (one copy of the outputs).
 *
 * @param fn computes the tensors; intermediates are freed (it runs in a tidy).
 * @returns the tensors fn returned, owned by the caller.
 * @category Ops
 */
export function noGrad<T extends tf.Tensor>(fn: () => T[]): T[] {
  let shapes: number[][] = [];
  let dtypes: tf.DataType[] = [];
  const run = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const anchor = args[0] as tf.Tensor;
    const outs = fn();
    shapes = outs.map((t) => t.shape);
    dtypes = outs.map((t) => t.dtype);
    const flat =
      outs.length === 0
        ? tf.zeros([0])
        : tf.concat(
            outs.map((t) => tf.reshape(tf.cast(t, 'float32'), [-1])),
            0,
          );
    // The anchor is the only input; nothing upstream of it is trainable, so its gradient is never used.
    return { value: flat, gradFunc: () => tf.zerosLike(anchor) };
  });
  return tf.tidy(() => {
    const anchor = tf.scalar(0);
    const flat = run(anchor);
    if (shapes.length === 0) return [] as T[];
    const parts = tf.split(
      flat,
      shapes.map((s) => s.reduce((a, b) => a * b, 1)),
      0,
    );
    return parts.map((p, i) => {
      const r = tf.reshape(p, shapes[i]);
      return (dtypes[i] === 'float32' ? r : tf.cast(r, dtypes[i])) as T;
    });
  });
}
