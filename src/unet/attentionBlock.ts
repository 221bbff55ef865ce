import * as tf from '@tensorflow/tfjs-core';
import { groupNorm } from './groupNorm.js';
import type { Params } from './runtime/params.js';
import { multiHeadAttention } from '../ops/multiHeadAttention.js';
import { sliceRows } from '../backend/sliceRows.js';

/**
 * Multi-head self-attention on packed projections, as guided-diffusion's `QKVAttention` (new
 * order: q, k, v first, then heads) or `QKVAttentionLegacy` (heads first, then each head's
 * q, k, v). The product is scaled by `1/√ch` (the reference scales q and k by `ch^(-1/4)` each);
 * the output channel of head h, channel c, is `h·ch + c` in both orders.
 *
 * The attention itself is {@link multiHeadAttention}: plain 2-D matMuls per example and head, with
 * a hand-written backward pass (batched or transposed matMuls are far slower on wasm; docs/tuning.md#attention).
 * @param qkv `[N, L, 3C]` (tokens last-but-one, unlike the reference's `[N, 3C, L]`).
 * @returns `[N, L, C]`.
 */
export function qkvAttention(qkv: tf.Tensor3D, heads: number, legacy: boolean): tf.Tensor3D {
  return tf.tidy(() => {
    const [n, l, width] = qkv.shape;
    const c = width / 3;
    const ch = c / heads;
    // → [3, N·L·C] with q, k, v each laid out [N, L, heads·ch], by rank-3 transposes: wasm's rank-5 one
    // (N > 1) takes a slow generic path (docs/tuning.md#attention).
    const split = legacy
      ? tf.transpose(tf.reshape(qkv, [n * l * heads, 3, ch]), [1, 0, 2])
      : tf.transpose(tf.reshape(qkv, [n * l, 3, c]), [1, 0, 2]);
    const rows = tf.reshape(split, [3, n * l * c]);
    const [q, k, v] = [0, 1, 2].map((i) => tf.reshape(sliceRows(rows, i, 1), [n, l, c]) as tf.Tensor3D);
    return multiHeadAttention(tf.mul(q, 1 / Math.sqrt(ch)), k, v, heads);
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
    const normed = tf.reshape(groupNorm(x, p(`${q}.norm.weight`), p(`${q}.norm.bias`)), [n * h * w, c]) as tf.Tensor2D;
    const qkv = p.linear(normed, `${q}.qkv`);
    const a = qkvAttention(tf.reshape(qkv, [n, h * w, 3 * c]), spec.heads, legacy);
    const out = p.linear(tf.reshape(a, [n * h * w, c]), `${q}.proj_out`);
    return tf.add(x, tf.reshape(out, [n, h, w, c]));
  });
}
