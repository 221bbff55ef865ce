import * as tf from '@tensorflow/tfjs-core';
import { applyAxisMatrices, outputSize } from './axisMatrices.js';

/**
 * Row-stochastic matrix `[out, in]` of PyTorch's adaptive average pooling along one axis: output i
 * averages inputs floor(i·in/out) .. ceil((i+1)·in/out) − 1 (windows overlap when in/out is not whole).
 */
export function adaptivePoolMatrix(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  for (let i = 0; i < outSize; i++) {
    const start = Math.floor((i * inSize) / outSize);
    const end = Math.ceil(((i + 1) * inSize) / outSize);
    for (let j = start; j < end; j++) m[i * inSize + j] = 1 / (end - start);
  }
  return m;
}

/**
 * `nn.AdaptiveAvgPool2d(size)` on NHWC: `[N, H, W, C]` → `[N, size, size, C]`. Whole ratios use
 * `tf.avgPool`; uneven ones two 2-D matMuls with the pooling matrices (differentiable both ways).
 * @category Ops
 */
export function adaptiveAvgPool2d(x: tf.Tensor4D, size: number | [number, number]): tf.Tensor4D {
  const [oh, ow] = outputSize(x, size, 'adaptiveAvgPool2d');
  const [n, h, w, c] = x.shape;
  if (oh === h && ow === w) return tf.clone(x);
  if (h % oh === 0 && w % ow === 0) return tf.avgPool(x, [h / oh, w / ow], [h / oh, w / ow], 'valid');
  return applyAxisMatrices(x, adaptivePoolMatrix(h, oh), oh, adaptivePoolMatrix(w, ow), ow);
}
