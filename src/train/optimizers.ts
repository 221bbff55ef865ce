/**
 * Typed factories over tfjs-core's optimizers, the learning-rate plumbing they lack, and the
 * reference's StepLR.
 *
 * What the reference does (soumik-kanad/diffssl `finetune.py` @ cc2ac30): `torch.optim.SGD(params, lr)`
 * with no momentum and no weight decay (its `--weight_decay` flag is never passed to the
 * optimizer), `StepLR(step_size=7, gamma=0.1)` stepped once per epoch, 28 epochs; lr 5e-2 with
 * batch 32 for the attention and fusion heads, 1e-2 for the linear head (batch 32) and DifFeed
 * (batch 4). The paper's text says Adam; the released scripts use plain SGD.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';

/**
 * Plain SGD, the reference's optimizer.
 * @category Training
 */
export interface SgdSpec {
  type: 'sgd';
  lr: number;
}
/**
 * SGD with (optionally Nesterov) momentum, the same update as `torch.optim.SGD(momentum=…, dampening=0)`.
 * @category Training
 */
export interface MomentumSpec {
  type: 'momentum';
  lr: number;
  /** Default 0.9. */
  momentum?: number;
  nesterov?: boolean;
}
/**
 * Adam, as the paper's text describes; same update as `torch.optim.Adam`.
 * @category Training
 */
export interface AdamSpec {
  type: 'adam';
  lr: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8, PyTorch's (tfjs would otherwise take the backend's 1e-7). */
  epsilon?: number;
}
/**
 * A JSON-serialisable optimizer description; {@link makeOptimizer} builds it, checkpoints record it.
 * @category Training
 */
export type OptimizerSpec = SgdSpec | MomentumSpec | AdamSpec;

function positive(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new InputError(`${what} must be a positive finite number, got ${String(v)}`);
  return v;
}
function unit(v: unknown, what: string): number {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw new InputError(`${what} must be in [0, 1), got ${String(v)}`);
  return v;
}

/**
 * Plain SGD: `w ← w − lr·g`.
 * @category Training
 */
export function sgd(lr: number): tf.SGDOptimizer {
  return tf.train.sgd(positive(lr, 'lr'));
}

/**
 * Momentum SGD: `v ← m·v + g; w ← w − lr·v` (Nesterov: `w ← w − lr·(g + m·v)`).
 * @category Training
 */
export function momentum(lr: number, m = 0.9, nesterov = false): tf.MomentumOptimizer {
  const opt = tf.train.momentum(positive(lr, 'lr'), unit(m, 'momentum'), nesterov === true);
  // tfjs 4.22's MomentumOptimizer.dispose forgets the −lr scalar its SGD base keeps; free it too.
  const own = opt.dispose.bind(opt);
  opt.dispose = () => {
    own();
    (opt as unknown as { c?: tf.Tensor }).c?.dispose();
  };
  return opt;
}

/**
 * Adam with PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8).
 * @category Training
 */
export function adam(lr: number, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8): tf.AdamOptimizer {
  return tf.train.adam(positive(lr, 'lr'), unit(beta1, 'beta1'), unit(beta2, 'beta2'), positive(epsilon, 'epsilon'));
}

/**
 * Builds the optimizer a spec describes.
 * @throws InputError for an unknown type or a bad hyper-parameter.
 * @example
 * ```ts
 * const opt = makeOptimizer({ type: 'sgd', lr: 5e-2 }); // the reference's attention-head setting
 * ```
 * @category Training
 */
export function makeOptimizer(spec: OptimizerSpec): tf.Optimizer {
  switch (spec?.type) {
    case 'sgd':
      return sgd(spec.lr);
    case 'momentum':
      return momentum(spec.lr, spec.momentum ?? 0.9, spec.nesterov ?? false);
    case 'adam':
      return adam(spec.lr, spec.beta1 ?? 0.9, spec.beta2 ?? 0.999, spec.epsilon ?? 1e-8);
    default:
      throw new InputError(
        `optimizer type must be 'sgd', 'momentum' or 'adam', got ${JSON.stringify((spec as { type?: unknown })?.type)}`,
      );
  }
}

type WithLr = tf.Optimizer & { learningRate?: unknown; setLearningRate?: (lr: number) => void };

/**
 * The optimizer's current learning rate. @throws InputError when it has none.
 * @category Training
 */
export function getLearningRate(optimizer: tf.Optimizer): number {
  const lr = (optimizer as WithLr).learningRate;
  if (typeof lr !== 'number')
    throw new InputError(
      `this optimizer (${optimizer?.getClassName?.() ?? typeof optimizer}) exposes no numeric learningRate`,
    );
  return lr;
}

/**
 * Sets the learning rate so that the next update uses it. Setting the `learningRate` property is
 * not enough for tfjs's SGD and momentum optimizers: they cache `−lr` in a scalar tensor, which only
 * `setLearningRate` refreshes; Adam and the others read the property on every step.
 * @category Training
 */
export function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  positive(lr, 'learning rate');
  getLearningRate(optimizer);
  const o = optimizer as WithLr;
  if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
  else o.learningRate = lr;
}

/**
 * A learning rate as a function of the epoch (0-based), applied at the start of each epoch.
 * @category Training
 */
export interface LRSchedule {
  /** The learning rate for `epoch`. */
  lrAt(epoch: number): number;
  /** Sets the optimizer's learning rate for `epoch`; returns it. */
  setEpoch(epoch: number): number;
}

/**
 * Options of {@link StepLR}.
 * @category Training
 */
export interface StepLROptions {
  /** Epochs between decays (the reference: 7). */
  stepSize: number;
  /** Factor per decay (the reference: 0.1). */
  gamma?: number;
  /** The learning rate of epoch 0 (default: the optimizer's rate when the schedule is made). */
  baseLr?: number;
}

/**
 * `torch.optim.lr_scheduler.StepLR`: `lr(epoch) = baseLr · gamma^floor(epoch / stepSize)`. A pure
 * function of the epoch, so a resumed run gets the same rates without any saved scheduler state.
 *
 * @example
 * ```ts
 * const opt = sgd(0.05);
 * const sched = new StepLR(opt, { stepSize: 7, gamma: 0.1 });
 * sched.setEpoch(7); // opt now steps with 0.005
 * ```
 * @category Training
 */
export class StepLR implements LRSchedule {
  readonly stepSize: number;
  readonly gamma: number;
  readonly baseLr: number;
  private current = 0;

  constructor(
    readonly optimizer: tf.Optimizer,
    opts: StepLROptions,
  ) {
    if (!Number.isInteger(opts?.stepSize) || opts.stepSize < 1)
      throw new InputError(`StepLR stepSize must be a positive integer, got ${String(opts?.stepSize)}`);
    this.stepSize = opts.stepSize;
    this.gamma = positive(opts.gamma ?? 0.1, 'StepLR gamma');
    this.baseLr = opts.baseLr === undefined ? getLearningRate(optimizer) : positive(opts.baseLr, 'StepLR baseLr');
  }

  lrAt(epoch: number): number {
    if (!Number.isInteger(epoch) || epoch < 0)
      throw new InputError(`epoch must be a non-negative integer, got ${epoch}`);
    return this.baseLr * Math.pow(this.gamma, Math.floor(epoch / this.stepSize));
  }

  setEpoch(epoch: number): number {
    const lr = this.lrAt(epoch);
    setLearningRate(this.optimizer, lr);
    this.current = epoch;
    return lr;
  }

  /** The epoch last set. */
  get epoch(): number {
    return this.current;
  }

  /** Advances one epoch, like `scheduler.step()` at the end of a PyTorch epoch; returns the new rate. */
  step(): number {
    return this.setEpoch(this.current + 1);
  }
}

/**
 * Hyper-parameters of the reference's released training scripts (`scripts/*.sh`).
 * @category Training
 */
export interface ReferenceRecipe {
  optimizer: SgdSpec;
  batchSize: number;
  epochs: number;
  stepSize: number;
  gamma: number;
  /** Evaluation every this many epochs (`--eval_interval 7`). */
  evalEvery: number;
}

/**
 * The reference's settings for a head: `'attention'` and `'difformer'` lr 5e-2 batch 32,
 * `'linear'` lr 1e-2 batch 32, `'difffeed'` lr 1e-2 batch 4; all plain SGD, 28 epochs,
 * StepLR(7, 0.1), evaluation every 7 epochs.
 * @category Training
 */
export function referenceRecipe(head: 'linear' | 'attention' | 'difformer' | 'difffeed'): ReferenceRecipe {
  const table = { linear: [1e-2, 32], attention: [5e-2, 32], difformer: [5e-2, 32], difffeed: [1e-2, 4] } as const;
  const row = table[head];
  if (!row)
    throw new InputError(`head must be 'linear', 'attention', 'difformer' or 'difffeed', got ${JSON.stringify(head)}`);
  return {
    optimizer: { type: 'sgd', lr: row[0] },
    batchSize: row[1],
    epochs: 28,
    stepSize: 7,
    gamma: 0.1,
    evalEvery: 7,
  };
}
