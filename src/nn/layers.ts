/**
 * Small layers the heads share: LayerNorm, BatchNorm2d with PyTorch's train/eval semantics,
 * exact GELU, and a PyTorch-style linear layer built on the wasm-friendly {@link dense}.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { dense } from '../ops/dense.js';
import { filled, floatEntry, Init, type FloatEntry, type StateEntry } from './state.js';
import { Module } from './module.js';

/**
 * Receives an intermediate tensor during a forward pass, under the key the reference fixtures use
 * (`pooled`, `tokens`, `t0.attn_block1`, …). The tensor is only valid during the call: read it
 * (`dataSync`) or `tf.keep(tf.clone(t))` it there.
 * @category Heads
 */
export type Tap = (key: string, tensor: tf.Tensor) => void;

/**
 * Options of a head's forward pass.
 * @category Heads
 */
export interface ForwardPassOptions {
  /** Training mode: BatchNorm uses and updates batch statistics (default false: eval mode, as for the fixtures). */
  training?: boolean;
  /** Receives every intermediate under its fixture key. */
  tap?: Tap;
}

/**
 * Checks a head's input feature map: an NHWC rank-4 tensor with `channels` channels.
 * @param who the module as its errors start (`Tokenizer`, `head`); `self` as they end (`tokenizer`, `head`).
 * @throws InputError saying what was given instead.
 */
export function checkFeatureMap(x: unknown, channels: number, who: string, self: string): asserts x is tf.Tensor4D {
  if (!(x instanceof tf.Tensor) || x.rank !== 4)
    throw new InputError(
      `${who}: x must be an NHWC rank-4 tensor, got ${x instanceof tf.Tensor ? `rank ${x.rank}` : typeof x}`,
    );
  if (x.shape[3] !== channels)
    throw new InputError(`${who}: x has ${x.shape[3]} channels, this ${self} takes ${channels} (NHWC [N, H, W, C])`);
}

/** PyTorch's default epsilon for LayerNorm and BatchNorm. */
export const NORM_EPS = 1e-5;

/** GELU in its exact form `x·Φ(x) = 0.5·x·(1 + erf(x/√2))`, as `nn.GELU()` computes it. */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))) as T);
}

/**
 * Normalises over `axes` with biased variance, then `· gamma + beta` (broadcast over the rest).
 * `nn.LayerNorm(shape)` normalises over the trailing axes of that shape.
 */
export function layerNorm<T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  axes: number[],
  eps = NORM_EPS,
): T {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, axes, true);
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(normed, gamma), beta) as T;
  });
}

/** `nn.Linear(in, out)`: weight `[out, in]` in the reference, kept `[in, out]` here. */
export class Linear extends Module {
  readonly weight: FloatEntry;
  readonly bias: FloatEntry | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    init: Init,
    bias = true,
  ) {
    super();
    this.weight = floatEntry(
      'weight',
      [outFeatures, inFeatures],
      'linear',
      init.fanIn([outFeatures, inFeatures], inFeatures),
    );
    this.bias = bias ? floatEntry('bias', [outFeatures], 'same', init.fanIn([outFeatures], inFeatures)) : null;
  }
  apply<R extends tf.Rank>(x: tf.Tensor<R>): tf.Tensor<R> {
    return dense(
      x,
      this.weight.variable as tf.Tensor as tf.Tensor2D,
      this.bias?.variable as tf.Tensor as tf.Tensor1D | undefined,
    );
  }
  state(): StateEntry[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }
}

/** `nn.LayerNorm(dim)` over the last axis. */
export class LayerNorm extends Module {
  readonly weight: FloatEntry;
  readonly bias: FloatEntry;
  constructor(
    readonly dim: number,
    readonly eps = NORM_EPS,
  ) {
    super();
    this.weight = floatEntry('weight', [dim], 'same', filled(dim, 1));
    this.bias = floatEntry('bias', [dim], 'same', filled(dim, 0));
  }
  apply<T extends tf.Tensor>(x: T): T {
    return layerNorm(x, this.weight.variable, this.bias.variable, [x.rank - 1], this.eps);
  }
  state(): StateEntry[] {
    return [this.weight, this.bias];
  }
}

/**
 * `nn.BatchNorm2d(C)` on NHWC maps. Training mode normalises with the batch's statistics (biased
 * variance) and moves the running statistics by `momentum` towards the batch's (unbiased variance),
 * counting the batch; eval mode normalises with the running statistics.
 */
export class BatchNorm2d extends Module {
  readonly weight: FloatEntry;
  readonly bias: FloatEntry;
  readonly runningMean: FloatEntry;
  readonly runningVar: FloatEntry;
  /** Batches seen in training mode (PyTorch's `num_batches_tracked`). */
  numBatchesTracked = 0;
  constructor(
    readonly channels: number,
    readonly momentum = 0.1,
    readonly eps = NORM_EPS,
  ) {
    super();
    this.weight = floatEntry('weight', [channels], 'same', filled(channels, 1));
    this.bias = floatEntry('bias', [channels], 'same', filled(channels, 0));
    this.runningMean = floatEntry('running_mean', [channels], 'same', filled(channels, 0), false);
    this.runningVar = floatEntry('running_var', [channels], 'same', filled(channels, 1), false);
  }

  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    if (x.shape[3] !== this.channels)
      throw new InputError(`BatchNorm2d: expected ${this.channels} channels, got [${x.shape}] (NHWC)`);
    if (!training) {
      return tf.tidy(() => {
        const scale = tf.mul(this.weight.variable, tf.rsqrt(tf.add(this.runningVar.variable, this.eps)));
        return tf.add(tf.mul(tf.sub(x, this.runningMean.variable), scale), this.bias.variable) as tf.Tensor4D;
      });
    }
    const [n, h, w] = x.shape;
    const count = n * h * w;
    if (count < 2)
      throw new InputError(
        `BatchNorm2d in training mode needs more than one value per channel, got input [${x.shape}]`,
      );
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      const y = tf.add(
        tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, this.eps))), this.weight.variable),
        this.bias.variable,
      ) as tf.Tensor4D;
      const m = this.momentum;
      this.runningMean.variable.assign(tf.add(tf.mul(this.runningMean.variable, 1 - m), tf.mul(mean, m)));
      this.runningVar.variable.assign(
        tf.add(tf.mul(this.runningVar.variable, 1 - m), tf.mul(variance, (m * count) / (count - 1))),
      );
      this.numBatchesTracked += 1;
      return y;
    });
  }

  state(): StateEntry[] {
    return [
      this.weight,
      this.bias,
      this.runningMean,
      this.runningVar,
      {
        kind: 'count',
        name: 'num_batches_tracked',
        get: () => this.numBatchesTracked,
        set: (v) => (this.numBatchesTracked = v),
      },
    ];
  }
}
