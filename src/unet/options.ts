/**
 * The options and results of {@link ADMUNet}'s factories and forward pass.
 * @module
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from '../util/hostTensor.js';
import type { LoadProgressInfo, ProgressCallback, ProgressInfo } from '../util/progress.js';
import type { ConvAlgorithm } from './runtime/convAlgorithm.js';
import type { WeightOptions } from './runtime/weightStore.js';
import type { ForwardState } from './runtime/batchParts.js';

/**
 * Options of {@link ADMUNet.forward}.
 * @category Backbone
 */
export interface ForwardOptions {
  /** Class labels, one per example; required by class-conditional models, refused by others. */
  y?: number[];
  /**
   * Blocks whose outputs to return (paper numbering, 1..total). When given, the pass stops right
   * after the deepest of them and no final output is computed (unless `output` is true).
   */
  capture?: number[];
  /** With `capture`: run the whole network anyway and return the final output too. */
  output?: boolean;
  /**
   * Tensors added to the output of the given blocks before the next block sees it (DifFeed's
   * feedback). Shape `[N, size_b, size_b, channels_b]`. For an encoder block the sum is also the
   * skip its mirror decoder block receives; a captured block is returned after the addition.
   */
  add?: Map<number, tf.Tensor4D>;
  /**
   * Training only: dropout in every ResBlock, before its last conv, as the reference's
   * `out_layers` (`rate` of the activations zeroed, the rest scaled by 1/(1 − rate)); the masks are
   * drawn from `seed`, so the same seed drops the same units. Off by default (eval mode).
   */
  dropout?: { rate: number; seed: number };
  /**
   * Training only: keep only each block's input during the forward and recompute the block in the
   * backward pass, so activation memory is one block's worth plus the block boundaries; gradients
   * equal those of a plain forward.
   *
   * Each entry of the block table (an input block, the middle block, an output block) is
   * checkpointed on its own: its input, its skip (output blocks) and the embedding are kept, the
   * block runs again, on them, when the gradient reaches it (dropout draws the same masks: they are
   * seeded), and its weights, its input and the embedding get their gradients from that rerun.
   * Costs about one more forward per step. Blocks past the deepest captured one neither run nor get
   * gradients; `add` is applied outside the checkpoint; variables with `trainable = false` get no
   * gradient. Without a gradient being recorded around the forward it changes nothing. Needs
   * trainable weights ({@link ADMUNet.trainableWeights}): an InputError otherwise.
   */
  checkpoint?: boolean;
  /**
   * Also return, as `state`, what a later forward of the same `xt`, `t` and `y` needs to start at
   * block `hold` instead of block 1 (pass it as `resume`): the encoder outputs before that block. For
   * a second pass that differs from this one only from block `hold` on, as DifFeed's, whose
   * additions start there. An encoder block or the middle block (2 … N_in + 1), at most one past the
   * deepest block this forward runs. Refused when this forward itself runs a decoder block that takes
   * one of those outputs.
   */
  hold?: number;
  /**
   * Start at `resume.block` from what an earlier forward of the same `xt`, `t` and `y` held (see
   * `hold`): blocks before it are not run again. Used up by this call. Blocks before it cannot be
   * captured or added to.
   */
  resume?: ForwardState;
}

/**
 * What {@link ADMUNet.forward} returns. The caller owns every tensor in it.
 * @category Backbone
 */
export interface ForwardResult {
  /** Output of each captured block, NHWC. Empty when `capture` was omitted. */
  features: Map<number, tf.Tensor4D>;
  /** The network's final output `[N, S, S, outChannels]` (ε, plus variance values with learn_sigma); present when the whole network ran. */
  output?: tf.Tensor4D;
  /** With `hold`: what a later forward resumes from; the caller frees it (`dispose`) unless a forward uses it. */
  state?: ForwardState;
}

/**
 * Progress of {@link ADMUNet.load}: the `'load'` member of {@link ProgressInfo}.
 * @category Backbone
 */
export type LoadProgress = LoadProgressInfo;

/**
 * Options of {@link ADMUNet.create}, {@link ADMUNet.load} and {@link ADMUNet.fromStateDict}.
 * @category Backbone
 */
export interface ModelOptions extends WeightOptions {
  /** How 3×3 convs are computed (default `auto`); can be changed later through `unet.conv`. */
  conv?: ConvAlgorithm;
  /**
   * Bytes of Winograd-transformed filters kept between forwards for resident weights (they are
   * 16/9 or 4× the filters); the rest are transformed on each use. Default 256 MiB.
   */
  winogradCacheBytes?: number;
  /**
   * Bytes of intermediates one band of a large map may hold (default 64 MiB). Layers on maps whose
   * normalised, activated or Winograd-transformed copies would exceed it run in horizontal bands,
   * one example at a time (a batch is carried between such blocks as one tensor per example), so
   * that peak memory follows this budget rather than the image size or the batch: lower it to fit a
   * smaller heap, at some cost in speed. On wasm, encoder outputs of more than a sixteenth of it wait
   * for their decoder blocks in JS memory rather than in the heap (see `park`), in buffers the model
   * keeps for its next forward until it is disposed.
   */
  bandBytes?: number;
}

/**
 * Options of {@link ADMUNet.load}; {@link ModelOptions} choose where the weights live and how convs run.
 * @category Backbone
 */
export interface LoadOptions extends ModelOptions {
  /**
   * Refuse weights the model does not have (default true). Missing and mis-shaped weights are
   * always an error: the network cannot run without them.
   */
  strict?: boolean;
  /** Called after each weight is read. */
  onProgress?: ProgressCallback<LoadProgressInfo>;
}

/**
 * A weight in the reference layout, as a state dict holds it.
 * @category Backbone
 */
export type ReferenceTensor = HostTensor<Float32Array>;
