/**
 * Argument checks shared across the library.
 * @module
 */
import { InputError } from '../errors.js';

/** A positive integer or an InputError naming the argument. */
export function positiveInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new InputError(`${what} must be a positive integer, got ${String(v)}`);
  return v;
}

/** Whether `v` is a count: a non-negative safe integer (a size, an offset, a dimension). */
export function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
