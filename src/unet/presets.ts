/**
 * The architectures of the released guided-diffusion checkpoints, named after their files, as the
 * flag dictionaries of the guided-diffusion README. `ADMUNet.load('256x256_diffusion_uncond.pt',
 * '256x256_diffusion_uncond')` builds the model that file's state dict fits.
 * @module
 */
import type { ReferenceFlags } from './flags.js';

// Flags every release shares; each preset lists only what differs.
const COMMON = {
  num_channels: 256,
  num_res_blocks: 2,
  num_heads: 4,
  num_heads_upsample: -1,
  num_head_channels: 64,
  attention_resolutions: '32,16,8',
  channel_mult: '',
  dropout: 0.0,
  class_cond: false,
  use_scale_shift_norm: true,
  resblock_updown: true,
  use_fp16: true,
  use_new_attention_order: false,
  learn_sigma: true,
  diffusion_steps: 1000,
  noise_schedule: 'linear',
} as const;

const LSUN = { ...COMMON, image_size: 256, dropout: 0.1 };

/**
 * Reference flags of each released U-Net checkpoint.
 * @category Backbone
 */
export const PRESETS = {
  '64x64_diffusion': {
    ...COMMON,
    image_size: 64,
    num_channels: 192,
    num_res_blocks: 3,
    dropout: 0.1,
    class_cond: true,
    use_new_attention_order: true,
    noise_schedule: 'cosine',
  },
  '128x128_diffusion': { ...COMMON, image_size: 128, num_head_channels: -1, class_cond: true },
  '256x256_diffusion': { ...COMMON, image_size: 256, class_cond: true },
  '256x256_diffusion_uncond': { ...COMMON, image_size: 256 },
  '512x512_diffusion': { ...COMMON, image_size: 512, class_cond: true, use_fp16: false },
  lsun_bedroom: LSUN,
  lsun_cat: LSUN,
  lsun_horse: LSUN,
  lsun_horse_nodropout: { ...LSUN, dropout: 0.0 },
} satisfies Record<string, ReferenceFlags>;

/**
 * Names of the released checkpoints that have a preset.
 * @category Backbone
 */
export type PresetName = keyof typeof PRESETS;
