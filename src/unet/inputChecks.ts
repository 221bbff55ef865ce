/**
 * What the U-Net checks before it runs: the image batch, class labels, tensors added into blocks and
 * a state dict's keys. Each names what is wrong and what to do.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkStateDict, InputError } from '../errors.js';
import type { Architecture, BlockInfo } from './architecture.js';
import type { ResolvedConfig } from './config.js';

/**
 * Checks that `x` is a batch of images a model of `config` takes (float32 NHWC `[N, S, S, C_in]`).
 * @returns N.
 */
export function checkImageBatch(x: tf.Tensor4D, config: ResolvedConfig, what: string): number {
  if (!(x instanceof tf.Tensor))
    throw new InputError(`${what} must be a tf.Tensor4D, got ${x === null ? 'null' : typeof x}`);
  if (x.rank !== 4) throw new InputError(`${what} must be rank 4 (NHWC [N, H, W, C]), got rank ${x.rank} [${x.shape}]`);
  if (x.dtype !== 'float32') throw new InputError(`${what} must be float32, got ${x.dtype}`);
  const [n, hgt, wid, c] = x.shape;
  const S = config.imageSize;
  if (c !== config.inChannels)
    throw new InputError(
      `${what} has ${c} channel${c === 1 ? '' : 's'} but the model takes ${config.inChannels} (layout is NHWC, channels last)${x.shape[1] === config.inChannels ? '; this looks like NCHW' : ''}`,
    );
  if (hgt !== S || wid !== S) throw new InputError(`${what} is ${hgt}×${wid} but this model takes ${S}×${S} images`);
  if (n < 1) throw new InputError(`${what} has an empty batch`);
  return n;
}

/** Checks `y` against the model's classes (`null`: unconditional, `y` refused), one label per example. */
export function checkClassLabels(y: number[] | undefined, n: number, classes: number | null): void {
  if (classes === null) {
    if (y !== undefined) throw new InputError('y was given but this model is unconditional (class_cond false)');
    return;
  }
  if (y === undefined)
    throw new InputError(`this model is class-conditional: pass y, one label in [0, ${classes}) per example`);
  if (!Array.isArray(y) || y.length !== n)
    throw new InputError(`y must have one label per example (${n}), got ${Array.isArray(y) ? y.length : typeof y}`);
  y.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 0 || v >= classes)
      throw new InputError(`y[${i}] = ${v} is outside [0, ${classes})`);
  });
}

/** Checks forward's `add`: each tensor has its block's shape for a batch of n. `block` throws for an unknown block. */
export function checkAddedMaps(
  add: Map<number, tf.Tensor4D> | undefined,
  n: number,
  block: (b: number) => BlockInfo,
): Map<number, tf.Tensor4D> {
  if (add === undefined) return new Map();
  if (!(add instanceof Map)) throw new InputError('add must be a Map from block number to tensor');
  for (const [b, t] of add) {
    const info = block(b);
    const want = [n, info.size, info.size, info.channels];
    if (!(t instanceof tf.Tensor) || !tf.util.arraysEqual(t.shape, want))
      throw new InputError(
        `add: the tensor for block ${b} must have shape [${want}], got ${t instanceof tf.Tensor ? `[${t.shape}]` : typeof t}`,
      );
  }
  return add;
}

/** Checks a state dict's keys and shapes against the architecture's parameters. */
export function checkWeightKeys(arch: Architecture, got: Map<string, number[]>, strict: boolean, label: string): void {
  checkStateDict(arch.parameters, got, {
    subject: `${label} does not fit this model's state dict`,
    advice:
      'Check that the flags match the checkpoint (a preset name such as "256x256_diffusion_uncond" picks the released ones).',
    strict,
  });
}
