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
  // Each stage frees what the previous one made: at 256×256 one activation is 64 MiB per image, and
  // a single scope over the block would hold a dozen of them at once.
  const { prefix: q, cout } = spec;
  const n = x.shape[0];
  const stage = <T extends tf.Tensor>(input: tf.Tensor | null, f: () => T): T => {
    const out = tf.tidy(f);
    if (input && input !== x) input.dispose();
    return out;
  };
  let h: tf.Tensor4D = stage(null, () => silu(groupNorm(x, p(`${q}.in_layers.0.weight`), p(`${q}.in_layers.0.bias`))));
  let skipIn = x;
  if (spec.updown) {
    const resample = spec.updown === 'up' ? upsampleNearest : downsampleAvg;
    h = stage(h, () => resample(h));
    skipIn = resample(x);
  }
  h = stage(h, () => p.conv3x3(h, `${q}.in_layers.2`));
  const embOut = tf.tidy(() => tf.add(tf.matMul(silu(emb), p(`${q}.emb_layers.1.weight`) as tf.Tensor2D), p(`${q}.emb_layers.1.bias`)));
  h = stage(h, (): tf.Tensor4D => {
    if (!useScaleShiftNorm) return silu(groupNorm(tf.add(h, tf.reshape(embOut, [n, 1, 1, cout])), p(`${q}.out_layers.0.weight`), p(`${q}.out_layers.0.bias`)));
    const [scale, shift] = tf.split(embOut, 2, 1) as [tf.Tensor2D, tf.Tensor2D];
    return silu(groupNorm(h, p(`${q}.out_layers.0.weight`), p(`${q}.out_layers.0.bias`), { scale, shift }));
  });
  embOut.dispose();
  h = stage(h, () => p.conv3x3(h, `${q}.out_layers.3`));
  return stage(h, (): tf.Tensor4D => {
    const out = spec.cin === cout ? tf.add(skipIn, h) : tf.add(conv1x1(skipIn, p(`${q}.skip_connection.weight`), p(`${q}.skip_connection.bias`)), h);
    if (skipIn !== x) skipIn.dispose();
    return out as tf.Tensor4D;
  });
}

/** SiLU, x·σ(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x));
}
