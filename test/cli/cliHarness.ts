/** A fake terminal for running `main` in-process, and the helpers the command tests share. */
import path from 'node:path';
import { expect } from 'vitest';
import { main, type CliIO } from '../../src/cli/main';
import { FIXTURES } from '../helpers';

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

/** The model options of the adm-tiny fixture U-Net (32×32 RGB, 19 blocks, T = 1000): small, and committed. */
export const TINY_MODEL = [
  '--model',
  path.join(FIXTURES, 'adm-tiny', 'weights.safetensors'),
  '--flags',
  path.join(FIXTURES, 'adm-tiny', 'config.json'),
];

/** Runs the command with `--json`, expects exit 0 and exactly one line on stdout, and parses it. */
export async function cliJson(args: string[], opts: { isTTY?: boolean } = {}): Promise<any> {
  const r = await cli([...args, '--json'], opts);
  expect(r.code, r.err).toBe(0);
  expect(r.out.endsWith('\n') && r.out.indexOf('\n') === r.out.length - 1, r.out).toBe(true);
  return JSON.parse(r.out);
}

/** `diffssl extract DATA --limit N --t T --b B --pool P` with the adm-tiny model into `out`, quietly. */
export async function extractTiny(
  data: string,
  limit: number,
  out: string,
  t: string,
  b: string,
  pool = '2',
): Promise<void> {
  const r = await cli([
    'extract',
    data,
    '--limit',
    String(limit),
    '--t',
    t,
    '--b',
    b,
    '--pool',
    pool,
    ...TINY_MODEL,
    '-o',
    out,
    '--quiet',
  ]);
  expect(r.code, r.err).toBe(0);
}
