/**
 * The checkpoint of a {@link trainDiffusion} run: one safetensors file holding the weights, their
 * EMA and Adam's moments (tfjs layout, under `model/`, `ema/`, `adam.m/`, `adam.v/` + the weight's
 * reference name), with the step, the run's settings, the architecture and the loss of every step
 * in its metadata; beside it the EMA as a model file. Written atomically, so an interrupted write leaves the previous checkpoint.
 * @module
 */
import type * as tf from '@tensorflow/tfjs-core';
import { CheckpointError } from '../errors.js';
import { SafetensorsReader, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { nodeFs } from '../util/nodeFs.js';

/** The file a run's checkpoint lives in, inside its directory. */
export const RUN_FILE = 'diffusion-run.safetensors';
/** The EMA weights of a run's last checkpoint, as a model file. */
export const EMA_FILE = 'ema.safetensors';
const FORMAT = 'diffssl-diffusion-run/1';
const GROUPS = { model: 'model/', ema: 'ema/', m: 'adam.m/', v: 'adam.v/' } as const;

/** A run at a step: its tensors (as tensors when saving, as arrays when loaded) and its record. */
export interface RunSnapshot<T = tf.Tensor> {
  step: number;
  settings: unknown;
  config: unknown;
  losses: number[];
  tensors: Record<keyof typeof GROUPS, Map<string, T>>;
}

/**
 * Writes `snap` as `dir`/{@link RUN_FILE} and its EMA weights (reference names and layouts) as
 * `dir`/{@link EMA_FILE}, a model file `ADMUNet.load` reads; each atomically, the EMA first (the run
 * file is what a resume trusts). The directory is made if missing.
 */
export async function saveRun(dir: string, snap: RunSnapshot, ema: Map<string, TensorToWrite>): Promise<void> {
  const { fs, path } = await nodeFs();
  await fs.promises.mkdir(dir, { recursive: true });
  await writeSafetensors(path.join(dir, EMA_FILE), ema, {
    format: 'pt',
    producer: 'diffssl trainDiffusion',
    step: String(snap.step),
  });
  const out = new Map<string, TensorToWrite>();
  for (const [group, prefix] of Object.entries(GROUPS) as [keyof typeof GROUPS, string][])
    for (const [name, t] of snap.tensors[group])
      out.set(prefix + name, { shape: t.shape, data: t.dataSync() as Float32Array });
  await writeSafetensors(path.join(dir, RUN_FILE), out, {
    format: FORMAT,
    step: String(snap.step),
    settings: JSON.stringify(snap.settings),
    config: JSON.stringify(snap.config),
    losses: JSON.stringify(snap.losses),
  });
}

/**
 * The run saved in `dir`, or null when there is none.
 * @throws CheckpointError for a file that is not a complete run checkpoint.
 */
export async function loadRun(dir: string): Promise<RunSnapshot<Float32Array> | null> {
  const { fs, path } = await nodeFs();
  const file = path.join(dir, RUN_FILE);
  try {
    await fs.promises.access(file);
  } catch {
    return null;
  }
  const reader = await SafetensorsReader.open(file);
  const tensors = {
    model: new Map(),
    ema: new Map(),
    m: new Map(),
    v: new Map(),
  } as RunSnapshot<Float32Array>['tensors'];
  let meta: Record<string, string>;
  try {
    meta = reader.metadata;
    if (meta.format !== FORMAT) throw new CheckpointError(`${file} is not a diffssl diffusion-training checkpoint`);
    for (const key of reader.keys()) {
      const t = await reader.read(key);
      const group = (Object.keys(GROUPS) as (keyof typeof GROUPS)[]).find((g) => key.startsWith(GROUPS[g]));
      if (!group || !(t.data instanceof Float32Array)) throw new CheckpointError(`${file}: unexpected tensor "${key}"`);
      tensors[group].set(key.slice(GROUPS[group].length), t.data);
    }
  } finally {
    await reader.close();
  }
  const parse = (key: string): unknown => {
    try {
      return JSON.parse(meta[key]);
    } catch {
      throw new CheckpointError(`${file}: its metadata "${key}" is not valid JSON; the file is corrupt`);
    }
  };
  const step = Number(meta.step);
  const losses = parse('losses');
  if (!Number.isInteger(step) || step < 0 || !Array.isArray(losses) || losses.length < step)
    throw new CheckpointError(`${file}: its step and loss record disagree; the file is corrupt`);
  const sizes = Object.values(tensors).map((m) => m.size);
  if (sizes.some((s) => s !== sizes[0])) throw new CheckpointError(`${file}: weights, EMA and moments do not match`);
  return { step, settings: parse('settings'), config: parse('config'), losses: losses as number[], tensors };
}
