// A small fixed-seed task and model for the training tests: Gaussian clusters, a two-layer MLP.
import * as tf from '@tensorflow/tfjs-core';
import { SeededRandom } from '../../src/util/random';
import type { Dataset } from '../../src/data/dataset';
import type { TrainableModel } from '../../src/train/trainableModel';

/** `n` points in `dim` dimensions around `classes` random centres (spread 1, centres ~N(0, sep²)). */
export function clusters(
  seed: number,
  n: number,
  dim: number,
  classes: number,
  sep = 1.5,
): { x: Float32Array; y: Int32Array } {
  const rng = new SeededRandom(seed);
  const centres = Array.from({ length: classes }, () => rng.normals(dim, 0, sep));
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % classes;
    for (let d = 0; d < dim; d++) x[i * dim + d] = centres[y[i]][d] + rng.normal();
  }
  return { x, y };
}

/** A dataset of rows of a Float32Array; batches are fresh tensors. */
export function arrayDataset(x: Float32Array, y: Int32Array, dim: number): Dataset<tf.Tensor2D> {
  return {
    size: y.length,
    batch: (idx) => {
      const out = new Float32Array(idx.length * dim);
      idx.forEach((i, k) => out.set(x.subarray(i * dim, (i + 1) * dim), k * dim));
      return { input: tf.tensor2d(out, [idx.length, dim]), labels: Int32Array.from(idx, (i) => y[i]) };
    },
  };
}

export interface ToyModel extends TrainableModel<tf.Tensor2D> {
  dispose(): void;
  snapshot(): Float32Array[];
}

/** dim → hidden (ReLU) → classes, weights from a seed. */
export function mlp(seed: number, dim: number, hidden: number, classes: number): ToyModel {
  const rng = new SeededRandom(seed);
  const w1 = tf.variable(tf.tensor2d(rng.normals(dim * hidden, 0, 1 / Math.sqrt(dim)), [dim, hidden]));
  const b1 = tf.variable(tf.zeros([hidden]));
  const w2 = tf.variable(tf.tensor2d(rng.normals(hidden * classes, 0, 1 / Math.sqrt(hidden)), [hidden, classes]));
  const b2 = tf.variable(tf.zeros([classes]));
  const vars = [w1, b1, w2, b2];
  return {
    trainableVariables: vars,
    logits: (x) => tf.tidy(() => tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, w1), b1)), w2), b2) as tf.Tensor2D),
    dispose: () => tf.dispose(vars),
    snapshot: () => vars.map((v) => v.dataSync().slice() as Float32Array),
  };
}
