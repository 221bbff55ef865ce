/**
 * A minimal PNG encoder (8-bit RGB, no interlace): enough for heatmaps without an image dependency. Deflate
 * comes from `node:zlib` when present; elsewhere (a browser bundle) the image data go into stored, uncompressed
 * deflate blocks, which every PNG decoder reads too.
 * @module
 */
import { importUnbundled } from '../util/dynamicImport.js';
import { crc32 } from './crc32.js';

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** Adler-32, the zlib stream checksum. */
export function adler32(bytes: Uint8Array): number {
  let a = 1;
  let b = 0;
  // 5552 is the longest run whose sums cannot overflow 2^32 before the modulo.
  for (let i = 0; i < bytes.length;) {
    const end = Math.min(bytes.length, i + 5552);
    for (; i < end; i++) {
      a += bytes[i];
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** A zlib stream of stored (uncompressed) deflate blocks. */
export function zlibStored(data: Uint8Array): Uint8Array {
  const blocks = Math.max(1, Math.ceil(data.length / 65535));
  const out = new Uint8Array(2 + blocks * 5 + data.length + 4);
  out[0] = 0x78; // deflate, 32K window
  out[1] = 0x01; // no dictionary, lowest level; (0x78 << 8 | 0x01) % 31 == 0
  let at = 2;
  for (let b = 0; b < blocks; b++) {
    const start = b * 65535;
    const len = Math.min(65535, data.length - start);
    out[at++] = b === blocks - 1 ? 1 : 0; // BFINAL, BTYPE = 00
    out[at++] = len & 0xff;
    out[at++] = len >>> 8;
    out[at++] = ~len & 0xff;
    out[at++] = (~len >>> 8) & 0xff;
    out.set(data.subarray(start, start + len), at);
    at += len;
  }
  new DataView(out.buffer).setUint32(at, adler32(data));
  return out;
}

/** zlib-compresses with `node:zlib` when it can be imported, else stores. */
async function zlib(data: Uint8Array, compress: boolean): Promise<Uint8Array> {
  if (compress) {
    try {
      const z = await importUnbundled<typeof import('node:zlib')>('node:zlib');
      return new Uint8Array(z.deflateSync(data, { level: 9 }));
    } catch {
      // No node:zlib here (a browser): fall through to stored blocks.
    }
  }
  return zlibStored(data);
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * Encodes `width × height` RGB pixels (row-major, 3 bytes each) as a PNG file.
 * @param compress deflate with node:zlib (default); false writes stored blocks (larger, no zlib needed).
 */
export async function encodePNG(rgb: Uint8Array, width: number, height: number, compress = true): Promise<Uint8Array> {
  if (rgb.length !== width * height * 3)
    throw new RangeError(`encodePNG: ${rgb.length} bytes for ${width}×${height} RGB`);
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace
  const stride = width * 3;
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) raw.set(rgb.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1); // filter byte 0: None
  const parts = [
    SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', await zlib(raw, compress)),
    chunk('IEND', new Uint8Array(0)),
  ];
  return concatBytes(parts);
}

/** The byte arrays one after another, in one new array (the array itself when there is just one). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
