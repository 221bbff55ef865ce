import { afterEach, describe, expect, it } from 'vitest';
import { convertChannels } from '../../src/data/imageFiles';
import { CheckpointError, DiffSSLError } from '../../src/errors';
import { decodeBMP, decodePNM } from '../../src/io/bitmapDecode';
import { decodeImage, setSharpImport, sniffFormat } from '../../src/io/imageDecode';
import { decodePNG, type DecodedImage } from '../../src/io/pngDecode';
import { handBMP, handPNG, handPNM, pattern, sharpDecode, sharpEncode } from '../imageFiles';

/** Both decodings as RGB, alpha dropped (sharp gives sRGB with gray replicated; the built-in decoder keeps gray). */
function asRGB(img: DecodedImage): number[] {
  return [...convertChannels(img, 3)];
}
async function sharpRGB(bytes: Uint8Array, w: number, h: number): Promise<number[]> {
  const { data, channels } = await sharpDecode(bytes);
  return asRGB({ width: w, height: h, channels: channels as 1 | 2 | 3 | 4, data });
}

const noSharp = () => setSharpImport(() => Promise.reject(new Error("Cannot find package 'sharp'")));

describe('built-in PNG decoder', () => {
  it('decodes sharp-written PNGs (gray, gray + alpha, RGB, RGBA, palettes of 1–8 bits, 16-bit, Adam7) as sharp does', async () => {
    const [w, h] = [37, 50];
    for (const c of [1, 2, 3, 4] as const) {
      const px = pattern(w, h, c);
      for (const png of [{}, { adaptiveFiltering: true }, { progressive: true }]) {
        const bytes = await sharpEncode(px, w, h, c, 'png', png);
        const mine = await decodePNG(bytes, 'x.png');
        expect([mine.width, mine.height, mine.channels]).toEqual([w, h, c]);
        expect([...mine.data], `${c} channels, ${JSON.stringify(png)}`).toEqual([...px]); // lossless: the pixels written
        expect(asRGB(mine)).toEqual(await sharpRGB(bytes, w, h));
      }
    }
    for (const colours of [2, 4, 16, 200]) {
      const bytes = await sharpEncode(pattern(w, h, 3), w, h, 3, 'png', { palette: true, colours, dither: 0 });
      expect(bytes[24], `bit depth for ${colours} colours`).toBe(colours === 200 ? 8 : Math.log2(colours));
      expect(asRGB(await decodePNG(bytes))).toEqual(await sharpRGB(bytes, w, h));
    }
    for (const c of [1, 3] as const) {
      const wide = await (
        await import('sharp')
      )
        .default(Buffer.from(pattern(w, h, c)), { raw: { width: w, height: h, channels: c } })
        .toColourspace(c === 1 ? 'grey16' : 'rgb16')
        .png()
        .toBuffer();
      expect(wide[24]).toBe(16);
      expect(asRGB(await decodePNG(wide))).toEqual(await sharpRGB(wide, w, h));
    }
  });

  it('decodes every filter type, 16-bit samples and 1-, 2-, 4-bit gray as sharp does', async () => {
    const [w, h] = [13, 11];
    const cases: { depth: number; type: number; samples: number }[] = [
      { depth: 8, type: 2, samples: 3 },
      { depth: 16, type: 6, samples: 4 },
      { depth: 16, type: 0, samples: 1 },
      { depth: 1, type: 0, samples: 1 },
      { depth: 2, type: 0, samples: 1 },
      { depth: 4, type: 0, samples: 1 },
      { depth: 4, type: 3, samples: 1 },
    ];
    for (const { depth, type, samples } of cases) {
      const stride = Math.ceil((w * samples * depth) / 8);
      const rows = pattern(stride, h, 1, depth);
      const palette = type === 3 ? pattern(16, 1, 3, 5) : undefined;
      const bytes = handPNG({ width: w, height: h, depth, type, rows, palette });
      const mine = await decodePNG(bytes);
      expect(asRGB(mine), `depth ${depth} type ${type}`).toEqual(await sharpRGB(bytes, w, h));
      if (depth === 8) expect([...mine.data]).toEqual([...rows]);
    }
  });

  it('refuses broken PNGs with a CheckpointError naming the file', async () => {
    const good = await sharpEncode(pattern(8, 8, 3), 8, 8, 3, 'png');
    const bad: [Uint8Array, RegExp][] = [
      [good.subarray(0, good.length - 20), /truncated/],
      [good.subarray(0, 40), /truncated|runs past/],
      [Uint8Array.from(good).fill(0, 8, 12), /IHDR|CRC|runs past/],
      [
        (() => {
          const b = Uint8Array.from(good);
          b[b.length - 30] ^= 0xff;
          return b;
        })(),
        /CRC/,
      ],
      [new TextEncoder().encode('hello, not a png at all'), /signature/],
    ];
    for (const [bytes, why] of bad) {
      const e = await decodePNG(bytes, 'broken.png').catch((x) => x);
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e.message).toMatch(/broken\.png/);
      expect(e.message).toMatch(why);
    }
  });
});

describe('BMP and PGM/PPM decoders', () => {
  it('read 24- and 32-bit, top-down and bottom-up, and 8-bit palette BMPs', () => {
    const [w, h] = [7, 5]; // 7 × 3 bytes: rows padded to 4 bytes
    const rgb = pattern(w, h, 3);
    for (const o of [{}, { topDown: true }, { bpp: 32 as const }]) {
      const d = decodeBMP(handBMP(w, h, { rgb, ...o }), 'x.bmp');
      expect([d.width, d.height, d.channels]).toEqual([w, h, 3]);
      expect([...d.data], JSON.stringify(o)).toEqual([...rgb]);
    }
    const palette = pattern(6, 1, 3, 9);
    const indices = Uint8Array.from({ length: w * h }, (_, i) => (i * 5) % 6);
    const d = decodeBMP(handBMP(w, h, { indices, palette }));
    expect([...d.data]).toEqual([...indices].flatMap((i) => [...palette.subarray(3 * i, 3 * i + 3)]));
    const e = (() => {
      try {
        decodeBMP(handBMP(w, h, { rgb }).subarray(0, 80), 'cut.bmp');
      } catch (x) {
        return x as Error;
      }
    })();
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e!.message).toMatch(/cut\.bmp.*truncated/);
  });

  it('read binary PGM and PPM, with maxval 255, a smaller one and a 16-bit one', () => {
    const [w, h] = [5, 3];
    for (const c of [1, 3] as const) {
      const px = pattern(w, h, c);
      const d = decodePNM(handPNM(px, w, h, c), 'x.ppm');
      expect([d.width, d.height, d.channels]).toEqual([w, h, c]);
      expect([...d.data]).toEqual([...px]);
      const small = [...px].map((v) => v >> 4); // maxval 15
      expect([...decodePNM(handPNM(small, w, h, c, 15)).data]).toEqual(small.map((v) => Math.round((v * 255) / 15)));
      const wide = [...px].map((v) => v * 257); // maxval 65535: v·257 scales back to v exactly
      expect([...decodePNM(handPNM(wide, w, h, c, 65535)).data]).toEqual([...px]);
    }
    const pgm = handPNM(pattern(w, h, 1), w, h, 1);
    for (const end of [14, 20, pgm.length - 1])
      expect(() => decodePNM(pgm.subarray(0, end), 'cut.pgm')).toThrow(/cut\.pgm.*truncated/);
  });
});

describe('decodeImage', () => {
  afterEach(() => setSharpImport());

  it('tells formats apart by their first bytes', async () => {
    const px = pattern(4, 4, 3);
    expect(sniffFormat(await sharpEncode(px, 4, 4, 3, 'png'))).toBe('PNG');
    expect(sniffFormat(await sharpEncode(px, 4, 4, 3, 'jpeg'))).toBe('JPEG');
    expect(sniffFormat(handBMP(4, 4, { rgb: px }))).toBe('BMP');
    expect(sniffFormat(handPNM(px, 4, 4, 3))).toBe('PGM/PPM');
    expect(sniffFormat(new TextEncoder().encode('plain text'))).toBeUndefined();
  });

  it('without sharp: PNG, BMP and PPM still decode, JPEG is a DiffSSLError that says `npm install sharp`', async () => {
    const px = pattern(6, 4, 3);
    const png = await sharpEncode(px, 6, 4, 3, 'png');
    const jpeg = await sharpEncode(px, 6, 4, 3, 'jpeg');
    const withSharp = await decodeImage(png);
    noSharp();
    const without = await decodeImage(png, 'a.png');
    expect(asRGB(without)).toEqual(asRGB(withSharp));
    expect([...(await decodeImage(handBMP(6, 4, { rgb: px }))).data]).toEqual([...px]);
    const e = await decodeImage(jpeg, 'photo.jpg').catch((x) => x);
    expect(e).toBeInstanceOf(DiffSSLError);
    expect(e).not.toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/photo\.jpg \(JPEG\).*npm install sharp/);
    const t = await decodeImage(new TextEncoder().encode('not an image'), 'notes.png').catch((x) => x);
    expect(t).toBeInstanceOf(CheckpointError);
    expect(t.message).toMatch(/notes\.png is not an image file/);
  });

  it('with sharp: bad bytes, a truncated JPEG and an empty file are CheckpointErrors naming the source', async () => {
    const jpeg = await sharpEncode(pattern(40, 30, 3), 40, 30, 3, 'jpeg');
    for (const [bytes, label] of [
      [new TextEncoder().encode('hello, I am text'), 'text.png'],
      [jpeg.subarray(0, Math.floor(jpeg.length * 0.7)), 'cut.jpg'],
      [jpeg.subarray(0, 300), 'cut-header.jpg'],
      [new Uint8Array(0), 'empty.png'],
    ] as const) {
      const e = await decodeImage(bytes, label).catch((x) => x);
      expect(e, label).toBeInstanceOf(CheckpointError);
      expect(e.message).toContain(label);
    }
  });
});
