/**
 * Linear CKA (Kornblith et al. 2019) of two representations of the same examples, in the Gram form or the
 * feature form, whichever is cheaper for the shapes.
 *
 * Precision plan: columns are centred in float64 first (see {@link Centered}); the big products run as tfjs
 * float32 2-D matMuls in chunks (features for the Gram form, examples for the feature form), each chunk's result
 * accumulated in float64; every estimator sum is float64 JS.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import {
  hsicFromSums,
  kernelSums,
  minExamples,
  selfHsic,
  traceOfProduct,
  type HSICTerms,
  type KernelSums,
} from './hsic.js';
import {
  featureCount,
  readRepresentation,
  representationShape,
  type Centered,
  type Representation,
} from './representation.js';

/**
 * Options of {@link linearCKA}.
 * @category CKA
 */
export interface CKAOptions {
  /**
   * Use the unbiased HSIC_1 estimator (Song et al. 2012; Nguyen et al. 2021) instead of the biased HSIC_0.
   * Debiased CKA does not drift towards 1 when features outnumber examples; it can be slightly negative, and it
   * needs n ≥ 4. Default false.
   */
  debiased?: boolean;
  /**
   * `'gram'`: n×n Gram matrices (cost ∝ n²·(p1 + p2)); `'feature'`: p×p cross-covariances (∝ n·(p1 + p2)²);
   * `'auto'` (default) picks the cheaper. Both give the same number up to float32 rounding.
   */
  form?: 'auto' | 'gram' | 'feature';
}

/**
 * Elements per matMul operand chunk: 8 MB of float32, large enough to keep XNNPACK busy, small enough to bound
 * memory. Mutable only so tests can force many chunks on small data.
 * @internal
 */
export const tuning = { chunkElements: 1 << 21 };
/** Largest n for one Gram matrix (n² float64 = 2 GiB); beyond it, accumulate batches. */
const MAX_GRAM_N = 16384;

/** Reads a float32 matMul result, frees it, and adds it into the float64 accumulator. */
async function accumulate(acc: Float64Array, product: tf.Tensor): Promise<void> {
  let vals: ArrayLike<number>;
  try {
    vals = (await product.data()) as ArrayLike<number>;
  } finally {
    product.dispose();
  }
  for (let i = 0; i < acc.length; i++) acc[i] += vals[i];
}

/**
 * K = XXᵀ of centred data, float64 `[n, n]`: float32 matMuls over chunks of features, summed in float64.
 * @internal
 */
export async function gramMatrix(x: Centered): Promise<Float64Array> {
  const { n, p, data } = x;
  if (n > MAX_GRAM_N)
    throw new InputError(
      `${x.name} has ${n} examples: one ${n}×${n} Gram matrix would take ${((n * n * 8) / 2 ** 30).toFixed(1)} GiB; feed the data in batches to MinibatchCKA or MinibatchCKAMatrix`,
    );
  const K = new Float64Array(n * n);
  const width = Math.max(1, Math.min(p, Math.floor(tuning.chunkElements / n)));
  const block = width === p ? undefined : new Float32Array(n * width);
  for (let c0 = 0; c0 < p; c0 += width) {
    const w = Math.min(width, p - c0);
    let chunk = data;
    if (block) {
      chunk = w === width ? block : new Float32Array(n * w);
      for (let i = 0; i < n; i++) chunk.set(data.subarray(i * p + c0, i * p + c0 + w), i * w);
    }
    // wasm's XNNPACK path takes only 2-D matMuls without transpose flags: transpose explicitly.
    const product = tf.tidy(() => {
      const a = tf.tensor2d(chunk, [n, w]);
      return tf.matMul(a, tf.transpose(a));
    });
    await accumulate(K, product);
  }
  // Float32 matMuls need not round (i, j) and (j, i) alike; the estimators assume symmetry.
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      const m = 0.5 * (K[i * n + j] + K[j * n + i]);
      K[i * n + j] = m;
      K[j * n + i] = m;
    }
  return K;
}

/** XᵀY of centred data, float64 `[p1, p2]`: float32 matMuls over chunks of examples, summed in float64. */
async function crossCovariance(x: Centered, y: Centered): Promise<Float64Array> {
  const { n } = x;
  const M = new Float64Array(x.p * y.p);
  const rows = Math.max(1, Math.min(n, Math.floor(tuning.chunkElements / Math.max(x.p, y.p))));
  for (let r0 = 0; r0 < n; r0 += rows) {
    const h = Math.min(rows, n - r0);
    const product = tf.tidy(() => {
      const a = tf.tensor2d(x.data.subarray(r0 * x.p, (r0 + h) * x.p), [h, x.p]);
      const b = x === y ? a : tf.tensor2d(y.data.subarray(r0 * y.p, (r0 + h) * y.p), [h, y.p]);
      return tf.matMul(tf.transpose(a), b);
    });
    await accumulate(M, product);
  }
  return M;
}

/** The kernel sums of K = XXᵀ computed from the data itself (feature form). */
function featureSums(x: Centered): KernelSums {
  const { n, p, data } = x;
  const colSum = new Float64Array(p);
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < p; k++) {
      const v = data[i * p + k];
      colSum[k] += v;
      s += v * v;
    }
    d[i] = s;
  }
  // r = K·1 = X(Xᵀ1): tiny after centring, but not zero once the centred values are rounded to float32.
  const r = new Float64Array(n);
  let sum = 0;
  let trace = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < p; k++) s += data[i * p + k] * colSum[k];
    r[i] = s;
    sum += s;
    trace += d[i];
  }
  return { n, d, r, sum, trace };
}

const sumOfSquares = (M: Float64Array): number => traceOfProduct(M, M);

/** Which form is cheaper for these shapes: the Gram form costs n²(p1 + p2), the feature form n(p1 + p2)². */
export function chooseForm(n: number, p1: number, p2: number, form: CKAOptions['form'] = 'auto'): 'gram' | 'feature' {
  if (form === 'gram' || form === 'feature') return form;
  return p1 * p1 + p2 * p2 + p1 * p2 < n * (p1 + p2) ? 'feature' : 'gram';
}

/** How {@link pairTerms} reads and names its two inputs. @internal */
export interface PairOptions {
  debiased: boolean;
  form: CKAOptions['form'];
  /** For error messages. */
  names: [string, string];
  /** Reject a representation whose examples are all the same (one batch: CKA undefined). */
  requireVariance: boolean;
}

async function readChecked(rep: Representation, name: string, requireVariance: boolean): Promise<Centered> {
  const c = await readRepresentation(rep, name);
  if (requireVariance && c.constant)
    throw new InputError(`${name} has zero variance (every example is the same): CKA is undefined`);
  return c;
}

/**
 * HSIC(K, L), HSIC(K, K), HSIC(L, L) of two representations whose numbers of examples the caller has checked.
 * In the Gram form each input is read, reduced to its n×n Gram matrix and let go before the next is read, so
 * only one centred copy of a large map is alive at a time.
 * @internal
 */
export async function pairTerms(x: Representation, y: Representation, o: PairOptions): Promise<HSICTerms> {
  const [sx, sy] = [representationShape(x, o.names[0]), representationShape(y, o.names[1])];
  const n = sx[0];
  const { debiased } = o;
  if (chooseForm(n, featureCount(sx), featureCount(sy), o.form) === 'gram') {
    const K = await gramMatrix(await readChecked(x, o.names[0], o.requireVariance));
    const L = await gramMatrix(await readChecked(y, o.names[1], o.requireVariance));
    const a = kernelSums(K, n);
    const b = kernelSums(L, n);
    return {
      xy: hsicFromSums(traceOfProduct(K, L), a, b, debiased),
      xx: selfHsic(traceOfProduct(K, K), a, debiased),
      yy: selfHsic(traceOfProduct(L, L), b, debiased),
    };
  }
  const cx = await readChecked(x, o.names[0], o.requireVariance);
  const cy = await readChecked(y, o.names[1], o.requireVariance);
  const a = featureSums(cx);
  const b = featureSums(cy);
  // tr(KL) = ||XᵀY||²_F: the p×p products replace the n×n ones.
  const txy = sumOfSquares(await crossCovariance(cx, cy));
  const txx = sumOfSquares(await crossCovariance(cx, cx));
  const tyy = sumOfSquares(await crossCovariance(cy, cy));
  return { xy: hsicFromSums(txy, a, b, debiased), xx: selfHsic(txx, a, debiased), yy: selfHsic(tyy, b, debiased) };
}

/** Reads `debiased` and `form`, rejecting what is not an option. @internal */
export function readOptions(
  opts: CKAOptions | undefined,
  where: string,
): { debiased: boolean; form: 'auto' | 'gram' | 'feature' } {
  if (opts !== undefined && (typeof opts !== 'object' || opts === null))
    throw new InputError(`${where}: options must be an object like { debiased: true }, got ${String(opts)}`);
  const debiased = opts?.debiased ?? false;
  if (typeof debiased !== 'boolean')
    throw new InputError(`${where}: debiased must be true or false, got ${String(debiased)}`);
  const form = opts?.form ?? 'auto';
  if (form !== 'auto' && form !== 'gram' && form !== 'feature')
    throw new InputError(`${where}: form must be 'auto', 'gram' or 'feature', got ${String(form)}`);
  return { debiased, form };
}

/** Same n on both sides, and enough of them for the estimator. @internal */
export function checkExamples(nx: number, ny: number, debiased: boolean, names: [string, string], what: string): void {
  if (nx !== ny)
    throw new InputError(
      `${names[0]} has ${nx} examples but ${names[1]} has ${ny}: CKA compares two representations of the same examples (first axis)`,
    );
  const need = minExamples(debiased);
  if (nx < need) {
    throw new InputError(
      debiased
        ? `${what} has ${nx} examples: the debiased estimator (unbiased HSIC_1) needs n ≥ 4, it divides by n(n − 3) and n − 2`
        : `${what} has ${nx} example: CKA needs n ≥ 2 (the biased HSIC divides by (n − 1)²)`,
    );
  }
}

/**
 * CKA from the three HSIC terms, refusing to divide by a non-positive self-similarity.
 * @internal
 */
export function ckaFromTerms(t: HSICTerms, debiased: boolean, names: [string, string], n: number, batches = 1): number {
  for (const [v, name] of [
    [t.xx, names[0]],
    [t.yy, names[1]],
  ] as const) {
    if (v > 0) continue;
    // The biased HSIC(K, K) is a sum of squares of the centred Gram matrix: 0 only when nothing varies.
    if (!debiased)
      throw new InputError(
        `${name} has zero variance (every example is the same${batches > 1 ? ' within each batch' : ''}): CKA is undefined`,
      );
    throw new InputError(
      `the unbiased HSIC_1 estimate of HSIC(${name}, ${name}) over ${n} examples${batches > 1 ? ` (${batches} batches)` : ''} is ${v === 0 ? '0 (to rounding)' : v}, not positive, so CKA is undefined: ` +
        `either ${name} has zero variance, or there are too few examples (or too little variance) for the unbiased estimate; use more examples or the biased estimator`,
    );
  }
  return t.xy / Math.sqrt(t.xx * t.yy);
}

/**
 * Linear CKA between two representations of the same n examples:
 * `HSIC(K, L) / sqrt(HSIC(K, K)·HSIC(L, L))` with K = XXᵀ, L = YYᵀ. 1 means the same representation up to an
 * orthogonal transform, an isotropic scaling and a shift; it returns CKA itself, not the distance 1 − CKA.
 *
 * @param x `[n, ...]`: a tensor, nested arrays or `{ data, shape }`; axes after the first are flattened. Not disposed.
 * @param y the same n examples, any number of features.
 * @returns a float64 number (the result is computed from float32 products: expect ~1e-6 of rounding).
 * @throws InputError for different numbers of examples, too few (2; debiased: 4), NaN or Inf (naming x or y),
 *   or a representation with zero variance.
 *
 * @example
 * ```ts
 * const feats = await extractFeatures(x0, { t: 90, b: [19, 24], model: unet, seed: 0 });
 * const similarity = await linearCKA(feats.get(90, 19), feats.get(90, 24)); // a number in [0, 1]
 * const debiased = await linearCKA(feats.get(90, 19), feats.get(90, 24), { debiased: true });
 * feats.dispose();
 * ```
 * @category CKA
 */
export async function linearCKA(x: Representation, y: Representation, opts?: CKAOptions): Promise<number> {
  const { debiased, form } = readOptions(opts, 'linearCKA');
  const [sx, sy] = [representationShape(x, 'x'), representationShape(y, 'y')];
  checkExamples(sx[0], sy[0], debiased, ['x', 'y'], 'linearCKA');
  const terms = await pairTerms(x, y, { debiased, form, names: ['x', 'y'], requireVariance: true });
  return ckaFromTerms(terms, debiased, ['x', 'y'], sx[0]);
}
