/**
 * Pretraining an ADM U-Net as guided-diffusion's `TrainLoop` does with its defaults: L_simple
 * (the mean squared error of the predicted ε at a step t drawn uniformly from [0, T)), Adam, an
 * exponential moving average of the weights, with optional gradient-norm clipping and dropout, and
 * checkpoints a run resumes from bit for bit.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import type { ADMUNet } from '../unet/admUnet.js';
import { toReferenceLayout } from '../unet/layout.js';
import { checkImageRange } from '../unet/schedule.js';
import { positiveInt } from '../util/checks.js';
import { checkSeed, seededNormal } from '../util/noise.js';
import { progressClock, type DiffusionTrainProgressInfo, type ProgressCallback } from '../util/progress.js';
import { mixSeed, SeededRandom } from '../util/random.js';
import { ensureGradients } from '../backend/gradients.js';
import { isNode } from '../util/isNode.js';
import { AdamState, type AdamSettings } from './adam.js';
import { denoisingGrads } from './denoisingLoss.js';
import { GradientWorkers } from './gradientWorkers.js';
import { loadRun, saveRun, type RunSnapshot } from './diffusionCheckpoint.js';

/**
 * Options of {@link trainDiffusion}.
 * @category Diffusion
 */
export interface DiffusionTrainOptions {
  /** Optimizer steps of the whole run (a resumed run counts the steps already done). */
  steps: number;
  /** Images per step (default 32). */
  batchSize?: number;
  /** Adam's learning rate (default 1e-4, guided-diffusion's). */
  lr?: number;
  /** Adam's β1, β2 and ε (default 0.9, 0.999, 1e-8, PyTorch's). */
  betas?: [number, number];
  eps?: number;
  /** Rate of the weights' exponential moving average (default 0.9999, guided-diffusion's). */
  emaRate?: number;
  /**
   * Warm the EMA up: after the s-th update its rate is `min(emaRate, (1 + s) / (10 + s))`, as diffusers'
   * `EMAModel` does, so that a run of a few thousand steps does not keep most of its random initial weights in
   * the average (0.9999^2000 ≈ 0.82 of them without it). Default false: guided-diffusion's constant rate.
   */
  emaWarmup?: boolean;
  /** Clip the gradient to this global L2 norm (default: no clipping, as guided-diffusion). */
  clipGradNorm?: number;
  /** Dropout in every ResBlock (default 0). */
  dropout?: number;
  /**
   * Recompute each U-Net block in the backward pass instead of keeping its activations
   * (`ForwardOptions.checkpoint`): the same gradients, several times less activation memory, about
   * 5–25 % more time per step (docs/dense.md#fine-tuning-the-backbone-with-a-head). Default false. Not one of the run's
   * settings: a run may resume with it switched either way.
   */
  gradientCheckpoint?: boolean;
  /**
   * Node only: compute each step's gradient in this many worker threads, each with a replica of the model on
   * its own single-threaded wasm backend and an even share of the batch's rows (default 1: in this thread, on
   * the current backend). The main thread adds their gradients up and keeps Adam, the EMA and the
   * checkpoints. On two cores `workers: 2` ran a step of the default backbone about 1.2× faster than one
   * two-thread model (docs/training.md#data-parallel-workers). A run is reproducible for a given worker
   * count; another count changes the numbers by rounding (and dropout masks), so it is not one of the run's
   * settings: a run may resume with another.
   */
  workers?: number;
  /** Seeds the order of the images, the steps t, the noise and the dropout masks (default 0). */
  seed?: number;
  /**
   * Write a checkpoint into `dir` every `every` steps (default 500) and at the end, and resume from
   * the one there when the run starts (unless `resume` is false). The weights, the EMA and Adam's
   * moments are saved, so N steps straight and N/2, a resume, then N/2 give the same numbers.
   */
  checkpoint?: { dir: string; every?: number; resume?: boolean };
  /** Called after every step. */
  onProgress?: ProgressCallback<DiffusionTrainProgressInfo>;
}

/**
 * What {@link trainDiffusion} returns. The model itself holds the trained (raw) weights.
 * @category Diffusion
 */
export interface DiffusionTrainResult {
  /** Steps of the whole run done (the requested `steps`). */
  step: number;
  /** Steps this call ran (fewer than `step` after a resume). */
  ran: number;
  /** L_simple of every step of the run, resumed ones included. */
  losses: number[];
  /** The EMA weights under their reference names and layouts; `ADMUNet.fromStateDict` builds a model of them. */
  ema: Map<string, { shape: number[]; data: Float32Array }>;
}

/** The settings a checkpoint must share with the run that resumes it. */
type RunSettings = Required<
  Omit<DiffusionTrainOptions, 'steps' | 'checkpoint' | 'onProgress' | 'clipGradNorm' | 'gradientCheckpoint' | 'workers'>
> & {
  clipGradNorm: number | null;
};

/**
 * Trains `unet` as a denoiser of `images` (the reference's L_simple; a `learn_sigma` model trains its
 * ε half, the variance half gets no gradient): each step takes the next `batchSize` images of a
 * seeded shuffle (a new one each epoch), a step t per image uniformly from [0, T) and seeded noise
 * ε, and minimises `mean((ε̂(x_t, t) − ε)²)` with Adam; the EMA follows every step. The model's
 * weights become trainable variables ({@link ADMUNet.trainableWeights}) and stay so.
 * @param images NHWC float32 in [-1, 1], the model's side and channels; at least one batch.
 * @example
 * ```ts
 * const unet = ADMUNet.create(flags, 0);
 * const { ema, losses } = await trainDiffusion(unet, images, { steps: 1000, checkpoint: { dir: 'run' } });
 * const trained = ADMUNet.fromStateDict(flags, ema);
 * ```
 * @throws InputError for bad images or options, or a checkpoint made with other settings or another architecture.
 * @category Diffusion
 */
export async function trainDiffusion(
  unet: ADMUNet,
  images: tf.Tensor4D,
  opts: DiffusionTrainOptions,
): Promise<DiffusionTrainResult> {
  const settings = checkOptions(opts);
  if (opts.gradientCheckpoint !== undefined && typeof opts.gradientCheckpoint !== 'boolean')
    throw new InputError(`gradientCheckpoint must be true or false, got ${JSON.stringify(opts.gradientCheckpoint)}`);
  const recompute = opts.gradientCheckpoint === true;
  const steps = positiveInt(opts.steps, 'steps');
  const n = unet.checkImages(images, 'images');
  checkImageRange(images, 'images');
  if (n < settings.batchSize)
    throw new InputError(`images holds ${n} images, fewer than one batch of ${settings.batchSize}: lower batchSize`);
  const every = opts.checkpoint ? positiveInt(opts.checkpoint.every ?? 500, 'checkpoint.every') : 0;
  const workerCount = positiveInt(opts.workers ?? 1, 'workers');
  if (workerCount > 1 && !isNode)
    throw new InputError(
      'workers > 1 needs Node worker threads: in a browser, train with workers: 1 (inside a Web Worker)',
    );
  if (workerCount > settings.batchSize)
    throw new InputError(
      `workers (${workerCount}) must not exceed batchSize (${settings.batchSize}): each takes rows of a batch`,
    );
  await ensureGradients();

  const vars = unet.trainableWeights();
  const names = [...vars.keys()];
  const adamSettings: AdamSettings = { lr: settings.lr, betas: settings.betas, eps: settings.eps };
  let adam: AdamState | undefined;
  let ema: Map<string, tf.Tensor> | undefined;
  let pool: GradientWorkers | undefined;
  let losses: number[] = [];
  try {
    let start = 0;
    const saved = opts.checkpoint && opts.checkpoint.resume !== false ? await loadRun(opts.checkpoint.dir) : null;
    if (saved) {
      checkResumable(saved, settings, unet, steps, names);
      for (const [name, v] of vars) tf.tidy(() => v.assign(tf.tensor(saved.tensors.model.get(name)!, v.shape)));
      ema = tensorsOf(saved.tensors.ema, vars);
      adam = new AdamState(
        adamSettings,
        saved.step,
        tensorsOf(saved.tensors.m, vars),
        tensorsOf(saved.tensors.v, vars),
      );
      losses = saved.losses.slice(0, saved.step);
      start = saved.step;
    } else {
      ema = new Map(names.map((k) => [k, tf.keep(tf.clone(vars.get(k)!))]));
      adam = new AdamState(adamSettings, 0);
    }

    const order = new EpochOrder(n, settings.seed);
    const clock = progressClock();
    const snapshot = (step: number): RunSnapshot => ({
      step,
      settings,
      config: unet.config,
      losses,
      tensors: { model: vars, ema: ema!, m: adam!.m, v: adam!.v },
    });
    if (workerCount > 1) {
      pool = await GradientWorkers.start(workerCount, unet, vars, recompute);
      pool.publish(vars);
    }
    const run: RunState = { images, vars, adam, ema, s: settings };
    for (let step = start; step < steps; step++) {
      const batch = drawBatch(unet, settings, order, step);
      const loss = pool ? await workerStep(pool, run, batch) : trainStep(unet, run, batch, recompute);
      losses.push(loss);
      if (opts.checkpoint && ((step + 1) % every === 0 || step + 1 === steps))
        await saveRun(opts.checkpoint.dir, snapshot(step + 1), referenceLayout(unet, ema));
      await tf.nextFrame(); // a turn of the event loop per step: a page or a Worker stays responsive
      const base = clock(step + 1, steps, start);
      opts.onProgress?.({
        kind: 'pretrain',
        ...base,
        loss,
        imagesPerSecond: ((step + 1 - start) * settings.batchSize * 1000) / Math.max(base.elapsedMs, 1e-9),
      });
    }
    return { step: steps, ran: steps - start, losses, ema: referenceLayout(unet, ema) };
  } finally {
    await pool?.stop();
    if (ema) tf.dispose([...ema.values()]);
    adam?.dispose();
  }
}

/** What the steps of a run read and update. */
interface RunState {
  images: tf.Tensor4D;
  vars: Map<string, tf.Variable>;
  adam: AdamState;
  ema: Map<string, tf.Tensor>;
  s: RunSettings;
}

/** What a step trains on: drawn from (seed, step) alone, so a resumed run draws the same. */
interface Batch {
  step: number;
  indices: number[];
  t: number[];
}

function drawBatch(unet: ADMUNet, s: RunSettings, order: EpochOrder, step: number): Batch {
  const b = s.batchSize;
  const T = unet.schedule.steps;
  const random = new SeededRandom(mixSeed(s.seed, STEP_TAG, step));
  const t = Array.from({ length: b }, () => Math.floor(random.uniform() * T));
  return { step, indices: order.batch(step * b, b), t };
}

/** The batch's clean images and its noise ε (seeded by the step). */
function batchImages({ images, s }: RunState, batch: Batch): [tf.Tensor4D, tf.Tensor4D] {
  const x0 = tf.gather(images, tf.tensor1d(batch.indices, 'int32')) as tf.Tensor4D;
  const shape = [batch.indices.length, ...x0.shape.slice(1)] as [number, number, number, number];
  return [x0, seededNormal<tf.Rank.R4>(shape, s.seed, 1, batch.step)];
}

// One step in this thread: the loss of the whole batch, its gradient, the update.
function trainStep(unet: ADMUNet, run: RunState, batch: Batch, recompute: boolean): number {
  const { vars, s } = run;
  return tf.tidy(() => {
    const [x0, noise] = batchImages(run, batch);
    const dropout = s.dropout > 0 ? { rate: s.dropout, seed: mixSeed(s.seed, DROPOUT_TAG, batch.step) } : undefined;
    const { value, grads } = denoisingGrads(unet, vars, x0, noise, batch.t, { dropout, recompute });
    update(run, new Map([...vars].map(([k, v]) => [k, grads[v.name]])));
    return value.dataSync()[0];
  });
}

// One step over the workers: they take the batch's rows, this thread adds their gradients up and updates.
async function workerStep(pool: GradientWorkers, run: RunState, batch: Batch): Promise<number> {
  const s = run.s;
  const [x0, noise, shape] = tf.tidy(() => {
    const [x, e] = batchImages(run, batch);
    return [x.dataSync() as Float32Array, e.dataSync() as Float32Array, x.shape];
  });
  const dropout =
    s.dropout > 0 ? (r: number) => ({ rate: s.dropout, seed: mixSeed(s.seed, DROPOUT_TAG, batch.step, r) }) : undefined;
  const { loss, grads } = await pool.grads(x0, noise, shape, batch.t, dropout);
  const made = [...grads.values()]; // clipping replaces the map's entries with tensors the tidy frees
  try {
    tf.tidy(() => update(run, grads));
  } finally {
    tf.dispose(made);
  }
  pool.publish(run.vars);
  return loss;
}

/** Clipping, Adam and the EMA, from the batch's gradient by weight name. Call inside `tf.tidy`. */
function update({ vars, adam, ema, s }: RunState, grads: Map<string, tf.Tensor>): void {
  if (s.clipGradNorm !== null) clipByGlobalNorm(grads, s.clipGradNorm);
  adam.update(vars, grads);
  const rate = s.emaWarmup ? Math.min(s.emaRate, (1 + adam.step) / (10 + adam.step)) : s.emaRate;
  for (const [k, v] of vars) {
    const e = ema.get(k)!;
    const next = tf.keep(tf.add(tf.mul(e, rate), tf.mul(v, 1 - rate)));
    e.dispose();
    ema.set(k, next);
  }
}

const STEP_TAG = 0x7d1f;
const DROPOUT_TAG = 0x7d20;
const ORDER_TAG = 0x7d21;

/**
 * Scales every gradient by `max / ‖g‖` when the global norm ‖g‖ exceeds `max` (torch's `clip_grad_norm_`), in place in the map.
 * @category Diffusion
 */
export function clipByGlobalNorm(grads: Map<string, tf.Tensor>, max: number): void {
  const norm = Math.sqrt(
    tf.tidy(() => tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g)))).dataSync()[0] as number),
  );
  const scale = max / (norm + 1e-6);
  if (scale >= 1) return;
  for (const [k, g] of grads) grads.set(k, tf.mul(g, scale));
}

/** The images of each epoch in a seeded order of their own; step s takes positions [s·B, (s + 1)·B) of the run. */
class EpochOrder {
  private epoch = -1;
  private perm: Int32Array = new Int32Array(0);
  constructor(
    private readonly n: number,
    private readonly seed: number,
  ) {}

  batch(first: number, count: number): number[] {
    const out: number[] = [];
    for (let g = first; g < first + count; g++) {
      const epoch = Math.floor(g / this.n);
      if (epoch !== this.epoch) this.shuffle(epoch);
      out.push(this.perm[g % this.n]);
    }
    return out;
  }

  private shuffle(epoch: number): void {
    const random = new SeededRandom(mixSeed(this.seed, ORDER_TAG, epoch));
    const perm = Int32Array.from({ length: this.n }, (_, i) => i);
    for (let i = this.n - 1; i > 0; i--) {
      const j = Math.floor(random.uniform() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    this.perm = perm;
    this.epoch = epoch;
  }
}

function checkOptions(o: DiffusionTrainOptions): RunSettings {
  if (typeof o !== 'object' || o === null) throw new InputError('trainDiffusion needs options with at least steps');
  const num = (v: unknown, what: string, ok: (x: number) => boolean, range: string, dflt: number) => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !ok(v)) throw new InputError(`${what} must be ${range}, got ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (v: unknown, what: string) => {
    if (v !== undefined && typeof v !== 'boolean')
      throw new InputError(`${what} must be true or false, got ${JSON.stringify(v)}`);
    return v ?? false;
  };
  const betas = o.betas ?? [0.9, 0.999];
  if (!Array.isArray(betas) || betas.length !== 2)
    throw new InputError(`betas must be two numbers in [0, 1), got ${JSON.stringify(o.betas)}`);
  betas.forEach((b, i) => num(b, `betas[${i}]`, (x) => x >= 0 && x < 1, 'in [0, 1)', 0));
  return {
    batchSize: positiveInt(o.batchSize ?? 32, 'batchSize'),
    lr: num(o.lr, 'lr', (x) => x > 0 && Number.isFinite(x), 'a positive number', 1e-4),
    betas: [betas[0], betas[1]],
    eps: num(o.eps, 'eps', (x) => x > 0, 'a positive number', 1e-8),
    emaRate: num(o.emaRate, 'emaRate', (x) => x >= 0 && x <= 1, 'in [0, 1]', 0.9999),
    emaWarmup: bool(o.emaWarmup, 'emaWarmup'),
    clipGradNorm:
      o.clipGradNorm === undefined ? null : num(o.clipGradNorm, 'clipGradNorm', (x) => x > 0, 'a positive number', 0),
    dropout: num(o.dropout, 'dropout', (x) => x >= 0 && x < 1, 'in [0, 1)', 0),
    seed: checkSeed(o.seed ?? 0),
  };
}

function checkResumable(
  saved: RunSnapshot<Float32Array>,
  settings: RunSettings,
  unet: ADMUNet,
  steps: number,
  names: string[],
): void {
  const mine = JSON.stringify(settings);
  const theirs = JSON.stringify(saved.settings);
  if (mine !== theirs)
    throw new InputError(
      `the checkpoint was made with other settings (${theirs}, this run: ${mine}): resume with the same ones or use another checkpoint dir`,
    );
  if (JSON.stringify(saved.config) !== JSON.stringify(unet.config))
    throw new InputError('the checkpoint is of another architecture than this model: use another checkpoint dir');
  for (const [group, data] of Object.entries(saved.tensors))
    if (names.some((k) => !data.has(k)))
      throw new InputError(`the checkpoint lacks some of this model's weights (${group}): use another checkpoint dir`);
  if (saved.step > steps)
    throw new InputError(
      `the checkpoint is at step ${saved.step}, past the ${steps} steps asked for: ask for more steps`,
    );
}

function tensorsOf(data: Map<string, Float32Array>, like: Map<string, tf.Variable>): Map<string, tf.Tensor> {
  return new Map([...like].map(([k, v]) => [k, tf.keep(tf.tensor(data.get(k)!, v.shape))]));
}

/** Tensors in tfjs layout under reference names, as a state dict (reference layouts). */
function referenceLayout(unet: ADMUNet, tensors: Map<string, tf.Tensor>): DiffusionTrainResult['ema'] {
  const shapes = new Map([...unet.stateDict()].map(([k, v]) => [k, v.shape]));
  return new Map(
    [...tensors].map(([k, t]) => {
      const shape = shapes.get(k)!;
      return [k, { shape, data: toReferenceLayout(k, shape, t.dataSync() as Float32Array) }];
    }),
  );
}
