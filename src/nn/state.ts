/**
 * Named parameters under the reference's state-dict names, converted between PyTorch layouts and
 * the layouts the heads compute in, loaded strictly and saved atomically. Every head, tokenizer
 * and feedback network describes its tensors as a list of {@link StateEntry}; this module does the
 * rest once for all of them.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError, checkStateDict, InputError } from '../errors.js';
import { SafetensorsReader, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { localShape, localToReference, referenceToLocal, type Layout } from '../io/layout.js';
import { openWeights } from '../io/weights.js';
import { SeededRandom } from '../util/random.js';
import type { FileInput } from '../io/webSource.js';

export type { Layout } from '../io/layout.js';

/**
 * A float tensor of the state dict, held in a tfjs variable.
 * @category Heads
 */
export interface FloatEntry {
  kind: 'float';
  /** Name relative to the module (the caller adds its prefix). */
  name: string;
  /** Shape in the reference (PyTorch) layout. */
  refShape: number[];
  layout: Layout;
  variable: tf.Variable;
}

/**
 * An integer counter of the state dict (BatchNorm's `num_batches_tracked`, int64 in PyTorch).
 * @category Heads
 */
export interface CountEntry {
  kind: 'count';
  name: string;
  get(): number;
  set(value: number): void;
}

/**
 * One state-dict entry.
 * @category Heads
 */
export type StateEntry = FloatEntry | CountEntry;

/**
 * Options of the weight loaders.
 * @category Heads
 */
export interface LoadWeightsOptions {
  /**
   * Only keys starting with this prefix belong to the module (it is stripped before matching),
   * e.g. `head.pre_layer.15.` to load one tokenizer out of a whole reference checkpoint. Keys
   * outside the prefix are ignored; inside it, unknown keys are errors.
   */
  prefix?: string;
}

/** The entries of `inner` under `prefix`. */
export function prefixed(prefix: string, inner: StateEntry[]): StateEntry[] {
  return inner.map((e) => ({ ...e, name: prefix + e.name }));
}

/** Creates a float entry with its variable from reference-layout data. */
export function floatEntry(
  name: string,
  refShape: number[],
  layout: Layout,
  refData: Float32Array,
  trainable = true,
): FloatEntry {
  const variable = tf.tidy(() =>
    tf.variable(
      tf.tensor(referenceToLocal(layout, refShape, refData), localShape(layout, refShape), 'float32'),
      trainable,
    ),
  );
  return { kind: 'float', name, refShape, layout, variable };
}

/**
 * PyTorch's default initialisation, drawn from a seeded generator so that a seed gives the same
 * head on every backend: `nn.Linear`/`nn.Conv2d` weights and biases U(−1/√fan_in, 1/√fan_in)
 * (kaiming_uniform with a = √5), norm weights 1, norm biases 0.
 */
export class Init {
  private readonly rng: SeededRandom;
  constructor(seed: number) {
    this.rng = new SeededRandom(seed);
  }
  /** U(−bound, bound) values. */
  uniform(n: number, bound: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (2 * this.rng.uniform() - 1) * bound;
    return out;
  }
  /** A weight `[out, in, ...]` or a bias `[out]` of a layer with this fan-in. */
  fanIn(shape: number[], fanIn: number): Float32Array {
    return this.uniform(
      shape.reduce((a, b) => a * b, 1),
      1 / Math.sqrt(fanIn),
    );
  }
}

/** A constant-filled array. */
export function filled(n: number, value: number): Float32Array {
  return new Float32Array(n).fill(value);
}

/** Frees every variable of the entries. */
export function disposeState(entries: StateEntry[]): void {
  for (const e of entries) if (e.kind === 'float' && !e.variable.isDisposed) e.variable.dispose();
}

/** The entries' variables that training updates. */
export function trainableOf(entries: StateEntry[]): tf.Variable[] {
  return entries.filter((e): e is FloatEntry => e.kind === 'float' && e.variable.trainable).map((e) => e.variable);
}

/** The state under reference names and layouts, ready for {@link writeSafetensors}. */
export function stateDict(entries: StateEntry[]): Map<string, TensorToWrite> {
  const out = new Map<string, TensorToWrite>();
  for (const e of entries) {
    if (e.kind === 'count') out.set(e.name, { shape: [], data: BigInt64Array.of(BigInt(e.get())) });
    else
      out.set(e.name, {
        shape: [...e.refShape],
        data: localToReference(e.layout, e.refShape, e.variable.dataSync() as Float32Array),
      });
  }
  return out;
}

/** Writes the state as safetensors under the reference names, atomically. */
export async function saveState(entries: StateEntry[], path: string): Promise<void> {
  await writeSafetensors(path, stateDict(entries), { format: 'pt', producer: 'diffssl' });
}

/**
 * Loads reference weights into the entries. Every key is checked before any variable changes:
 * missing, unexpected (within the prefix) and mis-shaped keys are reported together in one
 * {@link WeightsError}, and on any error the module keeps its old values.
 * @param source a safetensors or torch file: a path (Node), a URL, a Blob, a Response or its bytes.
 */
export async function loadState(
  entries: StateEntry[],
  source: FileInput,
  opts: LoadWeightsOptions = {},
): Promise<void> {
  const prefix = opts.prefix ?? '';
  if (typeof prefix !== 'string') throw new InputError(`prefix must be a string, got ${typeof prefix}`);
  const src = await openWeights(source);
  let ints: SafetensorsReader | undefined;
  try {
    const present = new Map<string, number[]>();
    for (const k of src.keys()) if (k.startsWith(prefix)) present.set(k.slice(prefix.length), src.shape(k));
    checkStateDict(
      entries.map((e): [string, number[]] => [e.name, e.kind === 'count' ? [] : e.refShape]),
      present,
      {
        subject: `${src.label} does not fit this head's state dict${prefix ? ` under "${prefix}"` : ''}`,
        advice:
          'Check that the configuration (head_type, blocks, fusion_arc, pre_pool_size, norm_type, feedback blocks) matches the one the weights were trained with.',
        prefix,
      },
    );
    // Read everything first so that a broken file leaves the module untouched.
    const values: [StateEntry, Float32Array | number][] = [];
    for (const e of entries) {
      const key = prefix + e.name;
      if (e.kind === 'float') values.push([e, await src.readFloat32(key)]);
      else {
        // Integer tensors are outside the float-only weights interface: read them from the safetensors file itself.
        if (src.format !== 'safetensors')
          throw new CheckpointError(`${src.label}: cannot read the integer tensor "${key}" from a ${src.format} file`);
        ints ??= await SafetensorsReader.open(source);
        const t = await ints.read(key);
        const v =
          t.data instanceof BigInt64Array
            ? Number(t.data[0])
            : t.data instanceof Int32Array || t.data instanceof Float32Array || t.data instanceof Float64Array
              ? Number(t.data[0])
              : NaN;
        if (!Number.isFinite(v))
          throw new CheckpointError(`${src.label}: "${key}" must be an integer scalar, got dtype ${t.dtype}`);
        values.push([e, v]);
      }
    }
    for (const [e, v] of values) {
      if (e.kind === 'count') e.set(v as number);
      else
        tf.tidy(() =>
          e.variable.assign(
            tf.tensor(referenceToLocal(e.layout, e.refShape, v as Float32Array), e.variable.shape, 'float32'),
          ),
        );
    }
  } finally {
    await ints?.close();
    await src.close();
  }
}
