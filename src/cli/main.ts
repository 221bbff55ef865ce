/**
 * The `diffssl` command line. The only module that reads argv, the environment or writes to the
 * terminal; the library underneath reports through callbacks. Each command lives in `commands/`.
 *
 *     diffssl convert | info | extract | merge | sweep | knn | train | eval | cka | sample  [--help] [--verbose]
 *
 * Exit statuses: 0 ok, 1 failure (one line on stderr), 2 bad usage, 3 an incomplete sharded run
 * (`merge`, or a `sweep` shard, with shards missing). `--verbose` adds the stack of an unexpected error.
 * @module
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { version } from '../../package.json';
import { useBestBackend } from '../backend/useBestBackend.js';
import { ckaCommand, CKA_USAGE } from './commands/cka.js';
import { evalCommand, EVAL_USAGE } from './commands/eval.js';
import { convertCommand, CONVERT_USAGE } from './commands/convert.js';
import { extractCommand, EXTRACT_USAGE } from './commands/extract.js';
import { infoCommand, INFO_USAGE } from './commands/info.js';
import { knnCommand, KNN_USAGE } from './commands/knn.js';
import { mergeCommand, MERGE_USAGE } from './commands/merge.js';
import { sampleCommand, SAMPLE_USAGE } from './commands/sample.js';
import { sweepCommand, SWEEP_USAGE } from './commands/sweep.js';
import { trainCommand, TRAIN_USAGE } from './commands/train.js';
import { EXIT, failureMessage, UsageError, type CliIO } from './io.js';

export { failureMessage, renderProgress, type CliIO } from './io.js';

const USAGE = `diffssl ${version}

Usage:
${CONVERT_USAGE}${INFO_USAGE}${EXTRACT_USAGE}${MERGE_USAGE}${SWEEP_USAGE}${KNN_USAGE}${TRAIN_USAGE}${EVAL_USAGE}${CKA_USAGE}${SAMPLE_USAGE}  diffssl --help | --version
  diffssl <command> --help     the command's options

  Every model command runs the embedded backbone unless given --model FILE --flags SPEC.
  A progress bar with an ETA goes to stderr when it is a terminal; --json prints one JSON
  object on stdout. --verbose (with any command) prints the stack trace of an unexpected error.

Exit status: 0 ok; 1 failed (one line on stderr says why); 2 bad usage; 3 an incomplete sharded
run (diffssl merge, or a diffssl sweep shard, with shards missing or not finished; the message
names them).
`;

const COMMAND_USAGE: Record<string, string> = {
  convert: CONVERT_USAGE,
  info: INFO_USAGE,
  extract: EXTRACT_USAGE,
  merge: MERGE_USAGE,
  sweep: SWEEP_USAGE,
  knn: KNN_USAGE,
  train: TRAIN_USAGE,
  eval: EVAL_USAGE,
  cka: CKA_USAGE,
  sample: SAMPLE_USAGE,
};

const COMMANDS: Record<string, (args: string[], io: CliIO) => Promise<number>> = {
  convert: convertCommand,
  info: infoCommand,
  extract: extractCommand,
  merge: mergeCommand,
  sweep: sweepCommand,
  knn: knnCommand,
  train: trainCommand,
  eval: evalCommand,
  cka: ckaCommand,
  sample: sampleCommand,
};

/**
 * Runs the CLI on `args` (argv without node and the script).
 * @returns the exit status: 0 ok, 1 failed, 2 bad usage, 3 incomplete sharded run.
 */
export async function main(args: string[], io: CliIO = processIO()): Promise<number> {
  const verbose = args.includes('--verbose');
  const [command, ...rest] = args.filter((a) => a !== '--verbose');
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? io.stderr : io.stdout)(USAGE);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === '--version' || command === '-v') {
    io.stdout(`${version}\n`);
    return EXIT.ok;
  }
  try {
    const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!run) throw new UsageError(`unknown command "${command}"`);
    return await run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      // The message, then the command's usage lines (the whole usage for an unknown command).
      const own = e.command !== undefined ? COMMAND_USAGE[e.command] : undefined;
      io.stderr(
        own
          ? `diffssl: ${e.message} (see diffssl ${e.command} --help)\n\nUsage:\n${own}`
          : `diffssl: ${e.message}\n\n${USAGE}`,
      );
      return EXIT.usage;
    }
    io.stderr(`${failureMessage(e, verbose)}\n`);
    return EXIT.failure;
  }
}

function processIO(): CliIO {
  return {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    isTTY: Boolean(process.stderr.isTTY),
    columns: process.stderr.columns,
    env: process.env,
    backend: async (name) => {
      // Production mode: no per-op debug checks, and no console banners from the backends on stderr.
      tf.enableProdMode();
      await useBestBackend(name === undefined ? {} : { force: name });
    },
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
