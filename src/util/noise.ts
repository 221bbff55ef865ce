/**
 * The one place noise is drawn from a seed. tfjs takes a seed of 0 as "no seed" and draws fresh
 * numbers, so seeds never reach it as given: every (seed, stream) is mixed into a non-zero tfjs seed.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { mixSeed } from './random.js';

// Sets noise seeds apart from the other seeds derived with mixSeed.
const NOISE_TAG = 0x401e;
const UNIFORM_TAG = 0x4d5f;

/**
 * Checks a seed: any safe integer, 0 and negative ones included.
 * @returns the seed.
 * @throws InputError naming `what`.
 */
export function checkSeed(seed: unknown, what = 'seed'): number {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed))
    throw new InputError(
      `${what} must be an integer (0 and negative ones included), got ${typeof seed === 'number' ? seed : JSON.stringify(seed)}`,
    );
  return seed;
}

/**
 * Standard-normal float32 noise of `shape`. With a seed, the same `(seed, ...stream)` gives the same
 * numbers on every call and backend, and different streams give unrelated noise; with `seed`
 * undefined the noise is fresh on every call.
 * @param seed any safe integer, 0 and negative ones included, or undefined for fresh noise.
 * @param stream integers telling apart the draws made from one seed (a step, an example, …).
 * @returns a new tensor, owned by the caller.
 * @throws InputError for a seed or stream entry that is not a safe integer.
 */
export function seededNormal<R extends tf.Rank>(
  shape: tf.ShapeMap[R],
  seed: number | undefined,
  ...stream: number[]
): tf.Tensor<R> {
  if (seed === undefined) return tf.randomNormal(shape, 0, 1, 'float32');
  return tf.randomNormal(shape, 0, 1, 'float32', tfjsSeed(NOISE_TAG, seed, stream));
}

/**
 * Uniforms in [0, 1) of `shape`, reproducible from `seed` and `stream` as {@link seededNormal}'s
 * normals are (a stream of their own: the same seed and stream give unrelated normals and uniforms).
 * @throws InputError for a seed or stream entry that is not a safe integer.
 */
export function seededUniform<R extends tf.Rank>(
  shape: tf.ShapeMap[R],
  seed: number,
  ...stream: number[]
): tf.Tensor<R> {
  return tf.randomUniform(shape, 0, 1, 'float32', tfjsSeed(UNIFORM_TAG, seed, stream));
}

// A fixed tag first, so that the seed gets a mixing round of its own; the high half too; plus one is never 0.
function tfjsSeed(tag: number, seed: number, stream: readonly number[]): number {
  checkSeed(seed);
  stream.forEach((s, i) => checkSeed(s, `noise stream[${i}]`));
  return mixSeed(tag, seed, Math.floor(seed / 2 ** 32), ...stream) + 1;
}

/**
 * ε for each step of `steps`, every one of `shape`: the noise of a step depends on the seed and
 * the step itself (and, for a repeated step, on which repetition it is), not on its position in
 * the list, so asking for `[10, 90]` or `[90, 10]` gives each step the same ε.
 * @param seed as in {@link seededNormal}; undefined draws fresh noise.
 * @returns one new tensor per step, owned by the caller.
 * @throws InputError for a seed that is not a safe integer.
 */
export function stepNoise<R extends tf.Rank>(
  shape: tf.ShapeMap[R],
  steps: readonly number[],
  seed: number | undefined,
): tf.Tensor<R>[] {
  if (seed !== undefined) checkSeed(seed);
  const seen = new Map<number, number>();
  const out: tf.Tensor<R>[] = [];
  try {
    for (const t of steps) {
      const repeat = seen.get(t) ?? 0;
      seen.set(t, repeat + 1);
      out.push(seededNormal(shape, seed, t, repeat));
    }
    return out;
  } catch (e) {
    tf.dispose(out);
    throw e;
  }
}
