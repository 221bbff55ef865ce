import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { readSafetensors } from '../../src/io/safetensors';
import { checkTimesteps, noiseSchedule } from '../../src/unet/schedule';
import { FIXTURES, fixtureJson } from '../helpers';

describe('noise schedules against the reference float64 tables', () => {
  for (const fx of ['adm-tiny', 'adm-small-cond']) {
    it(`${fx} (${fixtureJson(`${fx}/config.json`).create_model_and_diffusion_args.noise_schedule})`, async () => {
      const flags = fixtureJson(`${fx}/config.json`).create_model_and_diffusion_args;
      const act = await readSafetensors(path.join(FIXTURES, fx, 'activations.safetensors'));
      const s = noiseSchedule(flags.noise_schedule, flags.diffusion_steps);
      const tables: [string, Float64Array][] = [
        ['schedule.betas', s.betas],
        ['schedule.alphas_cumprod', s.alphasCumprod],
        ['schedule.sqrt_alphas_cumprod', s.sqrtAlphasCumprod],
        ['schedule.sqrt_one_minus_alphas_cumprod', s.sqrtOneMinusAlphasCumprod],
      ];
      for (const [k, ours] of tables) {
        const ref = act.get(k)!.data as Float64Array;
        expect(ours.length).toBe(ref.length);
        // float64 tables: the reference's SpacedDiffusion recomputes betas (≤ 2e-16 apart) and libm
        // cos may differ in the last bit, so allow a few ulps.
        let worst = 0;
        ref.forEach((v, i) => (worst = Math.max(worst, Math.abs(ours[i] - v) / Math.max(Math.abs(v), 1e-300))));
        expect(worst, k).toBeLessThan(1e-12);
      }
    });
  }

  it('the cast to float32 of the q_sample coefficients matches the reference exactly', async () => {
    const act = await readSafetensors(path.join(FIXTURES, 'adm-tiny', 'activations.safetensors'));
    const s = noiseSchedule('linear', 1000);
    const ref = act.get('schedule.sqrt_alphas_cumprod')!.data as Float64Array;
    for (let i = 0; i < 1000; i++) expect(Math.fround(s.sqrtAlphasCumprod[i])).toBe(Math.fround(ref[i]));
  });

  it('rejects bad arguments with typed errors', () => {
    expect(() => noiseSchedule('quadratic' as 'linear')).toThrow(InputError);
    expect(() => noiseSchedule('linear', 0)).toThrow(/positive integer/);
    expect(() => checkTimesteps([0, 1000], 1000, 2)).toThrow(/t\[1\] = 1000 is outside \[0, 1000\)/);
    expect(() => checkTimesteps([-1], 1000, 1)).toThrow(InputError);
    expect(() => checkTimesteps([1.5], 1000, 1)).toThrow(/integer/);
    expect(() => checkTimesteps([1, 2], 1000, 3)).toThrow(/2 entries but the batch has 3/);
  });
});
