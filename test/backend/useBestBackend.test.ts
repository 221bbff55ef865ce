import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { useBestBackend } from '../../src/backend/useBestBackend';
import { InputError } from '../../src/errors';

describe('useBestBackend', () => {
  it('takes the fastest backend present here (no tfjs-node: wasm) and says why', async () => {
    const choice = await useBestBackend();
    expect(choice.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(choice.tried.map((t) => t.name)).toEqual(['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'webgl', 'wasm']);
    expect(choice.tried.filter((t) => !t.ok).every((t) => t.why.length > 0)).toBe(true);
    expect(choice.reason).toMatch(/XNNPACK.*not available: tfjs-node-gpu, tfjs-node/);
  });

  it('can be forced, without fallback', async () => {
    const cpu = await useBestBackend({ force: 'cpu' });
    expect(cpu).toMatchObject({ backend: 'cpu', tried: [{ name: 'cpu', ok: true }] });
    expect(tf.getBackend()).toBe('cpu');
    await expect(useBestBackend({ force: 'tfjs-node' })).rejects.toThrow(/no backend could start: tfjs-node/);
    await expect(useBestBackend({ force: 'tpu' })).rejects.toBeInstanceOf(InputError);
    expect(tf.getBackend()).toBe('cpu');
    await useBestBackend({ force: 'wasm' });
    expect(tf.getBackend()).toBe('wasm');
  });
});
