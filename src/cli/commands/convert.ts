/**
 * `diffssl convert in.pt out.safetensors`: a torch.save checkpoint to safetensors, one tensor at a time.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../../errors.js';
import { sniffFormat } from '../../io/format.js';
import { TorchCheckpointReader, type TorchDtype } from '../../io/pytorch.js';
import { writeSafetensorsStream, type StreamDtype } from '../../io/safetensorsStream.js';
import { OUTPUT_FLAGS, parseArgs, type FlagSpec } from '../args.js';
import { checkOutputPath, CommandFailure, formatBytes, fsFailure, progressBar, type CliIO } from '../io.js';

export const CONVERT_USAGE = `  diffssl convert <in.pt> <out.safetensors> [--float32] [--force] [--quiet]
      Convert a torch.save checkpoint (zip or legacy layout) to safetensors, one tensor at a
      time: memory stays around the largest tensor, not the file. Dtypes are kept (float16
      stays F16) unless --float32. Nothing in the checkpoint is executed.
      --float32  write every floating-point tensor as F32
      --force    replace <out.safetensors> if it exists
      --quiet    no progress bar and no summary
`;

const OUT_DTYPE: Record<TorchDtype, StreamDtype> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

/** The options of `diffssl convert`. */
export const CONVERT_FLAGS = {
  float32: { kind: 'bool' },
  force: { kind: 'bool' },
  quiet: OUTPUT_FLAGS.quiet,
} as const satisfies Record<string, FlagSpec>;

export async function convertCommand(args: string[], io: CliIO): Promise<number> {
  const { flags, positional, help } = parseArgs('convert', args, CONVERT_FLAGS, {
    min: 2,
    max: 2,
    names: '<in.pt> and <out.safetensors>',
  });
  if (help) {
    io.stdout(`Usage:\n${CONVERT_USAGE}`);
    return 0;
  }
  const [input, output] = positional.map((p) => path.resolve(p));
  if (input === output)
    throw new InputError('convert: the output must not be the input; give another path for the .safetensors file');
  if (fs.existsSync(input) && fs.statSync(input).isDirectory())
    throw new CommandFailure(`convert: ${input} is a folder, not a checkpoint file; give the .pt file itself`);
  checkOutputPath('convert', output, '.safetensors file');
  if (fs.existsSync(output) && !flags.force)
    throw new InputError(`convert: ${output} exists (use --force to replace it)`);
  const format = await sniffFormat(input).catch((e: unknown) => {
    throw fsFailure(e, 'convert', 'read', input);
  });
  if (format === 'safetensors')
    throw new InputError(`convert: ${input} is already a safetensors file; use it as it is (--model takes it)`);
  const now = io.now ?? (() => Date.now());
  const start = now();
  const reader = await TorchCheckpointReader.open(input);
  const quiet = flags.quiet === true;
  const bar = progressBar(io, { quiet });
  let total = 0;
  try {
    const tensors = reader.keys().map((name) => {
      const { dtype, shape } = reader.info(name);
      const out: StreamDtype = flags.float32 && /float/.test(dtype) ? 'F32' : OUT_DTYPE[dtype];
      return { name, dtype: out, shape, stored: dtype };
    });
    const stored = new Map(tensors.map((t) => [t.name, t]));
    // One buffer for every tensor: each is written out before the next is read.
    let scratch = new Uint8Array(0);
    const buffer = (bytes: number) => (scratch.length >= bytes ? scratch : (scratch = new Uint8Array(bytes)));
    await writeSafetensorsStream(
      output,
      tensors,
      async (name) => {
        const t = stored.get(name)!;
        if (t.dtype === OUT_DTYPE[t.stored]) return reader.readBytes(name, buffer(reader.info(name).byteLength));
        const n = t.shape.reduce((a, b) => a * b, 1);
        const f = await reader.readFloat32(name, new Float32Array(buffer(4 * n).buffer, 0, n));
        return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
      },
      {
        metadata: { format: 'pt', producer: 'diffssl convert' },
        onProgress: (p) => {
          total = p.total;
          bar.update(p.done, p.total);
        },
      },
    );
    bar.done();
    if (!quiet) {
      const s = (now() - start) / 1000;
      io.stdout(`converted ${tensors.length} tensors (${formatBytes(total)}) in ${s.toFixed(1)} s: ${output}\n`);
    }
    return 0;
  } catch (e) {
    bar.done();
    throw (e as NodeJS.ErrnoException)?.path === input
      ? fsFailure(e, 'convert', 'read', input)
      : fsFailure(e, 'convert', 'write', output);
  } finally {
    await reader.close();
  }
}
