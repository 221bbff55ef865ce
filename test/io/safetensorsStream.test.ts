import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { readSafetensors, SafetensorsReader, serializeSafetensors } from '../../src/io/safetensors';
import { writeSafetensorsStream, type StreamTensor } from '../../src/io/safetensorsStream';
import type { WriteProgressInfo } from '../../src/util/progress';
import { expectProgress } from '../util/progressReports';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-stream-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const TENSORS: [StreamTensor, Uint8Array][] = [
  [{ name: 'b.half', dtype: 'F16', shape: [3] }, bytes(Uint16Array.of(0x3c00, 0xc000, 0x7bff))],
  [{ name: '10', dtype: 'F32', shape: [2, 2] }, bytes(Float32Array.of(1, 2, 3, 4))],
  [{ name: 'a.count', dtype: 'I64', shape: [] }, bytes(BigInt64Array.of(42n))],
  [{ name: 'flag', dtype: 'BOOL', shape: [2] }, Uint8Array.of(1, 0)],
];
const produce = (name: string) => TENSORS.find(([t]) => t.name === name)![1];

describe('streaming safetensors writer', () => {
  it('writes what the reader reads back, aligned, with sorted keys, asking for one tensor at a time', async () => {
    const file = path.join(tmp, 'a.safetensors');
    const asked: string[] = [];
    const progress: WriteProgressInfo[] = [];
    await writeSafetensorsStream(
      file,
      TENSORS.map(([t]) => t),
      (n) => (asked.push(n), produce(n)),
      {
        metadata: { format: 'pt' },
        onProgress: (p) => progress.push(p),
      },
    );
    // Widest first, in the given order within a width.
    expect(asked).toEqual(['a.count', '10', 'b.half', 'flag']);
    // One 'write' report per tensor, in bytes of tensor data, in the order written.
    expectProgress(progress, 'write');
    expect(progress.map((p) => [p.key, p.done])).toEqual([
      ['a.count', 8],
      ['10', 24],
      ['b.half', 30],
      ['flag', 32],
    ]);
    const r = await SafetensorsReader.open(file);
    expect(r.metadata).toEqual({ format: 'pt' });
    expect(r.keys()).toEqual(['10', 'a.count', 'b.half', 'flag']);
    await r.close();
    const got = await readSafetensors(file);
    expect(Array.from(got.get('b.half')!.data as Float32Array)).toEqual([1, -2, 65504]);
    expect(got.get('10')).toEqual({ dtype: 'F32', shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) });
    expect(got.get('a.count')).toEqual({ dtype: 'I64', shape: [], data: BigInt64Array.of(42n) });
    // The in-memory writer gives the same bytes.
    const dense = serializeSafetensors(new Map([['10', { shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) }]]));
    const file2 = path.join(tmp, 'b.safetensors');
    await writeSafetensorsStream(file2, [TENSORS[1][0]], produce);
    expect(new Uint8Array(fs.readFileSync(file2))).toEqual(dense);
  });

  it('writes I16 and I8 (valid safetensors dtypes the reader here does not decode)', async () => {
    const file = path.join(tmp, 'ints.safetensors');
    await writeSafetensorsStream(
      file,
      [
        { name: 'b', dtype: 'I8', shape: [3] },
        { name: 'a', dtype: 'I16', shape: [1] },
      ],
      (n) => (n === 'a' ? bytes(Int16Array.of(-7)) : Uint8Array.of(1, 2, 255)),
    );
    const raw = fs.readFileSync(file);
    const n = Number(raw.readBigUInt64LE(0));
    expect(JSON.parse(raw.subarray(8, 8 + n).toString())).toEqual({
      a: { dtype: 'I16', shape: [1], data_offsets: [0, 2] },
      b: { dtype: 'I8', shape: [3], data_offsets: [2, 5] },
    });
    expect([...raw.subarray(8 + n)]).toEqual([0xf9, 0xff, 1, 2, 255]);
  });

  it('leaves the target untouched and no temp file behind when a tensor fails or has the wrong length', async () => {
    const file = path.join(tmp, 'keep.safetensors');
    fs.writeFileSync(file, 'previous contents');
    const failing = async (n: string) => {
      if (n === 'b.half') throw new Error('disk on fire');
      return produce(n);
    };
    await expect(
      writeSafetensorsStream(
        file,
        TENSORS.map(([t]) => t),
        failing,
      ),
    ).rejects.toThrow('disk on fire');
    await expect(
      writeSafetensorsStream(
        file,
        TENSORS.map(([t]) => t),
        () => new Uint8Array(3),
      ),
    ).rejects.toThrow(/3 bytes were produced, I64 \[\] needs 8/);
    expect(fs.readFileSync(file, 'utf8')).toBe('previous contents');
    expect(fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses bad tensor lists before creating anything', async () => {
    const file = path.join(tmp, 'never.safetensors');
    const cases: [unknown, RegExp][] = [
      [[{ name: 'x', dtype: 'F8', shape: [1] }], /unsupported dtype "F8"/],
      [[{ name: 'x', dtype: 'F32', shape: [-1] }], /shape \[-1\]/],
      [[{ name: '__metadata__', dtype: 'F32', shape: [1] }], /invalid name/],
      [
        [
          { name: 'x', dtype: 'F32', shape: [1] },
          { name: 'x', dtype: 'F32', shape: [1] },
        ],
        /listed twice/,
      ],
      ['nope', /array/],
    ];
    for (const [tensors, re] of cases) {
      await expect(writeSafetensorsStream(file, tensors as StreamTensor[], () => new Uint8Array(4))).rejects.toThrow(
        InputError,
      );
      await expect(writeSafetensorsStream(file, tensors as StreamTensor[], () => new Uint8Array(4))).rejects.toThrow(
        re,
      );
    }
    expect(fs.existsSync(file)).toBe(false);
  });
});
