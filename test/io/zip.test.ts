import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/errors';
import { openByteSource } from '../../src/io/byteSource';
import { inflateRawBounded, ZipArchive } from '../../src/io/zip';
import { FIXTURES } from '../helpers';
import { zipArchive, type ZipFileSpec, type ZipOptions } from './torchWriter';

const WEIGHTS_PT = path.join(FIXTURES, 'adm-tiny', 'weights.pt');
const enc = (s: string) => new TextEncoder().encode(s);
const FILES: ZipFileSpec[] = [
  { name: 'archive/data.pkl', data: enc('pickle bytes '.repeat(40)), deflate: true },
  { name: 'archive/data/0', data: Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff) },
  { name: 'archive/data/1', data: new Uint8Array(0) },
  { name: 'archive/version', data: enc('3\n') },
];

/** Opens bytes and reads every entry whole; returns them by name. */
async function readAll(bytes: Uint8Array): Promise<Map<string, Uint8Array>> {
  const zip = await ZipArchive.open(await openByteSource(bytes));
  const out = new Map<string, Uint8Array>();
  for (const e of zip.entries.values()) out.set(e.name, await zip.readEntry(e, 1 << 20));
  return out;
}

async function errorOf(p: Promise<unknown>): Promise<Error | undefined> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  return undefined;
}

describe('zip reader', () => {
  it("reads PyTorch's own archive: ZIP64 end records, data descriptors, 64-byte aligned storages", async () => {
    const src = await openByteSource(WEIGHTS_PT);
    const zip = await ZipArchive.open(src);
    expect(zip.entries.size).toBe(306);
    const pkl = await zip.readEntry(zip.entry('weights/data.pkl')!, 1 << 20);
    expect([pkl[0], pkl[1], pkl[pkl.length - 1]]).toEqual([0x80, 2, 0x2e]);
    expect(new TextDecoder().decode(await zip.readEntry(zip.entry('weights/version')!, 16))).toBe('3\n');
    for (const e of zip.entries.values()) {
      if (!e.name.startsWith('weights/data/')) continue;
      expect(e.method).toBe(0);
      expect((await zip.dataOffset(e)) % 64).toBe(0);
    }
    await src.close();
  });

  const layouts: [string, ZipOptions][] = [
    ['PyTorch-like (descriptors, ZIP64 end, aligned)', {}],
    [
      'plain (sizes in local headers, no ZIP64, no alignment, a comment)',
      { descriptors: false, zip64End: false, align: 0, comment: 'hello' },
    ],
    ['ZIP64 extra fields for every size and offset', { zip64Entries: true }],
  ];
  for (const [what, opts] of layouts) {
    it(`round trip, ${what}: stored and deflated entries come back intact`, async () => {
      const got = await readAll(zipArchive(FILES, opts));
      expect([...got.keys()]).toEqual(FILES.map((f) => f.name));
      for (const f of FILES) expect(got.get(f.name)).toEqual(f.data);
    });
  }

  it('refuses entries larger than the caller allows, before reading them', async () => {
    const zip = await ZipArchive.open(await openByteSource(zipArchive(FILES)));
    await expect(zip.readEntry(zip.entry('archive/data/0')!, 100)).rejects.toThrow(
      /300 bytes, more than the 100 allowed/,
    );
  });

  it('detects corrupt entry data by CRC', async () => {
    const bytes = zipArchive(FILES);
    const zip = await ZipArchive.open(await openByteSource(bytes));
    const e = zip.entry('archive/version')!;
    bytes[await zip.dataOffset(e)] ^= 1;
    await expect(readAll(bytes)).rejects.toThrow(/CRC-32/);
  });

  it('inflation is bounded by the recorded size, through zlib and through DecompressionStream', async () => {
    const data = enc('abc'.repeat(1000));
    const deflated = new Uint8Array(zlib.deflateRawSync(data));
    const fail = (why: string) => new CheckpointError(why);
    for (const streams of [false, true]) {
      expect(await inflateRawBounded(deflated, data.length, fail, streams)).toEqual(data);
      // A "bomb": 3000 bytes out of an entry that claims 100.
      const e = await errorOf(inflateRawBounded(deflated, 100, fail, streams));
      expect(e).toBeInstanceOf(CheckpointError);
      const garbage = await errorOf(inflateRawBounded(Uint8Array.of(0xff, 0xff, 0xff), 10, fail, streams));
      expect(garbage).toBeInstanceOf(CheckpointError);
    }
    // The same bomb inside an archive.
    const bomb = zipArchive([{ name: 'a/data.pkl', data, deflate: true }]);
    const zip = await ZipArchive.open(await openByteSource(bomb));
    const entry = { ...zip.entry('a/data.pkl')!, size: 100 };
    await expect(zip.readEntry(entry, 1 << 20)).rejects.toThrow(CheckpointError);
  });

  it('a truncated archive is refused wherever it is cut', async () => {
    const full = fs.readFileSync(WEIGHTS_PT);
    const cuts = [
      0,
      1,
      21,
      1000,
      full.length / 2,
      full.length - 100,
      full.length - 23,
      full.length - 22,
      full.length - 1,
    ].map(Math.floor);
    for (const n of cuts) {
      const e = await errorOf(ZipArchive.open(await openByteSource(new Uint8Array(full.subarray(0, n)))));
      expect(e, `cut at ${n}`).toBeInstanceOf(CheckpointError);
    }
  });

  it('every single flipped byte in the central directory and end records is an error or harmless, never wrong data', async () => {
    for (const [what, opts] of layouts) {
      const good = zipArchive(FILES, opts);
      const zip = await ZipArchive.open(await openByteSource(good));
      // The central directory starts right after the last entry's data (and descriptor).
      const last = [...zip.entries.values()].at(-1)!;
      const cdStart = (await zip.dataOffset(last)) + last.compressedSize + (opts.descriptors === false ? 0 : 24);
      let errors = 0,
        harmless = 0;
      for (let i = cdStart; i < good.length; i++) {
        const bad = good.slice();
        bad[i] ^= 0x10;
        const got = await readAll(bad).catch((e: unknown) => {
          expect(e, `${what}: byte ${i}`).toBeInstanceOf(CheckpointError);
          return undefined;
        });
        if (!got) errors++;
        else {
          // Undetectable flips touch only fields nothing reads (attributes, "version made by").
          expect([...got], `${what}: byte ${i}`).toEqual(FILES.map((f) => [f.name, f.data]));
          harmless++;
        }
      }
      expect(errors / (errors + harmless), what).toBeGreaterThan(0.8);
    }
  });

  it('names the problem for archives it cannot read: encrypted, multi-disk, duplicate names, absurd sizes', async () => {
    const base = zipArchive(FILES, { descriptors: false, zip64End: false, align: 0 });
    const cdAt = (b: Uint8Array) => new DataView(b.buffer).getUint32(b.length - 6, true);
    const patch = (f: (v: DataView, cd: number) => void) => {
      const b = base.slice();
      f(new DataView(b.buffer), cdAt(b));
      return b;
    };
    const cases: [Uint8Array, RegExp][] = [
      [patch((v, cd) => v.setUint16(cd + 8, 1, true)), /encrypted/],
      [patch((v) => v.setUint16(base.length - 22 + 4, 1, true)), /multi-part/],
      [patch((v) => v.setUint32(base.length - 22 + 12, 0x7fffffff, true)), /central directory/],
      [patch((v) => v.setUint16(base.length - 22 + 10, 60000, true)), /entries cannot fit|multi-part/],
      [zipArchive([FILES[1], FILES[1]]), /appears twice/],
    ];
    for (const [bytes, re] of cases) {
      const e = await errorOf(readAll(bytes));
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e!.message).toMatch(re);
    }
  });
});
