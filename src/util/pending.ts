/**
 * Adds `job` to `pending` until it settles (fulfilled or rejected), so that a later
 * `await Promise.all(pending)` waits for every update still running.
 * @returns `job` itself: its result and its error stay the caller's.
 */
export function trackPending<T>(pending: Set<Promise<unknown>>, job: Promise<T>): Promise<T> {
  const settled: Promise<unknown> = job.then(
    () => pending.delete(settled),
    () => pending.delete(settled),
  );
  pending.add(settled);
  return job;
}
