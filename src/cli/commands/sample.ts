/**
 * `diffssl sample -o grid.png`: DDIM samples of the backbone as a PNG grid.
 * @module
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { sampleDDIM } from '../../diffusion/sampler.js';
import { InputError } from '../../errors.js';
import { writeSamplesGrid } from '../../io/imageGrid.js';
import { OUTPUT_FLAGS, OUTPUT_HELP, parseArgs, type FlagSpec } from '../args.js';
import { checkOutputPath, progressBar, UsageError, type CliIO } from '../io.js';
import { loadModel, MODEL_FLAGS, MODEL_HELP } from '../model.js';

export const SAMPLE_USAGE = `  diffssl sample -o grid.png [--n 64] [--steps 50] [--seed 0] [--eta 0] [--columns C] [--class K] [--json]
      DDIM samples of the model (guided-diffusion's ddim_sample_loop) written as a PNG grid.
`;

/** The options of `diffssl sample`. */
export const SAMPLE_FLAGS = {
  ...MODEL_FLAGS,
  output: { kind: 'string', short: 'o' },
  n: { kind: 'count' },
  steps: { kind: 'count' },
  seed: { kind: 'int' },
  eta: { kind: 'number' },
  columns: { kind: 'count' },
  class: { kind: 'int' },
  ...OUTPUT_FLAGS,
} as const satisfies Record<string, FlagSpec>;

const HELP = `Usage:
${SAMPLE_USAGE}
  -o, --output FILE  the PNG to write
  --n N              number of images (default 64), sampled as one batch
  --steps S          DDIM steps, respaced from the model's T by the "ddimS" stride rule (default 50)
  --seed S           seed of x_T and of the steps' noise (default 0)
  --eta E            0 (default) is deterministic given x_T; 1 adds DDPM's posterior noise
  --columns C        images per row (default ⌈√n⌉)
  --class K          class-conditional models: sample class K (default: classes 0, 1, 2, … in turn)
${OUTPUT_HELP}
${MODEL_HELP}
`;

export async function sampleCommand(args: string[], io: CliIO): Promise<number> {
  const { flags, help } = parseArgs('sample', args, SAMPLE_FLAGS, { min: 0, max: 0, names: '' });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  if (flags.output === undefined) throw new UsageError('sample needs -o FILE, the PNG grid to write', 'sample');
  const output = path.resolve(flags.output);
  checkOutputPath('sample', output, '.png file');
  if (flags.eta !== undefined && flags.eta < 0)
    throw new UsageError(`sample: --eta must be ≥ 0, got ${flags.eta}`, 'sample');
  const n = flags.n ?? 64;
  const steps = flags.steps ?? 50;
  const loaded = await loadModel('sample', flags, io);
  const { model } = loaded;
  try {
    const T = model.schedule.steps;
    if (steps > T)
      throw new InputError(
        `sample: --steps ${steps} is more than the model's ${T} diffusion steps; give --steps ${T} or fewer`,
      );
    const classes = model.config.numClasses;
    if (flags.class !== undefined && classes === null)
      throw new InputError(
        'sample: --class is for class-conditional models; this one is unconditional: leave --class out',
      );
    if (flags.class !== undefined && classes !== null && flags.class >= classes)
      throw new InputError(`sample: --class ${flags.class} is out of range: this model has classes 0..${classes - 1}`);
    const y = classes === null ? undefined : Array.from({ length: n }, (_, i) => flags.class ?? i % classes);
    const bar = progressBar(io, { quiet: flags.quiet, unit: 'steps' });
    const now = io.now ?? (() => Date.now());
    const start = now();
    let images: tf.Tensor4D;
    try {
      images = sampleDDIM(model, {
        batch: n,
        steps,
        seed: flags.seed ?? 0,
        eta: flags.eta ?? 0,
        ...(y ? { y } : {}),
        onProgress: (p) => bar.update(p.done, p.total),
      });
    } catch (e) {
      // The stride rule cannot give every count of steps: say which.
      if (e instanceof InputError) throw new InputError(`sample: --steps ${steps}: ${e.message}`);
      throw e;
    } finally {
      bar.done();
    }
    try {
      await writeSamplesGrid(output, images, flags.columns !== undefined ? { columns: flags.columns } : {});
    } finally {
      images.dispose();
    }
    const seconds = (now() - start) / 1000;
    const c = model.config;
    const out = {
      output,
      n,
      steps,
      seed: flags.seed ?? 0,
      eta: flags.eta ?? 0,
      model: loaded.label,
      side: c.imageSize,
      channels: c.inChannels,
      seconds,
    };
    if (flags.json) io.stdout(`${JSON.stringify(out)}\n`);
    else if (!flags.quiet)
      io.stdout(`sampled ${n} images (${steps} DDIM steps, η = ${out.eta}) in ${seconds.toFixed(1)} s: ${output}\n`);
    return 0;
  } finally {
    model.dispose();
  }
}
