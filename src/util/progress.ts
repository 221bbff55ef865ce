/**
 * One progress report shape for every long-running call of the library (loading weights, writing
 * a converted file, extracting, caching or sharding features, training, sampling): a discriminated union on `kind`,
 * each member with the same `done`/`total`/`elapsedMs`/`etaMs` fields, so one progress bar serves
 * them all and a `switch (p.kind)` reaches the fields of one activity.
 * @module
 */

/**
 * Fields every progress report has, whatever the activity.
 * @category Utilities
 */
export interface ProgressBase {
  /** Units of work done so far in this call (bytes, rows, pairs or updates: see `kind`); never decreases. */
  done: number;
  /** Units of the whole activity; `done === total` in the last report of a call that completes. */
  total: number;
  /** Milliseconds since the call started. */
  elapsedMs: number;
  /** Estimated milliseconds to the end, from this call's own pace; absent before there is a pace to go by. */
  etaMs?: number;
}

/**
 * {@link ADMUNet.load} read one weight: `done`/`total` count bytes of tensor data.
 * @category Utilities
 */
export interface LoadProgressInfo extends ProgressBase {
  kind: 'load';
  /** The weight just read. */
  key: string;
}

/**
 * A streamed file write stored one tensor: `done`/`total` count bytes of tensor data.
 * @category Utilities
 */
export interface WriteProgressInfo extends ProgressBase {
  kind: 'write';
  /** The tensor just written. */
  key: string;
}

/**
 * A U-Net forward of {@link extractFeatures} finished: `done`/`total` count (t, example) rows.
 * @category Utilities
 */
export interface ExtractProgressInfo extends ProgressBase {
  kind: 'extract';
}

/**
 * {@link cacheFeatures} stored more maps: `done`/`total` count (image, copy) pairs.
 * @category Utilities
 */
export interface CacheProgressInfo extends ProgressBase {
  kind: 'cache';
  /** Pairs taken from shards of an earlier run (`resume`) rather than computed, so far. */
  reused: number;
}

/**
 * {@link extractToDirectory} wrote a part file of its shard: `done`/`total` count images of the shard.
 * @category Utilities
 */
export interface ShardProgressInfo extends ProgressBase {
  kind: 'shard';
  /** Images found in part files of an earlier run (resumed) rather than computed, so far. */
  reused: number;
  /** The shard being extracted, `index` of `count`. */
  shard: { index: number; count: number };
}

/**
 * One optimizer update of {@link train}: `done`/`total` count updates of the whole run, resumed ones included.
 * @category Utilities
 */
export interface TrainProgressInfo extends ProgressBase {
  kind: 'train';
  /** 0-based epoch. */
  epoch: number;
  /** Epochs of the run. */
  epochs: number;
  /** Batches of this epoch done (1-based). */
  step: number;
  /** Batches per epoch. */
  steps: number;
  /** Updates done in the whole run, resumed ones included. */
  globalStep: number;
  /** This batch's mean cross-entropy. */
  loss: number;
  /** The learning rate of this update. */
  lr: number;
  /** Estimated milliseconds to the end of training, from this call's mean step time (evaluation not included). */
  etaMs: number;
}

/**
 * One optimizer step of {@link trainDiffusion}: `done`/`total` count steps of the whole run, resumed ones included.
 * @category Utilities
 */
export interface DiffusionTrainProgressInfo extends ProgressBase {
  kind: 'pretrain';
  /** This step's L_simple (mean squared error of the predicted ε). */
  loss: number;
  /** Images per second over this call's steps so far. */
  imagesPerSecond: number;
}

/**
 * A step of {@link sampleDDPM} or {@link sampleDDIM}: `done`/`total` count denoising steps.
 * @category Utilities
 */
export interface SampleProgressInfo extends ProgressBase {
  kind: 'sample';
  /** The model timestep just denoised (the original step number, also when respaced). */
  t: number;
}

/**
 * A progress report; `kind` says which activity, and which fields beyond the common ones it has.
 * @category Utilities
 */
export type ProgressInfo =
  | LoadProgressInfo
  | WriteProgressInfo
  | ExtractProgressInfo
  | CacheProgressInfo
  | ShardProgressInfo
  | TrainProgressInfo
  | DiffusionTrainProgressInfo
  | SampleProgressInfo;

/**
 * What the library's `onProgress` options take. A callback that throws aborts the call it watches.
 * @category Utilities
 */
export type ProgressCallback<P extends ProgressInfo = ProgressInfo> = (p: P) => void;

/**
 * A clock for the common fields of one call's reports. The pace is measured on the units this
 * call actually worked through, so units skipped at the start (a resumed run) do not make the
 * estimate optimistic.
 * @param now milliseconds source (default `performance.now`).
 * @internal
 */
export function progressClock(
  now: () => number = () => performance.now(),
): (done: number, total: number, skipped?: number) => ProgressBase {
  const t0 = now();
  return (done, total, skipped = 0) => {
    const elapsedMs = now() - t0;
    const worked = done - skipped;
    return worked > 0
      ? { done, total, elapsedMs, etaMs: (elapsedMs / worked) * (total - done) }
      : { done, total, elapsedMs };
  };
}
