import { SeededRandom } from '../util/random.js';

// Layers the reference zero-initialises; zeros would make every ResBlock an identity and every
// feature map trivial, so they get a smaller gain instead (the fixtures' `reinit` recipe).
const ZERO_INIT_IN_REFERENCE = /(out_layers\.3|proj_out|^out\.2)\.weight$/;

/**
 * Random weights in the reference layout, one tensor at a time (a 2 GB model is never held twice), by the recipe the fixtures document: conv/linear weights
 * N(0, 1)·gain/√fan_in (gain 0.5 for the reference's zero-initialised layers), biases N(0, 0.1²),
 * norm weights 1 + N(0, 0.1²), norm biases N(0, 0.1²), embeddings N(0, 0.5²). Activations stay O(1)
 * through the whole network, which makes these weights useful for tests and benchmarks. The numbers
 * differ from the fixtures' (another generator); only the distribution is the same.
 */
export function* randomWeights(
  parameters: readonly (readonly [string, readonly number[]])[],
  seed: number,
): Generator<[string, Float32Array]> {
  const rng = new SeededRandom(seed);
  for (const [name, shape] of parameters) {
    const size = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (name === 'label_emb.weight') data = rng.normals(size, 0, 0.5);
    else if (shape.length >= 2) {
      const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
      data = rng.normals(size, 0, (ZERO_INIT_IN_REFERENCE.test(name) ? 0.5 : 1) / Math.sqrt(fanIn));
    } else if (/(norm|in_layers\.0|out_layers\.0|^out\.0)\.weight$/.test(name)) data = rng.normals(size, 1, 0.1);
    else data = rng.normals(size, 0, 0.1);
    yield [name, data];
  }
}
