import { describe, expect, it } from 'vitest';
import { progressClock } from '../../src/util/progress';

describe('progress clock', () => {
  it('gives elapsed time, and an estimate from the pace of the units this call worked through', () => {
    let t = 1000;
    const clock = progressClock(() => t);
    expect(clock(0, 10)).toEqual({ done: 0, total: 10, elapsedMs: 0 });
    t += 200;
    expect(clock(2, 10)).toEqual({ done: 2, total: 10, elapsedMs: 200, etaMs: 800 });
    t += 300;
    expect(clock(10, 10)).toEqual({ done: 10, total: 10, elapsedMs: 500, etaMs: 0 });
  });

  it('does not count skipped units (reused, resumed) as work when estimating', () => {
    let t = 0;
    const clock = progressClock(() => t);
    expect(clock(6, 10, 6)).toEqual({ done: 6, total: 10, elapsedMs: 0 });
    t = 100;
    expect(clock(8, 10, 6)).toEqual({ done: 8, total: 10, elapsedMs: 100, etaMs: 100 });
  });
});
