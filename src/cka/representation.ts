/**
 * What CKA accepts as "a representation" and how it is read: examples first, everything after the
 * first axis flattened, checked for NaN/Inf, and column-centred in float64.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import type { HostTensor } from '../util/hostTensor.js';

/**
 * Nested arrays of numbers, examples first (`[n][p]`, or deeper: flattened per example). Typed arrays may stand for the innermost level.
 * @category CKA
 */
export interface NestedArray extends ReadonlyArray<number | NestedArray | ArrayLike<number>> {}

/**
 * A flat buffer with its shape, as `readSafetensors` returns.
 * @deprecated the same as `HostTensor<ArrayLike<number>, readonly number[]>`; use {@link HostTensor}.
 * @category CKA
 */
export type ShapedData = HostTensor<ArrayLike<number>, readonly number[]>;

/**
 * One representation of n examples: a tensor `[n, ...]`, nested arrays `[n][...]`, or `{ data, shape }`.
 * Every axis after the first is flattened (a feature map `[n, h, w, c]` becomes `[n, h·w·c]`); a 1-D input is
 * n examples of one feature. Tensors are read, never disposed.
 * @category CKA
 */
export type Representation = tf.Tensor | NestedArray | HostTensor<ArrayLike<number>, readonly number[]>;

/**
 * A representation read and centred: `data` holds `x − mean(x)` per column (the mean taken in float64 from the
 * original numbers, the difference rounded to float32 for tfjs matMuls). Centring first matters: Gram entries of
 * raw features with large column offsets cancel catastrophically in float32, and both HSIC estimators are
 * exactly invariant to it.
 * @internal
 */
export interface Centered {
  /** Examples. */
  n: number;
  /** Features per example. */
  p: number;
  /** `[n, p]` row-major, centred, float32. */
  data: Float32Array;
  /** True when every example is the same (all centred values are exactly 0): zero variance. */
  constant: boolean;
  /** The argument's name, for error messages. */
  name: string;
}

/** The shape of a representation without reading its values (for early checks). @internal */
export function representationShape(rep: Representation, name: string): number[] {
  let shape: number[];
  if (rep instanceof tf.Tensor) shape = rep.shape.slice();
  else if (isShaped(rep)) shape = rep.shape.slice();
  else if (Array.isArray(rep)) shape = nestedShape(rep, name);
  else
    throw new InputError(`${name} must be a tf.Tensor, nested arrays [n][p] or { data, shape }, got ${describe(rep)}`);
  checkShape(shape, name);
  if (isShaped(rep)) {
    const size = shape.reduce((a, b) => a * b, 1);
    if (rep.data.length !== size)
      throw new InputError(`${name}.data has ${rep.data.length} values but its shape [${shape}] needs ${size}`);
  }
  return shape;
}

/** Features per example: the product of the axes after the first (1 for a 1-D input). @internal */
export const featureCount = (shape: readonly number[]): number => shape.slice(1).reduce((a, b) => a * b, 1);

/**
 * Reads a representation into a centred float32 `[n, p]` buffer, checking shape and values.
 * @throws InputError naming `name` for an empty or ragged input, a disposed tensor, or a NaN/Inf value.
 * @internal
 */
export async function readRepresentation(rep: Representation, name: string): Promise<Centered> {
  let shape: number[];
  let values: ArrayLike<number>;
  if (rep instanceof tf.Tensor) {
    if (rep.isDisposed) throw new InputError(`${name} is a disposed tensor`);
    if (rep.dtype === 'string' || rep.dtype === 'complex64')
      throw new InputError(`${name} has dtype ${rep.dtype}: CKA needs real numbers`);
    shape = rep.shape.slice();
    checkShape(shape, name);
    values = (await rep.data()) as ArrayLike<number>;
  } else if (isShaped(rep)) {
    shape = representationShape(rep, name);
    values = rep.data;
  } else if (Array.isArray(rep)) {
    shape = nestedShape(rep, name);
    checkShape(shape, name);
    values = flattenNested(rep, shape, name);
  } else {
    throw new InputError(`${name} must be a tf.Tensor, nested arrays [n][p] or { data, shape }, got ${describe(rep)}`);
  }
  return center(values, shape[0], featureCount(shape), shape, name);
}

function center(values: ArrayLike<number>, n: number, p: number, shape: number[], name: string): Centered {
  const mean = new Float64Array(p);
  for (let i = 0; i < n; i++) {
    const row = i * p;
    for (let k = 0; k < p; k++) {
      const v = values[row + k];
      if (!Number.isFinite(v)) throw nonFinite(v, name, shape, row + k);
      mean[k] += v;
    }
  }
  for (let k = 0; k < p; k++) mean[k] /= n;
  const data = new Float32Array(n * p);
  let constant = true;
  for (let i = 0; i < n; i++) {
    const row = i * p;
    for (let k = 0; k < p; k++) {
      const c = values[row + k] - mean[k];
      data[row + k] = c;
      if (c !== 0) constant = false;
    }
  }
  return { n, p, data, constant, name };
}

function nonFinite(v: number, name: string, shape: number[], flat: number): InputError {
  const index: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    index.unshift(flat % shape[d]);
    flat = Math.floor(flat / shape[d]);
  }
  const what = typeof v === 'number' ? String(v) : `a ${typeof v} (${String(v)})`;
  return new InputError(
    `${name} contains ${what} at [${index.join(', ')}] (example ${index[0]}): CKA needs finite numbers everywhere`,
  );
}

function checkShape(shape: number[], name: string): void {
  if (shape.length === 0)
    throw new InputError(`${name} is a scalar: give [n, ...] with the examples along the first axis`);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new InputError(`${name} has an invalid shape [${shape}]`);
  if (shape[0] === 0) throw new InputError(`${name} has no examples (shape [${shape}])`);
  if (shape.some((d) => d === 0)) throw new InputError(`${name} has no features (shape [${shape}])`);
}

function isShaped(rep: unknown): rep is HostTensor<ArrayLike<number>, readonly number[]> {
  const r = rep as HostTensor<ArrayLike<number>, readonly number[]>;
  return (
    typeof rep === 'object' &&
    rep !== null &&
    !Array.isArray(rep) &&
    Array.isArray(r.shape) &&
    typeof r.data === 'object' &&
    r.data !== null &&
    typeof r.data.length === 'number'
  );
}

const isArrayLike = (v: unknown): v is ArrayLike<unknown> => Array.isArray(v) || ArrayBuffer.isView(v);

function nestedShape(rep: readonly unknown[], name: string): number[] {
  const shape: number[] = [];
  let level: unknown = rep;
  while (isArrayLike(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0];
  }
  if (shape.length === 1 && shape[0] === 0) throw new InputError(`${name} has no examples (an empty array)`);
  return shape;
}

function flattenNested(rep: NestedArray, shape: number[], name: string): Float64Array {
  const size = shape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(size);
  let at = 0;
  const path: number[] = [];
  const where = () => `${name}[${path.join('][')}]`;
  const walk = (node: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (typeof node !== 'number') throw new InputError(`${where()} is ${describe(node)}, not a number`);
      out[at++] = node;
      return;
    }
    if (!isArrayLike(node) || node.length !== shape[depth]) {
      throw new InputError(
        `${name} is ragged: ${depth === 0 ? name : where()} should be an array of length ${shape[depth]} (from ${name}'s first elements, shape [${shape}]), got ${isArrayLike(node) ? `length ${node.length}` : describe(node)}`,
      );
    }
    if (depth === shape.length - 1 && ArrayBuffer.isView(node)) {
      out.set(node as unknown as ArrayLike<number>, at);
      at += node.length;
      return;
    }
    for (let i = 0; i < node.length; i++) {
      path.push(i);
      walk(node[i], depth + 1);
      path.pop();
    }
  };
  walk(rep, 0);
  return out;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  return typeof v === 'object' ? `an object (${Object.prototype.toString.call(v)})` : `a ${typeof v} (${String(v)})`;
}
