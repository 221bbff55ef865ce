import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeightsError } from '../../src/errors';
import { AttentionHead } from '../../src/heads/attentionHead';
import { MLPHead } from '../../src/heads/mlpHead';
import { Tokenizer } from '../../src/heads/tokenizer';
import { readSafetensors } from '../../src/io/safetensors';
import { Module } from '../../src/nn/module';
import { floatEntry, type CountEntry, type FloatEntry, type StateEntry } from '../../src/nn/state';
import { setBackend } from '../helpers';

/** The smallest module: a trainable `[in, out]` weight, a frozen bias and a counter. */
class Toy extends Module {
  readonly weight: FloatEntry;
  readonly bias: FloatEntry;
  count = 0;
  private readonly counter: CountEntry = {
    kind: 'count',
    name: 'steps',
    get: () => this.count,
    set: (v) => (this.count = v),
  };

  constructor(fill: number) {
    super();
    this.weight = floatEntry(
      'fc.weight',
      [3, 2],
      'linear',
      Float32Array.from({ length: 6 }, (_, i) => fill + i),
    );
    this.bias = floatEntry('fc.bias', [3], 'same', new Float32Array(3).fill(fill), false);
  }

  state(): StateEntry[] {
    return [this.weight, this.bias, this.counter];
  }
}

describe('Module', () => {
  let tmp: string;
  beforeAll(async () => {
    await setBackend('cpu');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-module-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('trains, saves, loads and frees exactly what state() lists', async () => {
    const before = tf.memory().numTensors;
    const a = new Toy(1);
    const b = new Toy(10);
    expect(a.trainableVariables).toEqual([a.weight.variable]);
    a.count = 7;
    const file = path.join(tmp, 'toy.safetensors');
    await a.saveWeights(file);
    const saved = await readSafetensors(file);
    expect([...saved.keys()].sort()).toEqual(['fc.bias', 'fc.weight', 'steps']);
    expect(saved.get('fc.weight')!.shape).toEqual([3, 2]); // the reference layout, not the local [2, 3]
    await b.loadWeights(file);
    expect(Array.from(b.weight.variable.dataSync())).toEqual(Array.from(a.weight.variable.dataSync()));
    expect(Array.from(b.bias.variable.dataSync())).toEqual([1, 1, 1]);
    expect(b.count).toBe(7);
    await expect(b.loadWeights(file, { prefix: 'other.' })).rejects.toThrow(WeightsError);
    a.dispose();
    b.dispose();
    expect(a.weight.variable.isDisposed && b.bias.variable.isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is the base of the heads', () => {
    const heads = [
      new Tokenizer({ channels: 4, side: 4, pool: 2, dim: 8, norm: 'layer' }),
      new MLPHead({ channels: 4, pool: 2, classes: 3 }),
      new AttentionHead({ arc: 'Use_CLS_Token:True:8,Insert_CLS_Token,Extract_CLS_Token' }),
    ];
    for (const h of heads) {
      expect(h).toBeInstanceOf(Module);
      h.dispose();
    }
  });
});
