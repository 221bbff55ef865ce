/** Seeded data for the CKA tests: float64 matrices as nested arrays, and a float64 reference CKA. */

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
}

export function gaussian(n: number, p: number, seed: number, offset = 0): number[][] {
  const r = rng(seed);
  return Array.from({ length: n }, () =>
    Array.from({ length: p }, () =>
      Math.fround(Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) + offset),
    ),
  );
}

export const matmul = (A: number[][], B: number[][]): number[][] =>
  A.map((row) => B[0].map((_, j) => row.reduce((s, v, k) => s + v * B[k][j], 0)));

/** A random p×p orthogonal matrix (Gram–Schmidt on Gaussian columns, float64). */
export function orthogonal(p: number, seed: number): number[][] {
  const G = gaussian(p, p, seed);
  const cols: number[][] = [];
  for (let j = 0; j < p; j++) {
    const v = G.map((r) => r[j]);
    for (const q of cols) {
      const d = v.reduce((s, x, i) => s + x * q[i], 0);
      for (let i = 0; i < p; i++) v[i] -= d * q[i];
    }
    const norm = Math.hypot(...v);
    cols.push(v.map((x) => x / norm));
  }
  return Array.from({ length: p }, (_, i) => cols.map((c) => c[i]));
}

function centredGram(X: number[][]): number[][] {
  const n = X.length;
  const p = X[0].length;
  const mean = Array.from({ length: p }, (_, k) => X.reduce((s, r) => s + r[k], 0) / n);
  const C = X.map((r) => r.map((v, k) => v - mean[k]));
  return C.map((a) => C.map((b) => a.reduce((s, v, k) => s + v * b[k], 0)));
}

/** Float64 linear CKA (biased), straight from the definition: the reference for data not in the fixture. */
export function referenceCKA(X: number[][], Y: number[][]): number {
  const K = centredGram(X);
  const L = centredGram(Y);
  const dot = (A: number[][], B: number[][]) => A.reduce((s, r, i) => s + r.reduce((t, v, j) => t + v * B[i][j], 0), 0);
  return dot(K, L) / Math.sqrt(dot(K, K) * dot(L, L));
}
