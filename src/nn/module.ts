/**
 * The base class of every module that owns named state (heads, tokenizers, fusion and feedback
 * networks, the whole fine-tuned model): as PyTorch's `nn.Module` or tfjs-layers' `Layer`, a
 * subclass says what its state is and inherits training, loading, saving and freeing over it.
 * @module
 */
import type * as tf from '@tensorflow/tfjs-core';
import { disposeState, loadState, saveState, trainableOf, type LoadWeightsOptions, type StateEntry } from './state.js';
import type { FileInput } from '../io/webSource.js';

/**
 * A module with named state. A subclass implements {@link Module.state}; everything else here is
 * computed from it on each call, so sub-modules (prefixed into the parent's state) need no
 * bookkeeping of their own.
 *
 * @example
 * ```ts
 * const head = new MLPHead({ channels: 32, pool: 2, classes: 10 }); // every head is a Module
 * await head.loadWeights('heads/mlp/weights.safetensors', { prefix: 'head.' });
 * head.trainableVariables; // [fcs.0.weight, fcs.0.bias]: what an optimizer updates
 * await head.saveWeights('my-head.safetensors');
 * head.dispose();
 * ```
 * @category Heads
 */
export abstract class Module {
  /** The module's state-dict entries under the reference's names, relative to the module. */
  abstract state(): StateEntry[];

  /** Variables an optimizer updates (not BatchNorm's running statistics, nor a borrowed U-Net's weights). */
  get trainableVariables(): tf.Variable[] {
    return trainableOf(this.state());
  }

  /**
   * Loads weights saved under the reference's names and PyTorch layouts: a safetensors file or a
   * `torch.save` checkpoint (a path, a URL, a Blob, a Response or bytes: see {@link FileInput}). Strict: every key of {@link Module.state} must be there
   * with its shape, and nothing else (within {@link LoadWeightsOptions.prefix}, if given); on any
   * error the module keeps its old values.
   * @throws WeightsError listing every missing, unexpected and mis-shaped key.
   * @throws CheckpointError for an unreadable file.
   */
  loadWeights(source: FileInput, opts?: LoadWeightsOptions): Promise<void> {
    return loadState(this.state(), source, opts);
  }

  /** Saves the weights as safetensors under the reference's names and layouts, atomically. */
  saveWeights(path: string): Promise<void> {
    return saveState(this.state(), path);
  }

  /** Frees the module's own weights; a model it only borrows (such as the U-Net) stays. */
  dispose(): void {
    disposeState(this.state());
  }
}
