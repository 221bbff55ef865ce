import { describe, expect, it } from 'vitest';
import { balancedSubset } from '../../src/data/subsets';
import { InputError } from '../../src/errors';

// 3 classes, unequal counts: 40 of class 0, 30 of class 1, 30 of class 2, interleaved.
const labels = Int32Array.from({ length: 100 }, (_, i) => (i < 40 ? 0 : i % 2 === 0 ? 1 : 2));
const counts = (idx: Int32Array) => {
  const c = [0, 0, 0];
  idx.forEach((i) => c[labels[i]]++);
  return c;
};

describe('balancedSubset', () => {
  it('takes round(fraction · N / C) of every class, sorted, without repeats', () => {
    const idx = balancedSubset(labels, 0.3, 0);
    expect(counts(idx)).toEqual([10, 10, 10]);
    expect([...idx]).toEqual([...idx].sort((a, b) => a - b));
    expect(new Set(idx).size).toBe(idx.length);
    expect(counts(balancedSubset(labels, { perClass: 7 }, 0))).toEqual([7, 7, 7]);
    expect(counts(balancedSubset(labels, 0.001, 0))).toEqual([1, 1, 1]); // at least one
  });

  it('is a function of the seed, and a smaller subset lies within a larger one', () => {
    const a = balancedSubset(labels, 0.1, 5);
    expect(balancedSubset(labels, 0.1, 5)).toEqual(a);
    expect(balancedSubset(labels, 0.1, 6)).not.toEqual(a);
    const big = new Set(balancedSubset(labels, 0.6, 5));
    expect([...a].every((i) => big.has(i))).toBe(true);
  });

  it('refuses bad sizes, too few of a class and bad labels', () => {
    for (const f of [0, -0.1, 1.5, NaN]) expect(() => balancedSubset(labels, f)).toThrow(InputError);
    expect(() => balancedSubset(labels, { perClass: 0 })).toThrow(InputError);
    expect(() => balancedSubset(labels, { perClass: 2.5 })).toThrow(InputError);
    expect(() => balancedSubset(labels, { perClass: 31 })).toThrow(/classes 1 \(30\), 2 \(30\) have fewer/);
    expect(() => balancedSubset(labels, 1)).toThrow(InputError); // 33 per class needed
    expect(() => balancedSubset([0, 1, -1], 1)).toThrow(/labels\[2\]/);
    expect(() => balancedSubset([], 0.5)).toThrow(InputError);
    expect(() => balancedSubset(labels, 0.1, 1.5)).toThrow(InputError);
  });
});
