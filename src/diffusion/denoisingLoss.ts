/**
 * The reference's L_simple and its gradient for one batch (or one worker's rows of a batch): the
 * mean squared error of the predicted ε at the given steps t, taken by `tf.variableGrads`.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ADMUNet } from '../unet/admUnet.js';

/** How {@link denoisingGrads} runs the forward. */
export interface DenoisingPass {
  /** Dropout in every ResBlock, with the seed of this batch's masks. */
  dropout?: { rate: number; seed: number };
  /** Recompute each block in the backward pass (`ForwardOptions.checkpoint`). */
  recompute: boolean;
  /**
   * Without it the loss is the mean over these rows; with it, the sum of squares times `scale`, so that the
   * losses and gradients of a batch's parts (scale = 1 / the whole batch's element count) add up to the batch's.
   */
  scale?: number;
}

/**
 * L_simple of `x0` noised by `noise` at steps `t`, and its gradient for every variable of `vars` (by the
 * variable's tfjs name, as `tf.variableGrads` gives them). A `learn_sigma` model trains its ε half: the
 * variance half gets no gradient. Call inside `tf.tidy`.
 */
export function denoisingGrads(
  unet: ADMUNet,
  vars: Map<string, tf.Variable>,
  x0: tf.Tensor4D,
  noise: tf.Tensor4D,
  t: number[],
  pass: DenoisingPass,
): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const c = unet.config.inChannels;
  const xt = unet.qSample(x0, t, noise, { checkRange: false });
  return tf.variableGrads(() => {
    const out = unet.forward(xt, t, { dropout: pass.dropout, checkpoint: pass.recompute }).output!;
    const eps = out.shape[3] === c ? out : tf.slice(out, [0, 0, 0, 0], [-1, -1, -1, c]);
    const squares = tf.square(tf.sub(eps, noise));
    return (pass.scale === undefined ? tf.mean(squares) : tf.mul(tf.sum(squares), pass.scale)) as tf.Scalar;
  }, [...vars.values()]);
}
