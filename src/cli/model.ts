/**
 * The model options every model command takes: `--model file --flags preset|flags.json`, default the
 * embedded backbone; and `--backend`. Also the check of `--t` and `--b` against the model.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_BACKBONE, loadDefaultBackbone } from '../defaultBackbone.js';
import { modelHash } from '../data/featureShards.js';
import { InputError } from '../errors.js';
import { ADMUNet } from '../unet/admUnet.js';
import type { ModelSpec } from '../unet/config.js';
import { PRESETS } from '../unet/presets.js';
import { CommandFailure, fsFailure, UsageError, type CliIO } from './io.js';
import type { FlagSpec } from './args.js';

/** The flags of {@link loadModel}. */
export const MODEL_FLAGS = {
  model: { kind: 'string' },
  flags: { kind: 'string' },
  backend: { kind: 'string' },
} as const satisfies Record<string, FlagSpec>;

/** The help line of `--backend`, which the commands that run tfjs without a model (`knn`) take too. */
export const BACKEND_HELP = `  --backend NAME     tfjs backend (tensorflow, wasm, cpu, …); default: the fastest present`;

/** `words` joined by ", " into lines of at most `width` characters, each after `indent`. */
function wrapList(words: readonly string[], indent: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const [i, w] of words.entries()) {
    const item = i < words.length - 1 ? `${w},` : w;
    if (line && indent.length + line.length + 1 + item.length > width) {
      lines.push(line);
      line = item;
    } else line = line ? `${line} ${item}` : item;
  }
  return [...lines, line].map((l) => `${indent}${l}`).join('\n');
}

/** The help lines of `--model` and `--flags`. */
export const MODEL_FILE_HELP = `  --model FILE       the U-Net's weights (.safetensors or .pt); default: the embedded backbone
                     (${DEFAULT_BACKBONE.dir}, ${DEFAULT_BACKBONE.imageSize}×${DEFAULT_BACKBONE.imageSize}×${DEFAULT_BACKBONE.inChannels})
  --flags SPEC       with --model: a preset or a JSON file of guided-diffusion's flags (or a
                     config.json holding create_model_and_diffusion_args); default: flags.json
                     beside the weights. The presets:
${wrapList(Object.keys(PRESETS), ' '.repeat(21), 100)}`;

/** The help lines of {@link MODEL_FLAGS}. */
export const MODEL_HELP = `${MODEL_FILE_HELP}
${BACKEND_HELP}`;

export interface LoadedModel {
  model: ADMUNet;
  /** What was loaded, in words. */
  label: string;
  /** The weights file, or undefined for the embedded backbone. */
  file?: string;
  /** The flags as given (a preset name or the JSON's object); undefined for the embedded backbone. */
  flags?: string | Record<string, unknown>;
}

function readJsonFile(command: string, file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw fsFailure(e, command, 'read the flags file', file);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CommandFailure(
      `${command}: ${file} is not JSON (${(e as Error).message}); give a preset name or a flags JSON file`,
    );
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new CommandFailure(
      `${command}: ${file} does not hold a JSON object of flags; give a preset name or a flags JSON file`,
    );
  const o = v as Record<string, unknown>;
  const inner = o.create_model_and_diffusion_args;
  return typeof inner === 'object' && inner !== null ? (inner as Record<string, unknown>) : o;
}

/** Starts the backend, then loads the model the flags name. */
export async function loadModel(
  command: string,
  opts: { model?: string; flags?: string; backend?: string },
  io: CliIO,
): Promise<LoadedModel> {
  if (opts.flags !== undefined && opts.model === undefined)
    throw new UsageError(`${command}: --flags goes with --model (the embedded backbone has its own)`, command);
  await io.backend?.(opts.backend);
  if (opts.model === undefined) {
    const model = await loadDefaultBackbone();
    return { model, label: `the embedded backbone (${DEFAULT_BACKBONE.dir})` };
  }
  const file = path.resolve(opts.model);
  if (!fs.existsSync(file)) throw new CommandFailure(`${command}: the model file ${opts.model} does not exist`);
  if (fs.statSync(file).isDirectory())
    throw new CommandFailure(`${command}: ${opts.model} is a folder; give the weights file (.safetensors or .pt)`);
  let spec: string | Record<string, unknown>;
  if (opts.flags === undefined) {
    const beside = path.join(path.dirname(file), 'flags.json');
    if (!fs.existsSync(beside))
      throw new UsageError(
        `${command}: --model needs --flags (a preset name or a flags JSON file); there is no flags.json beside ${opts.model}`,
        command,
      );
    spec = readJsonFile(command, beside);
  } else if (Object.hasOwn(PRESETS, opts.flags)) spec = opts.flags;
  else if (/\.json$/i.test(opts.flags) || fs.existsSync(opts.flags)) spec = readJsonFile(command, opts.flags);
  else
    throw new UsageError(
      `${command}: --flags ${opts.flags} is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a JSON file`,
      command,
    );
  const model = await ADMUNet.load(file, spec as ModelSpec);
  return { model, label: opts.model, file, flags: spec };
}

/**
 * Checks that the model has every step of `t` and every block of `b`.
 * @throws InputError naming the values out of range and the model's.
 */
export function checkGrid(command: string, model: ADMUNet, t: readonly number[], b: readonly number[]): void {
  const T = model.schedule.steps;
  const badT = t.filter((v) => v >= T);
  if (badT.length)
    throw new InputError(`${command}: --t ${badT.join(',')} is out of range: this model's steps are 0..${T - 1}`);
  const badB = b.filter((v) => v < 1 || v > model.totalBlocks);
  if (badB.length)
    throw new InputError(
      `${command}: unknown block ${badB.join(',')}: this model has blocks 1..${model.totalBlocks} (see diffssl info)`,
    );
}

/**
 * The model's identity for a feature directory: for a weights file, the SHA-256 of the file and its flags
 * (read once, streamed); for the embedded backbone, {@link modelHash} (its weights are small).
 */
export async function modelIdentity(m: LoadedModel): Promise<string> {
  if (!m.file) return modelHash(m.model);
  const { createHash } = await import('node:crypto');
  const h = createHash('sha256');
  h.update(JSON.stringify(m.model.config));
  await new Promise<void>((resolve, reject) =>
    fs
      .createReadStream(m.file!)
      .on('data', (c) => h.update(c))
      .on('end', resolve)
      .on('error', reject),
  );
  return h.digest('hex');
}
