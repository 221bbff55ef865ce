/**
 * The one shape of a tensor held in host memory rather than by tfjs: what readers return,
 * writers take, state dicts hold and CKA accepts.
 * @module
 */

/**
 * The typed arrays a {@link HostTensor} holds its values in.
 * @category Utilities
 */
export type HostData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/**
 * A tensor in host memory: its values, row-major, with its shape. Types that say more about the
 * values (a dtype tag, as the safetensors and torch readers' `ReadTensor` and
 * `TorchTensor`) extend it.
 * @typeParam D the values' array type.
 * @typeParam S the shape's type: `readonly number[]` where the shape is only read.
 *
 * @example
 * ```ts
 * const t: HostTensor<Float32Array> = { shape: [2, 3], data: new Float32Array(6) };
 * const x = tf.tensor(t.data, t.shape);
 * ```
 * @category Utilities
 */
export interface HostTensor<
  D extends ArrayLike<number> | ArrayLike<bigint> = HostData,
  S extends readonly number[] = number[],
> {
  /** Dimensions, outermost first; their product is `data.length`. */
  shape: S;
  /** The values in row-major order. */
  data: D;
}
