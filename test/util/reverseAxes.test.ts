import { describe, expect, it } from 'vitest';
import { reverseAxes3 } from '../../src/util/reverseAxes';

describe('reverseAxes3', () => {
  it('[a, b, c] → [c, b, a]: element (i, j, k) moves to (k, j, i); reversing the reversed dims gives the input back', () => {
    const [a, b, c] = [2, 3, 4];
    const data = Float32Array.from({ length: a * b * c }, (_, i) => i);
    const out = reverseAxes3(data, [a, b, c]);
    expect(out).not.toBe(data);
    for (let i = 0; i < a; i++)
      for (let j = 0; j < b; j++)
        for (let k = 0; k < c; k++) expect(out[(k * b + j) * a + i]).toBe(data[(i * b + j) * c + k]);
    expect(Array.from(reverseAxes3(out, [c, b, a]))).toEqual(Array.from(data));
  });

  it('with b = 1 it is the matrix transpose', () => {
    expect(Array.from(reverseAxes3(Float32Array.of(1, 2, 3, 4, 5, 6), [2, 1, 3]))).toEqual([1, 4, 2, 5, 3, 6]);
    expect(Array.from(reverseAxes3(Float32Array.of(1, 2, 3), [1, 1, 3]))).toEqual([1, 2, 3]);
  });
});
