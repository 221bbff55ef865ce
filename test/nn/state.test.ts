import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, WeightsError } from '../../src/errors';
import { Tokenizer } from '../../src/heads/tokenizer';
import { localShape, localToReference, referenceToLocal, type Layout } from '../../src/io/layout';
import { serializeSafetensors } from '../../src/io/safetensors';
import { setBackend } from '../helpers';
import { headWeights } from '../heads/fixtures';

describe('head state dicts', () => {
  beforeAll(() => setBackend('cpu'));

  it('layout conversions are exact inverses and move the right axes', () => {
    const cases: [Layout, number[]][] = [
      ['same', [5]],
      ['linear', [3, 4]],
      ['conv1x1', [3, 4, 1, 1]],
      ['chw', [2, 3, 4]],
      ['conv', [3, 4, 2, 2]],
    ];
    for (const [layout, shape] of cases) {
      const n = shape.reduce((a, b) => a * b, 1);
      const ref = Float32Array.from({ length: n }, (_, i) => i);
      const local = referenceToLocal(layout, shape, ref);
      expect(Array.from(localToReference(layout, shape, local)), layout).toEqual(Array.from(ref));
    }
    // [out, in] → [in, out]
    expect(Array.from(referenceToLocal('linear', [2, 3], Float32Array.of(1, 2, 3, 4, 5, 6)))).toEqual([
      1, 4, 2, 5, 3, 6,
    ]);
    expect(localShape('conv1x1', [64, 32, 1, 1])).toEqual([32, 64]);
    // [C, h, w] → [h, w, C]: element (c, y, x) lands at (y, x, c)
    const chw = referenceToLocal(
      'chw',
      [2, 2, 2],
      Float32Array.from({ length: 8 }, (_, i) => i),
    );
    expect(Array.from(chw)).toEqual([0, 4, 1, 5, 2, 6, 3, 7]);
    // OIHW → HWIO: element (o, i, y, x) lands at (y, x, i, o)
    expect(localShape('conv', [2, 3, 1, 2])).toEqual([1, 2, 3, 2]);
    expect(Array.from(referenceToLocal('conv', [2, 1, 1, 2], Float32Array.of(1, 2, 3, 4)))).toEqual([1, 3, 2, 4]);
  });

  it('loads from bytes as from a path; keys outside the prefix are ignored', async () => {
    const [a, b] = [
      new Tokenizer({ channels: 32, side: 16, pool: 6, dim: 64, norm: 'batch' }),
      new Tokenizer({ channels: 32, side: 16, pool: 6, dim: 64, norm: 'batch', seed: 9 }),
    ];
    await a.loadWeights(headWeights('attention-bn'), { prefix: 'head.pre_layer.15.' });
    await b.loadWeights(new Uint8Array(fs.readFileSync(headWeights('attention-bn'))), { prefix: 'head.pre_layer.15.' });
    for (const [i, e] of a.state().entries()) {
      const f = b.state()[i];
      if (e.kind === 'float' && f.kind === 'float')
        expect(Array.from(f.variable.dataSync())).toEqual(Array.from(e.variable.dataSync()));
      else if (e.kind === 'count' && f.kind === 'count') expect(f.get()).toBe(100); // num_batches_tracked, int64 in the file
    }
    a.dispose();
    b.dispose();
  });

  it('a file that does not fit changes nothing and lists every problem at once', async () => {
    const tok = new Tokenizer({ channels: 32, side: 16, pool: 4, dim: 64, norm: 'layer', seed: 4 });
    const before = tok.state().map((e) => (e.kind === 'float' ? Array.from(e.variable.dataSync()) : e.get()));
    const bytes = serializeSafetensors({
      '1.weight': { shape: [32, 4, 4], data: new Float32Array(512) },
      '1.bias': { shape: [32, 5, 5], data: new Float32Array(800) }, // mis-shaped
      '2.bias': { shape: [64], data: new Float32Array(64) },
      '3.weight': { shape: [1], data: new Float32Array(1) }, // unexpected
    });
    const err = await tok.loadWeights(bytes).catch((e) => e);
    expect(err).toBeInstanceOf(WeightsError);
    expect((err as WeightsError).missing).toEqual(['2.weight']);
    expect((err as WeightsError).unexpected).toEqual(['3.weight']);
    expect((err as WeightsError).mismatched).toEqual([['1.bias', [32, 4, 4], [32, 5, 5]]]);
    expect(tok.state().map((e) => (e.kind === 'float' ? Array.from(e.variable.dataSync()) : e.get()))).toEqual(before);
    await expect(tok.loadWeights(new Uint8Array([1, 2, 3]))).rejects.toBeInstanceOf(CheckpointError);
    tok.dispose();
  });

  it('saves atomically under the reference names; a saved tokenizer loads back exactly', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-state-'));
    const a = new Tokenizer({ channels: 8, side: 8, pool: 4, dim: 6, norm: 'batch', seed: 5 });
    const x = tf.randomNormal([2, 8, 8, 8], 0, 1, 'float32', 6) as tf.Tensor4D;
    tf.dispose(a.forward(x, { training: true })); // moves the running stats, counts a batch
    await a.saveWeights(path.join(dir, 't.safetensors'));
    expect(fs.readdirSync(dir)).toEqual(['t.safetensors']); // no temp file left
    const b = new Tokenizer({ channels: 8, side: 8, pool: 4, dim: 6, norm: 'batch', seed: 7 });
    await b.loadWeights(path.join(dir, 't.safetensors'));
    a.state().forEach((e, i) => {
      const f = b.state()[i];
      if (e.kind === 'float' && f.kind === 'float')
        expect(Array.from(f.variable.dataSync()), e.name).toEqual(Array.from(e.variable.dataSync()));
      else if (e.kind === 'count' && f.kind === 'count') expect(f.get()).toBe(1);
    });
    x.dispose();
    a.dispose();
    b.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
