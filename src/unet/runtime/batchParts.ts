/**
 * The batch as the U-Net's forward carries it from block to block, and the encoder outputs waiting
 * for their decoder blocks (guided-diffusion's `hs`). Blocks whose maps run in bands take one
 * example at a time (a band covers one example), so through them the batch is one part per example;
 * elsewhere it is one part. Parts and skips waiting their turn are parked, so that a batch of
 * 256×256 maps is never in the wasm heap at once.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { alias } from '../../backend/engine.js';
import { sliceRows } from '../../backend/sliceRows.js';
import { park, ParkingBuffers, type Parked } from '../../backend/wasm/index.js';
import { InputError } from '../../errors.js';

/** Where a model parks the maps that wait between blocks, in JS buffers it reuses from forward to forward. */
export class Parking {
  private readonly buffers = new ParkingBuffers();
  private readonly minBytes: number;

  /** @param bandBytes the model's band budget (`ModelOptions.bandBytes`). */
  constructor(bandBytes: number) {
    // Maps under a sixteenth of a band stay in the heap: too small to fragment it, not worth the copies.
    this.minBytes = bandBytes / 16;
  }

  /** Sets `x` aside until a later block takes it (see {@link park}); takes ownership of it. */
  hold(x: tf.Tensor4D): Parked<tf.Tensor4D> {
    return park(x, this.minBytes, this.buffers);
  }

  /** Drops the buffers kept for reuse. */
  clear(): void {
    this.buffers.clear();
  }
}

/** The batch between blocks: one part, or one part per example. Owns its parts; free them with {@link PartedBatch.dispose}. */
export class PartedBatch {
  private parts: Parked<tf.Tensor4D>[];

  /** @param x the batch (the caller keeps it: the parts start from an alias). */
  constructor(
    x: tf.Tensor4D,
    private readonly parking: Parking,
  ) {
    this.parts = [park(alias(x), Infinity)];
  }

  /** `[N, H, W, C]` of one part. */
  get shape(): [number, number, number, number] {
    return this.parts[0].shape;
  }

  /** How many parts the batch is in. */
  get count(): number {
    return this.parts.length;
  }

  /** Splits the batch into one part per example (`perExample`), or joins its parts into one. */
  regroup(perExample: boolean): void {
    this.parts = regroup(this.parts, perExample, (x) => this.parking.hold(x));
  }

  /**
   * Replaces each part by `block(part, example)`, which consumes the part; `example` is the part's
   * index in the batch when the batch is split. `each` sees every output before it is set aside.
   * @returns with `capture`, the outputs joined as one batch, owned by the caller.
   */
  apply(
    block: (x: tf.Tensor4D, example?: number) => tf.Tensor4D,
    each: (y: tf.Tensor4D) => void,
    capture: boolean,
  ): tf.Tensor4D | undefined {
    const split = this.parts.length > 1;
    const captured: tf.Tensor4D[] = [];
    try {
      for (let i = 0; i < this.parts.length; i++) {
        const y = block(this.parts[i].take(), split ? i : undefined);
        try {
          each(y);
          // Captures share the output's data (an alias, not a copy).
          if (capture) captured.push(alias(y));
        } catch (e) {
          y.dispose();
          throw e;
        }
        this.parts[i] = split ? this.parking.hold(y) : park(y, Infinity);
      }
    } catch (e) {
      tf.dispose(captured);
      throw e;
    }
    return capture ? joinParts(captured) : undefined;
  }

  /** `f` of each part, joined as one batch owned by the caller; consumes the parts. */
  finish(f: (x: tf.Tensor4D) => tf.Tensor4D): tf.Tensor4D {
    const outputs: tf.Tensor4D[] = [];
    try {
      for (const part of this.parts) {
        const x = part.take();
        try {
          outputs.push(f(x));
        } finally {
          x.dispose();
        }
      }
    } catch (e) {
      tf.dispose(outputs);
      throw e;
    }
    return joinParts(outputs);
  }

  /** Frees the parts not taken. */
  dispose(): void {
    this.parts.forEach((p) => p.dispose());
  }
}

/** Encoder outputs waiting for the decoder blocks that take them as skips, kept only where a block that will run needs them. */
export class Skips {
  private readonly waiting = new Map<number, Parked<tf.Tensor4D>[]>();

  /** @param needed the blocks whose outputs a later block takes. */
  constructor(
    private readonly needed: Set<number>,
    private readonly parking: Parking,
  ) {}

  /** Sets aside a part of block `b`'s output (an alias: `y` stays the caller's) when a later block needs it. */
  keep(b: number, y: tf.Tensor4D): void {
    if (!this.needed.has(b)) return;
    const parts = this.waiting.get(b) ?? [];
    this.waiting.set(b, parts);
    parts.push(this.parking.hold(alias(y)));
  }

  /**
   * Block `b`'s output for a batch in `count` parts: part i, owned by the caller, once each. Taken
   * one at a time when it was split alike, otherwise regrouped whole to `count` parts first.
   */
  take(b: number, count: number): (i: number) => tf.Tensor4D {
    let parts = this.waiting.get(b)!;
    if (parts.length !== count) {
      parts = regroup(parts, count > 1, (x) => park(x, Infinity));
      this.waiting.set(b, parts);
    }
    return (i) => parts[i].take();
  }

  /** Frees what is left of block `b`'s output, once the block that needs it has run. */
  release(b: number): void {
    this.waiting.get(b)?.forEach((p) => p.dispose());
    this.waiting.delete(b);
  }

  /** Removes the outputs of `blocks` still waiting and hands them to the caller (see {@link ForwardState}). */
  hand(blocks: number[]): Map<number, Parked<tf.Tensor4D>[]> {
    const out = new Map<number, Parked<tf.Tensor4D>[]>();
    for (const b of blocks) {
      const parts = this.waiting.get(b);
      if (parts) out.set(b, parts);
      this.waiting.delete(b);
    }
    return out;
  }

  /** Takes over outputs that {@link hand} gave out: those a block of this pass needs; the others are freed. */
  adopt(held: Map<number, Parked<tf.Tensor4D>[]>): void {
    held.forEach((parts, b) => {
      if (this.needed.has(b)) this.waiting.set(b, parts);
      else parts.forEach((p) => p.dispose());
    });
  }

  /** Frees every output still waiting. */
  dispose(): void {
    this.waiting.forEach((parts) => parts.forEach((p) => p.dispose()));
    this.waiting.clear();
  }
}

/**
 * The batch entering block `prev + 1` of a resumed forward: the held output of block `prev`, which
 * stays among the skips when a decoder block of this pass takes it. Consumes `state`; `hs` adopts
 * the rest of it.
 */
export function resumeBatch(state: ForwardState, hs: Skips, prev: number, parking: Parking): PartedBatch {
  const held = state.take();
  const parts = held.get(prev)!;
  held.delete(prev);
  hs.adopt(held);
  const x = joinParts(parts.map((p) => p.take()));
  try {
    hs.adopt(new Map([[prev, [parking.hold(alias(x))]]]));
    return new PartedBatch(x, parking);
  } finally {
    x.dispose();
  }
}

/**
 * What a forward held for a later one to start at block {@link ForwardState.block} instead of block 1
 * (`ForwardOptions.hold` and `resume`): the encoder outputs before that block, set aside as the
 * forward's skips are. Used once; {@link ForwardState.dispose} frees it unused.
 * @category Backbone
 */
export class ForwardState {
  private held: Map<number, Parked<tf.Tensor4D>[]> | undefined;

  /** @internal */
  constructor(
    /** The block a resumed forward starts at. */
    readonly block: number,
    /** @internal the model that held it */
    readonly owner: object,
    /** The steps of the forward that held it, one per example. */
    readonly t: readonly number[],
    held: Map<number, Parked<tf.Tensor4D>[]>,
  ) {
    // It outlives the forward, which may run inside the caller's tf.tidy.
    held.forEach((parts) => parts.forEach((p) => p.keep()));
    this.held = held;
  }

  /** Whether it was used or disposed. */
  get spent(): boolean {
    return this.held === undefined;
  }

  /** @internal The held outputs, once. */
  take(): Map<number, Parked<tf.Tensor4D>[]> {
    const held = this.held;
    if (!held) throw new InputError('this ForwardState was already used or disposed: hold a new one');
    this.held = undefined;
    return held;
  }

  /** Frees what it holds (a no-op once used). */
  dispose(): void {
    this.held?.forEach((parts) => parts.forEach((p) => p.dispose()));
    this.held = undefined;
  }
}

// One part per example (splitting a batch, each set aside by `hold`), or the batch as one part
// (joining examples); the parts given are consumed.
function regroup(
  parts: Parked<tf.Tensor4D>[],
  perExample: boolean,
  hold: (x: tf.Tensor4D) => Parked<tf.Tensor4D>,
): Parked<tf.Tensor4D>[] {
  if (perExample && parts.length === 1 && parts[0].shape[0] > 1) {
    const whole = parts[0].take();
    const split: Parked<tf.Tensor4D>[] = [];
    try {
      for (let i = 0; i < whole.shape[0]; i++) split.push(hold(sliceRows(whole, i, 1)));
      return split;
    } catch (e) {
      split.forEach((p) => p.dispose());
      throw e;
    } finally {
      whole.dispose();
    }
  }
  return !perExample && parts.length > 1 ? [park(joinParts(parts.map((p) => p.take())), Infinity)] : parts;
}

// The parts joined along the batch axis (a lone part as it is); consumes them.
function joinParts(parts: tf.Tensor4D[]): tf.Tensor4D {
  if (parts.length === 1) return parts[0];
  try {
    return tf.concat(parts, 0);
  } finally {
    tf.dispose(parts);
  }
}
