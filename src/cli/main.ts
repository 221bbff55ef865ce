/**
 * The `diffssl` command line. The only module that reads argv or writes to the terminal; the
 * library underneath reports through callbacks.
 *
 *     diffssl convert in.pt out.safetensors [--float32] [--force] [--quiet] [--verbose]
 *
 * Every failure is one line on stderr and exit status 1 (2 for bad usage); `--verbose` adds the
 * stack of an unexpected error.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { version } from '../../package.json';
import { DiffSSLError, InputError } from '../errors.js';
import { sniffFormat } from '../io/format.js';
import { TorchCheckpointReader, type TorchDtype } from '../io/pytorch.js';
import { writeSafetensorsStream, type StreamDtype } from '../io/safetensorsStream.js';

/** Where the CLI writes, and what it knows about the terminal (injectable for tests). */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Draw a live progress bar on stderr (a terminal). */
  isTTY: boolean;
  /** Terminal width for the bar. */
  columns?: number;
  /** Milliseconds, for rates and ETAs. */
  now?: () => number;
}

const USAGE = `diffssl ${version}

Usage:
  diffssl convert <in.pt> <out.safetensors> [--float32] [--force] [--quiet]
      Convert a torch.save checkpoint (zip or legacy layout) to safetensors, one tensor at a
      time: memory stays around the largest tensor, not the file. Dtypes are kept (float16
      stays F16) unless --float32. Nothing in the checkpoint is executed.
      --float32  write every floating-point tensor as F32
      --force    replace <out.safetensors> if it exists
      --quiet    no progress bar and no summary
  diffssl --help | --version

  --verbose (with any command) prints the stack trace of an unexpected error.
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

/**
 * Runs the CLI on `args` (argv without node and the script).
 * @returns the exit status: 0 ok, 1 failed, 2 bad usage.
 */
export async function main(args: string[], io: CliIO = processIO()): Promise<number> {
  const verbose = args.includes('--verbose');
  const [command, ...rest] = args.filter((a) => a !== '--verbose');
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? io.stderr : io.stdout)(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v') {
    io.stdout(`${version}\n`);
    return 0;
  }
  try {
    if (command === 'convert') return await convertCommand(rest, io);
    throw new UsageError(`unknown command "${command}"`);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`diffssl: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    io.stderr(`${failureMessage(e, verbose)}\n`);
    return 1;
  }
}

/**
 * What the CLI prints for a failure: one line for a diffssl error or a file the command could not
 * use; for anything else its message, with the stack only when `verbose`.
 * @internal exported for tests.
 */
export function failureMessage(e: unknown, verbose: boolean): string {
  if (e instanceof DiffSSLError || e instanceof CommandFailure) return `diffssl: ${oneLine(e.message)}`;
  if (verbose) return `diffssl: ${(e as Error)?.stack ?? String(e)}`;
  const message = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
  return `diffssl: unexpected error: ${oneLine(message)} (run again with --verbose for the stack trace)`;
}

function oneLine(text: string): string {
  return text.split('\n')[0];
}

class UsageError extends Error {}

/** A file the command could not read or write, described by the path the user gave. */
class CommandFailure extends Error {}

// What an errno code means for the user, in words.
const FS_REASONS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  ENOTDIR: 'a part of the path is not a folder',
  EISDIR: 'it is a folder',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exceeded',
  EMFILE: 'too many open files',
};

// A file-system error of `action` on the user's `file`, naming that path instead of any temporary one.
function fsFailure(e: unknown, action: string, file: string): unknown {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return e;
  return new CommandFailure(`convert: cannot ${action} ${file}: ${FS_REASONS[code] ?? code}`);
}

// The folder the output goes to must exist before anything is read.
function checkOutputPath(output: string): void {
  const dir = path.dirname(output);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch (e) {
    throw (e as NodeJS.ErrnoException)?.code === 'ENOENT'
      ? new CommandFailure(`convert: cannot write ${output}: the folder ${dir} does not exist`)
      : fsFailure(e, 'write', output);
  }
  if (!stat.isDirectory()) throw new CommandFailure(`convert: cannot write ${output}: ${dir} is not a folder`);
  if (fs.existsSync(output) && fs.statSync(output).isDirectory())
    throw new CommandFailure(`convert: ${output} is a folder; give the path of the .safetensors file to write`);
}

async function convertCommand(args: string[], io: CliIO): Promise<number> {
  const flags = new Set<string>();
  const positional: string[] = [];
  for (const a of args) {
    if (a === '--help' || a === '-h') {
      io.stdout(USAGE);
      return 0;
    }
    if (a.startsWith('--')) {
      if (!['--float32', '--force', '--quiet'].includes(a)) throw new UsageError(`convert: unknown option ${a}`);
      flags.add(a);
    } else positional.push(a);
  }
  if (positional.length !== 2)
    throw new UsageError(
      `convert needs <in.pt> and <out.safetensors>, got ${positional.length} path${positional.length === 1 ? '' : 's'}`,
    );
  const [input, output] = positional.map((p) => path.resolve(p));
  if (input === output) throw new InputError('convert: the output must not be the input');
  if (fs.existsSync(input) && fs.statSync(input).isDirectory())
    throw new CommandFailure(`convert: ${input} is a folder, not a checkpoint file`);
  checkOutputPath(output);
  if (fs.existsSync(output) && !flags.has('--force'))
    throw new InputError(`convert: ${output} exists (use --force to replace it)`);
  const format = await sniffFormat(input).catch((e: unknown) => {
    throw fsFailure(e, 'read', input);
  });
  if (format === 'safetensors') throw new InputError(`convert: ${input} is already a safetensors file`);
  const now = io.now ?? (() => Date.now());
  const start = now();
  const reader = await TorchCheckpointReader.open(input);
  const float32 = flags.has('--float32');
  const quiet = flags.has('--quiet');
  const bar = !quiet && io.isTTY ? progressBar(io, now) : undefined;
  let total = 0;
  try {
    const tensors = reader.keys().map((name) => {
      const { dtype, shape } = reader.info(name);
      const out: StreamDtype = float32 && /float/.test(dtype) ? 'F32' : OUT_DTYPE[dtype];
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
          bar?.update(p.done, p.total);
        },
      },
    );
    bar?.done();
    if (!quiet) {
      const s = (now() - start) / 1000;
      io.stdout(`converted ${tensors.length} tensors (${formatBytes(total)}) in ${s.toFixed(1)} s: ${output}\n`);
    }
    return 0;
  } catch (e) {
    bar?.done();
    throw (e as NodeJS.ErrnoException)?.path === input ? fsFailure(e, 'read', input) : fsFailure(e, 'write', output);
  } finally {
    await reader.close();
  }
}

/** A one-line bar redrawn in place on stderr, at most ten times a second. */
function progressBar(io: CliIO, now: () => number) {
  const start = now();
  let last = -Infinity;
  let drawn = false;
  return {
    update(done: number, total: number) {
      const t = now();
      if (t - last < 100 && done < total) return;
      last = t;
      drawn = true;
      io.stderr(`\r${renderProgress(done, total, t - start, io.columns ?? 80)}`);
    },
    done() {
      if (drawn) io.stderr('\n');
    },
  };
}

/**
 * `[#####·····]  45%  1.0 GB / 2.2 GB  120 MB/s  ETA 12s`, fitted to `columns`.
 * @internal exported for tests.
 */
export function renderProgress(done: number, total: number, elapsedMs: number, columns: number): string {
  const frac = total > 0 ? Math.min(1, done / total) : 1;
  const rate = elapsedMs > 0 ? done / (elapsedMs / 1000) : 0;
  const eta = done >= total ? 'done' : rate > 0 ? `ETA ${formatDuration((total - done) / rate)}` : 'ETA --';
  const text = ` ${String(Math.floor(frac * 100)).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(rate)}/s  ${eta}`;
  const width = Math.max(10, Math.min(40, columns - text.length - 3));
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]${text}`;
}

function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${Math.round(n)} B`;
}

function formatDuration(s: number): string {
  if (s < 60) return `${Math.ceil(s)}s`;
  const m = Math.floor(s / 60);
  return m < 60
    ? `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function processIO(): CliIO {
  return {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    isTTY: Boolean(process.stderr.isTTY),
    columns: process.stderr.columns,
  };
}

/** True when this file is the program being run (also through npm's bin symlink), not an import. */
function invokedDirectly(): boolean {
  try {
    return (
      process.argv[1] !== undefined &&
      fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url))
    );
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      process.stderr.write(`${failureMessage(e, process.argv.includes('--verbose'))}\n`);
      process.exitCode = 1;
    },
  );
}
