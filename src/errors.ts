/**
 * Typed errors. Every error diffssl throws on bad input is one of these, so callers can
 * tell a wrong argument from a broken file from a weight-map mismatch with `instanceof`.
 * @module
 */

/** Base class of every error diffssl throws on purpose. */
export class DiffsslError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A bad argument: wrong rank, channels or side, t outside [0, T), unknown block, bad label, bad option. */
export class InputError extends DiffsslError {}

/** A file that cannot be read as what it claims to be: corrupt, truncated, unsupported format or dtype. */
export class CheckpointError extends DiffsslError {}

/** The weights do not fit the model: missing, unexpected or mis-shaped keys, all listed at once. */
export class WeightsError extends DiffsslError {
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
