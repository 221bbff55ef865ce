/**
 * What every `diffssl` command shares: the injectable terminal ({@link CliIO}), the errors that choose
 * exit statuses, one-line failure messages, file checks that name the user's path, and the progress bar.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { DiffSSLError } from '../errors.js';

/** Where the CLI writes, and what it knows about the terminal and the process (injectable for tests). */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Draw a live progress bar on stderr (a terminal). */
  isTTY: boolean;
  /** Terminal width for the bar. */
  columns?: number;
  /** Milliseconds, for rates and ETAs. */
  now?: () => number;
  /** The environment the scheduler sets (default: none); `process.env` for the real command. */
  env?: Record<string, string | undefined>;
  /**
   * Starts the tfjs backend before a command that runs a model (`name`: the `--backend` asked for).
   * Default: none is started (tests set one up); the real command uses `useBestBackend`.
   */
  backend?: (name: string | undefined) => Promise<void>;
}

/** Exit statuses. */
export const EXIT = { ok: 0, failure: 1, usage: 2, incomplete: 3 } as const;

/** Bad usage: printed with the command's help, exit status 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose help to point at. */
    readonly command?: string,
  ) {
    super(message);
  }
}

/** A file the command could not read or write, described by the path the user gave. */
export class CommandFailure extends Error {}

/**
 * What the CLI prints for a failure: one line for a diffssl error or a file the command could not
 * use; for anything else its message, with the stack only when `verbose`.
 */
export function failureMessage(e: unknown, verbose: boolean): string {
  if (e instanceof DiffSSLError || e instanceof CommandFailure) return `diffssl: ${oneLine(e.message)}`;
  if (verbose) return `diffssl: ${(e as Error)?.stack ?? String(e)}`;
  const message = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
  return `diffssl: unexpected error: ${oneLine(message)} (run again with --verbose for the stack trace)`;
}

export function oneLine(text: string): string {
  return text.split('\n')[0];
}

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

/** A file-system error of `action` on the user's `file`, naming that path instead of any temporary one. */
export function fsFailure(e: unknown, command: string, action: string, file: string): unknown {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return e;
  return new CommandFailure(`${command}: cannot ${action} ${file}: ${FS_REASONS[code] ?? code}`);
}

/** The folder an output file goes to must exist (checked before any work), and the output must not be a folder. */
export function checkOutputPath(command: string, output: string, what = 'file'): void {
  const dir = path.dirname(output);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch (e) {
    throw (e as NodeJS.ErrnoException)?.code === 'ENOENT'
      ? new CommandFailure(`${command}: cannot write ${output}: the folder ${dir} does not exist`)
      : fsFailure(e, command, 'write', output);
  }
  if (!stat.isDirectory()) throw new CommandFailure(`${command}: cannot write ${output}: ${dir} is not a folder`);
  if (fs.existsSync(output) && fs.statSync(output).isDirectory())
    throw new CommandFailure(`${command}: ${output} is a folder; give the path of the ${what} to write`);
}

/**
 * The folder `-o` names (`given`), resolved: absent (the command creates it) or a folder, not a file.
 * @param what what the folder is for, in words (`the run's directory`).
 */
export function checkOutputDir(command: string, given: string, what: string): string {
  const dir = path.resolve(given);
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory())
    throw new CommandFailure(
      `${command}: ${given} is a file; -o names ${what}, a folder (created if absent): give another path`,
    );
  return dir;
}

/** A bar redrawn in place on stderr at most ten times a second; nothing unless stderr is a terminal. */
export interface ProgressBar {
  update(done: number, total: number): void;
  done(): void;
}

/**
 * A progress bar on `io`'s stderr when it is a terminal (and not `quiet`), else one that draws nothing.
 * @param unit counted things (`"images"`), or undefined for bytes.
 */
export function progressBar(io: CliIO, opts: { quiet?: boolean; unit?: string } = {}): ProgressBar {
  if (opts.quiet || !io.isTTY) return { update: () => {}, done: () => {} };
  const now = io.now ?? (() => Date.now());
  const start = now();
  let last = -Infinity;
  let drawn = false;
  return {
    update(done: number, total: number) {
      const t = now();
      if (t - last < 100 && done < total) return;
      last = t;
      drawn = true;
      io.stderr(`\r${renderProgress(done, total, t - start, io.columns ?? 80, opts.unit)}`);
    },
    done() {
      if (drawn) io.stderr('\n');
      drawn = false;
    },
  };
}

/**
 * `[#####·····]  45%  1.0 GB / 2.2 GB  120 MB/s  ETA 12s`, fitted to `columns`; with a `unit`,
 * `[#####·····]  45%  450 / 1000 images  12.5 images/s  ETA 44s`.
 */
export function renderProgress(done: number, total: number, elapsedMs: number, columns: number, unit?: string): string {
  const frac = total > 0 ? Math.min(1, done / total) : 1;
  const rate = elapsedMs > 0 ? done / (elapsedMs / 1000) : 0;
  const eta = done >= total ? 'done' : rate > 0 ? `ETA ${formatDuration((total - done) / rate)}` : 'ETA --';
  const amounts =
    unit === undefined
      ? `${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(rate)}/s`
      : `${done} / ${total} ${unit}  ${rate >= 10 ? rate.toFixed(0) : rate.toFixed(2)} ${unit}/s`;
  const text = ` ${String(Math.floor(frac * 100)).padStart(3)}%  ${amounts}  ${eta}`;
  const width = Math.max(10, Math.min(40, columns - text.length - 3));
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]${text}`;
}

export function formatBytes(n: number): string {
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
