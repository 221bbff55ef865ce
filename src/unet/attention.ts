import * as tf from '@tensorflow/tfjs-core';
import { groupNorm } from './groupNorm.js';
import type { Params } from './params.js';

/**
 * Multi-head self-attention on packed projections, as guided-diffusion's `QKVAttention` (new
 * order: q, k, v first, then heads) or `QKVAttentionLegacy` (heads first, then each head's
 * q, k, v). Both q and k are scaled by `ch^(-1/4)`; the output channel of head h, channel c, is
 * `h·ch + c` in both orders.
 * @param qkv `[N, L, 3C]` (tokens last-but-one, unlike the reference's `[N, 3C, L]`).
 * @returns `[N, L, C]`.
 */
export function qkvAttention(qkv: tf.Tensor3D, heads: number, legacy: boolean): tf.Tensor3D {
  return tf.tidy(() => {
    const [n, l, width] = qkv.shape;
    const ch = width / (3 * heads);
    // → [3, N·heads, L, ch]
    const split = legacy
      ? tf.transpose(tf.reshape(qkv, [n, l, heads, 3, ch]), [3, 0, 2, 1, 4])
      : tf.transpose(tf.reshape(qkv, [n, l, 3, heads, ch]), [2, 0, 3, 1, 4]);
    const [q, k, v] = tf.unstack(tf.reshape(split, [3, n * heads, l, ch]));
    const scale = 1 / Math.sqrt(Math.sqrt(ch));
    const weight = tf.softmax(tf.matMul(tf.mul(q, scale), tf.mul(k, scale), false, true));
    const a = tf.matMul(weight, v); // [N·heads, L, ch]
    return tf.reshape(tf.transpose(tf.reshape(a, [n, heads, l, ch]), [0, 2, 1, 3]), [n, l, heads * ch]);
  });
}

/** What an AttentionBlock is built from. */
export interface AttentionSpec {
  prefix: string;
  channels: number;
  heads: number;
}

/** guided-diffusion's `AttentionBlock`: GroupNorm → qkv (1×1) → attention → proj_out (1×1), residual. */
export function attentionBlock(p: Params, spec: AttentionSpec, x: tf.Tensor4D, legacy: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const q = spec.prefix;
    const normed = tf.reshape(groupNorm(x, p(`${q}.norm.weight`), p(`${q}.norm.bias`)), [n * h * w, c]);
    const qkv = tf.add(tf.matMul(normed, p(`${q}.qkv.weight`) as tf.Tensor2D), p(`${q}.qkv.bias`));
    const a = qkvAttention(tf.reshape(qkv, [n, h * w, 3 * c]), spec.heads, legacy);
    const out = tf.add(tf.matMul(tf.reshape(a, [n * h * w, c]), p(`${q}.proj_out.weight`) as tf.Tensor2D), p(`${q}.proj_out.bias`));
    return tf.add(x, tf.reshape(out, [n, h, w, c]));
  });
}
