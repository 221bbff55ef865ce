import { describe, expect, it } from 'vitest';
import { randomWeights } from '../../src/unet/init';

const PARAMS: [string, number[]][] = [
  ['input_blocks.0.0.weight', [128, 3, 3, 3]],
  ['input_blocks.0.0.bias', [1024]],
  ['input_blocks.1.0.in_layers.0.weight', [1024]],
  ['input_blocks.1.0.in_layers.0.bias', [1024]],
  ['input_blocks.1.0.out_layers.3.weight', [64, 32, 3, 3]],
  ['input_blocks.2.1.proj_out.weight', [256, 256, 1]],
  ['out.2.weight', [6, 128, 3, 3]],
  ['label_emb.weight', [10, 256]],
];

const stats = (x: Float32Array) => {
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  return { mean, std: Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length) };
};

describe('randomWeights', () => {
  it('one array per parameter, in order and of its size; the same seed gives the same numbers, another seed others', () => {
    const a = [...randomWeights(PARAMS, 3)];
    expect(a.map(([n, d]) => [n, d.length])).toEqual(PARAMS.map(([n, s]) => [n, s.reduce((p, q) => p * q, 1)]));
    const b = [...randomWeights(PARAMS, 3)];
    const c = [...randomWeights(PARAMS, 4)];
    a.forEach(([n, d], i) => {
      expect(Array.from(b[i][1]), n).toEqual(Array.from(d));
      expect(Array.from(c[i][1]), n).not.toEqual(Array.from(d));
    });
  });

  it('follows the recipe: weights N(0, gain²/fan_in) with gain 0.5 where the reference zero-initialises, biases N(0, 0.1²), norm weights 1 + N(0, 0.1²), embeddings N(0, 0.5²)', () => {
    const want: Record<string, [number, number]> = {
      'input_blocks.0.0.weight': [0, 1 / Math.sqrt(27)],
      'input_blocks.0.0.bias': [0, 0.1],
      'input_blocks.1.0.in_layers.0.weight': [1, 0.1],
      'input_blocks.1.0.in_layers.0.bias': [0, 0.1],
      'input_blocks.1.0.out_layers.3.weight': [0, 0.5 / Math.sqrt(32 * 9)],
      'input_blocks.2.1.proj_out.weight': [0, 0.5 / Math.sqrt(256)],
      'out.2.weight': [0, 0.5 / Math.sqrt(128 * 9)],
      'label_emb.weight': [0, 0.5],
    };
    for (const [name, data] of randomWeights(PARAMS, 1)) {
      const { mean, std } = stats(data);
      const [m, s] = want[name];
      // ≥ 1024 samples: the sample std is within ~2 % (1σ) of the true one, the mean within ~3 % of s.
      expect(Math.abs(mean - m), `${name} mean ${mean}`).toBeLessThan(0.15 * s);
      expect(Math.abs(std / s - 1), `${name} std ${std} vs ${s}`).toBeLessThan(0.1);
    }
  });
});
