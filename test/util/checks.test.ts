import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { positiveInt } from '../../src/util/checks';

describe('positiveInt', () => {
  it('returns a positive integer unchanged', () => {
    for (const v of [1, 2, 7, 2 ** 31]) expect(positiveInt(v, 'n')).toBe(v);
  });

  it('anything else is an InputError that names the argument and the value', () => {
    for (const v of [0, -1, 1.5, NaN, Infinity, '3', null, undefined, [2]]) {
      let err: unknown;
      try {
        positiveInt(v, 'feedback window');
      } catch (e) {
        err = e;
      }
      expect(err, String(v)).toBeInstanceOf(InputError);
      expect((err as Error).message).toBe(`feedback window must be a positive integer, got ${String(v)}`);
    }
  });
});
