/** A test-only PNG reader for the files the library writes (8-bit RGB, filter 0 rows). */
import zlib from 'node:zlib';
import { expect } from 'vitest';

export interface Decoded {
  width: number;
  height: number;
  header: number[];
  pixel: (x: number, y: number) => number[];
  raw: Uint8Array;
  chunks: string[];
}

/** Decodes an 8-bit RGB PNG with filter 0 rows, checking the signature and every chunk's CRC (node:zlib's crc32). */
export function decodePNG(png: Uint8Array): Decoded {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: string[] = [];
  const idat: Uint8Array[] = [];
  let header: number[] = [];
  for (let at = 8; at < png.length;) {
    const len = view.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const body = png.subarray(at + 8, at + 8 + len);
    expect(view.getUint32(at + 8 + len), `CRC of ${type}`).toBe(zlib.crc32(png.subarray(at + 4, at + 8 + len)));
    chunks.push(type);
    if (type === 'IHDR') header = [...body];
    if (type === 'IDAT') idat.push(body);
    at += 12 + len;
  }
  const hv = new DataView(Uint8Array.from(header).buffer);
  const [width, height] = [hv.getUint32(0), hv.getUint32(4)];
  const raw = new Uint8Array(zlib.inflateSync(Buffer.concat(idat)));
  expect(raw.length).toBe(height * (1 + 3 * width));
  for (let y = 0; y < height; y++) expect(raw[y * (1 + 3 * width)]).toBe(0);
  const pixel = (x: number, y: number) => [
    ...raw.subarray(y * (1 + 3 * width) + 1 + 3 * x, y * (1 + 3 * width) + 4 + 3 * x),
  ];
  return { width, height, header, pixel, raw, chunks };
}
