import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffusionTables, spaceTimesteps } from '../../src/diffusion/tables';
import { InputError } from '../../src/errors';
import { readSafetensors } from '../../src/io/safetensors';
import { noiseSchedule } from '../../src/unet/schedule';
import { FIXTURES, fixtureJson } from '../helpers';

const relErr = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

describe('diffusion tables against the reference float64 schedule tables', () => {
  for (const fx of ['adm-tiny', 'adm-small-cond']) {
    it(`${fx}: ᾱ, β and the posterior coefficients from the fixture's own betas and alphas_cumprod`, async () => {
      const flags = fixtureJson(`${fx}/config.json`).create_model_and_diffusion_args;
      const act = await readSafetensors(path.join(FIXTURES, fx, 'activations.safetensors'));
      const betas = act.get('schedule.betas')!.data as Float64Array;
      const ac = act.get('schedule.alphas_cumprod')!.data as Float64Array;
      const d = diffusionTables(noiseSchedule(flags.noise_schedule, flags.diffusion_steps));
      expect(d.steps).toBe(1000);
      expect(d.timesteps).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      let worst = 0;
      const check = (ours: number, ref: number) => (worst = Math.max(worst, relErr(ours, ref)));
      for (let t = 0; t < 1000; t++) {
        const prev = t === 0 ? 1 : ac[t - 1];
        check(d.betas[t], betas[t]);
        check(d.alphasCumprod[t], ac[t]);
        check(d.alphasCumprodPrev[t], prev);
        check(d.sqrtRecipAlphasCumprod[t], 1 / Math.sqrt(ac[t]));
        check(d.sqrtRecipm1AlphasCumprod[t], Math.sqrt((1 - ac[t]) / ac[t]));
        check(d.posteriorVariance[t], (betas[t] * (1 - prev)) / (1 - ac[t]));
        check(d.posteriorMeanCoef1[t], (betas[t] * Math.sqrt(prev)) / (1 - ac[t]));
        check(d.posteriorMeanCoef2[t], ((1 - prev) * Math.sqrt(1 - betas[t])) / (1 - ac[t]));
        // The log posterior variance at t = 0 (where the variance is 0) is step 1's.
        const v1 = (betas[1] * (1 - ac[0])) / (1 - ac[1]);
        check(d.posteriorLogVarianceClipped[t], t === 0 ? Math.log(v1) : Math.log(d.posteriorVariance[t]));
      }
      expect(d.posteriorVariance[0]).toBe(0);
      expect(d.posteriorMeanCoef1[0]).toBeCloseTo(1, 12);
      expect(d.posteriorMeanCoef2[0]).toBe(0);
      // A few ulps: ᾱ is a running product and the reference's betas are recomputed from it.
      expect(worst).toBeLessThan(1e-11);
    });
  }

  it('respaced (SpacedDiffusion): kept steps keep their ᾱ, betas are 1 − ᾱ_k / ᾱ_prev kept, in any order given', () => {
    const s = noiseSchedule('linear', 1000);
    const d = diffusionTables(s, [999, 0, 500]);
    expect(d.timesteps).toEqual([0, 500, 999]);
    expect(d.steps).toBe(3);
    [0, 500, 999].forEach((k, i) => expect(relErr(d.alphasCumprod[i], s.alphasCumprod[k])).toBeLessThan(1e-13));
    expect(d.betas[0]).toBeCloseTo(s.betas[0], 15);
    expect(relErr(d.betas[1], 1 - s.alphasCumprod[500] / s.alphasCumprod[0])).toBeLessThan(1e-14);
    expect(relErr(d.betas[2], 1 - s.alphasCumprod[999] / s.alphasCumprod[500])).toBeLessThan(1e-14);
    expect(relErr(d.alphasCumprodPrev[2], s.alphasCumprod[500])).toBeLessThan(1e-13);
  });

  it('rejects fewer than 2 steps, repeated and out-of-range steps', () => {
    const s = noiseSchedule('linear', 10);
    expect(() => diffusionTables(noiseSchedule('linear', 1))).toThrow(/at least 2 steps/);
    expect(() => diffusionTables(s, [3])).toThrow(InputError);
    expect(() => diffusionTables(s, [3, 3])).toThrow(/listed twice/);
    expect(() => diffusionTables(s, [0, 10])).toThrow(/\[0, 10\)/);
    expect(() => diffusionTables(s, [0, 1.5])).toThrow(InputError);
  });
});

describe('spaceTimesteps: guided-diffusion\'s "ddimN" stride rule', () => {
  it('gives the hand-computed sequences', () => {
    expect(spaceTimesteps(1000, 50)).toEqual(Array.from({ length: 50 }, (_, i) => 20 * i));
    expect(spaceTimesteps(1000, 10)).toEqual([0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
    expect(spaceTimesteps(1000, 250).slice(-2)).toEqual([992, 996]);
    expect(spaceTimesteps(1000, 1000)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    // ceil(10 / 3) = 4: the stride need not divide T.
    expect(spaceTimesteps(10, 4)).toEqual([0, 3, 6, 9]);
    expect(spaceTimesteps(10, 5)).toEqual([0, 2, 4, 6, 8]);
    expect(spaceTimesteps(10, 2)).toEqual([0, 5]);
    expect(spaceTimesteps(4, 2)).toEqual([0, 2]);
    // The smallest stride wins: ceil(7 / 4) = ceil(7 / 5) = ceil(7 / 6) = 2.
    expect(spaceTimesteps(7, 2)).toEqual([0, 4]);
  });

  it('refuses counts outside [1, T] and counts no stride gives, naming counts that work', () => {
    expect(() => spaceTimesteps(1000, 300)).toThrow(
      /no integer stride gives exactly 300 of 1000 steps.*use 250 or 334 steps/,
    );
    expect(() => spaceTimesteps(4, 3)).toThrow(InputError);
    // The reference tries strides below T only, so one step is never possible.
    expect(() => spaceTimesteps(10, 1)).toThrow(/no integer stride/);
    expect(() => spaceTimesteps(10, 0)).toThrow(/\[1, 10\]/);
    expect(() => spaceTimesteps(10, 11)).toThrow(/\[1, 10\]/);
    expect(() => spaceTimesteps(10, 2.5)).toThrow(InputError);
  });
});
