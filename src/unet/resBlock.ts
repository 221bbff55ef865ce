import * as tf from '@tensorflow/tfjs-core';
import { conv1x1 } from './conv.js';
import { groupNorm } from './groupNorm.js';
import type { Params } from './params.js';
import { downsampleAvg, upsampleNearest } from './resample.js';

/** What a ResBlock is built from; `prefix` is its state-dict prefix (`input_blocks.1.0`). */
export interface ResBlockSpec {
  prefix: string;
  cin: number;
  cout: number;
  updown: 'up' | 'down' | null;
}

/**
 * guided-diffusion's `ResBlock` in eval mode (dropout off): GroupNorm → SiLU → [up/down] → conv,
 * the timestep embedding as FiLM (`useScaleShiftNorm`) or as a bias, GroupNorm → SiLU → conv, plus
 * the skip (identity, or a 1×1 conv when the width changes). With `updown` the same nearest ×2 or
 * 2×2 average pool is applied to the normalised h before the first conv and to the skip input.
 * @param emb the block embedding `[N, 4C]` (time embedding, plus label embedding if conditional).
 */
export function resBlock(p: Params, spec: ResBlockSpec, x: tf.Tensor4D, emb: tf.Tensor2D, useScaleShiftNorm: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    const { prefix: q, cout } = spec;
    let h = silu(groupNorm(x, p(`${q}.in_layers.0.weight`), p(`${q}.in_layers.0.bias`)));
    let skipIn = x;
    if (spec.updown) {
      const resample = spec.updown === 'up' ? upsampleNearest : downsampleAvg;
      h = resample(h);
      skipIn = resample(x);
    }
    h = p.conv3x3(h, `${q}.in_layers.2`);
    const embOut = tf.add(tf.matMul(silu(emb), p(`${q}.emb_layers.1.weight`) as tf.Tensor2D), p(`${q}.emb_layers.1.bias`));
    const n = x.shape[0];
    if (useScaleShiftNorm) {
      const [scale, shift] = tf.split(embOut, 2, 1).map((e) => tf.reshape(e, [n, 1, 1, cout]));
      h = groupNorm(h, p(`${q}.out_layers.0.weight`), p(`${q}.out_layers.0.bias`));
      h = tf.add(tf.mul(h, tf.add(scale, 1)), shift);
    } else {
      h = tf.add(h, tf.reshape(embOut, [n, 1, 1, cout]));
      h = groupNorm(h, p(`${q}.out_layers.0.weight`), p(`${q}.out_layers.0.bias`));
    }
    h = p.conv3x3(silu(h), `${q}.out_layers.3`);
    const skip = spec.cin === cout ? skipIn : conv1x1(skipIn, p(`${q}.skip_connection.weight`), p(`${q}.skip_connection.bias`));
    return tf.add(skip, h);
  });
}

/** SiLU, x·σ(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x));
}
