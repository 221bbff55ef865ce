// Exports the EMA weights of a training run as the shipped default backbone, with its loss record:
//   npm run build && node scripts/export-backbone.mjs --run runs/fashion-mnist-adm
// writes models/fashion-mnist-adm/{weights.safetensors, training-log.json, loss.png, samples.png}.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import {
  ADMUNet,
  SafetensorsReader,
  sampleDDIM,
  useBestBackend,
  writeLineChart,
  writeSamplesGrid,
} from '../dist/index.js';

const { values: a } = parseArgs({
  options: {
    run: { type: 'string', default: 'runs/fashion-mnist-adm' },
    out: { type: 'string', default: 'models/fashion-mnist-adm' },
  },
});
await useBestBackend({ force: 'wasm', threads: 2 });
const flags = JSON.parse(fs.readFileSync(path.join(a.out, 'flags.json'), 'utf8'));
const reader = await SafetensorsReader.open(path.join(a.run, 'diffusion-run.safetensors'));
const meta = reader.metadata;
const unet = ADMUNet.create(flags, 0);
for (const [k, v] of unet.trainableWeights()) v.assign(tf.tensor((await reader.read(`ema/${k}`)).data, v.shape));
await reader.close();
await unet.save(path.join(a.out, 'weights.safetensors'));
const losses = JSON.parse(meta.losses);
fs.writeFileSync(
  path.join(a.out, 'training-log.json'),
  JSON.stringify({
    step: Number(meta.step),
    settings: JSON.parse(meta.settings),
    losses: losses.map((l) => +l.toPrecision(6)),
  }) + '\n',
);
await writeLineChart(path.join(a.out, 'loss.png'), [{ name: 'L_simple', y: losses }], {
  title: 'Training loss (EMA weights exported at the last step)',
  xLabel: 'step (batch 32)',
  yLabel: 'L_simple',
  logY: true,
  smooth: 50,
});
// 64 samples, DDIM with 50 steps (η = 0) from seed 0: what the model has learned to draw.
const samples = sampleDDIM(unet, { batch: 64, steps: 50, seed: 0 });
await writeSamplesGrid(path.join(a.out, 'samples.png'), samples, { columns: 8 });
samples.dispose();
console.log(`exported the EMA at step ${meta.step} (last loss ${losses.at(-1)}) to ${a.out}`);
