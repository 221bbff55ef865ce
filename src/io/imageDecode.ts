/**
 * Image files to 8-bit pixels. JPEG, WebP, TIFF, GIF (first frame) and whatever else libvips reads go through
 * `sharp`, an optional dependency loaded on first use (the library imports without it); PNG goes through sharp too
 * when it is installed and through the built-in decoder otherwise; BMP and binary PGM/PPM, which libvips does not
 * read, always through built-in decoders. Files are read whole; every failure is a `CheckpointError` naming the
 * file, except a missing sharp, which is a `DiffSSLError` that says how to install it.
 * @module
 */
import { CheckpointError, DiffSSLError, InputError } from '../errors.js';
import { importUnbundled } from '../util/dynamicImport.js';
import { nodeFs } from '../util/nodeFs.js';
import { decodeBMP, decodePNM, isBMP, isPNM } from './bitmapDecode.js';
import { decodePNG, isPNG, type DecodedImage } from './pngDecode.js';
import { inputLabel, readFileBytes, type FileInput } from './webSource.js';

export type { DecodedImage } from './pngDecode.js';

/** The part of sharp's API used here (typed locally so that sharp's types are not needed to build or use diffssl). */
interface SharpInstance {
  raw(opts?: { depth?: 'uchar' }): SharpInstance;
  toColourspace(space: string): SharpInstance;
  toBuffer(opts: {
    resolveWithObject: true;
  }): Promise<{ data: Uint8Array; info: { width: number; height: number; channels: number } }>;
}
type SharpFactory = (input: Uint8Array, opts?: { failOn?: string; pages?: number }) => SharpInstance;

type SharpLoad = { sharp: SharpFactory } | { error: string };

let sharpLoad: Promise<SharpLoad> | undefined;
let importSharp: () => Promise<unknown> = () => importUnbundled('sharp');

/** sharp's factory, loaded once; the reason when it cannot be loaded. */
function loadSharp(): Promise<SharpLoad> {
  sharpLoad ??= importSharp().then(
    (mod) => {
      const m = mod as { default?: unknown };
      const f = typeof m.default === 'function' ? m.default : mod;
      return typeof f === 'function' ? { sharp: f as SharpFactory } : { error: 'its module exports no function' };
    },
    (e: unknown) => ({ error: (e instanceof Error ? e.message : String(e)).trim().split('\n')[0] }),
  );
  return sharpLoad;
}

/**
 * Replaces how sharp is imported (`undefined` restores `import('sharp')`) and forgets the loaded module, so tests
 * can play a machine without sharp.
 * @internal exported for tests.
 */
export function setSharpImport(load?: () => Promise<unknown>): void {
  importSharp = load ?? (() => importUnbundled('sharp'));
  sharpLoad = undefined;
}

/**
 * Throws the {@link DiffSSLError} of a missing sharp, naming `what` needs it, when sharp cannot be loaded.
 * @internal
 */
export async function requireSharp(what: string): Promise<void> {
  const loaded = await loadSharp();
  if (!('sharp' in loaded)) throw needsSharp(what, loaded.error);
}

/** The formats told apart by their first bytes, for messages and for choosing a decoder. */
export function sniffFormat(b: Uint8Array): string | undefined {
  const ascii = (at: number, s: string) =>
    b.length >= at + s.length && [...s].every((c, i) => b[at + i] === c.charCodeAt(0));
  if (isPNG(b)) return 'PNG';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'JPEG';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'WebP';
  if (ascii(0, 'GIF87a') || ascii(0, 'GIF89a')) return 'GIF';
  if (ascii(0, 'II*\0') || ascii(0, 'MM\0*')) return 'TIFF';
  if (isBMP(b)) return 'BMP';
  if (isPNM(b)) return 'PGM/PPM';
  if (ascii(4, 'ftyp')) return 'AVIF/HEIF';
  return undefined;
}

/** The bytes of an image file: a path (Node), a URL, a Blob (a dropped File), a Response, or bytes. */
export function readImageBytes(source: FileInput): Promise<Uint8Array> {
  return readFileBytes(source, 'image file');
}

/** The message of a missing sharp. */
function needsSharp(what: string, why: string): DiffSSLError {
  return new DiffSSLError(
    `decoding ${what} needs the optional dependency sharp, which cannot be loaded here (${why}). ` +
      'Install it with `npm install sharp`; PNG, BMP and PGM/PPM files are decoded without it.',
  );
}

/**
 * Decodes an image file (a path in Node, a URL, a Blob, a Response) or its bytes to 8-bit pixels, with the pixel values as stored: no EXIF
 * rotation (as PIL's `Image.open`). Through sharp, pixels come in sRGB (3 channels, 4 with alpha; gray is
 * replicated, an embedded ICC profile is applied) and a truncated file is an error, as in PIL.
 * @param label names the source in errors when it is bytes (default `'<bytes>'`).
 * @throws CheckpointError naming the file when it cannot be read or is not a readable image. DiffSSLError when
 *   its format needs sharp and sharp is not installed.
 */
export async function decodeImage(source: FileInput, label?: string): Promise<DecodedImage> {
  const name = inputLabel(source, label ?? '<bytes>');
  const bytes = await readImageBytes(source);
  const format = sniffFormat(bytes);
  if (format === 'BMP') return decodeBMP(bytes, name);
  if (format === 'PGM/PPM') return decodePNM(bytes, name);
  const loaded = await loadSharp();
  if (!('sharp' in loaded)) {
    if (format === 'PNG') return decodePNG(bytes, name);
    if (format) throw needsSharp(`${name} (${format})`, loaded.error);
    throw new CheckpointError(
      `${name} is not an image file diffssl can read without sharp: it starts with ${hexStart(bytes)}, not like a PNG, JPEG, WebP, GIF, TIFF, BMP or PGM/PPM file`,
    );
  }
  if (bytes.length === 0) throw new CheckpointError(`${name} is not a readable image: it is empty`);
  try {
    const { data, info } = await loaded
      .sharp(bytes, { failOn: 'truncated', pages: 1 })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    const channels = info.channels;
    if (channels < 1 || channels > 4 || data.length !== info.width * info.height * channels)
      throw new Error(`sharp returned ${data.length} bytes for ${info.width}×${info.height}×${channels}`);
    return {
      width: info.width,
      height: info.height,
      channels: channels as 1 | 2 | 3 | 4,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    };
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).trim().split('\n')[0];
    throw new CheckpointError(`${name} is not a readable ${format ?? 'image'} file: ${why}`);
  }
}

function hexStart(b: Uint8Array): string {
  if (b.length === 0) return 'nothing (it is empty)';
  return [...b.subarray(0, 8)].map((x) => x.toString(16).padStart(2, '0')).join(' ');
}
