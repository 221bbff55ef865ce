/**
 * Minibatch CKA (Nguyen et al. 2021): per-batch HSIC terms summed over the data, the ratio taken once at the end,
 * so CKA runs over data sets whose Gram matrix would not fit.
 * @module
 */
import { InputError } from '../errors.js';
import type { HSICTerms } from './hsic.js';
import { checkExamples, ckaFromTerms, pairTerms, readOptions, type CKAOptions } from './linearCKA.js';
import { featureCount, representationShape, type Representation } from './representation.js';
import { trackPending } from '../util/pending.js';

/**
 * Options of {@link MinibatchCKA}.
 * @category CKA
 */
export interface MinibatchCKAOptions extends CKAOptions {}

/**
 * Accumulates CKA over batches: `Σ_i HSIC(K_i, L_i) / sqrt(Σ_i HSIC(K_i, K_i) · Σ_i HSIC(L_i, L_i))`, each batch
 * i a set of examples seen by both representations.
 *
 * With `debiased: true` every term is the unbiased HSIC_1, which makes the sum an unbiased estimate of the
 * population HSIC whatever the batch size (Nguyen et al. 2021; each batch needs ≥ 4 examples). With the biased
 * HSIC_0 (the default) the result depends on the batch size: compare numbers taken with equal batches. Batches
 * may differ in size; each contributes its HSIC as is (unweighted, as in Nguyen et al.).
 *
 * @example
 * ```ts
 * const mb = new MinibatchCKA({ debiased: true });
 * for (const batch of batches) {
 *   const feats = await extractFeatures(batch, { t: 90, b: [19, 24], model: unet, seed: 0 });
 *   await mb.update(feats.get(90, 19), feats.get(90, 24));
 *   feats.dispose();
 * }
 * console.log(await mb.result());
 * ```
 * @category CKA
 */
export class MinibatchCKA {
  /** Whether the terms are the unbiased HSIC_1. */
  readonly debiased: boolean;
  private readonly form: 'auto' | 'gram' | 'feature';
  private sums: HSICTerms = { xy: 0, xx: 0, yy: 0 };
  private features?: [number, number];
  private count = 0;
  private seen = 0;
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(opts?: MinibatchCKAOptions) {
    const o = readOptions(opts, 'MinibatchCKA');
    this.debiased = o.debiased;
    this.form = o.form;
  }

  /** Batches added so far. */
  get batches(): number {
    return this.count;
  }

  /** Examples added so far, over all batches. */
  get examples(): number {
    return this.seen;
  }

  /** The running sums of the HSIC terms. */
  get hsic(): HSICTerms {
    return { ...this.sums };
  }

  /**
   * Adds one batch: the same examples seen through both representations. Inputs are never disposed here; keep
   * tensors alive until the returned promise settles (they are read one after the other, to bound memory).
   * @returns this batch's HSIC terms.
   * @throws InputError for different numbers of examples, fewer than the estimator needs (2; debiased 4), NaN
   *   or Inf, or a feature count that differs from the earlier batches'.
   */
  update(x: Representation, y: Representation): Promise<HSICTerms> {
    return trackPending(this.inFlight, this.add(x, y));
  }

  private async add(x: Representation, y: Representation): Promise<HSICTerms> {
    const batch = this.count + this.inFlight.size;
    const [sx, sy] = [representationShape(x, 'x'), representationShape(y, 'y')];
    checkExamples(sx[0], sy[0], this.debiased, ['x', 'y'], `MinibatchCKA batch ${batch + 1}`);
    const [px, py] = [featureCount(sx), featureCount(sy)];
    if (this.features && (this.features[0] !== px || this.features[1] !== py)) {
      throw new InputError(
        `MinibatchCKA: this batch has ${px} features in x and ${py} in y, earlier batches had ${this.features[0]} and ${this.features[1]}: every batch must come from the same two representations`,
      );
    }
    const terms = await pairTerms(x, y, {
      debiased: this.debiased,
      form: this.form,
      names: ['x', 'y'],
      requireVariance: false,
    });
    this.features ??= [px, py];
    this.sums = { xy: this.sums.xy + terms.xy, xx: this.sums.xx + terms.xx, yy: this.sums.yy + terms.yy };
    this.count++;
    this.seen += sx[0];
    return terms;
  }

  /**
   * CKA over every batch added so far (waits for updates still running; a failed update adds nothing).
   * @throws InputError before any batch, or when a representation has no variance over the batches (or, debiased,
   *   a non-positive HSIC_1 sum).
   */
  async result(): Promise<number> {
    await Promise.all(this.inFlight);
    if (this.count === 0) throw new InputError('MinibatchCKA.result(): no batch was added; call update(x, y) first');
    return ckaFromTerms(this.sums, this.debiased, ['x', 'y'], this.seen, this.count);
  }

  /** Forgets every batch. */
  reset(): void {
    this.sums = { xy: 0, xx: 0, yy: 0 };
    this.features = undefined;
    this.count = 0;
    this.seen = 0;
  }
}
