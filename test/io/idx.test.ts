import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError, InputError } from '../../src/errors';
import { decodeIdx, encodeIdx, readIdx, readIdxPair, type IdxDtype } from '../../src/io/idx';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-idx-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** An IDX file written by hand with DataView's big-endian setters, independent of the encoder. */
function handIdx(dtype: IdxDtype, code: number, shape: number[], values: number[]): Uint8Array {
  const setter = `set${dtype[0].toUpperCase()}${dtype.slice(1)}` as 'setFloat64';
  const size = { uint8: 1, int8: 1, int16: 2, int32: 4, float32: 4, float64: 8 }[dtype];
  const header = 4 + 4 * shape.length;
  const out = new Uint8Array(header + values.length * size);
  const v = new DataView(out.buffer);
  out.set([0, 0, code, shape.length]);
  shape.forEach((s, i) => v.setUint32(4 + 4 * i, s, false));
  values.forEach((x, i) => v[setter](header + i * size, x, false));
  return out;
}

const CASES = (
  [
    ['uint8', 0x08, Uint8Array, [0, 1, 127, 128, 254, 255]],
    ['int8', 0x09, Int8Array, [-128, -1, 0, 1, 100, 127]],
    ['int16', 0x0b, Int16Array, [-32768, -258, 0, 1, 258, 32767]],
    ['int32', 0x0c, Int32Array, [-2147483648, -65538, 0, 1, 65538, 2147483647]],
    ['float32', 0x0d, Float32Array, [-1.5, -0, 0, 0.25, 3e38, -7]],
    ['float64', 0x0e, Float64Array, [-1e300, -0.1, 0, 1 / 3, Math.PI, 7]],
  ] as [IdxDtype, number, new (v: number[]) => ArrayLike<number>, number[]][]
).map(([dtype, code, array, values]) => ({ dtype, code, array, values }));

async function errorOf(p: Promise<unknown> | (() => unknown)): Promise<Error | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return e as Error;
  }
  return undefined;
}

describe('IDX reader', () => {
  it.each(CASES)('reads hand-built $dtype files, plain and gzipped, from bytes and from a path', async (c) => {
    const bytes = handIdx(c.dtype, c.code, [2, 3], c.values);
    const gz = new Uint8Array(zlib.gzipSync(bytes));
    const file = path.join(tmp, `${c.dtype}.idx.gz`);
    fs.writeFileSync(file, gz);
    for (const src of [bytes, gz, file]) {
      const t = await readIdx(src);
      expect(t.dtype).toBe(c.dtype);
      expect(t.shape).toEqual([2, 3]);
      expect(t.data).toBeInstanceOf(c.array);
      expect(Array.from(t.data as ArrayLike<number>)).toEqual(Array.from(new c.array(c.values)));
    }
    // The encoder writes the same bytes as the hand-built file.
    expect(encodeIdx(decodeIdx(bytes))).toEqual(bytes);
  });

  it('reads an MNIST-shaped uint8 images file of rank 3 and an empty file of shape [0]', async () => {
    const data = Uint8Array.from({ length: 4 * 28 * 28 }, (_, i) => (i * 31) & 0xff);
    const t = await readIdx(encodeIdx({ shape: [4, 28, 28], data }));
    expect(t.shape).toEqual([4, 28, 28]);
    expect(t.data).toEqual(data);
    const empty = decodeIdx(encodeIdx({ shape: [0], data: new Int32Array(0) }));
    expect(empty.shape).toEqual([0]);
    expect(empty.data.length).toBe(0);
  });

  it('reads bytes given as a Node Buffer (whose own slice is a view into pooled memory) as their values only', async () => {
    for (const data of [Uint8Array.of(7, 8, 9, 10, 11, 12), Int16Array.of(-3, 300, 7)]) {
      const bytes = Buffer.from(encodeIdx({ shape: [data.length], data })); // small: copied into Buffer's pool
      const t = await readIdx(bytes);
      expect(t.data.length).toBe(data.length);
      expect(Array.from(t.data)).toEqual(Array.from(data));
    }
  });

  it('inflates a gzip stream of several members (as concatenated .gz files are)', async () => {
    const bytes = encodeIdx({ shape: [3, 2], data: Float32Array.of(1, 2, 3, 4, 5, 6) });
    const two = new Uint8Array([...zlib.gzipSync(bytes.subarray(0, 10)), ...zlib.gzipSync(bytes.subarray(10))]);
    expect(Array.from((await readIdx(two)).data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('rejects each malformed file with a CheckpointError that names it and says what is wrong', async () => {
    const good = handIdx('uint8', 0x08, [2, 2], [1, 2, 3, 4]);
    const bad: [string, Uint8Array, RegExp][] = [
      ['empty', new Uint8Array(0), /fewer than the 4/],
      ['wrong magic', Uint8Array.from([1, ...good.subarray(1)]), /magic number starts with 0x01 0x00/],
      ['unknown type byte', Uint8Array.from([0, 0, 0x0a, ...good.subarray(3)]), /type byte is 0x0A/],
      ['zero dimensions', Uint8Array.of(0, 0, 8, 0), /0 dimensions/],
      ['sizes cut short', good.subarray(0, 9), /inside the sizes/],
      [
        'data cut short',
        good.subarray(0, good.length - 1),
        /truncated: shape \[2,2\] of uint8 needs 16 bytes, the file has 15/,
      ],
      ['trailing data', Uint8Array.from([...good, 0]), /1 bytes after the 16/],
    ];
    for (const [what, bytes, message] of bad) {
      const e = await errorOf(readIdx(bytes, { label: `case-${what}.idx` }));
      expect(e, what).toBeInstanceOf(CheckpointError);
      expect(e!.message, what).toMatch(message);
      expect(e!.message, what).toContain(`case-${what}.idx`);
    }
    const file = path.join(tmp, 'short.idx');
    fs.writeFileSync(file, good.subarray(0, 12));
    expect((await errorOf(readIdx(file)))!.message).toContain(file);
  });

  it('rejects a gzip stream that does not inflate: corrupt, truncated, or larger than the limit', async () => {
    const gz = new Uint8Array(zlib.gzipSync(encodeIdx({ shape: [100], data: new Int16Array(100).fill(7) })));
    const corrupt = gz.slice();
    corrupt[gz.length - 6] ^= 0xff; // inside the CRC-32 trailer
    const cases: [string, Uint8Array, { maxBytes?: number }][] = [
      ['corrupt', corrupt, {}],
      ['truncated', gz.subarray(0, gz.length - 10), {}],
      ['bare magic', Uint8Array.of(0x1f, 0x8b), {}],
      ['bomb', gz, { maxBytes: 100 }],
    ];
    for (const [what, bytes, opts] of cases) {
      const e = await errorOf(readIdx(bytes, { label: `${what}.gz`, ...opts }));
      expect(e, what).toBeInstanceOf(CheckpointError);
      expect(e!.message, what).toMatch(new RegExp(`^${what}\\.gz starts like a gzip stream but cannot be inflated`));
    }
  });

  it('rejects a missing file and a source that is neither a path nor bytes', async () => {
    const missing = path.join(tmp, 'nope-idx3-ubyte.gz');
    const e = await errorOf(readIdx(missing));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e!.message).toContain(missing);
    expect(await errorOf(readIdx(42 as unknown as string))).toBeInstanceOf(InputError);
  });

  it('the pair reader rejects count mismatches and label files that are not one integer per image', async () => {
    const images = encodeIdx({ shape: [3, 2, 2], data: new Uint8Array(12) });
    const x = path.join(tmp, 'pair-images.idx');
    const y = path.join(tmp, 'pair-labels.idx');
    fs.writeFileSync(x, images);
    fs.writeFileSync(y, encodeIdx({ shape: [2], data: Uint8Array.of(1, 2) }));
    const e = await errorOf(readIdxPair(x, y));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e!.message).toBe(
      `${x} holds 3 images but ${y} holds 2 labels; check that the two files are of the same split`,
    );
    const floats = encodeIdx({ shape: [3], data: new Float32Array(3) });
    expect((await errorOf(readIdxPair(images, floats, { labelsLabel: 'f.idx' })))!.message).toMatch(
      /^f\.idx is not a labels file/,
    );
    const matrix = encodeIdx({ shape: [3, 1], data: new Uint8Array(3) });
    expect(await errorOf(readIdxPair(images, matrix))).toBeInstanceOf(CheckpointError);
    const ok = await readIdxPair(images, encodeIdx({ shape: [3], data: Uint8Array.of(0, 9, 4) }));
    expect(ok.images.shape).toEqual([3, 2, 2]);
    expect(Array.from(ok.labels.data)).toEqual([0, 9, 4]);
  });

  it('the encoder refuses data it cannot write', async () => {
    expect(await errorOf(() => encodeIdx({ shape: [2, 2], data: new Uint8Array(3) }))).toBeInstanceOf(InputError);
    expect(await errorOf(() => encodeIdx({ shape: [], data: new Uint8Array(1) }))).toBeInstanceOf(InputError);
    expect(await errorOf(() => encodeIdx({ shape: [-1], data: new Uint8Array(0) }))).toBeInstanceOf(InputError);
    expect(await errorOf(() => encodeIdx({ shape: [1], data: new BigInt64Array(1) as never }))).toBeInstanceOf(
      InputError,
    );
  });
});
