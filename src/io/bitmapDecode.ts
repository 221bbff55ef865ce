/**
 * Decoders in plain TypeScript for the two uncompressed formats torchvision's `ImageFolder` lists that sharp
 * (libvips) does not read: Windows BMP (1-, 4-, 8-bit palettes, 16-, 24- and 32-bit pixels, bit fields; not RLE)
 * and binary PPM/PGM (`P6`, `P5`, any maxval). Both give 8-bit samples; alpha, if any, is left out.
 * @module
 */
import { CheckpointError } from '../errors.js';
import type { DecodedImage } from './pngDecode.js';

/** The largest image accepted, in pixels (as sharp's default `limitInputPixels`). */
const MAX_PIXELS = 0x3fff * 0x3fff;

/** Whether `bytes` start like a BMP file (`BM`). */
export function isBMP(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

/** Whether `bytes` start like a binary PGM or PPM file (`P5`, `P6`). */
export function isPNM(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0x50 && (bytes[1] === 0x35 || bytes[1] === 0x36) && isSpace(bytes[2]);
}

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x0b || b === 0x0c;
}

/**
 * Decodes a BMP file to RGB. Masks of 16- and 32-bit pixels are scaled to 8 bits as PIL does (`v · 255 / max`,
 * rounded down).
 * @param label names the file in errors.
 * @throws CheckpointError naming the file when it is not a BMP, is truncated, or uses RLE or JPEG/PNG compression.
 */
export function decodeBMP(bytes: Uint8Array, label = '<bytes>'): DecodedImage {
  const fail = (why: string) => new CheckpointError(`${label} is not a readable BMP file: ${why}`);
  if (!isBMP(bytes)) throw fail('it does not start with "BM"');
  if (bytes.length < 26) throw fail(`it has ${bytes.length} bytes, fewer than its headers take (truncated)`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dataAt = v.getUint32(10, true);
  const dib = v.getUint32(14, true);
  if (![12, 40, 52, 56, 64, 108, 124].includes(dib))
    throw fail(`its info header has ${dib} bytes, a size BMP does not use`);
  if (bytes.length < 14 + dib) throw fail(`it ends inside its ${dib}-byte info header (truncated)`);
  const core = dib === 12;
  const width = core ? v.getUint16(18, true) : v.getInt32(18, true);
  const rawHeight = core ? v.getInt16(20, true) : v.getInt32(22, true);
  const bpp = v.getUint16(core ? 24 : 28, true);
  const compression = core ? 0 : v.getUint32(30, true);
  const height = Math.abs(rawHeight);
  const topDown = rawHeight < 0;
  if (width <= 0 || height === 0) throw fail(`it declares a ${width}×${rawHeight} image`);
  if (width * height > MAX_PIXELS) throw fail(`it declares ${width}×${height} pixels, more than ${MAX_PIXELS}`);
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) throw fail(`it has ${bpp} bits per pixel`);
  if (compression !== 0 && compression !== 3 && compression !== 6)
    throw fail(
      `it uses compression ${compression} (${['', 'RLE8', 'RLE4', '', 'JPEG', 'PNG'][compression] || 'unknown'}); only uncompressed BMP and bit fields are read, convert it to PNG`,
    );
  // Bit masks: in the header from 52 bytes on, else right after a 40-byte header when compression says so.
  let masks: number[] | undefined;
  if (bpp === 16 || bpp === 32) {
    if (compression === 0) masks = bpp === 16 ? [0x7c00, 0x03e0, 0x001f] : [0xff0000, 0xff00, 0xff];
    else {
      if (bytes.length < 14 + 40 + 12) throw fail('it ends inside its bit masks (truncated)');
      masks = [0, 4, 8].map((o) => v.getUint32(54 + o, true));
    }
  }
  let palette: Uint8Array | undefined;
  if (bpp <= 8) {
    const entry = core ? 3 : 4;
    const used = core ? 0 : v.getUint32(46, true);
    const count = used || 1 << bpp;
    const at = 14 + dib + (compression === 3 && dib === 40 ? 12 : compression === 6 && dib === 40 ? 16 : 0);
    if (count > 1 << bpp) throw fail(`it declares ${count} palette entries for ${bpp}-bit pixels`);
    if (at + count * entry > bytes.length) throw fail('it ends inside its palette (truncated)');
    palette = new Uint8Array(3 * count);
    for (let i = 0; i < count; i++) {
      // Palette entries are B, G, R (, reserved).
      palette[3 * i] = bytes[at + i * entry + 2];
      palette[3 * i + 1] = bytes[at + i * entry + 1];
      palette[3 * i + 2] = bytes[at + i * entry];
    }
  }
  const stride = Math.ceil((width * bpp) / 32) * 4;
  if (dataAt + stride * height > bytes.length)
    throw fail(
      `its pixels need ${stride * height} bytes from byte ${dataAt}, the file has ${bytes.length} (truncated)`,
    );
  const out = new Uint8Array(width * height * 3);
  const fields = masks?.map((m) => {
    const shift = m ? 31 - Math.clz32(m & -m) : 0;
    const max = m ? m >>> shift : 1;
    return { m: m >>> 0, shift, max };
  });
  for (let y = 0; y < height; y++) {
    const row = dataAt + (topDown ? y : height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      if (palette) {
        const perByte = 8 / bpp;
        const byte = bytes[row + Math.floor(x / perByte)];
        const i = (byte >> (8 - bpp * ((x % perByte) + 1))) & ((1 << bpp) - 1);
        // An index past the palette reads as black.
        if (3 * i < palette.length) out.set(palette.subarray(3 * i, 3 * i + 3), o);
      } else if (bpp === 24) {
        out[o] = bytes[row + 3 * x + 2];
        out[o + 1] = bytes[row + 3 * x + 1];
        out[o + 2] = bytes[row + 3 * x];
      } else {
        const p = bpp === 16 ? v.getUint16(row + 2 * x, true) : v.getUint32(row + 4 * x, true);
        for (let k = 0; k < 3; k++) {
          const f = fields![k];
          out[o + k] = f.m ? Math.floor((((p & f.m) >>> f.shift) * 255) / f.max) : 0;
        }
      }
    }
  }
  return { width, height, channels: 3, data: out };
}

/**
 * Decodes a binary PGM (`P5`, gray) or PPM (`P6`, RGB) file. A maxval other than 255 is scaled to 0–255, rounded;
 * two-byte samples (maxval > 255) are big-endian.
 * @param label names the file in errors.
 * @throws CheckpointError naming the file when it is not binary PGM/PPM, its header is malformed, or it is truncated.
 */
export function decodePNM(bytes: Uint8Array, label = '<bytes>'): DecodedImage {
  const fail = (why: string) => new CheckpointError(`${label} is not a readable PGM/PPM file: ${why}`);
  if (!isPNM(bytes)) throw fail('it does not start with "P5" or "P6" (only binary PGM/PPM are read)');
  const channels = bytes[1] === 0x36 ? 3 : 1;
  let at = 2;
  const fields: number[] = [];
  while (fields.length < 3) {
    while (at < bytes.length && (isSpace(bytes[at]) || bytes[at] === 0x23)) {
      if (bytes[at] === 0x23) while (at < bytes.length && bytes[at] !== 0x0a && bytes[at] !== 0x0d) at++;
      else at++;
    }
    let n = 0;
    const start = at;
    while (at < bytes.length && bytes[at] >= 0x30 && bytes[at] <= 0x39) n = n * 10 + bytes[at++] - 0x30;
    if (at === start)
      throw fail(
        at >= bytes.length ? 'it ends inside its header (truncated)' : `its header holds a non-digit at byte ${at}`,
      );
    fields.push(n);
  }
  const [width, height, maxval] = fields;
  if (at >= bytes.length) throw fail('it ends after its header, without pixels (truncated)');
  if (!isSpace(bytes[at])) throw fail('its header is not followed by a whitespace byte');
  at++;
  if (width === 0 || height === 0 || maxval === 0 || maxval > 65535)
    throw fail(`it declares a ${width}×${height} image with maxval ${maxval}`);
  if (width * height > MAX_PIXELS) throw fail(`it declares ${width}×${height} pixels, more than ${MAX_PIXELS}`);
  const wide = maxval > 255;
  const count = width * height * channels;
  if (at + count * (wide ? 2 : 1) > bytes.length)
    throw fail(
      `its pixels need ${count * (wide ? 2 : 1)} bytes from byte ${at}, the file has ${bytes.length} (truncated)`,
    );
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const s = wide ? (bytes[at + 2 * i] << 8) | bytes[at + 2 * i + 1] : bytes[at + i];
    out[i] = maxval === 255 ? s : Math.min(255, Math.round((s * 255) / maxval));
  }
  return { width, height, channels: channels as 1 | 3, data: out };
}
