import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/errors';
import { formatOf, sniffFormat } from '../../src/io/format';
import { FIXTURES } from '../helpers';

describe('weights formats are told apart by content', () => {
  it('recognises the fixtures', async () => {
    expect(await sniffFormat(path.join(FIXTURES, 'adm-tiny', 'weights.safetensors'))).toBe('safetensors');
    expect(await sniffFormat(path.join(FIXTURES, 'adm-tiny', 'weights.pt'))).toBe('pytorch-zip');
    expect(await sniffFormat(path.join(FIXTURES, 'adm-tiny', 'weights_legacy.pt'))).toBe('pytorch-legacy');
    expect(formatOf(new Uint8Array([1, 2, 3]))).toBe('unknown');
    await expect(sniffFormat('/nonexistent/w.safetensors')).rejects.toBeInstanceOf(CheckpointError);
  });
});
