import * as tf from '@tensorflow/tfjs-core';
import { groupNorm } from './groupNorm.js';
import type { Params } from './params.js';
import { sliceRows } from '../ops/sliceRows.js';

/**
 * Multi-head self-attention on packed projections, as guided-diffusion's `QKVAttention` (new
 * order: q, k, v first, then heads) or `QKVAttentionLegacy` (heads first, then each head's
 * q, k, v). The product is scaled by `1/√ch` (the reference scales q and k by `ch^(-1/4)` each);
 * the output channel of head h, channel c, is `h·ch + c` in both orders.
 *
 * Works per example and head with plain 2-D matMuls on contiguous row blocks of qkvᵀ: batched or
 * transposed matMuls run 10–200× slower on wasm (BACKENDS.md §2).
 * @param qkv `[N, L, 3C]` (tokens last-but-one, unlike the reference's `[N, 3C, L]`).
 * @returns `[N, L, C]`.
 */
export function qkvAttention(qkv: tf.Tensor3D, heads: number, legacy: boolean): tf.Tensor3D {
  return tf.tidy(() => {
    const [n, l, width] = qkv.shape;
    const c = width / 3;
    const ch = c / heads;
    const scale = 1 / Math.sqrt(ch);
    const flat = tf.reshape(qkv, [n * l, width]);
    const perExample: tf.Tensor2D[] = [];
    for (let e = 0; e < n; e++) {
      const rowsT = tf.transpose(n === 1 ? flat : sliceRows(flat, e * l, l)) as tf.Tensor2D; // [3C, L]
      const perHead: tf.Tensor2D[] = [];
      for (let h = 0; h < heads; h++) {
        const [qAt, kAt, vAt] = legacy ? [3 * h * ch, 3 * h * ch + ch, 3 * h * ch + 2 * ch] : [h * ch, c + h * ch, 2 * c + h * ch];
        const q = tf.transpose(tf.mul(sliceRows(rowsT, qAt, ch), scale)) as tf.Tensor2D; // [L, ch]
        const weight = tf.softmax(tf.matMul(q, sliceRows(rowsT, kAt, ch))); // [L, L]
        perHead.push(tf.matMul(weight, tf.transpose(sliceRows(rowsT, vAt, ch)) as tf.Tensor2D)); // [L, ch]
      }
      perExample.push(heads === 1 ? perHead[0] : tf.concat(perHead, 1));
    }
    return tf.reshape(n === 1 ? perExample[0] : tf.concat(perExample, 0), [n, l, c]);
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
