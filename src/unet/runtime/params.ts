import type * as tf from '@tensorflow/tfjs-core';
import type { Rows } from './rows.js';

/**
 * What layers get from the model: weights by their reference state-dict names, already in tfjs
 * layout (HWIO convs, `[in, out]` matrices), and the model's 3×3 convolution. Layers take this
 * rather than tensors so that where weights live (resident, streamed), how a 3×3 conv is computed
 * (direct, Winograd) and how large maps are split into bands stay the business of the runner that
 * implements it (`LayerRunner`).
 */
export interface Params {
  (name: string): tf.Tensor;
  /**
   * 3×3 conv with the weight and bias under `prefix` (`….weight`, `….bias`), torch padding 1; with
   * stride 1 it is {@link Params.conv3x3Rows} of the map's rows.
   */
  conv3x3(x: tf.Tensor4D, prefix: string, stride?: 1 | 2): tf.Tensor4D;
  /**
   * Stride-1 3×3 conv (torch padding 1) of a map made band by band: on a large map each band of
   * output rows is computed from the input rows it needs, passed through `epilogue` (given the
   * band and its first row) and joined; a small map is one band.
   */
  conv3x3Rows(x: Rows, prefix: string, epilogue?: (y: tf.Tensor4D, top: number) => tf.Tensor4D): tf.Tensor4D;
  /**
   * `x · W + b` for the linear layer (or 1×1 conv, over pixels) under `prefix`: x `[rows, in]`, W
   * the weight in tfjs layout `[…, in, out]`.
   */
  linear(x: tf.Tensor2D, prefix: string): tf.Tensor2D;
  /** Rows per band for statistics over a map of this shape. */
  statRows(shape: readonly number[]): number;
}
