import * as tf from '@tensorflow/tfjs-core';
import { applyAxisMatrices, outputSize } from './axisMatrices.js';

/**
 * Row-stochastic `[out, in]` matrix of PyTorch's bilinear resize along one axis (`align_corners=False`):
 * output i samples input `max(0, (i + ½)·in/out − ½)`, between its two neighbours, the last one clamped.
 */
export function bilinearMatrix(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const scale = Math.fround(inSize / outSize); // float32 arithmetic, as torch's kernel
  for (let i = 0; i < outSize; i++) {
    const src = Math.max(0, Math.fround(Math.fround(scale * (i + 0.5)) - 0.5));
    const i0 = Math.floor(src);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l = Math.fround(src - i0);
    m[i * inSize + i0] += 1 - l;
    m[i * inSize + i1] += l;
  }
  return m;
}

/**
 * PyTorch's `F.interpolate(x, size, mode='bilinear', align_corners=False)` on NHWC: `[N, H, W, C]` →
 * `[N, size, size, C]`, half-pixel centres, samples outside the map clamped to its edge (checked against
 * torch in test/ops/interpolate.test.ts). Two matMuls with {@link bilinearMatrix}, not `tf.image.resizeBilinear`:
 * the latter's gradient kernels (cpu and wasm) ignore half-pixel centres, so its gradients are wrong.
 * A map already of that size comes back as a copy.
 * @category Ops
 */
export function interpolateBilinear(x: tf.Tensor4D, size: number | [number, number]): tf.Tensor4D {
  const [oh, ow] = outputSize(x, size, 'interpolateBilinear');
  const [, h, w] = x.shape;
  if (h === oh && w === ow) return tf.clone(x);
  return applyAxisMatrices(x, bilinearMatrix(h, oh), oh, bilinearMatrix(w, ow), ow);
}
