/**
 * Multi-head scaled-dot-product attention as one op with its own gradient, built only from plain
 * 2-D matMuls, so that it is fast on wasm in both directions.
 *
 * Why not tfjs's ops: batched matMuls and the transpose flags autodiff uses run far slower on
 * wasm than plain 2-D ones (docs/backends.md#throughput, docs/tuning.md#attention), so the work is one pair of 2-D matMuls per (example,
 * head). Cutting a tensor into those pieces with `tf.split`/`tf.slice` costs a copy of the whole
 * input per piece on wasm (quadratic in the number of pieces), so pieces are cut with
 * {@link sliceRows}, which copies only the piece — but whose gradient pads every piece back to
 * the full size. Hence one `tf.customGrad` whose backward pass is written by hand, from the same
 * kind of pieces (softmax recomputed there, so no [L, L] matrix per head is kept between passes).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { sliceRows } from '../backend/sliceRows.js';

/** `[B, L, H·hd]` → `[B·H, L, hd]`: the rows of one (example, head) become one contiguous piece. */
function toGroups(x: tf.Tensor, b: number, len: number, heads: number, hd: number): tf.Tensor3D {
  return tf.reshape(tf.transpose(tf.reshape(x, [b, len, heads, hd]), [0, 2, 1, 3]), [b * heads, len, hd]);
}

/** Inverse of {@link toGroups} for a list of `[L, hd]` pieces in (example, head) order. */
function fromGroups(pieces: tf.Tensor[], b: number, len: number, heads: number, hd: number): tf.Tensor3D {
  return tf.reshape(tf.transpose(tf.reshape(tf.concat(pieces, 0), [b, heads, len, hd]), [0, 2, 1, 3]), [
    b,
    len,
    heads * hd,
  ]);
}

const piece = (x: tf.Tensor3D, g: number): tf.Tensor2D => tf.reshape(sliceRows(x, g, 1), [x.shape[1], x.shape[2]]);

/**
 * `softmax(q·kᵀ)·v` for every example and head: q, k, v `[B, L, H·hd]` (heads side by side on the
 * last axis, as PyTorch's `reshape(B, N, H, hd)`), q already scaled. Returns `[B, L, H·hd]`.
 * @throws InputError for mismatched shapes or a width not divisible by `heads`.
 * @category Ops
 */
export function multiHeadAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, heads: number): tf.Tensor3D {
  for (const [name, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const)
    if (!(t instanceof tf.Tensor) || t.rank !== 3 || !tf.util.arraysEqual(t.shape, q.shape))
      throw new InputError(`multiHeadAttention: ${name} must be [B, L, D] like q [${q?.shape}]`);
  const [b, len, dim] = q.shape;
  if (!Number.isInteger(heads) || heads < 1 || dim % heads !== 0)
    throw new InputError(`multiHeadAttention: width ${dim} does not split into ${heads} heads`);
  const hd = dim / heads;
  const groups = b * heads;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qq, kk, vv, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc];
    save([qq, kk, vv]);
    const qg = toGroups(qq, b, len, heads, hd);
    const ktg = tf.transpose(toGroups(kk, b, len, heads, hd), [0, 2, 1]) as tf.Tensor3D; // [G, hd, L]
    const vg = toGroups(vv, b, len, heads, hd);
    const outs: tf.Tensor[] = [];
    for (let g = 0; g < groups; g++)
      outs.push(tf.tidy(() => tf.matMul(tf.softmax(tf.matMul(piece(qg, g), piece(ktg, g))), piece(vg, g))));
    return {
      value: fromGroups(outs, b, len, heads, hd),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sq, sk, sv] = saved;
        const qg2 = toGroups(sq, b, len, heads, hd);
        const kg2 = toGroups(sk, b, len, heads, hd);
        const ktg2 = tf.transpose(kg2, [0, 2, 1]) as tf.Tensor3D;
        const vtg2 = tf.transpose(toGroups(sv, b, len, heads, hd), [0, 2, 1]) as tf.Tensor3D; // [G, hd, L]
        const dog = toGroups(dy, b, len, heads, hd);
        const dq: tf.Tensor[] = [];
        const dk: tf.Tensor[] = [];
        const dv: tf.Tensor[] = [];
        for (let g = 0; g < groups; g++) {
          const [a, c, e] = tf.tidy(() => {
            const qi = piece(qg2, g);
            const doi = piece(dog, g);
            const p = tf.softmax(tf.matMul(qi, piece(ktg2, g)));
            const dp = tf.matMul(doi, piece(vtg2, g));
            // softmax backward: dS = P ⊙ (dP − rowsum(dP ⊙ P))
            const ds = tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), 1, true)));
            return [tf.matMul(ds, piece(kg2, g)), tf.matMul(tf.transpose(ds), qi), tf.matMul(tf.transpose(p), doi)];
          });
          dq.push(a);
          dk.push(c);
          dv.push(e);
        }
        return [
          fromGroups(dq, b, len, heads, hd),
          fromGroups(dk, b, len, heads, hd),
          fromGroups(dv, b, len, heads, hd),
        ];
      },
    };
  });
  return op(q, k, v) as tf.Tensor3D;
}
