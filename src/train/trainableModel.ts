/**
 * The one thing the training helpers ask of a model. Heads, fusion, feedback and any user model
 * fit it; the trainer knows nothing else about them.
 * @module
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { FileInput } from '../io/webSource.js';

/**
 * Options the trainer passes to {@link TrainableModel.logits}: the batch's own options plus the mode.
 * @category Training
 */
export interface LogitsCallOptions {
  /** True while training (BatchNorm uses batch statistics and updates its running ones). */
  training: boolean;
}

/**
 * Anything with trainable variables and a logits function: one row of logits per label (per example for
 * a classifier, per pixel for a segmentation head).
 *
 * `logits` must compute synchronously while training: tfjs records gradients only for work done
 * inside the function it differentiates, and an `await` ends that. (Evaluation may return a promise.)
 *
 * For checkpoints, `saveWeights`/`loadWeights` (when present) carry the model's whole state under its
 * own names, running statistics included; without them a checkpoint holds the trainable variables
 * by position.
 * @category Training
 */
export interface TrainableModel<I> {
  readonly trainableVariables: tf.Variable[];
  logits(input: I, options: LogitsCallOptions): tf.Tensor2D | Promise<tf.Tensor2D>;
  /**
   * Labels equal to this are not scored: no loss, no gradient, not counted in accuracy (a segmentation
   * head's unlabelled pixels, whose logits are one row per pixel). Absent: every label is scored.
   */
  readonly ignoreIndex?: number;
  saveWeights?(path: string): Promise<unknown>;
  loadWeights?(source: FileInput): Promise<unknown>;
}
