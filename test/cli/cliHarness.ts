/** A fake terminal for running `main` in-process, shared by the command tests. */
import { main, type CliIO } from '../../src/cli/main';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** Runs the CLI with captured output, a fake clock (50 ms per reading) and the given environment. */
export async function cli(
  args: string[],
  opts: { isTTY?: boolean; env?: Record<string, string | undefined> } = {},
): Promise<CliRun> {
  let out = '',
    err = '',
    clock = 0;
  const io: CliIO = {
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
    isTTY: opts.isTTY ?? false,
    columns: 100,
    now: () => (clock += 50),
    env: opts.env ?? {},
  };
  return { code: await main(args, io), out, err };
}

/** Exactly one line on stderr, naming what `names` matches and nothing of the library's insides. */
export function oneLine(err: string): string {
  if (!(err.endsWith('\n') && err.indexOf('\n') === err.length - 1))
    throw new Error(`not one line: ${JSON.stringify(err)}`);
  if (/\n\s+at |node:internal/.test(err)) throw new Error(`a stack trace: ${err}`);
  return err;
}
