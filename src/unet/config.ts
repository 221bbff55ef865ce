/**
 * Model flags of guided-diffusion's `create_model_and_diffusion`, and their resolution into the
 * numbers the U-Net is built from.
 * @module
 */
import { InputError } from '../errors.js';
import type { ReferenceFlags } from './flags.js';
import { PRESETS, type PresetName } from './presets.js';
import { positiveInt } from '../util/checks.js';

/**
 * Typed camelCase form of the same flags. Omitted fields take guided-diffusion's defaults.
 * @category Backbone
 */
export interface UNetConfig {
  imageSize: number;
  numChannels: number;
  numResBlocks: number;
  /** Heads per attention block, used when `numHeadChannels` is -1. Default 4 (the 64 model uses 4, others set `numHeadChannels`). */
  numHeads?: number;
  /** Heads in the decoder; -1 means `numHeads`. */
  numHeadsUpsample?: number;
  /** Channels per head; when not -1 it wins over `numHeads`. Default -1. */
  numHeadChannels?: number;
  /** Resolutions (sides) that get attention, e.g. `[32, 16, 8]`. Default `[16, 8]`. */
  attentionResolutions?: number[];
  /** Width multipliers per level; default chosen from `imageSize` as in the reference. */
  channelMult?: number[];
  dropout?: number;
  /** Class-conditional with `numClasses` labels (1000 for the released models). */
  classCond?: boolean;
  numClasses?: number;
  /** FiLM conditioning in every ResBlock. Default true, as in guided-diffusion. */
  useScaleShiftNorm?: boolean;
  resblockUpdown?: boolean;
  useNewAttentionOrder?: boolean;
  /** Output 6 channels (ε and variance interpolation) instead of 3. */
  learnSigma?: boolean;
  inChannels?: number;
  diffusionSteps?: number;
  noiseSchedule?: 'linear' | 'cosine';
}

/**
 * Every number the network is built from, with defaults applied.
 * @category Backbone
 */
export interface ResolvedConfig {
  imageSize: number;
  inChannels: number;
  modelChannels: number;
  outChannels: number;
  numResBlocks: number;
  channelMult: number[];
  /** Downsample factors (`imageSize / resolution`) whose levels get attention. */
  attentionDs: number[];
  numHeads: number;
  numHeadsUpsample: number;
  numHeadChannels: number;
  useScaleShiftNorm: boolean;
  resblockUpdown: boolean;
  useNewAttentionOrder: boolean;
  /** Number of labels for a class-conditional model, else null. */
  numClasses: number | null;
  dropout: number;
  diffusionSteps: number;
  noiseSchedule: 'linear' | 'cosine';
}

/**
 * Anything `ADMUNet` accepts as its architecture: a preset name, the reference's flags, or a typed config.
 * @category Backbone
 */
export type ModelSpec = PresetName | ReferenceFlags | UNetConfig;

const DEFAULT_MULT: Record<number, number[]> = {
  512: [0.5, 1, 1, 2, 2, 4, 4],
  256: [1, 1, 2, 2, 4, 4],
  128: [1, 1, 2, 3, 4],
  64: [1, 2, 3, 4],
};

function commaList(s: string, what: string): number[] {
  const parts = s
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  const out = parts.map(Number);
  if (out.some((v) => !Number.isFinite(v) || v <= 0))
    throw new InputError(`${what} must be a comma list of positive numbers, got "${s}"`);
  return out;
}

// [reference name, typed name] of every flag that must be a boolean; `true`/`false` in quotes would read as true.
const BOOLEAN_FLAGS: readonly [string, keyof UNetConfig][] = [
  ['class_cond', 'classCond'],
  ['learn_sigma', 'learnSigma'],
  ['use_scale_shift_norm', 'useScaleShiftNorm'],
  ['resblock_updown', 'resblockUpdown'],
  ['use_new_attention_order', 'useNewAttentionOrder'],
];

// [reference name, typed name] of every flag that must be an integer (-1 means "not used" for the heads).
const INTEGER_FLAGS: readonly [string, keyof UNetConfig][] = [
  ['num_heads', 'numHeads'],
  ['num_heads_upsample', 'numHeadsUpsample'],
  ['num_head_channels', 'numHeadChannels'],
];

// Rejects flags of the wrong type by the name the caller used, before they are read as something else.
function checkFlagTypes(spec: Record<string, unknown>, reference: boolean): void {
  const describe = (v: unknown) => (typeof v === 'string' ? `"${v}" (a string)` : `${JSON.stringify(v)} (${typeof v})`);
  for (const [ref, typed] of BOOLEAN_FLAGS) {
    const name = reference ? ref : typed;
    const v = spec[name];
    if (v !== undefined && typeof v !== 'boolean')
      throw new InputError(
        `${name} must be true or false, got ${describe(v)}; in JSON write true or false without quotes`,
      );
  }
  for (const [ref, typed] of INTEGER_FLAGS) {
    const name = reference ? ref : typed;
    const v = spec[name];
    if (v !== undefined && !Number.isInteger(v)) throw new InputError(`${name} must be an integer, got ${describe(v)}`);
  }
  const dropout = spec.dropout;
  if (dropout !== undefined && (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)))
    throw new InputError(`dropout must be a number in [0, 1), got ${describe(dropout)}`);
  if (reference) {
    for (const name of ['attention_resolutions', 'channel_mult']) {
      const v = spec[name];
      if (v !== undefined && v !== null && v !== '' && typeof v !== 'string')
        throw new InputError(`${name} must be a comma list in a string, like "32,16,8", got ${describe(v)}`);
    }
  }
}

function isReference(spec: object): spec is ReferenceFlags {
  return 'image_size' in spec || 'num_channels' in spec;
}

function fromReference(f: ReferenceFlags): UNetConfig {
  const schedule = f.noise_schedule ?? 'linear';
  if (schedule !== 'linear' && schedule !== 'cosine')
    throw new InputError(`noise_schedule must be "linear" or "cosine", got "${schedule}"`);
  return {
    imageSize: f.image_size,
    numChannels: f.num_channels,
    numResBlocks: f.num_res_blocks,
    numHeads: f.num_heads,
    numHeadsUpsample: f.num_heads_upsample,
    numHeadChannels: f.num_head_channels,
    attentionResolutions:
      f.attention_resolutions === undefined ? undefined : commaList(f.attention_resolutions, 'attention_resolutions'),
    channelMult: f.channel_mult ? commaList(f.channel_mult, 'channel_mult') : undefined,
    dropout: f.dropout,
    classCond: f.class_cond,
    useScaleShiftNorm: f.use_scale_shift_norm,
    resblockUpdown: f.resblock_updown,
    useNewAttentionOrder: f.use_new_attention_order,
    learnSigma: f.learn_sigma,
    inChannels: f.in_channels,
    diffusionSteps: f.diffusion_steps,
    noiseSchedule: schedule,
  };
}

/**
 * A typed config that {@link resolveConfig} turns back into `c` (checked: a config whose attention
 * levels no integer resolution gives back throws), so a model can be rebuilt from another's `config`.
 * @throws InputError when no such config exists.
 */
export function specOf(c: ResolvedConfig): UNetConfig {
  const spec: UNetConfig = {
    imageSize: c.imageSize,
    numChannels: c.modelChannels,
    numResBlocks: c.numResBlocks,
    numHeads: c.numHeads,
    numHeadsUpsample: c.numHeadsUpsample,
    numHeadChannels: c.numHeadChannels,
    attentionResolutions: c.attentionDs.map((ds) => Math.floor(c.imageSize / ds)),
    channelMult: [...c.channelMult],
    dropout: c.dropout,
    classCond: c.numClasses !== null,
    ...(c.numClasses !== null ? { numClasses: c.numClasses } : {}),
    useScaleShiftNorm: c.useScaleShiftNorm,
    resblockUpdown: c.resblockUpdown,
    useNewAttentionOrder: c.useNewAttentionOrder,
    learnSigma: c.outChannels === 2 * c.inChannels,
    inChannels: c.inChannels,
    diffusionSteps: c.diffusionSteps,
    noiseSchedule: c.noiseSchedule,
  };
  if (JSON.stringify(resolveConfig(spec)) !== JSON.stringify(c))
    throw new InputError(`no model config gives back this one (${JSON.stringify(c)})`);
  return spec;
}

/**
 * Applies guided-diffusion's defaults and checks the flags for consistency.
 * @throws InputError naming the flag that is missing or impossible.
 * @category Backbone
 */
export function resolveConfig(spec: ModelSpec): ResolvedConfig {
  let c: UNetConfig;
  if (typeof spec === 'string') {
    const preset = PRESETS[spec as PresetName];
    if (!preset) throw new InputError(`unknown preset "${spec}"; known: ${Object.keys(PRESETS).join(', ')}`);
    c = fromReference(preset);
  } else if (spec && typeof spec === 'object') {
    const reference = isReference(spec);
    checkFlagTypes(spec as Record<string, unknown>, reference);
    c = reference ? fromReference(spec) : (spec as UNetConfig);
  } else {
    throw new InputError('model flags must be a preset name, the reference flag object or a UNetConfig');
  }
  const imageSize = positiveInt(c.imageSize, 'image_size');
  const modelChannels = positiveInt(c.numChannels, 'num_channels');
  const numResBlocks = positiveInt(c.numResBlocks, 'num_res_blocks');
  const channelMult = c.channelMult ?? DEFAULT_MULT[imageSize];
  if (!channelMult)
    throw new InputError(`image_size ${imageSize} has no default channel_mult; give channel_mult explicitly`);
  const attentionDs = (c.attentionResolutions ?? [16, 8]).map((res) => Math.floor(imageSize / res));
  const numHeads = c.numHeads ?? 4;
  const numHeadChannels = c.numHeadChannels ?? -1;
  const levelWidths = [...channelMult.map((m) => Math.trunc(m * modelChannels))];
  for (const w of levelWidths) {
    if (w % 32 !== 0)
      throw new InputError(
        `every level width must be a multiple of 32 (GroupNorm has 32 groups); num_channels ${modelChannels} × channel_mult gives ${w}`,
      );
    if (numHeadChannels !== -1 && w % numHeadChannels !== 0)
      throw new InputError(`level width ${w} is not divisible by num_head_channels ${numHeadChannels}`);
  }
  const levels = channelMult.length;
  if (imageSize % 2 ** (levels - 1) !== 0)
    throw new InputError(`image_size ${imageSize} is not divisible by 2^${levels - 1} (${levels} levels)`);
  const classCond = c.classCond ?? false;
  const diffusionSteps = positiveInt(c.diffusionSteps ?? 1000, 'diffusion_steps');
  return {
    imageSize,
    inChannels: positiveInt(c.inChannels ?? 3, 'in_channels'),
    modelChannels,
    outChannels: (c.inChannels ?? 3) * (c.learnSigma ? 2 : 1),
    numResBlocks,
    channelMult,
    attentionDs,
    numHeads,
    numHeadsUpsample: c.numHeadsUpsample === undefined || c.numHeadsUpsample === -1 ? numHeads : c.numHeadsUpsample,
    numHeadChannels,
    useScaleShiftNorm: c.useScaleShiftNorm ?? true,
    resblockUpdown: c.resblockUpdown ?? false,
    useNewAttentionOrder: c.useNewAttentionOrder ?? false,
    numClasses: classCond ? positiveInt(c.numClasses ?? 1000, 'num_classes') : null,
    dropout: c.dropout ?? 0,
    diffusionSteps,
    noiseSchedule: c.noiseSchedule ?? 'linear',
  };
}
