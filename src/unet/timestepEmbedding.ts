import * as tf from '@tensorflow/tfjs-core';

/**
 * Sinusoidal embedding of integer steps, `[cos(t·f), sin(t·f)]` with
 * `f_i = exp(−ln(maxPeriod)·i/half)`; zero-padded when `dim` is odd. Frequencies and arguments are
 * rounded to float32 as the reference computes them, so t = 999 matches to float32 rounding.
 * @returns `[t.length, dim]`, owned by the caller.
 * @category Backbone
 */
export function timestepEmbedding(t: readonly number[], dim: number, maxPeriod = 10000): tf.Tensor2D {
  const half = Math.floor(dim / 2);
  const out = new Float32Array(t.length * dim);
  const negLog = Math.fround(-Math.log(maxPeriod));
  const freqs = Float32Array.from({ length: half }, (_, i) => Math.exp(Math.fround(Math.fround(negLog * i) / half)));
  t.forEach((step, n) => {
    for (let i = 0; i < half; i++) {
      const arg = Math.fround(Math.fround(step) * freqs[i]);
      out[n * dim + i] = Math.cos(arg);
      out[n * dim + half + i] = Math.sin(arg);
    }
  });
  return tf.tensor2d(out, [t.length, dim]);
}
