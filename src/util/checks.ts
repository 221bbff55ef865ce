/**
 * Argument checks shared across the library.
 * @module
 */
import { InputError } from '../errors.js';

/** A positive integer or an InputError naming the argument. */
export function positiveInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InputError(`${what} must be a positive integer, got ${String(v)}`);
  return v;
}
