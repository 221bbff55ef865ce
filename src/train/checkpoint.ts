/**
 * Training checkpoints: model weights and optimizer state as safetensors, run state as JSON, in
 * one directory. Files of a save get names of their own (`step-<globalStep>.…`) and only then does
 * `checkpoint.json` move to them with an atomic rename, so a crash at any point of a save leaves
 * the previous checkpoint whole and resumable.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, InputError } from '../errors.js';
import { SafetensorsReader, writeSafetensors } from '../io/safetensors.js';
import { nodeFs } from '../util/nodeFs.js';
import { isTempName, writeBytesAtomic } from '../io/atomicFile.js';
import type { TrainableModel } from './trainableModel.js';

/** The file that names the current checkpoint of a directory. */
export const CHECKPOINT_FILE = 'checkpoint.json';
const FORMAT = 'diffssl.train-checkpoint';

/** Where a run stands; enough to continue it exactly. */
export interface RunState {
  /** Epoch to run next (0-based). */
  epoch: number;
  /** Batch of that epoch to run next (0 at an epoch boundary). */
  step: number;
  /** Optimizer updates done so far. */
  globalStep: number;
  /** Learning rate in effect. */
  lr: number;
  /** The run's seed: example order, noise and augmentation all derive from it. */
  seed: number;
  batchSize: number;
  datasetSize: number;
  shuffle: boolean;
  dropLast: boolean;
  /** Sums over the current epoch's finished steps, so its report comes out the same after a resume. */
  epochSums: { loss: number; correct: number; seen: number; steps: number };
  /** Reports of finished epochs. */
  history: unknown[];
}

interface OptimizerRecord {
  className: string;
  config: Record<string, unknown>;
  iterations: number;
  /** Slot tensors per variable (momentum 1, Adam 2). */
  slotsPerVariable: number;
  /** Adam's running β powers, restored as they were (tfjs would recompute them with pow, an ulp off). */
  accBeta?: [number, number];
}

interface CheckpointJson extends RunState {
  format: typeof FORMAT;
  version: 1;
  files: { weights: string; optimizer: string };
  /** `'model'`: written by the model's saveWeights; `'variables'`: trainable variables by position. */
  weightsFormat: 'model' | 'variables';
  variables: { name: string; shape: number[] }[];
  optimizer: OptimizerRecord;
  savedAt: string;
}

type AdamInternals = { accBeta1?: tf.Variable; accBeta2?: tf.Variable };

/**
 * Saves model, optimizer and run state into `dir` (created if needed), then removes the files of
 * older saves beyond `keep`.
 * @returns the path of the checkpoint's JSON.
 */
export async function saveCheckpoint<I>(
  dir: string,
  model: TrainableModel<I>,
  optimizer: tf.Optimizer,
  state: RunState,
  keep = 1,
): Promise<string> {
  const { fs, path } = await nodeFs();
  await fs.promises.mkdir(dir, { recursive: true });
  const tag = `step-${String(state.globalStep).padStart(9, '0')}`;
  const files = { weights: `${tag}.weights.safetensors`, optimizer: `${tag}.optimizer.safetensors` };
  const vars = model.trainableVariables;

  let weightsFormat: CheckpointJson['weightsFormat'];
  if (typeof model.saveWeights === 'function') {
    weightsFormat = 'model';
    await model.saveWeights(path.join(dir, files.weights));
  } else {
    weightsFormat = 'variables';
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (let i = 0; i < vars.length; i++)
      tensors.set(`trainable.${i}`, { shape: [...vars[i].shape], data: (await vars[i].data()) as Float32Array });
    await writeSafetensors(path.join(dir, files.weights), tensors, { format: FORMAT });
  }

  const weights = await optimizer.getWeights();
  const [iter, ...slots] = weights;
  const iterations = (await iter.tensor.data())[0];
  iter.tensor.dispose();
  if (vars.length > 0 && slots.length % vars.length !== 0)
    throw new InputError(
      `the optimizer holds ${slots.length} slot tensors for ${vars.length} variables; was it used on other variables before?`,
    );
  const slotTensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (let j = 0; j < slots.length; j++)
    slotTensors.set(`slot.${j}`, {
      shape: [...slots[j].tensor.shape],
      data: (await slots[j].tensor.data()) as Float32Array,
    });
  const internals = optimizer as unknown as AdamInternals;
  const accBeta: [number, number] | undefined =
    internals.accBeta1 instanceof tf.Variable && internals.accBeta2 instanceof tf.Variable
      ? [(await internals.accBeta1.data())[0], (await internals.accBeta2.data())[0]]
      : undefined;
  await writeSafetensors(path.join(dir, files.optimizer), slotTensors, { format: FORMAT });

  const json: CheckpointJson = {
    format: FORMAT,
    version: 1,
    ...state,
    files,
    weightsFormat,
    variables: vars.map((v) => ({ name: v.name, shape: [...v.shape] })),
    optimizer: {
      className: optimizer.getClassName(),
      config: optimizer.getConfig() as Record<string, unknown>,
      iterations,
      slotsPerVariable: vars.length ? slots.length / vars.length : 0,
      ...(accBeta ? { accBeta } : {}),
    },
    savedAt: new Date().toISOString(),
  };
  const target = path.join(dir, CHECKPOINT_FILE);
  await writeBytesAtomic(target, JSON.stringify(json, null, 1));
  await pruneOld(dir, keep);
  return target;
}

/** Deletes checkpoint files that the current `checkpoint.json` does not name, keeping the newest `keep` saves, and stale temp files. */
async function pruneOld(dir: string, keep: number): Promise<void> {
  const { fs, path } = await nodeFs();
  const names = await fs.promises.readdir(dir);
  const tags = [
    ...new Set(
      names.map((n) => /^(step-\d+)\.(weights|optimizer)\.safetensors$/.exec(n)?.[1]).filter((t): t is string => !!t),
    ),
  ].sort();
  const keepTags = new Set(tags.slice(Math.max(0, tags.length - Math.max(1, keep))));
  const current = await readJson(path.join(dir, CHECKPOINT_FILE)).catch(() => undefined);
  if (current) keepTags.add(current.files.weights.replace(/\.weights\.safetensors$/, ''));
  for (const n of names) {
    const tag = /^(step-\d+)\.(weights|optimizer)\.safetensors$/.exec(n)?.[1];
    const stale =
      (tag && !keepTags.has(tag)) || (isTempName(n) && (n.startsWith('.step-') || n.startsWith(`.${CHECKPOINT_FILE}`)));
    if (stale) await fs.promises.rm(path.join(dir, n), { force: true }).catch(() => {});
  }
}

async function readJson(file: string): Promise<CheckpointJson> {
  const { fs } = await nodeFs();
  const text = await fs.promises.readFile(file, 'utf8');
  let json: CheckpointJson;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (json?.format !== FORMAT || json.version !== 1)
    throw new CheckpointError(
      `${file} is not a diffssl training checkpoint (format ${JSON.stringify(json?.format)}, version ${JSON.stringify(json?.version)})`,
    );
  return json;
}

/** Whether `dir` holds a checkpoint. */
export async function hasCheckpoint(dir: string): Promise<boolean> {
  const { fs, path } = await nodeFs();
  return fs.promises.access(path.join(dir, CHECKPOINT_FILE)).then(
    () => true,
    () => false,
  );
}

/**
 * Restores model weights and optimizer state from `dir`; returns the run state to continue from.
 * Give it a fresh optimizer of the same kind: its slots are replaced, not merged.
 * @throws CheckpointError when the directory holds no readable checkpoint, InputError when the
 *   model or optimizer does not fit it.
 */
export async function loadCheckpoint<I>(
  dir: string,
  model: TrainableModel<I>,
  optimizer: tf.Optimizer,
): Promise<RunState> {
  const { path } = await nodeFs();
  const file = path.join(dir, CHECKPOINT_FILE);
  if (!(await hasCheckpoint(dir))) throw new CheckpointError(`no checkpoint in ${dir} (${CHECKPOINT_FILE} is missing)`);
  const json = await readJson(file);
  const vars = model.trainableVariables;
  if (
    json.variables.length !== vars.length ||
    json.variables.some((v, i) => !tf.util.arraysEqual(v.shape, vars[i].shape))
  )
    throw new InputError(
      `checkpoint ${dir} was saved for ${json.variables.length} trainable variables of shapes ${JSON.stringify(json.variables.map((v) => v.shape))}; this model has ${vars.length}: ${JSON.stringify(vars.map((v) => v.shape))}`,
    );
  const rec = json.optimizer;
  if (rec.className !== optimizer.getClassName())
    throw new InputError(
      `checkpoint ${dir} holds ${rec.className} optimizer state; the optimizer given is ${optimizer.getClassName()}`,
    );
  const config = optimizer.getConfig() as Record<string, unknown>;
  for (const [k, v] of Object.entries(rec.config)) {
    if (k === 'learningRate') continue;
    if (JSON.stringify(config[k]) !== JSON.stringify(v))
      throw new InputError(
        `checkpoint ${dir} was trained with ${rec.className} ${k} = ${JSON.stringify(v)}; the optimizer given has ${JSON.stringify(config[k])}`,
      );
  }

  const weightsPath = path.join(dir, json.files.weights);
  if (json.weightsFormat === 'model') {
    if (typeof model.loadWeights !== 'function')
      throw new InputError(`checkpoint ${dir} holds the model's own weights file; this model has no loadWeights`);
    await model.loadWeights(weightsPath);
  } else {
    const r = await SafetensorsReader.open(weightsPath);
    try {
      const current = model.trainableVariables;
      for (let i = 0; i < current.length; i++) {
        const t = await r.read(`trainable.${i}`);
        if (!tf.util.arraysEqual(t.shape, current[i].shape))
          throw new CheckpointError(
            `${weightsPath}: trainable.${i} has shape [${t.shape}], expected [${current[i].shape}]`,
          );
        tf.tidy(() => current[i].assign(tf.tensor(t.data as Float32Array, t.shape, current[i].dtype)));
      }
    } finally {
      await r.close();
    }
  }

  const r = await SafetensorsReader.open(path.join(dir, json.files.optimizer));
  const restored: { name: string; tensor: tf.Tensor }[] = [];
  try {
    const nSlots = rec.slotsPerVariable * vars.length;
    if (r.keys().length !== nSlots)
      throw new CheckpointError(`${json.files.optimizer} holds ${r.keys().length} slot tensors, expected ${nSlots}`);
    const now = model.trainableVariables;
    const suffix = rec.className === 'Adam' ? ['/m', '/v'] : ['/momentum'];
    for (let j = 0; j < nSlots; j++) {
      const t = await r.read(`slot.${j}`);
      const v = now[j % now.length];
      restored.push({
        name: `${v.name}${suffix[Math.floor(j / now.length)] ?? `/slot${j}`}`,
        tensor: tf.tensor(t.data as Float32Array, t.shape),
      });
    }
  } catch (e) {
    tf.dispose(restored.map((x) => x.tensor));
    throw e;
  } finally {
    await r.close();
  }
  const iter = tf.scalar(rec.iterations, 'int32');
  try {
    await optimizer.setWeights([{ name: 'iter', tensor: iter }, ...restored]);
  } finally {
    // The optimizer's slot variables share the data of these tensors; dropping our handles frees nothing they use.
    iter.dispose();
    tf.dispose(restored.map((x) => x.tensor));
  }
  const internals = optimizer as unknown as AdamInternals;
  if (rec.accBeta && internals.accBeta1 instanceof tf.Variable && internals.accBeta2 instanceof tf.Variable) {
    const [b1, b2] = [internals.accBeta1, internals.accBeta2];
    tf.tidy(() => {
      b1.assign(tf.scalar(rec.accBeta![0]));
      b2.assign(tf.scalar(rec.accBeta![1]));
    });
  }
  const { epoch, step, globalStep, lr, seed, batchSize, datasetSize, shuffle, dropLast, epochSums, history } = json;
  return { epoch, step, globalStep, lr, seed, batchSize, datasetSize, shuffle, dropLast, epochSums, history };
}
