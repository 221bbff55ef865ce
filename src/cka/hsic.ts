/**
 * HSIC estimators from Gram matrices, in float64: the biased HSIC_0 (Gretton et al. 2005) and the unbiased
 * HSIC_1 (Song et al. 2012, as used by Nguyen et al. 2021).
 *
 * Both are written through a few sums of the Gram matrices so that one code path serves the Gram form (sums
 * read off K = XXᵀ) and the feature form (the same sums from XᵀY, row norms and column sums, never forming K):
 * with d = diag(K), r = K·1, S = 1ᵀK1, τ = tr K and T = tr(KL),
 *
 * - HSIC_0 = tr(KHLH)/(n−1)² = (T − 2 r_K·r_L/n + S_K S_L/n²)/(n−1)²
 * - HSIC_1 = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1]/(n(n−3)), K̃ = K with its diagonal zeroed:
 *   tr(K̃L̃) = T − d_K·d_L, 1ᵀK̃1 = S − τ, K̃1 = r − d.
 * @module
 */
import { InputError } from '../errors.js';

/** The per-kernel sums both estimators need. @internal */
export interface KernelSums {
  /** Examples. */
  n: number;
  /** diag(K). */
  d: Float64Array;
  /** K·1, the row sums. */
  r: Float64Array;
  /** 1ᵀK1. */
  sum: number;
  /** tr K. */
  trace: number;
}

/**
 * The three HSIC values CKA is made of: HSIC(K, L), HSIC(K, K), HSIC(L, L).
 * @category CKA
 */
export interface HSICTerms {
  xy: number;
  xx: number;
  yy: number;
}

/** Fewest examples each estimator is defined for: HSIC_0 divides by (n − 1)², HSIC_1 by n(n − 3) and n − 2. */
export const minExamples = (debiased: boolean): number => (debiased ? 4 : 2);

/** Sums of a Gram matrix, `n × n` row-major. @internal */
export function kernelSums(K: Float64Array, n: number): KernelSums {
  const d = new Float64Array(n);
  const r = new Float64Array(n);
  let sum = 0;
  let trace = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    const row = i * n;
    for (let j = 0; j < n; j++) s += K[row + j];
    r[i] = s;
    d[i] = K[row + i];
    sum += s;
    trace += d[i];
  }
  return { n, d, r, sum, trace };
}

/** tr(KL) for symmetric K, L: the elementwise product summed. @internal */
export function traceOfProduct(K: Float64Array, L: Float64Array): number {
  let t = 0;
  for (let i = 0; i < K.length; i++) t += K[i] * L[i];
  return t;
}

const dot = (a: Float64Array, b: Float64Array): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

/**
 * HSIC_0 or HSIC_1 of two kernels from their sums and T = tr(KL).
 * @internal
 */
export function hsicFromSums(T: number, a: KernelSums, b: KernelSums, debiased: boolean): number {
  const n = a.n;
  if (!debiased) return (T - (2 * dot(a.r, b.r)) / n + (a.sum * b.sum) / (n * n)) / ((n - 1) * (n - 1));
  let cross = 0;
  for (let i = 0; i < n; i++) cross += (a.r[i] - a.d[i]) * (b.r[i] - b.d[i]);
  return (
    (T - dot(a.d, b.d) + ((a.sum - a.trace) * (b.sum - b.trace)) / ((n - 1) * (n - 2)) - (2 / (n - 2)) * cross) /
    (n * (n - 3))
  );
}

/**
 * HSIC(K, K), with a debiased estimate that is lost in rounding taken as 0. HSIC_1 subtracts terms of size
 * ~T/(n(n−3)) from each other; when what is left is below a millionth of that, the float32 Gram entries (≈1e-7
 * relative) cannot tell its sign, and dividing by its square root would give an arbitrary CKA.
 * @internal
 */
export function selfHsic(T: number, a: KernelSums, debiased: boolean): number {
  const v = hsicFromSums(T, a, a, debiased);
  if (!debiased) return v;
  const n = a.n;
  return v > 0 && v < (1e-6 * T) / (n * (n - 3)) ? 0 : v;
}

/** A Gram matrix given as nested arrays or a flat row-major buffer, as float64. */
function asGram(K: ArrayLike<number> | readonly ArrayLike<number>[], name: string): { data: Float64Array; n: number } {
  if (K.length > 0 && typeof K[0] === 'object') {
    const rows = K as readonly ArrayLike<number>[];
    const n = rows.length;
    const data = new Float64Array(n * n);
    rows.forEach((row, i) => {
      if (row.length !== n)
        throw new InputError(`${name} must be square: row ${i} has ${row.length} entries, not ${n}`);
      for (let j = 0; j < n; j++) data[i * n + j] = row[j];
    });
    return { data, n };
  }
  const n = Math.round(Math.sqrt(K.length));
  if (n * n !== K.length) throw new InputError(`${name} has ${K.length} entries: a flat Gram matrix needs n² of them`);
  return { data: Float64Array.from(K as ArrayLike<number>), n };
}

function gramPair(
  K: ArrayLike<number> | readonly ArrayLike<number>[],
  L: ArrayLike<number> | readonly ArrayLike<number>[],
  debiased: boolean,
): number {
  const k = asGram(K, 'K');
  const l = asGram(L, 'L');
  if (k.n !== l.n)
    throw new InputError(`K is ${k.n}×${k.n} but L is ${l.n}×${l.n}: both kernels must be over the same examples`);
  if (k.n < minExamples(debiased))
    throw new InputError(
      `${debiased ? 'HSIC_1' : 'HSIC_0'} needs at least ${minExamples(debiased)} examples, got ${k.n}`,
    );
  for (const [g, name] of [
    [k.data, 'K'],
    [l.data, 'L'],
  ] as const) {
    const bad = g.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new InputError(`${name} contains ${g[bad]} at [${Math.floor(bad / k.n)}, ${bad % k.n}]`);
  }
  return hsicFromSums(traceOfProduct(k.data, l.data), kernelSums(k.data, k.n), kernelSums(l.data, l.n), debiased);
}

/**
 * Biased HSIC, `tr(KHLH)/(n−1)²` with H = I − 11ᵀ/n, of two symmetric Gram matrices over the same n examples
 * (nested arrays or flat row-major). Any kernel works, not only linear ones.
 * @throws InputError for non-square, mismatched or non-finite matrices, or n < 2.
 * @category CKA
 */
export function hsic0(
  K: ArrayLike<number> | readonly ArrayLike<number>[],
  L: ArrayLike<number> | readonly ArrayLike<number>[],
): number {
  return gramPair(K, L, false);
}

/**
 * Unbiased HSIC_1 (Song et al. 2012) of two symmetric Gram matrices over the same n ≥ 4 examples; the estimator
 * behind debiased and minibatch CKA (Nguyen et al. 2021). It ignores the diagonals and is invariant to centring
 * the features.
 * @throws InputError for non-square, mismatched or non-finite matrices, or n < 4.
 * @category CKA
 */
export function hsic1(
  K: ArrayLike<number> | readonly ArrayLike<number>[],
  L: ArrayLike<number> | readonly ArrayLike<number>[],
): number {
  return gramPair(K, L, true);
}
