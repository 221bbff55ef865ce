/**
 * Matrix products that stay fast on wasm in both directions. tfjs's own matMul gradient uses the
 * `transposeA`/`transposeB` flags, which wasm runs 10–200× slower than a plain 2-D matMul
 * (docs/backends.md#throughput); these ops transpose explicitly so that the forward and both gradients are
 * plain, untransposed 2-D matMuls.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';

// Built once: the gradient of `a · b` is `dy · bᵀ` for a and `aᵀ · dy` for b, each with an explicit
// transpose so XNNPACK's plain 2-D path runs.
const matMulWithGrad = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as tf.Tensor2D[];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
    },
  };
});

/**
 * `a · b` for 2-D float32 tensors, with a gradient made of plain 2-D matMuls and explicit
 * transposes (fast on wasm, where tfjs's default matMul gradient is not).
 * @throws InputError when the operands are not 2-D or their inner sizes differ.
 * @category Ops
 */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (!(a instanceof tf.Tensor) || !(b instanceof tf.Tensor) || a.rank !== 2 || b.rank !== 2)
    throw new InputError(
      `matMul2d needs two 2-D tensors, got ranks ${a instanceof tf.Tensor ? a.rank : typeof a} and ${b instanceof tf.Tensor ? b.rank : typeof b}`,
    );
  if (a.shape[1] !== b.shape[0]) throw new InputError(`matMul2d: inner sizes differ: [${a.shape}] · [${b.shape}]`);
  return matMulWithGrad(a, b) as tf.Tensor2D;
}

/**
 * `x · rowsᵀ` for `rows` `[out, in]` (a weight as PyTorch lays it out), computed as `(rows · xᵀ)ᵀ`
 * with explicit transposes. On wasm XNNPACK repacks, on one thread, the right operand of every matMul
 * it has not seen; with the rows on the left only xᵀ is repacked, which pays when x has few rows and
 * the rows are new on every call (streamed weights, freshly transformed filters).
 * @throws InputError when the operands are not 2-D or their inner sizes differ.
 */
export function matMulRowsLeft(x: tf.Tensor2D, rows: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.transpose(matMul2d(rows, tf.transpose(x))));
}

/**
 * A linear layer on the last axis: `x · w + b` for x `[..., in]`, w `[in, out]` (the transpose of
 * PyTorch's `[out, in]`), b `[out]`. Any leading axes are folded into one 2-D matMul.
 * @throws InputError when the shapes do not fit.
 * @category Ops
 */
export function dense<R extends tf.Rank>(x: tf.Tensor<R>, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor<R> {
  if (!(x instanceof tf.Tensor) || x.rank < 1) throw new InputError('dense: x must be a tensor of rank ≥ 1');
  if (!(w instanceof tf.Tensor) || w.rank !== 2) throw new InputError('dense: w must be a 2-D [in, out] tensor');
  const inDim = x.shape[x.rank - 1];
  if (inDim !== w.shape[0])
    throw new InputError(`dense: x has ${inDim} features on its last axis but w is [${w.shape}] ([in, out])`);
  if (b !== undefined && (b.rank !== 1 || b.shape[0] !== w.shape[1]))
    throw new InputError(`dense: bias must be [${w.shape[1]}], got [${b.shape}]`);
  return tf.tidy(() => {
    const flat = x.rank === 2 ? (x as unknown as tf.Tensor2D) : (tf.reshape(x, [-1, inDim]) as tf.Tensor2D);
    let y: tf.Tensor2D = matMul2d(flat, w);
    if (b !== undefined) y = tf.add(y, b);
    return (x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), w.shape[1]] as tf.ShapeMap[R])) as tf.Tensor<R>;
  });
}
