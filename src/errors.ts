/**
 * Typed errors. Every error diffssl throws on bad input is one of these, so callers can
 * tell a wrong argument from a broken file from a weight-map mismatch with `instanceof`.
 * @module
 */

/**
 * Base class of every error diffssl throws on purpose.
 * @category Errors
 */
export class DiffSSLError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * A bad argument: wrong rank, channels or side, t outside [0, T), unknown block, bad label, bad option.
 * @category Errors
 */
export class InputError extends DiffSSLError {}

/**
 * A file that cannot be read as what it claims to be: corrupt, truncated, unsupported format or dtype.
 * @category Errors
 */
export class CheckpointError extends DiffSSLError {}

/**
 * The weights do not fit the model: missing, unexpected or mis-shaped keys, all listed at once.
 * @category Errors
 */
export class WeightsError extends DiffSSLError {
  constructor(
    message: string,
    /** Model keys the weights lack. */
    readonly missing: string[] = [],
    /** Keys in the weights the model does not have. */
    readonly unexpected: string[] = [],
    /** Keys whose shape differs: `[key, expected, got]`. */
    readonly mismatched: [string, number[], number[]][] = [],
  ) {
    super(message);
  }
}

/**
 * A directory of feature shards that cannot be used as asked: a shard missing or incomplete, the same
 * shard present twice, shards or a re-run whose settings disagree, or rows with a gap or an overlap.
 * The lists name every problem found, not only the first.
 * @category Errors
 */
export class ShardError extends DiffSSLError {
  constructor(
    message: string,
    /** Shard indices with no complete shard. */
    readonly missing: number[] = [],
    /** Shard indices held complete by more than one shard directory. */
    readonly duplicated: number[] = [],
    /** What disagrees, one entry per problem: `"<shard directory>: <setting> …"`. */
    readonly mismatched: string[] = [],
  ) {
    super(message);
  }
}

/**
 * Compares a model's state dict (names and reference shapes) with the keys a weights source
 * holds, and throws one {@link WeightsError} listing every missing, mis-shaped and (if `strict`)
 * unexpected key. `prefix` is put back in front of every key the error names.
 * @param subject what failed to fit, e.g. `model.safetensors does not fit this model's state dict`.
 * @param advice what to check, appended to the message.
 */
export function checkStateDict(
  expected: Iterable<readonly [string, readonly number[]]>,
  got: ReadonlyMap<string, readonly number[]>,
  opts: { subject: string; advice: string; strict?: boolean; prefix?: string },
): void {
  const prefix = opts.prefix ?? '';
  const missing: string[] = [];
  const mismatched: [string, number[], number[]][] = [];
  const known = new Set<string>();
  for (const [name, shape] of expected) {
    known.add(name);
    const s = got.get(name);
    if (!s) missing.push(prefix + name);
    else if (s.length !== shape.length || s.some((v, i) => v !== shape[i]))
      mismatched.push([prefix + name, [...shape], [...s]]);
  }
  const unexpected = opts.strict === false ? [] : [...got.keys()].filter((k) => !known.has(k)).map((k) => prefix + k);
  if (!missing.length && !mismatched.length && !unexpected.length) return;
  const list = (xs: string[]) => xs.slice(0, 20).join(', ') + (xs.length > 20 ? `, … (${xs.length} in all)` : '');
  const parts = [
    missing.length ? `${missing.length} missing: ${list(missing)}` : '',
    mismatched.length
      ? `${mismatched.length} mis-shaped: ${list(mismatched.map(([k, w, g]) => `${k} (model [${w}], file [${g}])`))}`
      : '',
    unexpected.length ? `${unexpected.length} unexpected: ${list(unexpected)}` : '',
  ].filter(Boolean);
  throw new WeightsError(`${opts.subject}: ${parts.join('; ')}. ${opts.advice}`, missing, unexpected, mismatched);
}
