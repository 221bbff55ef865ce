import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { resolveConfig, specOf, type ResolvedConfig } from '../../src/unet/config';
import { PRESETS, type PresetName } from '../../src/unet/presets';

describe('specOf', () => {
  it("gives back every preset's config, and the default backbone's and a learn_sigma class-conditional one", () => {
    const specs = [
      ...(Object.keys(PRESETS) as PresetName[]),
      {
        image_size: 28,
        in_channels: 1,
        num_channels: 32,
        num_res_blocks: 2,
        channel_mult: '1,2,2',
        attention_resolutions: '7',
      },
      { image_size: 8, num_channels: 32, num_res_blocks: 1, channel_mult: '1,2', learn_sigma: true, class_cond: true },
    ];
    for (const spec of specs) {
      const c = resolveConfig(spec as never);
      expect(resolveConfig(specOf(c))).toEqual(c);
    }
  });

  it('throws an InputError for a config no flags give', () => {
    const c = resolveConfig({ image_size: 28, num_channels: 32, num_res_blocks: 1, channel_mult: '1,2,2' });
    // No integer resolution r has floor(28 / r) = 6.
    const odd: ResolvedConfig = { ...c, attentionDs: [6] };
    expect(() => specOf(odd)).toThrow(InputError);
  });
});
