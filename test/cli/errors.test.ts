import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failureMessage, main, type CliIO } from '../../src/cli/main';
import { FIXTURES } from '../helpers';

const pt = path.join(FIXTURES, 'adm-tiny', 'weights.pt');
let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-errors-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function cli(args: string[]) {
  let out = '',
    err = '';
  const io: CliIO = { stdout: (t) => (out += t), stderr: (t) => (err += t), isTTY: false };
  return { code: await main(args, io), out, err };
}

/** One line on stderr, naming what the user gave and nothing of the library's insides. */
function expectOneLine(err: string, names: RegExp): void {
  expect(err.endsWith('\n') && err.indexOf('\n') === err.length - 1, JSON.stringify(err)).toBe(true);
  expect(err).toMatch(names);
  expect(err).not.toMatch(/\.tmp|\n\s+at |node:internal/);
}

describe('diffssl: every failure is one line and exit status 1', () => {
  it('convert into a folder that does not exist names the user’s path, not a temporary file', async () => {
    const r = await cli(['convert', pt, '/missing/dir/out.safetensors']);
    expect(r.code).toBe(1);
    expectOneLine(
      r.err,
      /^diffssl: convert: cannot write \/missing\/dir\/out\.safetensors: the folder \/missing\/dir does not exist$/m,
    );
  });

  it('an output path under a file, an output that is a folder, an input that is a folder or missing', async () => {
    const folder = path.join(tmp, 'folder');
    fs.mkdirSync(folder);
    const cases: [string[], RegExp][] = [
      [
        ['convert', pt, path.join(pt, 'x.safetensors')],
        /cannot write .*weights\.pt\/x\.safetensors: .*weights\.pt is not a folder/,
      ],
      [['convert', pt, folder, '--force'], /convert: .*folder is a folder; give the path of the \.safetensors file/],
      [['convert', folder, path.join(tmp, 'o.safetensors')], /convert: .*folder is a folder, not a checkpoint file/],
      [['convert', path.join(tmp, 'missing.pt'), path.join(tmp, 'o.safetensors')], /missing\.pt/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect(r.code, r.err).toBe(1);
      expectOneLine(r.err, message);
    }
    expect(fs.readdirSync(tmp)).toEqual(['folder']);
  });

  it('an unexpected error is one line pointing at --verbose; --verbose prints its stack', () => {
    const e = new TypeError('x is not a function\nsecond line');
    expect(failureMessage(e, false)).toBe(
      'diffssl: unexpected error: TypeError: x is not a function (run again with --verbose for the stack trace)',
    );
    expect(failureMessage(e, true)).toMatch(/^diffssl: TypeError: x is not a function\nsecond line\n\s+at /);
    expect(failureMessage('thrown string', false)).toMatch(/^diffssl: unexpected error: thrown string \(/);
  });

  it('--verbose is accepted anywhere on the line and does not change a successful run', async () => {
    const out = path.join(tmp, 'ok.safetensors');
    const r = await cli(['--verbose', 'convert', pt, out, '--quiet']);
    expect(r.code, r.err).toBe(0);
    expect(fs.existsSync(out)).toBe(true);
    fs.rmSync(out);
  });
});
