import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { buildSync } from 'esbuild';
import { trainDiffusion, type DiffusionTrainOptions } from '../src/diffusion/trainDiffusion';
import { ADMUNet } from '../src/unet/admUnet';
import type { LoadOptions } from '../src/unet/options';

/** The reference's golden tensors, copied into the repository (see `test/fixtures/README.md`). */
export const FIXTURES = path.resolve(__dirname, 'fixtures');

export function fixtureJson<T = any>(rel: string): T {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, rel), 'utf8')) as T;
}

/** NCHW data from a fixture → NHWC Float32Array. */
export function nchwToNhwc(
  data: Float32Array,
  shape: number[],
): { data: Float32Array; shape: [number, number, number, number] } {
  const [N, C, H, W] = shape;
  const out = new Float32Array(data.length);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let h = 0; h < H; h++)
        for (let w = 0; w < W; w++) out[((n * H + h) * W + w) * C + c] = data[((n * C + c) * H + h) * W + w];
  return { data: out, shape: [N, H, W, C] };
}

export interface Diff {
  ok: boolean;
  bad: number;
  maxAbs: number;
  /** Largest |a − b| over the tensor's scale (max |b|). */
  maxRel: number;
  /** Largest |a − b| / (atol + rtol·|b|): how much of the tolerance was used (≤ 1 passes). */
  tolUsed: number;
  firstBad?: string;
}

/** Elementwise check `|a − b| ≤ atol + rtol·|b|` (the fixtures' float32 tolerance by default). */
export function compareArrays(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-4, rtol = 1e-4): Diff {
  if (actual.length !== expected.length)
    return {
      ok: false,
      bad: -1,
      maxAbs: Infinity,
      maxRel: Infinity,
      tolUsed: Infinity,
      firstBad: `length ${actual.length} vs ${expected.length}`,
    };
  let bad = 0,
    maxAbs = 0,
    scale = 0,
    tolUsed = 0,
    firstBad: string | undefined;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    const tol = atol + rtol * Math.abs(expected[i]);
    if (!(d <= tol)) {
      bad++;
      firstBad ??= `[${i}] ${actual[i]} vs ${expected[i]}`;
    }
    if (!(d <= maxAbs)) maxAbs = d;
    if (!(d / tol <= tolUsed)) tolUsed = d / tol;
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return { ok: bad === 0, bad, maxAbs, maxRel: maxAbs / (scale || 1), tolUsed, firstBad };
}

/** Backends the parity tests run on. DIFFSSL_BACKENDS=cpu (comma list) narrows it. */
export const BACKENDS = (process.env.DIFFSSL_BACKENDS ?? 'wasm,cpu').split(',').filter(Boolean);

/** The U-Net parity fixtures also run on threaded wasm (`wasm-mt`). */
export const PARITY_BACKENDS = (process.env.DIFFSSL_BACKENDS ?? 'wasm,wasm-mt,cpu').split(',').filter(Boolean);

/** Activates `wasm` (stock, one thread), `wasm-mt` (two threads through the Node shim) or `cpu`. */
export async function setBackend(name: string): Promise<void> {
  tf.enableProdMode();
  if (name === 'wasm' || name === 'wasm-mt') {
    await import('@tensorflow/tfjs-backend-wasm');
    const { initThreadedWasm } = await import('../src/backend/wasm/threads');
    const r = await initThreadedWasm({ threads: name === 'wasm' ? 1 : 2 });
    if (r.threaded !== (name === 'wasm-mt')) throw new Error(`${name}: ${r.reason}`);
    return;
  }
  if (name === 'cpu') await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} did not initialise`);
  await tf.ready();
}

/** One forward so that per-model caches (transformed Winograd filters) are filled before counting tensors. */
export function warmUp(unet: {
  forward: Function;
  totalBlocks: number;
  config: { imageSize: number; inChannels: number; numClasses: number | null };
}): void {
  const s = unet.config.imageSize;
  tf.tidy(() => {
    const r = unet.forward(tf.zeros([1, s, s, unet.config.inChannels]), [0], {
      capture: [unet.totalBlocks],
      output: true,
      ...(unet.config.numClasses ? { y: [0] } : {}),
    });
    return [...r.features.values(), r.output];
  });
}

/**
 * A random 3×3 conv problem: x `[n, h, w, cin]`, HWIO filter k, bias b (fixed seeds), and `want`, the
 * stride-1, padding-1 convolution plus bias from `tf.conv2d`. Call inside `tf.tidy`.
 */
export function convCase(
  n: number,
  h: number,
  w: number,
  cin: number,
  cout: number,
): { x: tf.Tensor4D; k: tf.Tensor4D; b: tf.Tensor1D; want: tf.Tensor4D } {
  const x = tf.randomNormal([n, h, w, cin], 0, 1, 'float32', 1) as tf.Tensor4D;
  const k = tf.randomNormal([3, 3, cin, cout], 0, 1 / Math.sqrt(9 * cin), 'float32', 2) as tf.Tensor4D;
  const b = tf.randomNormal([cout], 0, 0.1, 'float32', 3) as tf.Tensor1D;
  return { x, k, b, want: tf.add(tf.conv2d(x, k, 1, 1), b) as tf.Tensor4D };
}

export interface GradientCheck {
  /** Flat index of the element checked. */
  index: number;
  /** ∂loss/∂v[index] from `tf.variableGrads`. */
  analytic: number;
  /** The central difference (loss(v + h) − loss(v − h)) / 2h, h as float32 actually moved the element. */
  numeric: number;
  /** |analytic − numeric| / max(|analytic|, |numeric|). */
  relErr: number;
}

/**
 * Checks one element of a variable's gradient against a central difference. `loss` must give the
 * same value for the same weights (fixed inputs and noise). The element is `index`, or by default
 * the one with the largest analytic gradient (so the relative error is not dominated by float32
 * rounding of the loss). The variable is restored bit for bit afterwards, also on error.
 */
export function gradientCheck(loss: () => tf.Scalar, v: tf.Variable, h = 1e-2, index?: number): GradientCheck {
  const { value, grads } = tf.variableGrads(loss, [v]);
  const g = Float32Array.from(grads[v.name].dataSync());
  tf.dispose([value, ...Object.values(grads)]);
  return centralDifference(loss, v, g, h, index);
}

/** Compares the analytic gradient `g` of `v` at one element (`index`, or the largest) with a central difference. */
function centralDifference(
  loss: () => tf.Scalar,
  v: tf.Variable,
  g: Float32Array,
  h: number,
  index?: number,
): GradientCheck {
  let i = index ?? 0;
  if (index === undefined) for (let k = 1; k < g.length; k++) if (Math.abs(g[k]) > Math.abs(g[i])) i = k;
  const orig = Float32Array.from(v.dataSync());
  const lossAt = (delta: number): [number, number] => {
    const p = orig.slice();
    p[i] = Math.fround(orig[i] + delta);
    tf.tidy(() => v.assign(tf.tensor(p, v.shape, 'float32')));
    return [p[i] - orig[i], tf.tidy(() => loss().dataSync()[0])];
  };
  try {
    const [dPlus, lPlus] = lossAt(h);
    const [dMinus, lMinus] = lossAt(-h);
    const numeric = (lPlus - lMinus) / (dPlus - dMinus);
    const analytic = g[i];
    return {
      index: i,
      analytic,
      numeric,
      relErr: Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric), 1e-30),
    };
  } finally {
    tf.tidy(() => v.assign(tf.tensor(orig, v.shape, 'float32')));
  }
}

/** A U-Net small enough to train in a test: 8×8, one channel, two levels, one ResBlock per level, learn_sigma. */
export const TINY_DIFFUSION_FLAGS = {
  image_size: 8,
  in_channels: 1,
  num_channels: 32,
  num_res_blocks: 1,
  channel_mult: '1,2',
  attention_resolutions: '4',
  num_head_channels: 32,
  learn_sigma: true,
  use_scale_shift_norm: true,
  resblock_updown: true,
  diffusion_steps: 1000,
  noise_schedule: 'linear',
};

/**
 * `trainDiffusion` of a fresh {@link TINY_DIFFUSION_FLAGS} model (seed 3, lr 1e-3 unless `opts` says otherwise);
 * the result with the trained weights in reference layout. The model is disposed.
 */
export async function trainTiny(images: tf.Tensor4D, opts: DiffusionTrainOptions) {
  const unet = ADMUNet.create(TINY_DIFFUSION_FLAGS, 3);
  try {
    const r = await trainDiffusion(unet, images, { lr: 1e-3, ...opts });
    return { ...r, weights: unet.stateDict() };
  } finally {
    unet.dispose();
  }
}

/** The adm-tiny fixture model with the reference's weights; the caller disposes it. */
export function loadTinyUNet(opts: LoadOptions = {}): Promise<ADMUNet> {
  const flags = fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args;
  return ADMUNet.load(path.join(FIXTURES, 'adm-tiny', 'weights.safetensors'), flags, opts);
}

/**
 * Bundles `source`, an ES module as a user would write it (`@tensorflow/*` left external), into a
 * runnable `.mjs` under the repository's `.tmp/`, for tests that run it in a child process. The
 * caller removes the returned file.
 */
export function bundleScript(source: string, name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `diffssl-${name}-`));
  const entry = path.join(dir, 'entry.ts');
  fs.writeFileSync(entry, source);
  const out = path.resolve(__dirname, '..', '.tmp', `${name}-${process.pid}-${Date.now()}.mjs`);
  try {
    buildSync({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: out,
      external: ['@tensorflow/*'],
      logLevel: 'error',
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

/**
 * {@link gradientCheck} for several variables at once: one `tf.variableGrads` of `loss` gives every
 * analytic gradient, then each variable's element with the largest one is moved by ±h (two more
 * evaluations of `loss` per variable). Each variable is restored bit for bit afterwards, also on error.
 */
export function gradientChecks(loss: () => tf.Scalar, vars: tf.Variable[], h = 1e-2): GradientCheck[] {
  const { value, grads } = tf.variableGrads(loss, vars);
  const gs = vars.map((v) => Float32Array.from(grads[v.name].dataSync()));
  tf.dispose([value, ...Object.values(grads)]);
  return vars.map((v, k) => centralDifference(loss, v, gs[k], h));
}
