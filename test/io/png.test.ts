import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { adler32, encodePNG, zlibStored } from '../../src/io/png';

/** The chunks of a PNG after its signature: type, body and stored CRC. */
function chunks(png: Uint8Array): { type: string; body: Uint8Array; crc: number; crcOver: Uint8Array }[] {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out = [];
  for (let at = 8; at < png.length;) {
    const len = view.getUint32(at);
    out.push({
      type: String.fromCharCode(...png.subarray(at + 4, at + 8)),
      body: png.subarray(at + 8, at + 8 + len),
      crc: view.getUint32(at + 8 + len),
      crcOver: png.subarray(at + 4, at + 8 + len),
    });
    at += 12 + len;
  }
  return out;
}

describe('PNG encoder', () => {
  // 3×2 RGB: a red, green, blue row, then a black, grey, white row.
  const rgb = Uint8Array.of(255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 128, 128, 128, 255, 255, 255);

  for (const compress of [true, false]) {
    it(`${compress ? 'deflated' : 'stored'}: signature, IHDR (3×2, 8-bit RGB, no interlace), chunk CRCs, and rows with filter byte 0`, async () => {
      const png = await encodePNG(rgb, 3, 2, compress);
      expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      const cs = chunks(png);
      expect(cs.map((c) => c.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
      for (const c of cs) expect(c.crc, `CRC of ${c.type}`).toBe(zlib.crc32(c.crcOver));
      expect(cs[2].crc).toBe(0xae426082);
      expect([...cs[0].body]).toEqual([0, 0, 0, 3, 0, 0, 0, 2, 8, 2, 0, 0, 0]);
      const raw = zlib.inflateSync(cs[1].body);
      expect([...raw]).toEqual([0, ...rgb.subarray(0, 9), 0, ...rgb.subarray(9)]);
    });
  }

  it('zlibStored: a valid zlib stream for empty and multi-block data; adler32 known values', () => {
    expect(zlib.inflateSync(zlibStored(new Uint8Array(0))).length).toBe(0);
    const big = Uint8Array.from({ length: 140_000 }, (_, i) => (i * 31) & 0xff); // three stored blocks
    expect(Buffer.from(zlib.inflateSync(zlibStored(big))).equals(Buffer.from(big))).toBe(true);
    expect(adler32(new TextEncoder().encode('Wikipedia'))).toBe(0x11e60398);
    expect(adler32(new Uint8Array(0))).toBe(1);
    const ones = new Uint8Array(100_000).fill(255); // sums that overflow without the modulo every 5552 bytes
    expect(adler32(ones)).toBe(adlerRef(ones));
  });

  it('refuses pixel data of the wrong length', async () => {
    await expect(encodePNG(rgb, 3, 3)).rejects.toThrow(RangeError);
  });
});

/** Adler-32 by its definition, for a check beyond the 5552-byte chunking. */
function adlerRef(bytes: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (const x of bytes) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}
