/**
 * A PNG decoder in plain TypeScript, so that PNG files load without the optional `sharp` (and in a browser): every
 * colour type and bit depth of the standard, interlaced or not, to 8-bit samples. Deflate comes from
 * {@link inflateBounded} (node:zlib, or `DecompressionStream`). Every chunk's CRC and the zlib stream's Adler-32
 * are checked. Ancillary chunks are ignored: no gamma or colour-profile correction (as PIL's `Image.open`), no
 * transparency from `tRNS` (the loaders drop alpha anyway).
 * @module
 */
import { CheckpointError } from '../errors.js';
import { crc32 } from './crc32.js';
import { inflateBounded } from './inflate.js';
import { adler32, concatBytes } from './png.js';

/**
 * Decoded pixels: `height × width × channels` bytes, row-major, channels interleaved. Channels are 1 (gray),
 * 2 (gray, alpha), 3 (RGB) or 4 (RGBA).
 */
export interface DecodedImage {
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
  data: Uint8Array;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Whether `bytes` start with the PNG signature. */
export function isPNG(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

/** Samples per pixel in the file, and channels after decoding, by colour type. */
const COLOUR_TYPES: Record<number, { samples: number; channels: 1 | 2 | 3 | 4; depths: number[]; name: string }> = {
  0: { samples: 1, channels: 1, depths: [1, 2, 4, 8, 16], name: 'gray' },
  2: { samples: 3, channels: 3, depths: [8, 16], name: 'RGB' },
  3: { samples: 1, channels: 3, depths: [1, 2, 4, 8], name: 'palette' },
  4: { samples: 2, channels: 2, depths: [8, 16], name: 'gray + alpha' },
  6: { samples: 4, channels: 4, depths: [8, 16], name: 'RGBA' },
};

/** Adam7's passes: first column and row, column and row steps. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** The largest image the decoder accepts, in pixels (as sharp's default `limitInputPixels`). */
const MAX_PIXELS = 0x3fff * 0x3fff;

interface Header {
  width: number;
  height: number;
  depth: number;
  type: number;
  interlaced: boolean;
}

/**
 * Decodes a PNG file held in memory to 8-bit samples: 16-bit samples keep their high byte, 1-, 2- and 4-bit gray
 * is scaled to 0–255 (×255, ×85, ×17), palette entries become RGB.
 * @param label names the file in errors.
 * @throws CheckpointError naming the file when it is not a PNG, is truncated or corrupt (a chunk's CRC, the zlib
 *   stream, a filter type), or declares an impossible header.
 */
export async function decodePNG(bytes: Uint8Array, label = '<bytes>'): Promise<DecodedImage> {
  const fail = (why: string) => new CheckpointError(`${label} is not a readable PNG file: ${why}`);
  if (!isPNG(bytes)) throw fail('it does not start with the PNG signature');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let header: Header | undefined;
  let palette: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let ended = false;
  for (let at = 8; !ended;) {
    if (at + 12 > bytes.length) throw fail(`it ends at byte ${bytes.length}, before its IEND chunk (truncated)`);
    const len = view.getUint32(at);
    const type = String.fromCharCode(bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]);
    if (at + 12 + len > bytes.length)
      throw fail(`its ${type} chunk at byte ${at} runs past the end of the file (truncated)`);
    const body = bytes.subarray(at + 8, at + 8 + len);
    if (crc32(bytes.subarray(at + 4, at + 8 + len)) !== view.getUint32(at + 8 + len))
      throw fail(`the CRC of its ${type} chunk at byte ${at} does not match (corrupt)`);
    if (!header && type !== 'IHDR') throw fail(`its first chunk is ${type}, not IHDR`);
    if (type === 'IHDR') header = readHeader(body, fail);
    else if (type === 'PLTE') palette = body;
    else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') ended = true;
    else if (/^[A-Z]/.test(type)) throw fail(`it has a critical chunk ${type} this decoder does not know`);
    at += 12 + len;
  }
  const h = header!;
  const info = COLOUR_TYPES[h.type];
  if (h.type === 3 && (!palette || palette.length % 3 !== 0 || palette.length === 0))
    throw fail('it is a palette image without a valid PLTE chunk');
  if (idat.length === 0) throw fail('it has no IDAT chunk');

  const passes = h.interlaced
    ? ADAM7.map(([x0, y0, dx, dy]) => ({
        x0,
        y0,
        dx,
        dy,
        w: Math.ceil((h.width - x0) / dx),
        h: Math.ceil((h.height - y0) / dy),
      }))
    : [{ x0: 0, y0: 0, dx: 1, dy: 1, w: h.width, h: h.height }];
  const bitsPerPixel = info.samples * h.depth;
  const stride = (w: number) => Math.ceil((w * bitsPerPixel) / 8);
  const expected = passes.reduce((s, p) => s + (p.w && p.h ? p.h * (1 + stride(p.w)) : 0), 0);
  const raw = await inflateZlib(concatBytes(idat), expected, fail);
  if (raw.length !== expected)
    throw fail(`its image data inflate to ${raw.length} bytes, ${h.width}×${h.height} ${info.name} needs ${expected}`);

  const out = h.interlaced ? new Uint8Array(h.width * h.height * info.channels) : undefined;
  const bpp = Math.max(1, bitsPerPixel >> 3);
  let offset = 0;
  for (const p of passes) {
    if (!p.w || !p.h) continue;
    const rows = unfilter(raw, offset, stride(p.w), p.h, bpp, fail);
    offset += p.h * (1 + stride(p.w));
    const px = expand(rows, p.w, p.h, stride(p.w), h, info.channels, palette);
    if (!h.interlaced) return { width: h.width, height: h.height, channels: info.channels, data: px };
    const c = info.channels;
    for (let y = 0; y < p.h; y++)
      for (let x = 0; x < p.w; x++) {
        const src = (y * p.w + x) * c;
        const dst = ((p.y0 + y * p.dy) * h.width + p.x0 + x * p.dx) * c;
        for (let k = 0; k < c; k++) out![dst + k] = px[src + k];
      }
  }
  return { width: h.width, height: h.height, channels: info.channels, data: out! };
}

function readHeader(body: Uint8Array, fail: (why: string) => CheckpointError): Header {
  if (body.length !== 13) throw fail(`its IHDR chunk has ${body.length} bytes, not 13`);
  const v = new DataView(body.buffer, body.byteOffset, 13);
  const [width, height] = [v.getUint32(0), v.getUint32(4)];
  const [depth, type, compression, filter, interlace] = body.subarray(8, 13);
  if (width === 0 || height === 0) throw fail(`it declares a ${width}×${height} image`);
  if (width * height > MAX_PIXELS) throw fail(`it declares ${width}×${height} pixels, more than ${MAX_PIXELS}`);
  const info = COLOUR_TYPES[type];
  if (!info) throw fail(`its colour type is ${type}; PNG has 0, 2, 3, 4 and 6`);
  if (!info.depths.includes(depth))
    throw fail(`its bit depth ${depth} is not one of ${info.depths.join(', ')} allowed for ${info.name} images`);
  if (compression !== 0 || filter !== 0)
    throw fail(`it uses compression method ${compression}, filter method ${filter}`);
  if (interlace > 1) throw fail(`its interlace method is ${interlace}; PNG has 0 and 1 (Adam7)`);
  return { width, height, depth, type, interlaced: interlace === 1 };
}

/** A zlib stream's contents: its 2-byte header checked, raw deflate inflated (bounded), Adler-32 compared. */
async function inflateZlib(
  z: Uint8Array,
  maxBytes: number,
  fail: (why: string) => CheckpointError,
): Promise<Uint8Array> {
  if (z.length < 6 || (z[0] & 0x0f) !== 8 || ((z[0] << 8) | z[1]) % 31 !== 0 || z[1] & 0x20)
    throw fail('its image data are not a zlib stream');
  const out = await inflateBounded(z.subarray(2, z.length - 4), 'deflate-raw', maxBytes, (why) =>
    fail(`its image data ${why}`),
  );
  const v = new DataView(z.buffer, z.byteOffset + z.length - 4, 4);
  if (adler32(out) !== v.getUint32(0)) throw fail('the Adler-32 checksum of its image data does not match (corrupt)');
  return out;
}

/** Undoes the per-row filters of `h` rows of `stride` bytes starting at `offset` (each row led by its filter type). */
function unfilter(
  raw: Uint8Array,
  offset: number,
  stride: number,
  h: number,
  bpp: number,
  fail: (why: string) => CheckpointError,
): Uint8Array {
  const out = new Uint8Array(stride * h);
  for (let y = 0; y < h; y++) {
    const filter = raw[offset + y * (stride + 1)];
    const src = offset + y * (stride + 1) + 1;
    const row = y * stride;
    const up = row - stride; // the previous row in `out` (absent for y = 0)
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[row + x - bpp] : 0;
      const b = y > 0 ? out[up + x] : 0;
      let v = raw[src + x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const c = y > 0 && x >= bpp ? out[up + x - bpp] : 0;
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw fail(`row ${y} has filter type ${filter}; PNG has 0–4`);
      out[row + x] = v;
    }
  }
  return out;
}

/** Unfiltered rows → 8-bit samples, `channels` per pixel. */
function expand(
  rows: Uint8Array,
  w: number,
  h: number,
  stride: number,
  header: Header,
  channels: number,
  palette: Uint8Array | undefined,
): Uint8Array {
  const { depth, type } = header;
  if (depth === 8 && type !== 3) return rows; // stride = w · channels: already the output layout
  const out = new Uint8Array(w * h * channels);
  if (depth === 16) {
    for (let i = 0; i < out.length; i++) out[i] = rows[2 * i];
    return out;
  }
  // 1, 2, 4 or 8 bits: gray (scaled to 0–255) or palette indices.
  const entries = palette ? palette.length / 3 : 0;
  const scale = 255 / ((1 << depth) - 1);
  const perByte = 8 / depth;
  const mask = (1 << depth) - 1;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const byte = rows[y * stride + Math.floor(x / perByte)];
      const v = (byte >> (8 - depth * ((x % perByte) + 1))) & mask;
      const o = (y * w + x) * channels;
      if (type === 3) {
        // An index past the palette reads as black, as PIL does.
        if (v < entries) {
          out[o] = palette![3 * v];
          out[o + 1] = palette![3 * v + 1];
          out[o + 2] = palette![3 * v + 2];
        }
      } else out[o] = v * scale;
    }
  return out;
}
