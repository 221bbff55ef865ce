/**
 * `diffssl info`: a model's flags, parameter count, block table and memory estimate.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { OUTPUT_FLAGS, parseArgs, type FlagSpec } from '../args.js';
import { formatBytes, type CliIO } from '../io.js';
import { loadModel, MODEL_FLAGS, MODEL_HELP } from '../model.js';

export const INFO_USAGE = `  diffssl info [--model FILE --flags SPEC] [--json]
      The model's resolved flags, parameter count, block table (b, part, module, channels, side,
      feature bytes per image) and a memory estimate.
`;

/** The options of `diffssl info`. */
export const INFO_FLAGS = { ...MODEL_FLAGS, json: OUTPUT_FLAGS.json } as const satisfies Record<string, FlagSpec>;

export async function infoCommand(args: string[], io: CliIO): Promise<number> {
  const { flags, help } = parseArgs('info', args, INFO_FLAGS, { min: 0, max: 0, names: '' });
  if (help) {
    io.stdout(`Usage:\n${INFO_USAGE}\n${MODEL_HELP}\n  --json             one JSON object on stdout\n`);
    return 0;
  }
  const loaded = await loadModel('info', flags, io);
  const { model } = loaded;
  try {
    const c = model.config;
    const params = model.numParameters;
    const held = model.weightBytes;
    const blocks = model.blocks.map((r) => ({
      b: r.b,
      part: r.part,
      module: r.module,
      channels: r.channels,
      side: r.size,
      featureBytes: 4 * r.channels * r.size * r.size,
    }));
    // The widest activation one image keeps alive at once is at least the largest block output; the skips
    // kept for the decoder are every input block's output. A lower bound, per image, float32.
    const skips = blocks.filter((r) => r.part !== 'output').reduce((s, r) => s + r.featureBytes, 0);
    const memory = {
      weightsFloat32: 4 * params,
      weightsHeld: held.resident + held.streamed,
      resident: held.resident,
      streamed: held.streamed,
      activationsPerImage: skips,
      how:
        'weights: 4 bytes × parameters as float32 (held: what the loaded model keeps on the backend ' +
        'and streams from JS memory); activations: float32 outputs of the encoder and middle blocks, ' +
        'which the forward keeps for the skips, per image — a lower bound (layer intermediates come on top)',
    };
    const result = {
      model: loaded.label,
      backend: tf.getBackend(),
      flags: loaded.flags ?? null,
      config: c,
      diffusionSteps: model.schedule.steps,
      parameters: params,
      blocks,
      memory,
    };
    if (flags.json) {
      io.stdout(`${JSON.stringify(result)}\n`);
      return 0;
    }
    const lines = [
      `model: ${loaded.label}`,
      `images: ${c.imageSize}×${c.imageSize}×${c.inChannels}, ${c.numClasses === null ? 'unconditional' : `${c.numClasses} classes`}, ` +
        `T = ${model.schedule.steps} steps (t in 0..${model.schedule.steps - 1})`,
      `flags: ${JSON.stringify(c)}`,
      `parameters: ${params.toLocaleString('en-US')}`,
      `memory: weights ${formatBytes(memory.weightsFloat32)} as float32 (4 B × parameters); held on ${result.backend}: ` +
        `${formatBytes(held.resident)} resident + ${formatBytes(held.streamed)} streamed; ` +
        `activations ≥ ${formatBytes(skips)} per image (encoder outputs kept for the skips)`,
      `blocks (${blocks.length}; extract features with --b):`,
      `    b  part    module              channels  side  bytes/image`,
      ...blocks.map(
        (r) =>
          `  ${String(r.b).padStart(3)}  ${r.part.padEnd(6)}  ${r.module.padEnd(18)}  ${String(r.channels).padStart(8)}  ${String(r.side).padStart(4)}  ${formatBytes(r.featureBytes).padStart(11)}`,
      ),
    ];
    io.stdout(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    model.dispose();
  }
}
