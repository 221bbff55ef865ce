/**
 * Class-balanced labelled subsets, as the semi-supervised benchmarks use (SimCLR's 1 % and 10 % of
 * ImageNet's labels): the same number of examples of every class, chosen by a seed.
 * @module
 */
import { InputError } from '../errors.js';
import { mixSeed, SeededRandom } from '../util/random.js';
import { checkSeed } from '../util/noise.js';

/**
 * How big a {@link balancedSubset} is: a fraction of the examples in (0, 1], or a count per class.
 * @category Data
 */
export type SubsetSize = number | { perClass: number };

/**
 * Indices of a class-balanced subset of a labelled set, sorted ascending.
 *
 * Every class present in `labels` gets the same number of examples: `perClass`, or for a fraction
 * `round(fraction · N / C)` (at least 1), N being the examples and C the classes present; on the
 * shipped Fashion-MNIST training subset (1,000 per class) 0.01 gives 10 per class and 0.1 gives 100.
 * Each class's examples are shuffled by a generator seeded with `(seed, class)` alone and the first
 * ones taken, so a class's choice does not depend on the other classes, and with one seed a smaller
 * subset is contained in a larger one (the 1 % subset lies within the 10 % one).
 * @param labels one non-negative integer class per example.
 * @param size a fraction in (0, 1] or `{ perClass }`.
 * @param seed any safe integer (default 0).
 * @example
 * ```ts
 * const shipped = await loadFashionMNIST();
 * const onePercent = balancedSubset(shipped.labels, 0.01, 0); // 100 indices, 10 per class
 * ```
 * @throws InputError for a fraction outside (0, 1], a `perClass` that is not a positive integer, a
 *   class with fewer examples than asked for, labels that are not non-negative integers, or none.
 * @category Data
 */
export function balancedSubset(labels: ArrayLike<number>, size: SubsetSize, seed = 0): Int32Array {
  if (labels == null || typeof labels.length !== 'number' || typeof labels === 'string')
    throw new InputError('balancedSubset: labels must be an array of class ids');
  const n = labels.length;
  if (n === 0) throw new InputError('balancedSubset: labels are empty');
  checkSeed(seed);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const c = labels[i];
    if (!Number.isSafeInteger(c) || c < 0)
      throw new InputError(`balancedSubset: labels[${i}] is ${c}; labels must be non-negative integers`);
    let list = byClass.get(c);
    if (!list) byClass.set(c, (list = []));
    list.push(i);
  }
  let perClass: number;
  if (typeof size === 'number') {
    if (!(Number.isFinite(size) && size > 0 && size <= 1))
      throw new InputError(`balancedSubset: a fraction must be in (0, 1], got ${size}`);
    perClass = Math.max(1, Math.round((size * n) / byClass.size));
  } else {
    const k = (size as { perClass?: unknown } | null)?.perClass;
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 1)
      throw new InputError(
        `balancedSubset: size must be a fraction in (0, 1] or { perClass: positive integer }, got ${JSON.stringify(size)}`,
      );
    perClass = k;
  }
  const short = [...byClass].filter(([, list]) => list.length < perClass).sort(([a], [b]) => a - b);
  if (short.length > 0)
    throw new InputError(
      `balancedSubset: ${perClass} examples of every class are needed, but class${short.length > 1 ? 'es' : ''} ${short
        .map(([c, list]) => `${c} (${list.length})`)
        .join(', ')} ha${short.length > 1 ? 've' : 's'} fewer`,
    );
  const out: number[] = [];
  for (const [c, list] of byClass) {
    // A partial Fisher–Yates shuffle: the first perClass places are a uniform sample of the class.
    const rng = new SeededRandom(mixSeed(0x5b5e, seed, Math.floor(seed / 2 ** 32), c));
    const a = [...list];
    for (let i = 0; i < perClass; i++) {
      const j = i + Math.floor(rng.uniform() * (a.length - i));
      [a[i], a[j]] = [a[j], a[i]];
    }
    out.push(...a.slice(0, perClass));
  }
  return Int32Array.from(out).sort();
}
