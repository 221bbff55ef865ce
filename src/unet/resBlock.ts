import * as tf from '@tensorflow/tfjs-core';
import { affineSilu, groupNormAffine, type NormAffine } from './groupNorm.js';
import type { Params } from './runtime/params.js';
import { downsampledRows, rowsOf, upsampledRows, type Rows } from './runtime/rows.js';

/** What a ResBlock is built from; `prefix` is its state-dict prefix (`input_blocks.1.0`). */
export interface ResBlockSpec {
  prefix: string;
  cin: number;
  cout: number;
  updown: 'up' | 'down' | null;
}

/**
 * guided-diffusion's `ResBlock` (with dropout only when given, for training): GroupNorm → SiLU →
 * [up/down] → conv, the timestep embedding as FiLM (`useScaleShiftNorm`) or as a bias, GroupNorm → SiLU → conv, plus
 * the skip (identity, or a 1×1 conv when the width changes). With `updown` the same nearest ×2 or
 * 2×2 average pool is applied to the normalised h before the first conv and to the skip input.
 *
 * Normalised, activated and resampled maps are never made whole: each conv reads them band by band
 * ({@link Params.conv3x3Rows}), and the second adds the skip to each band, so at 256×256 a block
 * holds its input, h and its output rather than a dozen map-sized copies.
 * @param emb the block embedding `[N, 4C]` (time embedding, plus label embedding if conditional).
 * @param dropout applied to the activations before the last conv (the reference's `out_layers`).
 */
export function resBlock(
  p: Params,
  spec: ResBlockSpec,
  x: tf.Tensor4D,
  emb: tf.Tensor2D,
  useScaleShiftNorm: boolean,
  dropout?: (x: tf.Tensor4D) => tf.Tensor4D,
): tf.Tensor4D {
  const { prefix: q, cin, cout } = spec;
  const n = x.shape[0];
  const resample = spec.updown === 'up' ? upsampledRows : spec.updown === 'down' ? downsampledRows : (r: Rows) => r;
  const activated = (t: tf.Tensor4D, norm: NormAffine) => rowsOf(t, (band) => affineSilu(band, norm));

  const norm1 = groupNormAffine(x, p(`${q}.in_layers.0.weight`), p(`${q}.in_layers.0.bias`), undefined, {
    rows: p.statRows(x.shape),
  });
  let h = withDispose([norm1.scale, norm1.offset], () =>
    p.conv3x3Rows(resample(activated(x, norm1)), `${q}.in_layers.2`),
  );

  const embOut = tf.tidy(() => p.linear(silu(emb), `${q}.emb_layers.1`));
  const norm2 = withDispose([embOut], () => {
    const [gamma, beta] = [p(`${q}.out_layers.0.weight`), p(`${q}.out_layers.0.bias`)];
    if (!useScaleShiftNorm) {
      const biased = tf.add(h, tf.reshape(embOut, [n, 1, 1, cout])) as tf.Tensor4D;
      h.dispose();
      h = biased;
      return groupNormAffine(h, gamma, beta, undefined, { rows: p.statRows(h.shape) });
    }
    return tf.tidy(() => {
      const [scale, shift] = tf.split(embOut, 2, 1) as [tf.Tensor2D, tf.Tensor2D];
      return groupNormAffine(h, gamma, beta, { scale, shift }, { rows: p.statRows(h.shape) });
    });
  });

  const skip = resample(rowsOf(x));
  // Dropout needs the whole activated map (one mask for all bands); it is only used in training.
  const dropped = dropout ? tf.tidy(() => dropout(affineSilu(h, norm2))) : undefined;
  return withDispose([h, norm2.scale, norm2.offset, ...(dropped ? [dropped] : [])], () =>
    p.conv3x3Rows(dropped ? rowsOf(dropped) : activated(h, norm2), `${q}.out_layers.3`, (y, top) => {
      const s = skip.get(top, y.shape[1]);
      return tf.add(cin === cout ? s : conv1x1(p, s, `${q}.skip_connection`), y) as tf.Tensor4D;
    }),
  );
}

/** `f()`, then frees `tensors` whether or not it threw: at 256×256 one map is 64 MiB per image. */
function withDispose<T>(tensors: tf.Tensor[], f: () => T): T {
  try {
    return f();
  } finally {
    tf.dispose(tensors);
  }
}

/** The 1×1 conv under `prefix` as a linear layer over pixels. */
function conv1x1(p: Params, x: tf.Tensor4D, prefix: string): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const y = p.linear(tf.reshape(x, [n * h * w, c]), prefix);
  return tf.reshape(y, [n, h, w, y.shape[1]]);
}

/** SiLU, x·σ(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x));
}
