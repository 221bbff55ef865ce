import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/errors';
import { inflateBounded, isGzip } from '../../src/io/inflate';

const fail = (why: string) => new CheckpointError(why);
const data = Uint8Array.from({ length: 5000 }, (_, i) => (i * i) & 0xff);

describe('bounded inflation', () => {
  it('recognises gzip by its two magic bytes', () => {
    expect(isGzip(new Uint8Array(zlib.gzipSync(data)))).toBe(true);
    expect(isGzip(Uint8Array.of(0x1f))).toBe(false);
    expect(isGzip(Uint8Array.of(0, 0, 8, 3))).toBe(false);
  });

  for (const streams of [false, true])
    it(`inflates gzip and raw deflate within the bound and refuses past it (${streams ? 'DecompressionStream' : 'node:zlib'})`, async () => {
      const gz = new Uint8Array(zlib.gzipSync(data));
      const raw = new Uint8Array(zlib.deflateRawSync(data));
      expect(await inflateBounded(gz, 'gzip', data.length, fail, streams)).toEqual(data);
      expect(await inflateBounded(raw, 'deflate-raw', data.length, fail, streams)).toEqual(data);
      await expect(inflateBounded(gz, 'gzip', data.length - 1, fail, streams)).rejects.toThrow(CheckpointError);
      await expect(inflateBounded(gz.subarray(0, gz.length - 4), 'gzip', 1 << 20, fail, streams)).rejects.toThrow(
        /cannot be inflated/,
      );
      await expect(inflateBounded(raw, 'gzip', 1 << 20, fail, streams)).rejects.toThrow(CheckpointError);
    });
});
