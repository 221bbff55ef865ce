/**
 * A tiny typed parser for one command's flags: `--name value`, `--name=value`, boolean `--name`, short
 * aliases (`-o`), and positional arguments. Every mistake (an unknown flag, a missing value, a value of
 * the wrong type, too many or too few positionals) is a {@link UsageError} naming the flag and what it takes.
 * @module
 */
import { UsageError } from './io.js';

/**
 * What a flag takes: `string`; `count` a positive integer; `int` an integer ≥ 0; `number` a finite number;
 * `bool` no value; `ints` a comma list of integers ≥ 0 (`90,150`).
 */
export type FlagKind = 'string' | 'count' | 'int' | 'number' | 'bool' | 'ints';

export interface FlagSpec {
  kind: FlagKind;
  /** A one-letter alias, e.g. `o` for `-o`. */
  short?: string;
}

/** `--quiet` and `--json`, which the commands that print a summary take. */
export const OUTPUT_FLAGS = {
  quiet: { kind: 'bool' },
  json: { kind: 'bool' },
} as const satisfies Record<string, FlagSpec>;

/** Their help lines. */
export const OUTPUT_HELP = `  --quiet            no progress bar and no summary
  --json             one JSON object on stdout`;

type ValueOf<K extends FlagKind> = K extends 'string'
  ? string
  : K extends 'bool'
    ? boolean
    : K extends 'ints'
      ? number[]
      : number;

export type Flags<S extends Record<string, FlagSpec>> = { [K in keyof S]?: ValueOf<S[K]['kind']> };

export interface Parsed<S extends Record<string, FlagSpec>> {
  flags: Flags<S>;
  positional: string[];
  /** `--help` or `-h` was given (nothing else is checked then). */
  help: boolean;
}

const WHAT: Record<FlagKind, string> = {
  string: 'a value',
  count: 'a positive integer',
  int: 'an integer ≥ 0',
  number: 'a number',
  bool: 'no value',
  ints: 'a comma list of integers ≥ 0 (e.g. 90,150)',
};

function convert(command: string, name: string, kind: FlagKind, raw: string): unknown {
  const bad = () => new UsageError(`${command}: --${name} takes ${WHAT[kind]}, got ${JSON.stringify(raw)}`, command);
  switch (kind) {
    case 'string':
      if (raw === '') throw bad();
      return raw;
    case 'count':
    case 'int': {
      if (!/^\d+$/.test(raw.trim())) throw bad();
      const v = Number(raw.trim());
      if (!Number.isSafeInteger(v) || (kind === 'count' && v < 1)) throw bad();
      return v;
    }
    case 'number': {
      const v = raw.trim() === '' ? NaN : Number(raw);
      if (!Number.isFinite(v)) throw bad();
      return v;
    }
    case 'ints': {
      const parts = raw.split(',').map((s) => s.trim());
      if (parts.some((p) => !/^\d+$/.test(p) || !Number.isSafeInteger(Number(p)))) throw bad();
      const list = parts.map(Number);
      if (new Set(list).size !== list.length)
        throw new UsageError(`${command}: --${name} lists a value twice: ${raw}`, command);
      return list;
    }
    default:
      throw bad();
  }
}

/**
 * Parses `args` against `spec`.
 * @param positionals how many positional arguments the command takes, `[min, max]`, and their names for messages.
 */
export function parseArgs<S extends Record<string, FlagSpec>>(
  command: string,
  args: readonly string[],
  spec: S,
  positionals: { min: number; max: number; names: string },
): Parsed<S> {
  if (args.includes('--help') || args.includes('-h')) return { flags: {}, positional: [], help: true };
  const flags: Record<string, unknown> = {};
  const positional: string[] = [];
  const shorts = new Map(Object.entries(spec).flatMap(([k, s]) => (s.short ? [[s.short, k] as const] : [])));
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      inline = eq < 0 ? undefined : a.slice(eq + 1);
    } else if (/^-[A-Za-z]$/.test(a)) {
      name = shorts.get(a.slice(1));
      if (name === undefined) throw new UsageError(`${command}: unknown option ${a}`, command);
    } else {
      positional.push(a);
      continue;
    }
    const s = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!s) throw new UsageError(`${command}: unknown option ${a.split('=')[0]}`, command);
    if (Object.hasOwn(flags, name)) throw new UsageError(`${command}: --${name} is given twice`, command);
    if (s.kind === 'bool') {
      if (inline !== undefined) throw new UsageError(`${command}: --${name} takes no value`, command);
      flags[name] = true;
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      const next = args[i + 1];
      if (next === undefined || (next.startsWith('-') && !/^-\d/.test(next)))
        throw new UsageError(`${command}: --${name} needs ${WHAT[s.kind]}`, command);
      raw = next;
      i++;
    }
    flags[name] = convert(command, name, s.kind, raw);
  }
  if (positional.length < positionals.min || positional.length > positionals.max)
    throw new UsageError(
      positionals.max === 0
        ? `${command} takes no arguments besides its options, got ${positional.join(' ')}`
        : `${command} needs ${positionals.names}, got ${positional.length ? positional.join(' ') : 'nothing'}`,
      command,
    );
  return { flags: flags as Flags<S>, positional, help: false };
}
