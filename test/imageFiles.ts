/**
 * Test-only image writers for the decoder and loader tests: deterministic pixels, files written by sharp, and
 * hand-made PNG (any colour type, bit depth and filter), BMP and PGM/PPM files.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';

/** `w × h × c` bytes that vary along both axes and between channels (no two neighbours alike). */
export function pattern(w: number, h: number, c: number, seed = 1): Uint8Array {
  const out = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let k = 0; k < c; k++)
        out[(y * w + x) * c + k] = (x * 7 + y * 13 + k * 61 + seed * 29 + ((x * y) % 5) * 31) & 255;
  return out;
}

/** A smooth `w × h × c` gradient, which JPEG keeps within a few levels. */
export function gradient(w: number, h: number, c: number): Uint8Array {
  const out = new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let k = 0; k < c; k++)
        out[(y * w + x) * c + k] = Math.round(k === 0 ? (x * 255) / (w - 1) : k === 1 ? (y * 255) / (h - 1) : 128);
  return out;
}

/** Encodes raw pixels with sharp (1 channel as gray, 2 as gray + alpha). */
export function sharpEncode(
  px: Uint8Array,
  w: number,
  h: number,
  c: 1 | 2 | 3 | 4,
  format: 'png' | 'jpeg',
  png: Record<string, unknown> = {},
): Promise<Buffer> {
  let s = sharp(px, { raw: { width: w, height: h, channels: c } });
  if (c <= 2) s = s.toColourspace('b-w');
  return format === 'png' ? s.png(png).toBuffer() : s.jpeg({ quality: 95 }).toBuffer();
}

/** What sharp itself decodes a file to, as sRGB 8-bit raw pixels with their channel count. */
export async function sharpDecode(bytes: Uint8Array): Promise<{ data: Uint8Array; channels: number }> {
  const { data, info } = await sharp(bytes)
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), channels: info.channels };
}

function chunk(type: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
}

/**
 * A non-interlaced PNG from packed rows (`h` rows of `ceil(w · samples · depth / 8)` bytes), row y filtered with
 * filter type `y % 5` so every filter is exercised.
 */
export function handPNG(opts: {
  width: number;
  height: number;
  depth: number;
  type: number;
  rows: Uint8Array;
  palette?: Uint8Array;
}): Buffer {
  const { width, height, depth, type, rows } = opts;
  const samples = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[type]!;
  const stride = Math.ceil((width * samples * depth) / 8);
  const bpp = Math.max(1, (samples * depth) >> 3);
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    const f = y % 5;
    raw[y * (stride + 1)] = f;
    for (let x = 0; x < stride; x++) {
      const cur = rows[y * stride + x];
      const a = x >= bpp ? rows[y * stride + x - bpp] : 0;
      const b = y > 0 ? rows[(y - 1) * stride + x] : 0;
      const c = y > 0 && x >= bpp ? rows[(y - 1) * stride + x - bpp] : 0;
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][f];
      raw[y * (stride + 1) + 1 + x] = (cur - pred) & 255;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([depth, type, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...(opts.palette ? [chunk('PLTE', opts.palette)] : []),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** A BMP file: 24-bit pixels (bottom-up unless `topDown`), or 8-bit indices into `palette` (RGB triples). */
export function handBMP(
  w: number,
  h: number,
  opts: { rgb?: Uint8Array; indices?: Uint8Array; palette?: Uint8Array; topDown?: boolean; bpp?: 24 | 32 },
): Buffer {
  const bpp = opts.indices ? 8 : (opts.bpp ?? 24);
  const stride = Math.ceil((w * bpp) / 32) * 4;
  const paletteBytes = opts.indices ? (opts.palette!.length / 3) * 4 : 0;
  const offset = 14 + 40 + paletteBytes;
  const out = Buffer.alloc(offset + stride * h);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(offset, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(w, 18);
  out.writeInt32LE(opts.topDown ? -h : h, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(bpp, 28);
  out.writeUInt32LE(opts.indices ? opts.palette!.length / 3 : 0, 46);
  if (opts.indices)
    for (let i = 0; i < opts.palette!.length / 3; i++)
      out.set([opts.palette![3 * i + 2], opts.palette![3 * i + 1], opts.palette![3 * i], 0], 54 + 4 * i);
  for (let y = 0; y < h; y++) {
    const row = offset + (opts.topDown ? y : h - 1 - y) * stride;
    for (let x = 0; x < w; x++) {
      if (opts.indices) out[row + x] = opts.indices[y * w + x];
      else {
        const s = (y * w + x) * 3;
        const d = row + x * (bpp / 8);
        out.set([opts.rgb![s + 2], opts.rgb![s + 1], opts.rgb![s]], d);
        if (bpp === 32) out[d + 3] = 0x5a; // the unused byte, ignored
      }
    }
  }
  return out;
}

/** A binary PGM (c = 1) or PPM (c = 3) file; samples are taken as they are (scaled by the caller for maxval). */
export function handPNM(px: ArrayLike<number>, w: number, h: number, c: 1 | 3, maxval = 255): Buffer {
  const head = Buffer.from(`P${c === 1 ? 5 : 6}\n# a comment\n${w} ${h}\n${maxval}\n`, 'latin1');
  const wide = maxval > 255;
  const body = Buffer.alloc(px.length * (wide ? 2 : 1));
  for (let i = 0; i < px.length; i++)
    if (wide) body.writeUInt16BE(px[i], 2 * i);
    else body[i] = px[i];
  return Buffer.concat([head, body]);
}

/** Writes `bytes` to `file`, making its folder, and returns the path. */
export function put(file: string, bytes: Uint8Array | string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
  return file;
}
