/**
 * The epoch loop: seeded shuffling, one optimizer update per batch, a progress callback, evaluation
 * every few epochs, and checkpoints that resume exactly.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { DiffSSLError, InputError } from '../errors.js';
import { topKCorrect } from '../eval/accuracy.js';
import { scoredCount } from '../data/labels.js';
import { hasCheckpoint, loadCheckpoint, saveCheckpoint, type RunState } from './checkpoint.js';
import { batchesOf, disposeBatch, epochOrder, mixSeed, type Batch, type Dataset } from '../data/dataset.js';
import { crossEntropy } from './loss.js';
import type { TrainableModel } from './trainableModel.js';
import { positiveInt } from '../util/checks.js';
import { getLearningRate, type LRSchedule } from './optimizers.js';
import { progressClock, type ProgressCallback, type ProgressInfo, type TrainProgressInfo } from '../util/progress.js';
import { ensureGradients } from '../backend/gradients.js';

/**
 * Reported after every optimizer update: the `'train'` member of {@link ProgressInfo}.
 * @category Training
 */
export type StepProgress = TrainProgressInfo;

/**
 * Loss and top-k accuracy of a model on a dataset.
 * @category Training
 */
export interface EvalResult {
  /** Mean cross-entropy. */
  loss: number;
  top1: number;
  top5: number;
  examples: number;
}

/**
 * One finished epoch.
 * @category Training
 */
export interface EpochReport {
  /** 0-based. */
  epoch: number;
  lr: number;
  /** Mean of the epoch's batch losses. */
  trainLoss: number;
  /** Top-1 accuracy on the training batches, in training mode as they were seen. */
  trainTop1: number;
  eval?: EvalResult;
  /** Path of the checkpoint written after this epoch. */
  checkpoint?: string;
}

/**
 * Checkpoint settings of {@link train}.
 * @category Training
 */
export interface CheckpointOptions {
  /** Directory of the checkpoint (created if needed). */
  path: string;
  /** Save after every this many epochs (default 1) and after the last. */
  every?: number;
  /** Also save every this many updates within an epoch. */
  everySteps?: number;
  /** Saves to keep on disk (default 1: only the current one). */
  keep?: number;
}

/**
 * Options of {@link train}.
 * @category Training
 */
export interface TrainOptions<I> {
  /** Total epochs; a resumed run continues up to this count. */
  epochs: number;
  /** Examples per update. */
  batchSize: number;
  /** A tfjs optimizer (see `sgd`, `momentum`, `adam`); give a fresh one when resuming. */
  optimizer: tf.Optimizer;
  /** Sets the learning rate at the start of every epoch (e.g. {@link StepLR}). */
  schedule?: LRSchedule;
  /** Seed of the example order and of every batch's own randomness (default 0, or the checkpoint's). */
  seed?: number;
  /** Reshuffle every epoch (default true). */
  shuffle?: boolean;
  /** Skip the last, smaller batch of an epoch (default true, as the reference's DataLoader). */
  dropLast?: boolean;
  /** Called after every update with a `'train'` report; `done`/`total` count updates of the whole run. */
  onProgress?: ProgressCallback<TrainProgressInfo>;
  /** Called after every epoch (and its evaluation and checkpoint). */
  onEpoch?: (r: EpochReport) => void;
  /** Evaluated every `evalEvery` epochs and after the last one. */
  evalData?: Dataset<I>;
  /** Default 1 (the reference: 7). */
  evalEvery?: number;
  /** Default `batchSize`. */
  evalBatchSize?: number;
  checkpoint?: CheckpointOptions;
  /**
   * `true`: continue from `checkpoint.path` when it holds a checkpoint, else start fresh. A path:
   * continue from that directory, which must hold one. Without it, a `checkpoint.path` that already
   * holds a checkpoint is an error (nothing is overwritten by accident).
   */
  resume?: boolean | string;
  /** Stops after the current update; the position is saved first when `checkpoint` is set. */
  signal?: AbortSignal;
}

/**
 * What {@link train} did.
 * @category Training
 */
export interface TrainResult {
  /** Every finished epoch of the run, resumed ones included. */
  history: EpochReport[];
  globalStep: number;
  /** `'aborted'` when `signal` stopped it. */
  status: 'done' | 'aborted';
  /** Where this call started: `{ epoch: 0, step: 0 }` unless it resumed. */
  startedAt: { epoch: number; step: number };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown })?.then === 'function';
}

/**
 * One update on one batch: loss, gradients of the trainable variables, optimizer step. Loads
 * tfjs's gradient functions on first use (see {@link ensureGradients}).
 * Gradients are handed to the optimizer as an array in the model's variable order, so slot i of
 * the optimizer is always variable i (what checkpoints rely on).
 * @returns the batch's mean loss, how many rows (examples, or pixels of a segmentation head) were
 * classified right (top-1) and how many were scored (all but those labelled `model.ignoreIndex`).
 * @category Training
 */
export async function trainStep<I>(
  model: TrainableModel<I>,
  batch: Batch<I>,
  optimizer: tf.Optimizer,
): Promise<{ loss: number; correct: number; scored: number }> {
  const vars = model.trainableVariables;
  if (!Array.isArray(vars) || vars.length === 0 || !vars.every((v) => v instanceof tf.Variable))
    throw new InputError('model.trainableVariables must be a non-empty array of tf.Variable');
  // tfjs-core alone registers no gradient functions; the first update loads them.
  await ensureGradients();
  let logits: tf.Tensor2D | undefined;
  // An error thrown while tfjs records the tape would leave the tape's saved tensors behind, so
  // errors inside are stashed, an unconnected scalar is returned (tfjs then frees the tape), and the
  // stashed error is thrown afterwards.
  let failure: unknown;
  let placeholder: tf.Scalar | undefined;
  let value: tf.Scalar;
  let grads: tf.NamedTensorMap;
  try {
    ({ value, grads } = tf.variableGrads(() => {
      try {
        const out = model.logits(batch.input, { ...(batch.options ?? {}), training: true });
        if (isThenable(out)) {
          (out as Promise<tf.Tensor>).then(
            (t) => t?.dispose?.(),
            () => {},
          );
          throw new InputError(
            'model.logits returned a promise: training needs a synchronous logits (gradients are recorded only within one synchronous call)',
          );
        }
        logits = tf.keep(out);
        return crossEntropy(out, batch.labels, { ignoreIndex: model.ignoreIndex }) as tf.Scalar;
      } catch (e) {
        failure = e;
        placeholder = tf.keep(tf.scalar(0));
        return placeholder;
      }
    }, vars));
  } catch (e) {
    logits?.dispose();
    placeholder?.dispose();
    if (failure !== undefined) throw failure;
    if (/Cannot find a connection/.test((e as Error).message))
      throw new InputError('no trainable variable of the model influences its logits: nothing to train');
    throw e;
  }
  try {
    optimizer.applyGradients(vars.map((v) => ({ name: v.name, tensor: grads[v.name] as tf.Tensor })));
    const loss = (await value.data())[0];
    const [correct] = topKCorrect(logits!, batch.labels, [1], model.ignoreIndex);
    return { loss, correct, scored: scoredCount(batch.labels, model.ignoreIndex) };
  } finally {
    tf.dispose([value, logits!, ...Object.values(grads).filter((g): g is tf.Tensor => g instanceof tf.Tensor)]);
  }
}

/**
 * Mean loss, top-1 and top-5 of `model` on every example of `data`, in order, in evaluation mode.
 * Batches get seeds that do not depend on the epoch, so noise-dependent models are scored on the
 * same draws every time (the reference draws fresh noise at evaluation too).
 * @category Training
 */
export async function evaluate<I>(
  model: TrainableModel<I>,
  data: Dataset<I>,
  opts: { batchSize: number; seed?: number; epoch?: number },
): Promise<EvalResult> {
  const batchSize = positiveInt(opts?.batchSize, 'batchSize');
  checkDataset(data, 'evalData');
  const seed = opts.seed ?? 0;
  const order = epochOrder(data.size, 0, 0, false);
  let loss = 0,
    top1 = 0,
    top5 = 0,
    scored = 0;
  const batches = batchesOf(order, batchSize, false);
  for (let step = 0; step < batches.length; step++) {
    const batch = await data.batch(batches[step], {
      training: false,
      seed: mixSeed(seed, 0xe7a1, step),
      epoch: opts.epoch ?? 0,
      step,
    });
    let logits: tf.Tensor2D | undefined;
    try {
      logits = await model.logits(batch.input, { ...(batch.options ?? {}), training: false });
      const ignoreIndex = model.ignoreIndex;
      const l = crossEntropy(logits, batch.labels, { reduction: 'sum', ignoreIndex });
      loss += (await l.data())[0];
      l.dispose();
      const [c1, c5] = topKCorrect(logits, batch.labels, [1, 5], ignoreIndex);
      top1 += c1;
      top5 += c5;
      scored += scoredCount(batch.labels, ignoreIndex);
    } finally {
      logits?.dispose();
      disposeBatch(batch);
    }
  }
  // Per scored row: per example for a classifier, per labelled pixel for a segmentation head.
  const n = Math.max(scored, 1);
  return { loss: loss / n, top1: top1 / n, top5: top5 / n, examples: data.size };
}

function checkDataset(data: Dataset<unknown>, what: string): void {
  if (!data || typeof data.batch !== 'function' || !Number.isInteger(data.size) || data.size < 1)
    throw new InputError(`${what} must be a Dataset: { size: positive integer, batch(indices, ctx) }`);
}

/**
 * Trains `model` on `data`: every epoch a seeded shuffle, batches of `batchSize`, one update per
 * batch with softmax cross-entropy; the schedule sets the learning rate at each epoch start.
 * tfjs's gradient functions are loaded on first use (see {@link ensureGradients}).
 *
 * Deterministic given the seed (the example order, and each batch's seed for noise and
 * augmentation, derive from it), which is why a run stopped and resumed from a checkpoint ends
 * with the same weights as one that never stopped.
 *
 * @example
 * ```ts
 * const opt = sgd(0.05);
 * const result = await train(head, data, {
 *   epochs: 28, batchSize: 32, optimizer: opt, schedule: new StepLR(opt, { stepSize: 7, gamma: 0.1 }),
 *   evalData: val, evalEvery: 7, checkpoint: { path: 'runs/attention' }, resume: true,
 *   onProgress: (p) => console.log(`epoch ${p.epoch + 1} step ${p.step}/${p.steps} loss ${p.loss.toFixed(3)}`),
 * });
 * ```
 * @throws InputError for bad options, a dataset smaller than one batch, or a checkpoint made with
 *   other settings; CheckpointError for an unreadable checkpoint; DiffSSLError when tfjs's
 *   gradient functions cannot be loaded in this environment.
 * @category Training
 */
export async function train<I>(
  model: TrainableModel<I>,
  data: Dataset<I>,
  opts: TrainOptions<I>,
): Promise<TrainResult> {
  if (!model || typeof model.logits !== 'function')
    throw new InputError('train needs a model with logits(input, { training }) and trainableVariables');
  checkDataset(data, 'data');
  const epochs = positiveInt(opts?.epochs, 'epochs');
  const batchSize = positiveInt(opts.batchSize, 'batchSize');
  const optimizer = opts.optimizer;
  if (!(optimizer instanceof tf.Optimizer))
    throw new InputError('optimizer must be a tfjs Optimizer (see sgd, momentum, adam)');
  const evalEvery = positiveInt(opts.evalEvery ?? 1, 'evalEvery');
  const evalBatchSize = positiveInt(opts.evalBatchSize ?? batchSize, 'evalBatchSize');
  if (opts.evalData !== undefined) checkDataset(opts.evalData, 'evalData');
  const ck = opts.checkpoint;
  if (ck !== undefined) {
    if (typeof ck.path !== 'string' || ck.path === '') throw new InputError('checkpoint.path must be a directory path');
    positiveInt(ck.every ?? 1, 'checkpoint.every');
    if (ck.everySteps !== undefined) positiveInt(ck.everySteps, 'checkpoint.everySteps');
    positiveInt(ck.keep ?? 1, 'checkpoint.keep');
  }
  if (opts.seed !== undefined && !Number.isInteger(opts.seed))
    throw new InputError(`seed must be an integer, got ${opts.seed}`);
  const shuffle = opts.shuffle ?? true;
  const dropLast = opts.dropLast ?? true;
  // Fail before any data or checkpoint work when gradients cannot be had here.
  await ensureGradients();

  let resumeDir: string | undefined;
  if (typeof opts.resume === 'string') resumeDir = opts.resume;
  else if (opts.resume === true) {
    if (!ck) throw new InputError('resume: true needs checkpoint.path (or pass the checkpoint directory as resume)');
    if (await hasCheckpoint(ck.path)) resumeDir = ck.path;
  }
  // A fresh run must not silently replace another run's checkpoint.
  if (ck && resumeDir === undefined && opts.resume !== true && (await hasCheckpoint(ck.path)))
    throw new InputError(
      `${ck.path} already holds a checkpoint: pass resume: true to continue that run, or choose another checkpoint.path`,
    );

  let state: RunState;
  if (resumeDir !== undefined) {
    state = await loadCheckpoint(resumeDir, model, optimizer);
    const want = { seed: opts.seed ?? state.seed, batchSize, datasetSize: data.size, shuffle, dropLast };
    for (const [k, v] of Object.entries(want)) {
      const had = (state as unknown as Record<string, unknown>)[k];
      if (had !== v)
        throw new InputError(
          `cannot resume exactly: the checkpoint in ${resumeDir} was made with ${k} = ${JSON.stringify(had)}, this run has ${JSON.stringify(v)}`,
        );
    }
  } else {
    state = {
      epoch: 0,
      step: 0,
      globalStep: 0,
      lr: getLearningRate(optimizer),
      seed: opts.seed ?? 0,
      batchSize,
      datasetSize: data.size,
      shuffle,
      dropLast,
      epochSums: { loss: 0, correct: 0, seen: 0, steps: 0 },
      history: [],
    };
  }
  const startedAt = { epoch: state.epoch, step: state.step };
  const history = state.history as EpochReport[];
  const stepsPerEpoch = batchesOf(epochOrder(data.size, 0, 0, false), batchSize, dropLast).length;
  if (stepsPerEpoch === 0)
    throw new InputError(
      `the dataset has ${data.size} examples, fewer than one batch of ${batchSize} (dropLast is on)`,
    );
  const clock = progressClock();
  let stepsHere = 0;
  const totalSteps = epochs * stepsPerEpoch;

  const save = async () =>
    ck ? saveCheckpoint(ck.path, model, optimizer, { ...state, history: [...history] }, ck.keep ?? 1) : undefined;

  for (let epoch = state.epoch; epoch < epochs; epoch++) {
    state.lr = opts.schedule ? opts.schedule.setEpoch(epoch) : getLearningRate(optimizer);
    const batches = batchesOf(epochOrder(data.size, state.seed, epoch, shuffle), batchSize, dropLast);
    if (epoch !== state.epoch || state.step === 0) {
      state.epoch = epoch;
      state.step = 0;
      state.epochSums = { loss: 0, correct: 0, seen: 0, steps: 0 };
    }
    for (let step = state.step; step < batches.length; step++) {
      if (opts.signal?.aborted) {
        await save();
        return { history: [...history], globalStep: state.globalStep, status: 'aborted', startedAt };
      }
      const batch = await data.batch(batches[step], {
        training: true,
        seed: mixSeed(state.seed, epoch, step),
        epoch,
        step,
      });
      let r: { loss: number; correct: number; scored: number };
      try {
        r = await trainStep(model, batch, optimizer);
      } finally {
        disposeBatch(batch);
      }
      if (!Number.isFinite(r.loss))
        throw new DiffSSLError(`the loss became ${r.loss} at epoch ${epoch}, step ${step}: lower the learning rate`);
      const s = state.epochSums;
      s.loss += r.loss;
      s.correct += r.correct;
      s.seen += r.scored;
      s.steps++;
      state.globalStep++;
      state.step = step + 1;
      stepsHere++;
      const done = epoch * stepsPerEpoch + step + 1;
      const { elapsedMs, etaMs = 0 } = clock(done, totalSteps, done - stepsHere);
      opts.onProgress?.({
        kind: 'train',
        done,
        total: totalSteps,
        elapsedMs,
        etaMs,
        epoch,
        epochs,
        step: step + 1,
        steps: batches.length,
        globalStep: state.globalStep,
        loss: r.loss,
        lr: state.lr,
      });
      if (ck?.everySteps && state.globalStep % ck.everySteps === 0 && step + 1 < batches.length) await save();
    }
    const report: EpochReport = {
      epoch,
      lr: state.lr,
      trainLoss: state.epochSums.loss / state.epochSums.steps,
      trainTop1: state.epochSums.correct / state.epochSums.seen,
    };
    if (opts.evalData && ((epoch + 1) % evalEvery === 0 || epoch === epochs - 1))
      report.eval = await evaluate(model, opts.evalData, { batchSize: evalBatchSize, seed: state.seed, epoch });
    history.push(report);
    state.epoch = epoch + 1;
    state.step = 0;
    state.epochSums = { loss: 0, correct: 0, seen: 0, steps: 0 };
    if (ck && ((epoch + 1) % (ck.every ?? 1) === 0 || epoch === epochs - 1)) report.checkpoint = await save();
    opts.onEpoch?.(report);
  }
  return { history: [...history], globalStep: state.globalStep, status: 'done', startedAt };
}
