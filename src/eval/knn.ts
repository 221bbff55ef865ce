/**
 * Weighted k-nearest-neighbour classification of frozen features, the paper's Table 9 protocol.
 *
 * The paper gives k = 20 and 200 but not the weighting; its code release has no kNN script. We use
 * the rule its kNN numbers are conventionally computed with (Wu et al. 2018 "InstDisc", adopted
 * by DINO's `eval_knn.py`): features adaptive-average-pooled (Table 9's "pool 1" → 1×1), flattened
 * and L2-normalised; similarity = cosine (a dot product of unit vectors); each of the k most similar
 * training examples votes for its class with weight exp(similarity / τ), τ = 0.07; classes are
 * ranked by summed votes (top-1, top-5). `weighting: 'uniform'` gives plain majority voting.
 *
 * Similarities are plain 2-D matMuls of query chunks against chunks of the training bank (stored
 * transposed, so no transpose flag reaches wasm's slow path); each chunk's top-k is merged into a
 * running top-k per query, so the bank never has to fit on the backend at once.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { adaptiveAvgPool2d } from '../ops/adaptiveAvgPool.js';
import { checkLabels } from '../data/labels.js';

/**
 * Options of {@link KNN.evaluate} and {@link knnEvaluate}.
 * @category Evaluation
 */
export interface KNNOptions {
  /** Neighbour counts to score (default [20, 200], the paper's). */
  k?: number[];
  /** Temperature of the exponential weights (default 0.07). */
  temperature?: number;
  /** `'exp'` (default): weight exp(sim/τ); `'uniform'`: one vote each. */
  weighting?: 'exp' | 'uniform';
  /** Queries per similarity matMul (default 1024). */
  queryChunk?: number;
}

/**
 * Top-1 and top-5 accuracy for one k.
 * @category Evaluation
 */
export interface KNNScore {
  k: number;
  top1: number;
  top5: number;
}

/**
 * Pools feature maps for kNN: adaptive average pool to `pool × pool` (Table 9 uses 1), flatten
 * (NHWC order; cosine similarity does not care about the order as long as it is the same for all
 * examples), L2-normalise each row (`x / max(‖x‖, 1e-12)`, as `F.normalize`).
 * @param features `[N, H, W, C]` maps, or `[N, D]` vectors (only normalised).
 * @returns `[N, D]` unit rows.
 * @category Evaluation
 */
export function poolFeatures(features: tf.Tensor, pool = 1): tf.Tensor2D {
  if (!(features instanceof tf.Tensor) || (features.rank !== 4 && features.rank !== 2))
    throw new InputError(
      `features must be [N, H, W, C] maps or [N, D] vectors, got ${features instanceof tf.Tensor ? `shape [${features.shape}]` : typeof features}`,
    );
  if (!Number.isInteger(pool) || pool < 1) throw new InputError(`pool must be a positive integer, got ${pool}`);
  return tf.tidy(() => {
    let x = features;
    if (x.rank === 4) {
      const m = x as tf.Tensor4D;
      if (pool > Math.min(m.shape[1], m.shape[2]))
        throw new InputError(`pool ${pool} is larger than the ${m.shape[1]}×${m.shape[2]} map`);
      x = tf.reshape(adaptiveAvgPool2d(m, pool), [m.shape[0], -1]);
    }
    const norm = tf.maximum(tf.sqrt(tf.sum(tf.square(x), 1, true)), 1e-12);
    return tf.div(x, norm) as tf.Tensor2D;
  });
}

/** Merges two descending (value, index) lists into `out`, keeping the first k; returns how many were kept. */
function mergeTop(
  aV: Float32Array,
  aI: Int32Array,
  aN: number,
  bV: ArrayLike<number>,
  bI: ArrayLike<number>,
  bN: number,
  k: number,
  outV: Float32Array,
  outI: Int32Array,
): number {
  let i = 0,
    j = 0,
    n = 0;
  while (n < k && (i < aN || j < bN)) {
    // Ties go to the lower bank index, so the result does not depend on the chunking.
    const takeA = j >= bN || (i < aN && (aV[i] > bV[j] || (aV[i] === bV[j] && aI[i] < bI[j])));
    if (takeA) {
      outV[n] = aV[i];
      outI[n++] = aI[i++];
    } else {
      outV[n] = bV[j];
      outI[n++] = bI[j++];
    }
  }
  return n;
}

/**
 * A bank of labelled training features and the weighted kNN rule of the module notes.
 * Rows are kept normalised in JS memory in chunks and uploaded chunk by chunk when classifying.
 *
 * @example
 * ```ts
 * const knn = new KNN();
 * knn.add(trainFeats.get(150, 24), trainLabels); // maps are pooled to 1×1 and normalised
 * const [at20, at200] = knn.evaluate(valFeats.get(150, 24), valLabels); // { k, top1, top5 }
 * ```
 * @category Evaluation
 */
export class KNN {
  private chunks: { data: Float32Array; rows: number }[] = [];
  private labels: number[] = [];
  private dim = -1;
  /** Bank rows per uploaded chunk. */
  readonly chunkRows: number;
  /** Pool side applied to maps given to {@link KNN.add} and {@link KNN.evaluate}. */
  readonly pool: number;

  constructor(opts: { pool?: number; chunkRows?: number } = {}) {
    this.pool = opts.pool ?? 1;
    this.chunkRows = opts.chunkRows ?? 8192;
    if (!Number.isInteger(this.pool) || this.pool < 1)
      throw new InputError(`pool must be a positive integer, got ${opts.pool}`);
    if (!Number.isInteger(this.chunkRows) || this.chunkRows < 1)
      throw new InputError(`chunkRows must be a positive integer, got ${opts.chunkRows}`);
  }

  /** Training examples in the bank. */
  get size(): number {
    return this.labels.length;
  }

  /**
   * Adds training examples: maps `[N, H, W, C]` (pooled, flattened, normalised) or vectors `[N, D]`
   * (normalised). The tensor stays the caller's.
   */
  add(features: tf.Tensor, labels: ArrayLike<number>): void {
    const rows = poolFeatures(features, this.pool);
    try {
      const [n, d] = rows.shape;
      if (this.dim >= 0 && d !== this.dim)
        throw new InputError(`features have ${d} dimensions after pooling; the bank has ${this.dim}`);
      const y = checkLabels(labels, n, Number.MAX_SAFE_INTEGER);
      this.dim = d;
      const data = rows.dataSync() as Float32Array;
      let off = 0;
      while (off < n) {
        let last = this.chunks[this.chunks.length - 1];
        if (!last || last.rows === this.chunkRows) {
          last = { data: new Float32Array(this.chunkRows * d), rows: 0 };
          this.chunks.push(last);
        }
        const take = Math.min(n - off, this.chunkRows - last.rows);
        last.data.set(data.subarray(off * d, (off + take) * d), last.rows * d);
        last.rows += take;
        off += take;
      }
      for (let i = 0; i < n; i++) this.labels.push(y[i]);
    } finally {
      rows.dispose();
    }
  }

  /**
   * The `k` most similar bank examples of each query, most similar first (ties: lower bank index).
   * @returns `similarities [Q·k]` and `indices [Q·k]` (row-major by query), k = min(k, bank size).
   */
  neighbours(
    queries: tf.Tensor,
    k: number,
    queryChunk = 1024,
  ): { k: number; similarities: Float32Array; indices: Int32Array } {
    if (this.size === 0) throw new InputError('the kNN bank is empty: add training features first');
    if (!Number.isInteger(k) || k < 1) throw new InputError(`k must be a positive integer, got ${k}`);
    if (!Number.isInteger(queryChunk) || queryChunk < 1)
      throw new InputError(`queryChunk must be a positive integer, got ${queryChunk}`);
    const q = poolFeatures(queries, this.pool);
    const [nq, d] = q.shape;
    const kk = Math.min(k, this.size);
    let vals = new Float32Array(nq * kk),
      idx = new Int32Array(nq * kk);
    let outV = new Float32Array(nq * kk),
      outI = new Int32Array(nq * kk);
    const counts = new Int32Array(nq);
    const tmpI = new Int32Array(kk);
    try {
      if (d !== this.dim) throw new InputError(`queries have ${d} dimensions after pooling; the bank has ${this.dim}`);
      const qChunks: tf.Tensor2D[] = [];
      for (let s = 0; s < nq; s += queryChunk) qChunks.push(tf.slice(q, [s, 0], [Math.min(queryChunk, nq - s), d]));
      try {
        let base = 0;
        for (const chunk of this.chunks) {
          // [D, m]: the bank chunk transposed once, so every similarity is a plain 2-D matMul.
          const bt = tf.tidy(() => tf.transpose(tf.tensor2d(chunk.data.subarray(0, chunk.rows * d), [chunk.rows, d])));
          const kc = Math.min(kk, chunk.rows);
          try {
            let qs = 0;
            for (const qc of qChunks) {
              const { values, indices } = tf.tidy(() => tf.topk(tf.matMul(qc, bt), kc, true));
              const cv = values.dataSync(),
                ci = indices.dataSync();
              tf.dispose([values, indices]);
              for (let r = 0; r < qc.shape[0]; r++) {
                const row = qs + r;
                for (let j = 0; j < kc; j++) tmpI[j] = ci[r * kc + j] + base;
                const n = mergeTop(
                  vals.subarray(row * kk),
                  idx.subarray(row * kk),
                  counts[row],
                  cv.subarray(r * kc, (r + 1) * kc),
                  tmpI,
                  kc,
                  kk,
                  outV.subarray(row * kk),
                  outI.subarray(row * kk),
                );
                counts[row] = n;
              }
              qs += qc.shape[0];
            }
          } finally {
            bt.dispose();
          }
          [vals, outV] = [outV, vals];
          [idx, outI] = [outI, idx];
          base += chunk.rows;
        }
      } finally {
        tf.dispose(qChunks);
      }
      return { k: kk, similarities: vals, indices: idx };
    } finally {
      q.dispose();
    }
  }

  /**
   * Weighted kNN top-1/top-5 of labelled queries for each k (default 20 and 200). A label counts
   * as within the top r when fewer than r classes outscore it (equal scores: lower class first),
   * so with fewer than r classes every query counts.
   */
  evaluate(queries: tf.Tensor, labels: ArrayLike<number>, opts: KNNOptions = {}): KNNScore[] {
    const ks = opts.k ?? [20, 200];
    if (!Array.isArray(ks) || ks.length === 0 || !ks.every((k) => Number.isInteger(k) && k >= 1))
      throw new InputError(`k must be a non-empty list of positive integers, got ${JSON.stringify(opts.k)}`);
    const tau = opts.temperature ?? 0.07;
    if (!(tau > 0) || !Number.isFinite(tau))
      throw new InputError(`temperature must be positive, got ${opts.temperature}`);
    const weighting = opts.weighting ?? 'exp';
    if (weighting !== 'exp' && weighting !== 'uniform')
      throw new InputError(`weighting must be 'exp' or 'uniform', got ${String(weighting)}`);
    const nq = queries.shape[0];
    const y = checkLabels(labels, nq, Number.MAX_SAFE_INTEGER);
    let classes = 0;
    for (const l of this.labels) if (l >= classes) classes = l + 1;
    for (const l of y) if (l >= classes) classes = l + 1;
    const { k: kk, similarities, indices } = this.neighbours(queries, Math.max(...ks), opts.queryChunk);
    const scores = new Float64Array(classes);
    return ks.map((k) => {
      const use = Math.min(k, kk);
      let c1 = 0,
        c5 = 0;
      for (let r = 0; r < nq; r++) {
        scores.fill(0);
        for (let j = 0; j < use; j++) {
          const s = similarities[r * kk + j];
          scores[this.labels[indices[r * kk + j]]] += weighting === 'exp' ? Math.exp(s / tau) : 1;
        }
        const target = scores[y[r]];
        let rank = 0;
        for (let c = 0; c < classes; c++) if (scores[c] > target || (scores[c] === target && c < y[r])) rank++;
        if (rank < 1) c1++;
        if (rank < 5) c5++;
      }
      return { k, top1: c1 / nq, top5: c5 / nq };
    });
  }

  /** Empties the bank. */
  clear(): void {
    this.chunks = [];
    this.labels = [];
    this.dim = -1;
  }
}

/**
 * One-call kNN evaluation: bank from the training features, scores of the test features.
 * @param train features (maps or vectors) and labels of the bank.
 * @param test features and labels to classify.
 * @category Evaluation
 */
export function knnEvaluate(
  train: { features: tf.Tensor; labels: ArrayLike<number> },
  test: { features: tf.Tensor; labels: ArrayLike<number> },
  opts: KNNOptions & { pool?: number } = {},
): KNNScore[] {
  const knn = new KNN({ pool: opts.pool ?? 1 });
  knn.add(train.features, train.labels);
  return knn.evaluate(test.features, test.labels, opts);
}
