import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// madge ships no types: the little of its API used here.
type Madge = (
  dir: string,
  opts: { fileExtensions: string[] },
) => Promise<{ obj(): Record<string, string[]>; circular(): string[][] }>;
const madge = createRequire(import.meta.url)('madge') as Madge;

describe('feature extraction imports', () => {
  it('extractFeatures.ts does not import the U-Net, so the U-Net can use it without a circle', async () => {
    const graph = await madge(path.resolve(__dirname, '../../src'), { fileExtensions: ['ts'] });
    expect(graph.obj()['features/extractFeatures.ts']).not.toContain('unet/admUnet.ts');
    expect(graph.circular().filter((c) => c.some((f) => f.startsWith('features/')))).toEqual([]);
  });
});
