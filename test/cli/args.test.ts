import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../src/cli/args';
import { UsageError } from '../../src/cli/io';

const SPEC = {
  t: { kind: 'ints' },
  batch: { kind: 'count' },
  seed: { kind: 'int' },
  eta: { kind: 'number' },
  output: { kind: 'string', short: 'o' },
  json: { kind: 'bool' },
} as const;
const parse = (args: string[]) => parseArgs('cmd', args, SPEC, { min: 0, max: 1, names: 'DATA' });
const usage = (args: string[]) => {
  try {
    parse(args);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error('expected a UsageError');
};

describe('the CLI flag parser', () => {
  it('reads typed values, --name=value, short aliases, booleans and positionals', () => {
    const r = parse(['data', '--t', '90,150', '--batch=8', '--seed', '0', '--eta', '-0.5', '-o', 'out', '--json']);
    expect(r).toEqual({
      flags: { t: [90, 150], batch: 8, seed: 0, eta: -0.5, output: 'out', json: true },
      positional: ['data'],
      help: false,
    });
    expect(parse(['--help', '--bogus']).help).toBe(true);
    expect(parse(['-h']).help).toBe(true);
  });

  it('names the flag and what it takes for every mistake', () => {
    expect(usage(['--bogus'])).toBe('cmd: unknown option --bogus');
    expect(usage(['--bogus=1'])).toBe('cmd: unknown option --bogus');
    expect(usage(['-x'])).toBe('cmd: unknown option -x');
    expect(usage(['--batch'])).toBe('cmd: --batch needs a positive integer');
    expect(usage(['--batch', '--json'])).toBe('cmd: --batch needs a positive integer');
    expect(usage(['--batch', '0'])).toBe('cmd: --batch takes a positive integer, got "0"');
    expect(usage(['--batch', '2.5'])).toBe('cmd: --batch takes a positive integer, got "2.5"');
    expect(usage(['--seed', 'abc'])).toBe('cmd: --seed takes an integer ≥ 0, got "abc"');
    expect(usage(['--eta', 'x'])).toBe('cmd: --eta takes a number, got "x"');
    expect(usage(['--t', '90,,150'])).toMatch(
      /--t takes a comma list of integers ≥ 0 \(e\.g\. 90,150\), got "90,,150"/,
    );
    expect(usage(['--t', '1,1'])).toBe('cmd: --t lists a value twice: 1,1');
    expect(usage(['--json=yes'])).toBe('cmd: --json takes no value');
    expect(usage(['--seed', '1', '--seed', '2'])).toBe('cmd: --seed is given twice');
    expect(usage(['a', 'b'])).toBe('cmd needs DATA, got a b');
    expect(() => parseArgs('cmd', [], SPEC, { min: 1, max: 1, names: 'DATA' })).toThrow('cmd needs DATA, got nothing');
  });
});
