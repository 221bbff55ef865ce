// Every command's options, as the parser takes them, are in its --help and in its section of docs/cli.md;
// the top-level usage and the guide's table name every command; the guide names no option that is not one.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FlagSpec } from '../../src/cli/args';
import { CKA_FLAGS } from '../../src/cli/commands/cka';
import { CONVERT_FLAGS } from '../../src/cli/commands/convert';
import { EVAL_FLAGS } from '../../src/cli/commands/eval';
import { EXTRACT_FLAGS } from '../../src/cli/commands/extract';
import { INFO_FLAGS } from '../../src/cli/commands/info';
import { KNN_FLAGS } from '../../src/cli/commands/knn';
import { MERGE_FLAGS } from '../../src/cli/commands/merge';
import { SAMPLE_FLAGS } from '../../src/cli/commands/sample';
import { SWEEP_FLAGS } from '../../src/cli/commands/sweep';
import { TRAIN_FLAGS } from '../../src/cli/commands/train';
import { cli } from './cliHarness';

const COMMANDS: Record<string, Record<string, FlagSpec>> = {
  convert: CONVERT_FLAGS,
  info: INFO_FLAGS,
  extract: EXTRACT_FLAGS,
  merge: MERGE_FLAGS,
  sweep: SWEEP_FLAGS,
  knn: KNN_FLAGS,
  train: TRAIN_FLAGS,
  eval: EVAL_FLAGS,
  cka: CKA_FLAGS,
  sample: SAMPLE_FLAGS,
};

const GUIDE = fs.readFileSync(path.resolve(__dirname, '../../docs/cli.md'), 'utf8');

/** The guide's section of `diffssl <command>`, up to the next section. */
function section(command: string): string {
  const start = GUIDE.indexOf(`\n## \`diffssl ${command}\`\n`);
  expect(start, `docs/cli.md has no section "diffssl ${command}"`).toBeGreaterThanOrEqual(0);
  const end = GUIDE.indexOf('\n## ', start + 1);
  return GUIDE.slice(start, end < 0 ? undefined : end);
}

/** `--name` as a whole option (so `--t` is not found in `--test`). */
const option = (name: string) => new RegExp(`(^|[^\\w-])--${name.replace(/[-]/g, '\\-')}(?![\\w-])`);

describe('the CLI reference', () => {
  it('the top-level usage and the guide’s table name every command', async () => {
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    for (const c of Object.keys(COMMANDS)) {
      expect(top.out, c).toMatch(new RegExp(`^ {2}diffssl ${c} `, 'm'));
      expect(GUIDE, c).toMatch(new RegExp(`^\\| \`${c}\` +\\|`, 'm'));
    }
  });

  it('every option of every command is in its --help and in its section of docs/cli.md', async () => {
    const top = await cli(['--help']);
    for (const [c, flags] of Object.entries(COMMANDS)) {
      const help = await cli([c, '--help']);
      expect(help.code, c).toBe(0);
      // The command's own usage lines are the ones the top-level usage shows.
      expect(help.out.startsWith(`Usage:\n  diffssl ${c} `), c).toBe(true);
      expect(top.out, c).toContain(help.out.slice('Usage:\n'.length).split('\n\n')[0]);
      const doc = section(c);
      for (const [name, spec] of Object.entries(flags)) {
        expect(help.out, `diffssl ${c} --help lacks --${name}`).toMatch(option(name));
        expect(doc, `docs/cli.md's diffssl ${c} lacks --${name}`).toMatch(option(name));
        if (spec.short) {
          expect(help.out, `diffssl ${c} --help lacks -${spec.short}`).toContain(`-${spec.short}, --${name}`);
          expect(doc, `docs/cli.md's diffssl ${c} lacks -${spec.short}`).toContain(`\`-${spec.short}\``);
        }
      }
    }
  });

  it('the guide names no option that no command has', () => {
    const known = new Set(['help', 'version', 'verbose', ...Object.values(COMMANDS).flatMap((f) => Object.keys(f))]);
    // Slurm's own options in the sharding walk-through, and the placeholder of the conventions (--name value).
    const others = new Set(['array', 'gres', 'dependency', 'name']);
    const named = [...GUIDE.matchAll(/(?:^|[^\w-])--([a-z][a-z0-9-]*)/g)].map((m) => m[1]);
    expect(named.filter((n) => !known.has(n) && !others.has(n))).toEqual([]);
  });
});
