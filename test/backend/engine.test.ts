import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { beforeAll, describe, expect, it } from 'vitest';
import { alias, recordingGradients } from '../../src/backend/engine';
import { BACKENDS, bundleScript, setBackend } from '../helpers';

for (const backend of BACKENDS) {
  describe(`engine tricks on ${backend}`, () => {
    beforeAll(() => setBackend(backend));

    it('alias is a new tensor on the same data: no new buffer, the data outlives the original, freed with the last', () => {
      const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
      const before = tf.memory();
      const a = alias(x);
      expect(a).not.toBe(x);
      expect(a.shape).toEqual([2, 3]);
      expect(tf.memory().numTensors).toBe(before.numTensors + 1);
      expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers);
      x.dispose();
      expect(Array.from(a.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
      a.dispose();
      expect(tf.memory().numTensors).toBe(before.numTensors - 1);
      expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers - 1);
    });

    it('alias is differentiable (identity gradient)', () => {
      const x = tf.tensor1d([1, -2, 3]);
      const w = tf.tensor1d([0.5, 4, -1]);
      const before = tf.memory().numTensors;
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(alias(v), w)))(x);
      expect(Array.from(g.dataSync())).toEqual([0.5, 4, -1]);
      g.dispose();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, w]);
    });

    it('recordingGradients is true inside tf.grad and tf.variableGrads only', () => {
      const seen: [string, boolean][] = [];
      seen.push(['outside', recordingGradients()]);
      tf.tidy(() => seen.push(['tidy', recordingGradients()]));
      const x = tf.scalar(2);
      const v = tf.variable(tf.scalar(3));
      const before = tf.memory().numTensors;
      const g = tf.grad((a: tf.Tensor) => {
        seen.push(['grad', recordingGradients()]);
        return tf.square(a);
      })(x);
      const { value, grads } = tf.variableGrads(() => {
        seen.push(['variableGrads', recordingGradients()]);
        return tf.mul(v, v) as tf.Scalar;
      }, [v]);
      seen.push(['after', recordingGradients()]);
      expect(seen).toEqual([
        ['outside', false],
        ['tidy', false],
        ['grad', true],
        ['variableGrads', true],
        ['after', false],
      ]);
      tf.dispose([g, value, ...Object.values(grads)]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([x, v]);
    });
  });
}

describe('requireBackend', () => {
  it('models and data made before any backend is registered get an InputError that says to call useBestBackend', () => {
    // A fresh process: this one has backends registered.
    const root = path.resolve(__dirname, '../..');
    const script = bundleScript(
      `import { ADMUNet } from '${path.join(root, 'src/unet/admUnet.ts')}';
import { loadFashionMNIST } from '${path.join(root, 'src/data/fashionMnist.ts')}';
for (const f of [() => ADMUNet.create({ image_size: 8, num_channels: 32, num_res_blocks: 1, channel_mult: '1,2' }), () => loadFashionMNIST({ split: 'test' })])
  try { await f(); console.log('no error'); } catch (e) { console.log(e.name + ': ' + e.message); }`,
      'no-backend',
    );
    try {
      const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(
        /^InputError: ADMUNet needs a TensorFlow.js backend and none is registered: await useBestBackend\(\)/,
      );
      expect(lines[1]).toMatch(/^InputError: loadFashionMNIST needs a TensorFlow.js backend and none is registered/);
    } finally {
      fs.rmSync(script, { force: true });
    }
  });
});
