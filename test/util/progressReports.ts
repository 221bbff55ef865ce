// What every onProgress of the library must satisfy: one kind, the common fields, done never going back.
import { expect } from 'vitest';
import type { ProgressInfo } from '../../src/util/progress';

/** Checks one call's reports; `complete`: the call finished, so the last report has done === total and no time left. */
export function expectProgress(reports: ProgressInfo[], kind: ProgressInfo['kind'], complete = true): void {
  expect(reports.length).toBeGreaterThan(0);
  reports.forEach((p, i) => {
    expect(p.kind).toBe(kind);
    expect(p.total).toBe(reports[0].total);
    expect(Number.isFinite(p.done) && p.done >= 0 && p.done <= p.total, `done ${p.done} of ${p.total}`).toBe(true);
    expect(p.elapsedMs).toBeGreaterThanOrEqual(0);
    if (p.etaMs !== undefined) expect(p.etaMs).toBeGreaterThanOrEqual(0);
    if (i > 0) {
      expect(p.done).toBeGreaterThanOrEqual(reports[i - 1].done);
      expect(p.elapsedMs).toBeGreaterThanOrEqual(reports[i - 1].elapsedMs);
    }
  });
  const last = reports.at(-1)!;
  if (complete) {
    expect(last.done).toBe(last.total);
    expect(last.etaMs ?? 0).toBe(0);
  } else expect(last.done).toBeLessThan(last.total);
}
