/**
 * What every checkpoint reader shares: a name → entry table parsed at open, lookups that name
 * the nearest keys on a miss, and an idempotent close.
 * @module
 */
import { InputError } from '../errors.js';

/**
 * The base of the safetensors and torch checkpoint readers: the tensors' entries are known after
 * opening; a subclass reads each tensor's data by its entry.
 * @typeParam E what the subclass knows about one tensor.
 */
export abstract class TensorFileReader<E> {
  private closed = false;

  /**
   * @param kind what the file is, for error messages (`safetensors file`, `torch checkpoint`).
   * @param entries one per tensor, in file order.
   */
  protected constructor(
    private readonly kind: string,
    private readonly entries: ReadonlyMap<string, E>,
  ) {}

  /** The path, or `'<bytes>'`; named in every error message. */
  abstract get label(): string;

  /** Tensor names in file order. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** Whether the file holds a tensor of this name. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Releases the file; idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.release();
  }

  /**
   * Frees what the reader holds (file descriptor, buffers); called once, by {@link close}.
   * @internal
   */
  protected abstract release(): Promise<void>;

  /**
   * The entry of a tensor.
   * @throws InputError when the reader is closed or has no such tensor (naming the nearest keys).
   * @internal
   */
  protected entry(name: string): E {
    if (this.closed) throw new InputError(`${this.kind} reader for ${this.label} is closed`);
    const e = this.entries.get(name);
    if (e !== undefined) return e;
    const near = nearestKeys(name, this.keys(), 3);
    throw new InputError(
      `${this.kind} ${this.label} has no tensor "${name}"` +
        (near.length ? `; nearest keys: ${near.map((k) => `"${k}"`).join(', ')}` : ''),
    );
  }
}

/** Up to `k` keys closest to `name` by edit distance, to make a typo in a weight name obvious. */
function nearestKeys(name: string, keys: string[], k: number): string[] {
  const dist = (a: string, b: string) => {
    let row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const next = [i];
      for (let j = 1; j <= b.length; j++)
        next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      row = next;
    }
    return row[b.length];
  };
  return keys
    .map((key) => [dist(name, key), key] as const)
    .sort((a, b) => a[0] - b[0])
    .slice(0, k)
    .map(([, key]) => key);
}
