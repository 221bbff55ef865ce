/**
 * The reference's model flags as a type, shared by the config resolver and the presets.
 * @module
 */

/**
 * The reference's flag dictionary, exactly as `create_model_and_diffusion_args` in a fixture's
 * `config.json` or the README of guided-diffusion spells it (snake_case). Flags that do not change
 * the network (`use_fp16`, `use_checkpoint`, `use_kl`, …) are accepted and ignored.
 * @category Backbone
 */
export interface ReferenceFlags {
  image_size: number;
  num_channels: number;
  num_res_blocks: number;
  num_heads?: number;
  num_heads_upsample?: number;
  num_head_channels?: number;
  attention_resolutions?: string;
  channel_mult?: string;
  dropout?: number;
  class_cond?: boolean;
  use_scale_shift_norm?: boolean;
  resblock_updown?: boolean;
  use_new_attention_order?: boolean;
  learn_sigma?: boolean;
  diffusion_steps?: number;
  noise_schedule?: string;
  in_channels?: number;
  [other: string]: unknown;
}
