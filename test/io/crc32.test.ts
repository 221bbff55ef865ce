import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32 } from '../../src/io/crc32';

const enc = (s: string) => new TextEncoder().encode(s);

describe('crc32', () => {
  it('CRC-32 is the ZIP polynomial, and continues across chunks', () => {
    expect(crc32(enc('123456789'))).toBe(0xcbf43926);
    expect(crc32(enc('6789'), crc32(enc('12345')))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('known vectors, an unsigned result, and agreement with node:zlib on every split of random bytes', () => {
    expect(crc32(enc('a'))).toBe(0xe8b7be43);
    expect(crc32(enc('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
    expect(crc32(enc('IEND'))).toBe(0xae426082); // the CRC every PNG ends with
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 2654435761) >>> 24);
    const want = zlib.crc32(bytes);
    expect(crc32(bytes)).toBe(want);
    for (const at of [0, 1, 7, 500, 999, 1000])
      expect(crc32(bytes.subarray(at), crc32(bytes.subarray(0, at))), `split at ${at}`).toBe(want);
    expect(crc32(Uint8Array.of(0xff, 0xff, 0xff, 0xff))).toBeGreaterThanOrEqual(0x80000000); // 0xffffffff: no sign bit folded in
  });
});
