import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The loops, then the single steps they are checked against.
import { sampleDDIM, sampleDDPM, samplerNoise, type VarianceKind } from '../../src/diffusion/sampler';
import { ddimStep, ddpmStep, pMeanVariance, qPosteriorMeanVariance } from '../../src/diffusion/sampler';
import { diffusionTables, spaceTimesteps } from '../../src/diffusion/tables';
import { InputError } from '../../src/errors';
import { readSafetensors, type ReadTensor } from '../../src/io/safetensors';
import { ADMUNet } from '../../src/unet/admUnet';
import type { ReferenceFlags } from '../../src/unet/flags';
import type { SampleProgressInfo } from '../../src/util/progress';
import { BACKENDS, compareArrays, FIXTURES, fixtureJson, nchwToNhwc, setBackend } from '../helpers';

const tensorOf = (t: ReadTensor) => {
  const { data, shape } = nchwToNhwc(t.data as Float32Array, t.shape);
  return tf.tensor4d(data, shape);
};

/** The float64 tables a hand computation reads: the steps kept, their ᾱ and β, from the fixture's tables. */
interface Ref {
  ac: number[];
  prev: number[];
  beta: number[];
}
function refTables(alphasCumprod: Float64Array, kept?: number[]): Ref {
  const ks = kept ?? Array.from(alphasCumprod, (_, i) => i);
  const ac = ks.map((k) => alphasCumprod[k]);
  const prev = ac.map((_, i) => (i === 0 ? 1 : ac[i - 1]));
  return { ac, prev, beta: ac.map((a, i) => 1 - a / prev[i]) };
}

/**
 * guided-diffusion's `p_mean_variance` for ε-prediction, in float64, from the model's own output
 * `out` (NHWC, C or 2·C channels) at x_t: x̂0, the posterior mean at it, and the log variance.
 */
function handPMeanVariance(
  r: Ref,
  xt: Float32Array,
  out: Float32Array,
  t: number[],
  C: number,
  kind: VarianceKind,
  clip: boolean,
) {
  const outC = out.length / (xt.length / C);
  const perExample = xt.length / t.length;
  const mean = new Float64Array(xt.length);
  const logVar = new Float64Array(xt.length);
  const x0s = new Float64Array(xt.length);
  const variance = new Float64Array(xt.length);
  const postVar = (i: number) => (r.beta[i] * (1 - r.prev[i])) / (1 - r.ac[i]);
  for (let e = 0; e < xt.length; e++) {
    const i = t[Math.floor(e / perExample)];
    const pix = Math.floor(e / C);
    const c = e % C;
    const eps = out[pix * outC + c];
    let x0 = Math.sqrt(1 / r.ac[i]) * xt[e] - Math.sqrt(1 / r.ac[i] - 1) * eps;
    if (clip) x0 = Math.min(1, Math.max(-1, x0));
    x0s[e] = x0;
    const coef1 = (r.beta[i] * Math.sqrt(r.prev[i])) / (1 - r.ac[i]);
    const coef2 = ((1 - r.prev[i]) * Math.sqrt(1 - r.beta[i])) / (1 - r.ac[i]);
    mean[e] = coef1 * x0 + coef2 * xt[e];
    const minLog = Math.log(postVar(i === 0 ? 1 : i));
    if (kind === 'learned') {
      const frac = (out[pix * outC + C + c] + 1) / 2;
      logVar[e] = frac * Math.log(r.beta[i]) + (1 - frac) * minLog;
    } else if (kind === 'fixedlarge') logVar[e] = Math.log(i === 0 ? postVar(1) : r.beta[i]);
    else logVar[e] = minLog;
    // fixedsmall's variance is the posterior's itself, 0 at t = 0, while its log is clipped.
    variance[e] = kind === 'fixedsmall' ? postVar(i) : Math.exp(logVar[e]);
  }
  return { mean, logVar, variance, x0: x0s };
}

const flat = (x: tf.Tensor, shape: number[]) => tf.tidy(() => tf.broadcastTo(x, shape).dataSync() as Float32Array);
// A fixed noise tensor that is not standard normal in any special way.
const fixedNoise = (shape: [number, number, number, number]) =>
  tf.tensor4d(
    Float32Array.from({ length: shape.reduce((a, b) => a * b) }, (_, i) => Math.sin(i * 1.37) * 1.5),
    shape,
  );

const backend = BACKENDS[0];

const fixtures = [
  { fx: 'adm-tiny', t: [0, 150], kinds: ['learned', 'fixedlarge', 'fixedsmall'] as VarianceKind[] },
  { fx: 'adm-small-cond', t: [37, 600], kinds: ['fixedlarge', 'fixedsmall'] as VarianceKind[] },
];

for (const { fx, t, kinds } of fixtures) {
  describe(`one step on the ${fx} fixture model against a float64 hand computation (${backend})`, () => {
    let unet: ADMUNet;
    let act: Map<string, ReadTensor>;
    let flags: ReferenceFlags;
    let xt: tf.Tensor4D;
    let y: number[] | undefined;
    let r: Ref;
    beforeAll(async () => {
      await setBackend(backend);
      flags = fixtureJson(`${fx}/config.json`).create_model_and_diffusion_args;
      unet = await ADMUNet.load(path.join(FIXTURES, fx, 'weights.safetensors'), flags);
      act = await readSafetensors(path.join(FIXTURES, fx, 'activations.safetensors'));
      xt = tensorOf(act.get('x_t')!);
      y = act.has('y') ? Array.from(act.get('y')!.data as BigInt64Array, Number) : undefined;
      r = refTables(act.get('schedule.alphas_cumprod')!.data as Float64Array);
    });
    afterAll(() => {
      unet?.dispose();
      xt?.dispose();
    });

    const modelOut = (steps: number[]) =>
      tf.tidy(() => unet.forward(xt, steps, y ? { y } : {}).output!.dataSync() as Float32Array);

    for (const kind of kinds)
      for (const clip of [true, false])
        it(`p_mean_variance: x̂0, mean and log variance (${kind}${kind === kinds[0] ? ', the default' : ''}, clip ${clip})`, () => {
          const before = tf.memory().numTensors;
          const out = modelOut(t);
          const hand = handPMeanVariance(r, xt.dataSync() as Float32Array, out, t, 3, kind, clip);
          const got = pMeanVariance(unet, xt, t, {
            ...(kind === kinds[0] ? {} : { variance: kind }),
            clipDenoised: clip,
            ...(y ? { y } : {}),
          });
          const cmp = (a: tf.Tensor, b: Float64Array, what: string) => {
            const d = compareArrays(flat(a, xt.shape), b, 1e-5, 1e-4);
            expect(d.ok, `${what}: ${d.firstBad} (max |Δ| ${d.maxAbs})`).toBe(true);
          };
          cmp(got.predXstart, hand.x0, 'x̂0');
          cmp(got.mean, hand.mean, 'mean');
          cmp(got.logVariance, hand.logVar, 'log variance');
          cmp(got.variance, hand.variance, 'variance');
          if (clip) expect(Math.max(...hand.x0.map(Math.abs))).toBe(1);
          else expect(Math.max(...hand.x0.map(Math.abs))).toBeGreaterThan(1);
          tf.dispose(Object.values(got));
          expect(tf.memory().numTensors).toBe(before);
        });

    it('q_posterior_mean_variance at x̂0 is the model mean, with the clipped posterior log variance', () => {
      const before = tf.memory().numTensors;
      const tables = diffusionTables(unet.schedule);
      const p = pMeanVariance(unet, xt, t, { variance: 'fixedsmall', ...(y ? { y } : {}) });
      const q = qPosteriorMeanVariance(tables, p.predXstart, xt, t);
      expect(compareArrays(q.mean.dataSync(), p.mean.dataSync(), 0, 0).ok).toBe(true);
      expect(compareArrays(flat(q.logVariance, xt.shape), flat(p.logVariance, xt.shape), 0, 0).ok).toBe(true);
      expect(Array.from(q.variance.dataSync())).toEqual(t.map((i) => Math.fround(tables.posteriorVariance[i])));
      tf.dispose([...Object.values(p), ...Object.values(q)]);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('ddpmStep: mean + exp(½·log variance)·noise, no noise at t = 0', () => {
      const before = tf.memory().numTensors;
      const noise = fixedNoise(xt.shape);
      const hand = handPMeanVariance(r, xt.dataSync() as Float32Array, modelOut(t), t, 3, kinds[0], true);
      const n = noise.dataSync();
      const per = n.length / t.length;
      const expected = hand.mean.map(
        (m, e) => m + (t[Math.floor(e / per)] === 0 ? 0 : Math.exp(0.5 * hand.logVar[e]) * n[e]),
      );
      const got = ddpmStep(unet, xt, t, noise, y ? { y } : {});
      const d = compareArrays(got.dataSync(), expected, 1e-5, 1e-4);
      expect(d.ok, `${d.firstBad}`).toBe(true);
      tf.dispose([got, noise]);
      expect(tf.memory().numTensors).toBe(before);
    });

    for (const eta of [0, 0.7])
      it(`ddimStep on the "ddim50" respacing, η = ${eta}: ε from x̂0, σ, no noise at index 0`, () => {
        const before = tf.memory().numTensors;
        const kept = spaceTimesteps(1000, 50);
        const tables = diffusionTables(unet.schedule, kept);
        const idx = [0, 3];
        const rr = refTables(act.get('schedule.alphas_cumprod')!.data as Float64Array, kept);
        const out = modelOut(idx.map((i) => kept[i]));
        const { x0 } = handPMeanVariance(rr, xt.dataSync() as Float32Array, out, idx, 3, 'fixedsmall', true);
        const noise = fixedNoise(xt.shape);
        const n = noise.dataSync();
        const x = xt.dataSync();
        const per = x.length / 2;
        const expected = x0.map((p, e) => {
          const i = idx[Math.floor(e / per)];
          const [ab, prev] = [rr.ac[i], rr.prev[i]];
          const eps = (Math.sqrt(1 / ab) * x[e] - p) / Math.sqrt(1 / ab - 1);
          const sigma = eta * Math.sqrt((1 - prev) / (1 - ab)) * Math.sqrt(1 - ab / prev);
          return p * Math.sqrt(prev) + Math.sqrt(1 - prev - sigma * sigma) * eps + (i === 0 ? 0 : sigma * n[e]);
        });
        const got = ddimStep(unet, xt, idx, noise, { tables, eta, ...(y ? { y } : {}) });
        // ε is re-derived by dividing by sqrt(1/ᾱ − 1), which magnifies float32 rounding at small t.
        const d = compareArrays(got.dataSync(), expected, 1e-4, 1e-4);
        expect(d.ok, `${d.firstBad}`).toBe(true);
        tf.dispose([got, noise]);
        expect(tf.memory().numTensors).toBe(before);
      });
  });
}

describe(`sampling loops on short schedules (${backend})`, () => {
  // Cosine: the linear schedule's betas reach 20/T, so it needs T > 20.
  let unet: ADMUNet; // adm-tiny's architecture (learn_sigma) with a cosine schedule of T = 4
  let cond: ADMUNet; // adm-small-cond's (class-conditional, cosine, ε only) with T = 3
  beforeAll(async () => {
    await setBackend(backend);
    unet = ADMUNet.create(
      {
        ...fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args,
        diffusion_steps: 4,
        noise_schedule: 'cosine',
      },
      3,
    );
    cond = ADMUNet.create(
      { ...fixtureJson('adm-small-cond/config.json').create_model_and_diffusion_args, diffusion_steps: 3 },
      5,
    );
  });
  afterAll(() => {
    unet?.dispose();
    cond?.dispose();
  });
  const shape: [number, number, number, number] = [2, 32, 32, 3];

  it('sampleDDPM is x_T from the seed, then ddpmStep from t = 3 to 0 with each step noise from the seed, clipped', () => {
    const got = sampleDDPM(unet, { batch: 2, seed: 11 });
    const manual = tf.tidy(() => {
      let x = samplerNoise(shape, 11, -1);
      for (let i = 3; i >= 0; i--) x = ddpmStep(unet, x, [i, i], samplerNoise(shape, 11, i));
      return tf.clipByValue(x, -1, 1);
    });
    expect(got.shape).toEqual(shape);
    expect(Array.from(got.dataSync())).toEqual(Array.from(manual.dataSync()));
    tf.dispose([got, manual]);
  });

  it('the same seed gives the same samples on every call, seed 0 included; different seeds differ; range [-1, 1]', () => {
    const before = tf.memory().numTensors;
    const run = (seed: number) => {
      const s = sampleDDPM(unet, { batch: 2, seed });
      const d = Array.from(s.dataSync());
      s.dispose();
      return d;
    };
    const [a, b, c, d] = [run(0), run(0), run(1), run(-7)];
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(c).not.toEqual(d);
    for (const v of [...a, ...c]) expect(Math.abs(v)).toBeLessThanOrEqual(1);
    // Random weights predict poor ε: x̂0 is clipped somewhere, so the range check is not vacuous.
    expect(a.some((v) => Math.abs(v) === 1)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('reports one sample progress per step, with the model timestep', () => {
    const reports: SampleProgressInfo[] = [];
    tf.dispose(sampleDDPM(unet, { batch: 1, seed: 2, onProgress: (p) => reports.push(p) }));
    expect(reports.map((p) => [p.kind, p.done, p.total, p.t])).toEqual([
      ['sample', 1, 4, 3],
      ['sample', 2, 4, 2],
      ['sample', 3, 4, 1],
      ['sample', 4, 4, 0],
    ]);
    expect(reports.every((p) => p.elapsedMs >= 0)).toBe(true);
    expect(reports.at(-1)!.etaMs).toBe(0);
  });

  it('sampleDDIM runs ddimStep over the respaced steps; η = 0 is deterministic given x_T whatever the seed', () => {
    const before = tf.memory().numTensors;
    const xT = samplerNoise(shape, 4, -1);
    const reports: number[] = [];
    const a = sampleDDIM(unet, { steps: 2, xT, seed: 1, onProgress: (p) => reports.push(p.t) });
    const b = sampleDDIM(unet, { steps: 2, xT, seed: 2 });
    expect(reports).toEqual([2, 0]);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    const tables = diffusionTables(unet.schedule, [0, 2]);
    const manual = tf.tidy(() => {
      let x: tf.Tensor4D = xT;
      for (let i = 1; i >= 0; i--) x = ddimStep(unet, x, [i, i], tf.zerosLike(x), { tables });
      return tf.clipByValue(x, -1, 1);
    });
    expect(Array.from(a.dataSync())).toEqual(Array.from(manual.dataSync()));
    // With η > 0 the seed's noise matters, and it equals a seeded run without xT.
    const c = sampleDDIM(unet, { steps: 2, xT, seed: 1, eta: 1 });
    const d = sampleDDIM(unet, { steps: 2, xT, seed: 2, eta: 1 });
    const e = sampleDDIM(unet, { steps: 2, seed: 4, eta: 1, batch: 2 });
    const f = sampleDDIM(unet, { steps: 2, xT, seed: 4, eta: 1 });
    expect(Array.from(c.dataSync())).not.toEqual(Array.from(d.dataSync()));
    expect(Array.from(e.dataSync())).toEqual(Array.from(f.dataSync()));
    expect(xT.isDisposed).toBe(false);
    tf.dispose([a, b, c, d, e, f, manual, xT]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('class-conditional models sample with y; the labels change the images', () => {
    const a = sampleDDPM(cond, { batch: 2, seed: 3, y: [7, 981] });
    const b = sampleDDPM(cond, { batch: 2, seed: 3, y: [8, 981] });
    const c = sampleDDIM(cond, { steps: 3, batch: 2, seed: 3, y: [7, 981], variance: 'fixedsmall' });
    expect(a.shape).toEqual(shape);
    const [da, db] = [a.dataSync(), b.dataSync()];
    const half = da.length / 2;
    expect(Array.from(da.subarray(0, half))).not.toEqual(Array.from(db.subarray(0, half)));
    expect(Array.from(da.subarray(half))).toEqual(Array.from(db.subarray(half)));
    expect(c.shape).toEqual(shape);
    tf.dispose([a, b, c]);
  });

  it('bad options are typed errors that leave no tensors behind', () => {
    const before = tf.memory().numTensors;
    const xT = tf.zeros([2, 32, 32, 3]) as tf.Tensor4D;
    const disposed = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    disposed.dispose();
    const small = tf.zeros([2, 16, 16, 3]) as tf.Tensor4D;
    const oneNoise = tf.zeros([1, 32, 32, 3]) as tf.Tensor4D;
    const cases: [() => unknown, RegExp][] = [
      [() => sampleDDIM(unet, { steps: 0, batch: 1 }), /\[1, 4\]/],
      [() => sampleDDIM(unet, { steps: 5, batch: 1 }), /\[1, 4\]/],
      [() => sampleDDIM(unet, { steps: 3, batch: 1 }), /no integer stride gives exactly 3 of 4/],
      [() => sampleDDIM(unet, { steps: 2, batch: 1, eta: -1 }), /eta/],
      [() => sampleDDPM(unet, {}), /batch .*or xT/],
      [() => sampleDDPM(unet, { batch: 0 }), /batch must be a positive integer/],
      [() => sampleDDPM(unet, { batch: 3, xT }), /batch is 3 but xT holds 2/],
      [() => sampleDDPM(unet, { xT: small }), /xT must be a tensor \[N, 32, 32, 3\]/],
      [() => sampleDDPM(unet, { batch: 1, seed: 1.5 }), /seed must be an integer/],
      [() => sampleDDPM(unet, { xT: disposed }), /xT was disposed/],
      [() => sampleDDPM(unet, { batch: 1, y: [1] }), /unconditional/],
      [() => sampleDDPM(cond, { batch: 2 }), /class-conditional: pass y/],
      [() => sampleDDPM(cond, { batch: 2, y: [1] }), /one label per example \(2\)/],
      [() => sampleDDPM(cond, { batch: 1, y: [1], variance: 'learned' }), /needs a learn_sigma model/],
      [() => sampleDDPM(unet, { batch: 1, variance: 'wide' as VarianceKind }), /unknown variance/],
      [() => pMeanVariance(unet, xT, [4, 0]), /not a step index/],
      [() => pMeanVariance(cond, xT, [1, 0], { y: [1, 1000] }), /y\[1\] = 1000 is outside/],
      [() => ddimStep(cond, xT, [3, 0], xT, { y: [1, 2], tables: diffusionTables(unet.schedule) }), /outside \[0, 3\)/],
      [() => ddpmStep(unet, xT, [1, 1], oneNoise), /noise must have the shape/],
    ];
    // No tidy around the calls: a tensor they leaked would stay counted.
    for (const [f, msg] of cases) {
      expect(f).toThrow(InputError);
      expect(f).toThrow(msg);
    }
    tf.dispose([xT, small, oneNoise]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses schedules whose betas leave (0, 1)', () => {
    const linear4 = ADMUNet.create(
      { ...fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args, diffusion_steps: 4 },
      0,
    );
    try {
      expect(() => sampleDDPM(linear4, { batch: 1, seed: 0 })).toThrow(/outside \(0, 1\).*use T > 20/);
    } finally {
      linear4.dispose();
    }
  });

  it('a progress callback that throws mid-loop stops sampling, propagates its error and leaks nothing', () => {
    const before = tf.memory().numTensors;
    const boom = new Error('stop here');
    for (const run of [
      () =>
        sampleDDPM(unet, {
          batch: 2,
          seed: 0,
          onProgress: (p) => {
            if (p.done === 2) throw boom;
          },
        }),
      () =>
        sampleDDIM(cond, {
          steps: 3,
          batch: 1,
          seed: 0,
          y: [2],
          onProgress: () => {
            throw boom;
          },
        }),
    ])
      expect(run).toThrow(boom);
    expect(tf.memory().numTensors).toBe(before);
  });
});
