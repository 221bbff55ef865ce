import { describe, expect, it } from 'vitest';
import { buildArchitecture } from '../../src/unet/architecture';
import { resolveConfig } from '../../src/unet/config';
import { PRESETS } from '../../src/unet/presets';
import { fixtureJson } from '../helpers';

const index = fixtureJson('manifests/index.json');

describe('architecture of every released checkpoint', () => {
  for (const name of index.unet_models as string[]) {
    it(`${name}: preset builds exactly the manifest's state dict and block table`, () => {
      const m = fixtureJson(`manifests/${name}.json`);
      const arch = buildArchitecture(resolveConfig(name as keyof typeof PRESETS));
      expect(arch.parameters).toEqual(m.state_dict);
      const count = arch.parameters.reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
      expect(count).toBe(m.num_parameters);
      expect(arch.blocks.length).toBe(m.total_blocks);
      expect(arch.numInputBlocks).toBe(m.num_input_blocks);
      expect(arch.blocks.map(({ b, part, module, channels, size }) => ({ b, part, module, channels, size }))).toEqual(
        m.blocks.map(({ b, part, module, channels, size }: any) => ({ b, part, module, channels, size })),
      );
      // The reference flags as given in the manifest build the same model as the preset.
      expect(buildArchitecture(resolveConfig(m.create_model_and_diffusion_args)).parameters).toEqual(m.state_dict);
    });
  }
});

describe('architecture of the fixtures', () => {
  for (const fx of ['adm-tiny', 'adm-small-cond']) {
    it(`${fx}: keys, shapes and block table match config.json`, () => {
      const cfg = fixtureJson(`${fx}/config.json`);
      const arch = buildArchitecture(resolveConfig(cfg.create_model_and_diffusion_args));
      expect(arch.parameters).toEqual(cfg.state_dict_keys_in_order.map(([k, s]: [string, number[]]) => [k, s]));
      for (const row of cfg.model.blocks) {
        const got = arch.blocks[row.b - 1];
        expect({ b: got.b, channels: got.channels, size: got.size, module: got.module }).toEqual({
          b: row.b,
          channels: row.channels,
          size: row.size,
          module: row.module,
        });
        if (row.skip_from_block) expect(got.skipFrom).toBe(row.skip_from_block);
      }
    });
  }

  it('the 256 model has the table of the paper (b = 19 is the 8×8 middle block, b = 22 ends 16×16)', () => {
    const arch = buildArchitecture(resolveConfig('256x256_diffusion_uncond'));
    expect(arch.blocks[18]).toMatchObject({ b: 19, part: 'middle', channels: 1024, size: 8 });
    expect(arch.blocks[21]).toMatchObject({ b: 22, channels: 1024, size: 16 });
    expect(arch.blocks[23]).toMatchObject({ b: 24, channels: 1024, size: 16 });
    expect(arch.blocks[36]).toMatchObject({ b: 37, channels: 256, size: 256 });
  });
});

describe('analytic cost', () => {
  it('counts the 256 model’s convolutions: 1.12 T multiply-adds in all, about 29 % of them through b = 24', async () => {
    const { convMultiplyAdds } = await import('../../src/unet/architecture');
    const arch = buildArchitecture(resolveConfig('256x256_diffusion_uncond'));
    const all = convMultiplyAdds(arch, 6);
    // BACKENDS.md: 2.24 TFLOP for the full pass, 0.655 TFLOP up to the 16×16 decoder level.
    expect(all / 1e12).toBeGreaterThan(1.08);
    expect(all / 1e12).toBeLessThan(1.16);
    expect(convMultiplyAdds(arch, 6, 24) / all).toBeGreaterThan(0.25);
    expect(convMultiplyAdds(arch, 6, 24) / all).toBeLessThan(0.33);
    // one 3×3 conv 3→C at full size for block 1
    expect(convMultiplyAdds(arch, 6, 1)).toBe(256 * 256 * 3 * 256 * 9);
  });
});
