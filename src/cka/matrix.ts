/**
 * CKA between every pair of a list of representations (layers × layers, steps × steps, or one model's layers ×
 * another's), accumulated over batches in one pass over the data.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { hsicFromSums, kernelSums, minExamples, selfHsic, traceOfProduct, type KernelSums } from './hsic.js';
import { ckaFromTerms, gramMatrix, readOptions } from './linearCKA.js';
import { readRepresentation, representationShape, type Representation } from './representation.js';
import { trackPending } from '../util/pending.js';

/**
 * Labelled maps in the shape of `extractFeatures`' `FeatureSet` (anything with `entries()` yielding
 * `{ t, b, map }`): one representation per (t, b), labelled `t=… b=…`.
 * @category CKA
 */
export interface LabelledMaps {
  entries(): Iterable<{ t: number; b: number; map: tf.Tensor }>;
}

/**
 * A list of representations: an array, a `Map` (labelled by its keys, e.g. `forward(...).features`), or a
 * `FeatureSet` from `extractFeatures` (every (t, b) it holds, t-major).
 * @category CKA
 */
export type RepresentationList = readonly Representation[] | ReadonlyMap<unknown, Representation> | LabelledMaps;

/**
 * Options of {@link MinibatchCKAMatrix} and {@link ckaMatrix}.
 * @category CKA
 */
export interface CKAMatrixOptions {
  /** Unbiased HSIC_1 terms (needs ≥ 4 examples per batch). Default false. */
  debiased?: boolean;
  /** Names of the rows (or of the whole list when there are no columns). Default: from the input, else "0", "1", … */
  labels?: readonly string[];
  /** Names of the columns when rows and columns are different lists. */
  colLabels?: readonly string[];
}

function normalise(list: RepresentationList, what: string): { reps: Representation[]; labels?: string[] } {
  if (Array.isArray(list)) return { reps: [...(list as readonly Representation[])] };
  if (list instanceof Map) return { reps: [...list.values()], labels: [...list.keys()].map(String) };
  if (typeof list === 'object' && list !== null && typeof (list as LabelledMaps).entries === 'function') {
    const reps: Representation[] = [];
    const labels: string[] = [];
    for (const e of (list as LabelledMaps).entries()) {
      if (!e || typeof e !== 'object' || !('map' in e))
        throw new InputError(`${what}: entries() must yield { t, b, map } like a FeatureSet`);
      reps.push(e.map);
      labels.push(`t=${e.t} b=${e.b}`);
    }
    return { reps, labels };
  }
  throw new InputError(
    `${what} must be an array of representations, a Map or a FeatureSet, got ${list === null ? 'null' : typeof list}`,
  );
}

/**
 * Accumulates a CKA matrix over batches: each `update` gets the same examples through every representation,
 * computes each representation's Gram matrix once, and adds the HSIC of every needed pair to running sums
 * (minibatch CKA, Nguyen et al. 2021, for all pairs at once). `result()` gives the matrix.
 *
 * Two layouts, fixed by the first update:
 * - `update(reps)`: one list, the symmetric `reps × reps` matrix with unit diagonal;
 * - `update(rows, cols)`: two lists (say U-Net blocks and another model's layers), the `rows × cols` matrix.
 *
 * Memory per batch: one float64 n×n Gram matrix per representation (n = the batch size), so keep batches to a
 * few thousand examples at most.
 *
 * @example
 * ```ts
 * const acc = new MinibatchCKAMatrix({ debiased: true });
 * for (const batch of batches) {
 *   const feats = await extractFeatures(batch, { t: 90, b: [4, 7, 10, 13, 16], model: unet, seed: 0 });
 *   await acc.update(feats); // blocks × blocks at t = 90, labels "t=90 b=4", …
 *   feats.dispose();
 * }
 * const matrix = await acc.result();
 * await writeCKAHeatmap('cka.png', matrix, { rowLabels: acc.rowLabels, title: 'CKA at t=90' });
 * ```
 * @category CKA
 */
export class MinibatchCKAMatrix {
  /** Whether the terms are the unbiased HSIC_1. */
  readonly debiased: boolean;
  private rowNames?: string[];
  private colNames?: string[];
  private rectangular?: boolean;
  private features?: number[];
  /** HSIC(i, i) per representation (rows, then columns when rectangular). */
  private diag?: Float64Array;
  /** HSIC(row i, column j), rows × cols. */
  private cross?: Float64Array;
  private count = 0;
  private seen = 0;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly given: { labels?: string[]; colLabels?: string[] };

  constructor(opts?: CKAMatrixOptions) {
    this.debiased = readOptions({ debiased: opts?.debiased }, 'MinibatchCKAMatrix').debiased;
    const check = (l: unknown, name: string) => {
      if (l !== undefined && !(Array.isArray(l) && l.every((s) => typeof s === 'string')))
        throw new InputError(`MinibatchCKAMatrix: ${name} must be an array of strings`);
      return l === undefined ? undefined : [...(l as string[])];
    };
    this.given = { labels: check(opts?.labels, 'labels'), colLabels: check(opts?.colLabels, 'colLabels') };
  }

  /** Row names (after the first update, or as given). */
  get rowLabels(): string[] {
    return [...(this.rowNames ?? this.given.labels ?? [])];
  }

  /** Column names: the row names for a symmetric matrix. */
  get colLabels(): string[] {
    return this.rectangular ? [...(this.colNames ?? this.given.colLabels ?? [])] : this.rowLabels;
  }

  /** Batches added so far. */
  get batches(): number {
    return this.count;
  }

  /** Examples added so far, over all batches. */
  get examples(): number {
    return this.seen;
  }

  /**
   * Adds one batch of the same examples seen through every representation. Inputs are read, never disposed.
   * @param rows the representations (array, Map, or a FeatureSet).
   * @param cols optional second list: then the matrix is rows × cols.
   * @throws InputError for lists whose length, labels or feature counts change between batches, different numbers
   *   of examples, too few examples, NaN or Inf (naming the representation).
   */
  update(rows: RepresentationList, cols?: RepresentationList): Promise<void> {
    return trackPending(this.inFlight, this.add(rows, cols));
  }

  private async add(rowList: RepresentationList, colList?: RepresentationList): Promise<void> {
    const rows = normalise(rowList, 'MinibatchCKAMatrix.update rows');
    const cols = colList === undefined ? undefined : normalise(colList, 'MinibatchCKAMatrix.update cols');
    if (rows.reps.length === 0 || (cols && cols.reps.length === 0))
      throw new InputError('MinibatchCKAMatrix.update: every list needs at least one representation');
    const rectangular = cols !== undefined;
    if (this.rectangular !== undefined && this.rectangular !== rectangular) {
      throw new InputError(
        `MinibatchCKAMatrix.update: the first batch gave ${this.rectangular ? 'rows and columns' : 'one list'}, this one ${rectangular ? 'rows and columns' : 'one list'}`,
      );
    }
    const rowNames = this.names(rows, this.given.labels, this.rowNames, 'rows');
    const colNames = cols ? this.names(cols, this.given.colLabels, this.colNames, 'cols') : undefined;
    const all = [...rows.reps, ...(cols?.reps ?? [])];
    const names = [...rowNames, ...(colNames ?? [])].map((l, i) =>
      i < rowNames.length ? `rows[${i}] (${l})` : `cols[${i - rowNames.length}] (${l})`,
    );
    const shown = rectangular ? names : names.map((s) => s.replace(/^rows/, 'reps'));

    // Shapes first, so a wrong batch fails before any heavy work.
    const shapes = all.map((r, i) => representationShape(r, shown[i]));
    const n = shapes[0][0];
    shapes.forEach((s, i) => {
      if (s[0] !== n)
        throw new InputError(
          `${shown[i]} has ${s[0]} examples but ${shown[0]} has ${n}: every representation must see the same examples`,
        );
    });
    if (n < minExamples(this.debiased)) {
      throw new InputError(
        `MinibatchCKAMatrix batch of ${n} examples: ${this.debiased ? 'the debiased estimator (unbiased HSIC_1) needs n ≥ 4' : 'CKA needs n ≥ 2'}`,
      );
    }
    const features = shapes.map((s) => s.slice(1).reduce((a, b) => a * b, 1));
    if (this.features) {
      features.forEach((p, i) => {
        if (p !== this.features![i])
          throw new InputError(`${shown[i]} has ${p} features per example, ${this.features![i]} in earlier batches`);
      });
    }

    // One Gram matrix per representation, the centred data dropped as soon as it is made.
    const grams: Float64Array[] = [];
    const sums: KernelSums[] = [];
    for (let i = 0; i < all.length; i++) {
      const c = await readRepresentation(all[i], shown[i]);
      grams.push(await gramMatrix(c));
      sums.push(kernelSums(grams[i], n));
    }
    const R = rows.reps.length;
    const C = rectangular ? cols!.reps.length : R;
    const diag = new Float64Array(all.length);
    for (let i = 0; i < all.length; i++) diag[i] = selfHsic(traceOfProduct(grams[i], grams[i]), sums[i], this.debiased);
    const cross = new Float64Array(R * C);
    for (let i = 0; i < R; i++) {
      for (let j = rectangular ? 0 : i; j < C; j++) {
        const k = rectangular ? R + j : j;
        const v =
          !rectangular && i === j
            ? diag[i]
            : hsicFromSums(traceOfProduct(grams[i], grams[k]), sums[i], sums[k], this.debiased);
        cross[i * C + j] = v;
        if (!rectangular) cross[j * C + i] = v;
      }
    }

    // Commit only once the whole batch worked.
    this.rectangular = rectangular;
    this.rowNames = rowNames;
    this.colNames = colNames;
    this.features = features;
    if (!this.diag) {
      this.diag = diag;
      this.cross = cross;
    } else {
      for (let i = 0; i < diag.length; i++) this.diag[i] += diag[i];
      for (let i = 0; i < cross.length; i++) this.cross![i] += cross[i];
    }
    this.count++;
    this.seen += n;
  }

  private names(
    list: { reps: Representation[]; labels?: string[] },
    given: string[] | undefined,
    earlier: string[] | undefined,
    what: string,
  ): string[] {
    const count = list.reps.length;
    if (given && given.length !== count)
      throw new InputError(
        `MinibatchCKAMatrix: ${given.length} ${what === 'rows' ? 'labels' : 'colLabels'} for ${count} ${what}`,
      );
    if (earlier && earlier.length !== count)
      throw new InputError(
        `MinibatchCKAMatrix.update: ${count} ${what} in this batch, ${earlier.length} in earlier ones`,
      );
    if (!given && earlier && list.labels && list.labels.some((l, i) => l !== earlier[i])) {
      throw new InputError(
        `MinibatchCKAMatrix.update: this batch's ${what} are [${list.labels.join(', ')}], earlier ones were [${earlier.join(', ')}]`,
      );
    }
    return given ?? earlier ?? list.labels ?? Array.from({ length: count }, (_, i) => String(i));
  }

  /**
   * The CKA matrix over every batch so far (waits for updates still running): `rows × cols`, or symmetric with
   * unit diagonal for one list. Row i is `rowLabels[i]`.
   * @throws InputError before any batch, or when a representation has zero variance over the data (or, debiased,
   *   a non-positive HSIC_1 sum), naming it.
   */
  async result(): Promise<number[][]> {
    await Promise.all(this.inFlight);
    if (!this.diag || !this.cross)
      throw new InputError('MinibatchCKAMatrix.result(): no batch was added; call update(reps) first');
    const R = this.rowNames!.length;
    const C = this.rectangular ? this.colNames!.length : R;
    const label = (k: number) =>
      k < R ? `${this.rectangular ? 'row' : 'representation'} ${this.rowNames![k]}` : `column ${this.colNames![k - R]}`;
    return Array.from({ length: R }, (_, i) =>
      Array.from({ length: C }, (_, j) => {
        const k = this.rectangular ? R + j : j;
        const v = ckaFromTerms(
          { xy: this.cross![i * C + j], xx: this.diag![i], yy: this.diag![k] },
          this.debiased,
          [label(i), label(k)],
          this.seen,
          this.count,
        );
        return !this.rectangular && i === j ? 1 : v;
      }),
    );
  }
}

/**
 * CKA between every pair of representations of the same examples: the symmetric matrix (unit diagonal), each
 * representation's Gram matrix computed once. For data larger than one batch use {@link MinibatchCKAMatrix}.
 *
 * @param reps an array of representations `[n, ...]`, a Map, or a `FeatureSet` from `extractFeatures`.
 * @returns `matrix[i][j]` = CKA(reps[i], reps[j]).
 * @throws InputError as {@link linearCKA} does, naming the representation.
 *
 * @example
 * ```ts
 * const feats = await extractFeatures(x0, { t: [90, 150, 300], b: 24, model: unet, seed: 0 });
 * const m = await ckaMatrix(feats); // t × t at block 24
 * feats.dispose();
 * ```
 * @category CKA
 */
export async function ckaMatrix(
  reps: RepresentationList,
  opts?: Pick<CKAMatrixOptions, 'debiased'>,
): Promise<number[][]> {
  const acc = new MinibatchCKAMatrix({ debiased: readOptions(opts, 'ckaMatrix').debiased });
  await acc.update(reps);
  return acc.result();
}
