import path from 'node:path';
import madge from 'madge';
import { describe, expect, it } from 'vitest';

describe('feature extraction imports', () => {
  it('extractFeatures.ts does not import the U-Net, so the U-Net can use it without a circle', async () => {
    const graph = await madge(path.resolve(__dirname, '../../src'), { fileExtensions: ['ts'] });
    expect(graph.obj()['features/extractFeatures.ts']).not.toContain('unet/admUnet.ts');
    expect(graph.circular().filter((c) => c.some((f) => f.startsWith('features/')))).toEqual([]);
  });
});
