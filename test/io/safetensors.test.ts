import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CheckpointError, InputError } from '../../src/errors';
import { readSafetensors, SafetensorsReader, serializeSafetensors, writeSafetensors } from '../../src/io/safetensors';

const FIXTURES = path.resolve(__dirname, '../fixtures/adm-tiny');
const WEIGHTS = path.join(FIXTURES, 'weights.safetensors');
const ACTIVATIONS = path.join(FIXTURES, 'activations.safetensors');

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-safetensors-'));
  return () => fs.rmSync(tmp, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

const bytesOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Builds a file from a raw header string, padding the data section to `dataBytes`. */
function rawFile(header: string, dataBytes = 0, declaredLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

describe('reading the adm-tiny fixtures', () => {
  it('gives the same data from a path and from bytes, with every key of the config', async () => {
    const fromPath = await SafetensorsReader.open(WEIGHTS);
    const fromBytes = await SafetensorsReader.open(new Uint8Array(fs.readFileSync(WEIGHTS)));
    // Node Buffers, whose slice() is a view: as fs.readFileSync gives them, and at an odd offset in a larger buffer.
    const fromBuffer = await SafetensorsReader.open(fs.readFileSync(WEIGHTS));
    const fromOffsetBuffer = await SafetensorsReader.open(
      Buffer.concat([Buffer.alloc(3), fs.readFileSync(WEIGHTS)]).subarray(3),
    );
    try {
      expect(fromPath.source).toBe(WEIGHTS);
      expect(fromBytes.source).toBe('<bytes>');
      expect(fromPath.metadata).toEqual({ format: 'pt', fixture: 'adm-tiny' });
      expect(fromPath.keys()).toEqual(fromBytes.keys());
      expect(fromPath.info('time_embed.0.weight')).toEqual({
        name: 'time_embed.0.weight',
        dtype: 'F32',
        shape: [128, 32],
        byteLength: 128 * 32 * 4,
      });
      for (const key of fromPath.keys()) {
        const a = await fromPath.read(key);
        expect(a.data).toBeInstanceOf(Float32Array);
        expect(a.data.length).toBe(a.shape.reduce((x, y) => x * y, 1));
        for (const b of [
          fromBytes.readSync(key),
          await fromBytes.read(key),
          fromPath.readSync(key),
          await fromBuffer.read(key),
          fromOffsetBuffer.readSync(key),
        ]) {
          expect([b.dtype, b.shape, b.data.constructor], key).toEqual([a.dtype, a.shape, a.data.constructor]);
          // Byte comparison: toEqual on every element of ~750k floats is needlessly slow.
          expect(Buffer.compare(bytesOf(a.data), bytesOf(b.data)), key).toBe(0);
        }
      }
      const config = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'config.json'), 'utf8'));
      const expected = config.state_dict_keys_in_order as [string, number[], string][];
      expect(expected.length).toBe(fromPath.keys().length);
      for (const [key, shape] of expected) {
        expect(fromPath.has(key), key).toBe(true);
        expect(fromPath.info(key).shape, key).toEqual(shape);
      }
    } finally {
      await fromPath.close();
      await fromPath.close(); // idempotent
      await fromBytes.close();
    }
  });

  it('reads F64 and I64 tensors from the activations fixture', async () => {
    const all = await readSafetensors(ACTIVATIONS);
    const betas = all.get('schedule.betas')!;
    expect(betas.dtype).toBe('F64');
    expect(betas.shape).toEqual([1000]);
    expect(betas.data).toBeInstanceOf(Float64Array);
    expect(betas.data[0]).toBeGreaterThan(0);
    expect(betas.data[999]).toBeLessThan(1);
    const t = all.get('t')!;
    expect(t.dtype).toBe('I64');
    expect(t.data).toBeInstanceOf(BigInt64Array);
    expect([...(t.data as BigInt64Array)]).toEqual([150n, 90n]);
  });

  it('names the missing key and its nearest neighbours', async () => {
    const reader = await SafetensorsReader.open(WEIGHTS);
    try {
      await expect(reader.read('nope')).rejects.toBeInstanceOf(InputError);
      expect(() => reader.readSync('nope')).toThrow(InputError);
      expect(() => reader.info('time_embed.0.weigth')).toThrow(
        /"time_embed\.0\.weigth".*nearest keys: "time_embed\.0\.weight"/,
      );
    } finally {
      await reader.close();
    }
    expect(() => reader.readSync('time_embed.0.weight')).toThrow(/closed/);
  });
});

describe('round trip', () => {
  const tensors = {
    'b.f32': { shape: [2, 3], data: new Float32Array([1, -2.5, 3.25, 0, -0, 1e-40]) },
    'a.f64': { shape: [3], data: new Float64Array([Math.PI, -1e300, 5e-324]) },
    'c.i64': { shape: [2], data: new BigInt64Array([-(2n ** 63n), 2n ** 62n + 7n]) },
    'd.i32': { shape: [1, 2], data: new Int32Array([-2147483648, 123]) },
    // Odd-length U8 first in the layout would misalign what follows; the reader must cope either way.
    'e.u8': { shape: [3], data: new Uint8Array([0, 255, 7]) },
    'f.bool': { shape: [2], data: new Uint8Array([1, 0]), dtype: 'BOOL' as const },
    scalar: { shape: [], data: new Float32Array([42]) },
    empty: { shape: [0, 4], data: new Float32Array(0) },
    half: { shape: [3], data: new Float32Array([1, 0.5, -2]), dtype: 'F16' as const },
    brain: { shape: [3], data: new Float32Array([1, 0.5, -2]), dtype: 'BF16' as const },
  };

  it('gives identical data for each dtype, with sorted keys and an 8-aligned data section', async () => {
    const bytes = serializeSafetensors(tensors, { note: 'hi' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const reader = await SafetensorsReader.open(bytes);
    expect(reader.keys()).toEqual(Object.keys(tensors).sort());
    expect(reader.metadata).toEqual({ note: 'hi' });
    for (const [key, t] of Object.entries(tensors)) {
      const got = reader.readSync(key);
      expect(got.shape, key).toEqual(t.shape);
      expect(got.dtype, key).toBe('dtype' in t ? t.dtype : got.dtype);
      expect(got.data, key).toEqual(t.data);
    }
    expect(reader.info('half').byteLength).toBe(6);
  });

  it('accepts a Map and writes to disk, reading back the same', async () => {
    const file = path.join(tmp, 'roundtrip.safetensors');
    await writeSafetensors(file, new Map(Object.entries(tensors)));
    const back = await readSafetensors(file);
    for (const [key, t] of Object.entries(tensors)) expect(back.get(key)!.data, key).toEqual(t.data);
    expect(fs.readFileSync(file)).toEqual(Buffer.from(serializeSafetensors(tensors)));
  });

  it('reads tensors at unaligned offsets', async () => {
    const header = JSON.stringify({
      x: { dtype: 'F32', shape: [], data_offsets: [1, 5] },
      y: { dtype: 'F64', shape: [1], data_offsets: [5, 13] },
    });
    const file = rawFile(header, 13);
    const data = new DataView(file.buffer, file.length - 13);
    data.setFloat32(1, 1.5, true);
    data.setFloat64(5, -3.75, true);
    for (const bytes of [file, new Uint8Array(file.buffer, 0, file.length)]) {
      const back = await readSafetensors(bytes);
      expect(back.get('x')!.data).toEqual(new Float32Array([1.5]));
      expect(back.get('y')!.data).toEqual(new Float64Array([-3.75]));
    }
    const onDisk = path.join(tmp, 'unaligned.safetensors');
    fs.writeFileSync(onDisk, file);
    const reader = await SafetensorsReader.open(onDisk);
    expect(reader.readSync('y').data).toEqual(new Float64Array([-3.75]));
    await reader.close();
  });

  it('rejects bad tensors with InputError', () => {
    expect(() => serializeSafetensors({ a: { shape: [3], data: new Float32Array(2) } })).toThrow(InputError);
    expect(() => serializeSafetensors({ a: { shape: [-1], data: new Float32Array(0) } })).toThrow(InputError);
    expect(() => serializeSafetensors({ a: { shape: [1], data: new Int32Array(1), dtype: 'F16' } })).toThrow(
      InputError,
    );
    expect(() => serializeSafetensors({ __metadata__: { shape: [1], data: new Float32Array(1) } })).toThrow(InputError);
    expect(() => serializeSafetensors({ a: { shape: [1], data: [1] as unknown as Float32Array } })).toThrow(InputError);
  });
});

describe('atomic write', () => {
  const oldContent = () => serializeSafetensors({ old: { shape: [2], data: new Float32Array([7, 8]) } });
  const newTensors = {
    a: { shape: [1024], data: new Float32Array(1024).fill(1) },
    b: { shape: [1024], data: new Float32Array(1024).fill(2) },
  };

  async function expectUntouched(dir: string, file: string, before: Uint8Array) {
    expect(fs.readdirSync(dir)).toEqual([path.basename(file)]);
    expect(new Uint8Array(fs.readFileSync(file))).toEqual(before);
    expect((await readSafetensors(file)).get('old')!.data).toEqual(new Float32Array([7, 8]));
  }

  function target() {
    const dir = fs.mkdtempSync(path.join(tmp, 'atomic-'));
    const file = path.join(dir, 'model.safetensors');
    const before = oldContent();
    fs.writeFileSync(file, before);
    return { dir, file, before };
  }

  it('leaves the old file and no temp file when a write fails midway', async () => {
    const { dir, file, before } = target();
    const realOpen = fs.promises.open;
    let writes = 0;
    vi.spyOn(fs.promises, 'open').mockImplementation(async (...args: Parameters<typeof realOpen>) => {
      const handle = await realOpen(...args);
      if (args[1] === 'wx') {
        const realWrite = handle.write.bind(handle) as (...a: unknown[]) => Promise<unknown>;
        handle.write = (async (...a: unknown[]) => {
          if (++writes === 3) throw new Error('disk full');
          return realWrite(...a);
        }) as typeof handle.write;
      }
      return handle;
    });
    await expect(writeSafetensors(file, newTensors)).rejects.toThrow('disk full');
    expect(writes).toBe(3); // header and first tensor reached the temp file before the failure
    vi.restoreAllMocks();
    await expectUntouched(dir, file, before);
  });

  it('leaves the old file and no temp file when the rename fails', async () => {
    const { dir, file, before } = target();
    vi.spyOn(fs.promises, 'rename').mockRejectedValueOnce(new Error('EXDEV'));
    await expect(writeSafetensors(file, newTensors)).rejects.toThrow('EXDEV');
    vi.restoreAllMocks();
    await expectUntouched(dir, file, before);
  });

  it('leaves the old file when a tensor cannot be read', async () => {
    const { dir, file, before } = target();
    const bad = {
      shape: [1],
      get data(): Float32Array {
        throw new Error('boom');
      },
    };
    await expect(writeSafetensors(file, { a: newTensors.a, bad })).rejects.toThrow('boom');
    await expectUntouched(dir, file, before);
  });

  it('replaces the old file on success', async () => {
    const { dir, file } = target();
    await writeSafetensors(file, newTensors, { v: '2' });
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
    const reader = await SafetensorsReader.open(file);
    expect(reader.keys()).toEqual(['a', 'b']);
    expect(reader.metadata).toEqual({ v: '2' });
    expect((await reader.read('b')).data).toEqual(newTensors.b.data);
    await reader.close();
  });
});

describe('corrupt files throw CheckpointError', () => {
  const open = (bytes: Uint8Array) => SafetensorsReader.open(bytes);
  const valid = (entry: object, dataBytes: number) => rawFile(JSON.stringify({ x: entry }), dataBytes);

  it('too short', async () => {
    await expect(open(new Uint8Array(5))).rejects.toBeInstanceOf(CheckpointError);
    const file = path.join(tmp, 'short.safetensors');
    fs.writeFileSync(file, new Uint8Array(3));
    await expect(SafetensorsReader.open(file)).rejects.toThrow(/short\.safetensors is too short/);
  });

  it('absurd header length', async () => {
    await expect(open(rawFile('{}', 0, 2n ** 60n))).rejects.toBeInstanceOf(CheckpointError);
    await expect(open(rawFile('{}', 0, 3n))).rejects.toBeInstanceOf(CheckpointError);
    await expect(open(rawFile('{}', 0, 0xffffffffffffffffn))).rejects.toThrow(/absurd header length/);
  });

  it('bad JSON, non-object header, bad UTF-8', async () => {
    await expect(open(rawFile('{"x": '))).rejects.toBeInstanceOf(CheckpointError);
    await expect(open(rawFile('[1, 2]'))).rejects.toBeInstanceOf(CheckpointError);
    const badUtf8 = rawFile('{"\u00e9":1}');
    badUtf8[10] = 0xff;
    await expect(open(badUtf8)).rejects.toThrow(/not valid UTF-8 JSON/);
  });

  it('bad entries', async () => {
    await expect(open(valid({ dtype: 'F8', shape: [1], data_offsets: [0, 1] }, 1))).rejects.toThrow(
      /unsupported dtype "F8"/,
    );
    await expect(open(valid({ shape: [1], data_offsets: [0, 4] }, 4))).rejects.toBeInstanceOf(CheckpointError);
    await expect(open(valid({ dtype: 'F32', data_offsets: [0, 4] }, 4))).rejects.toBeInstanceOf(CheckpointError);
    await expect(open(valid({ dtype: 'F32', shape: [1] }, 4))).rejects.toBeInstanceOf(CheckpointError);
    await expect(open(valid({ dtype: 'F32', shape: [-1], data_offsets: [0, 4] }, 4))).rejects.toBeInstanceOf(
      CheckpointError,
    );
    await expect(open(valid({ dtype: 'F32', shape: [1.5], data_offsets: [0, 4] }, 4))).rejects.toBeInstanceOf(
      CheckpointError,
    );
    await expect(open(valid({ dtype: 'F32', shape: [2], data_offsets: [0, 4] }, 8))).rejects.toThrow(/needs 8/);
    await expect(open(valid({ dtype: 'F32', shape: [2], data_offsets: [8, 0] }, 8))).rejects.toBeInstanceOf(
      CheckpointError,
    );
    // Hostile header: enormous shape must be rejected, not allocated.
    await expect(
      open(valid({ dtype: 'F64', shape: [2 ** 40, 2 ** 20], data_offsets: [0, 8] }, 8)),
    ).rejects.toBeInstanceOf(CheckpointError);
    const overlapping = rawFile(
      JSON.stringify({
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      }),
      12,
    );
    await expect(open(overlapping)).rejects.toThrow(/overlapping/);
    await expect(open(rawFile('{"__metadata__": {"a": 1}}'))).rejects.toBeInstanceOf(CheckpointError);
  });

  it('offsets past the end of the data section', async () => {
    await expect(open(valid({ dtype: 'F32', shape: [2], data_offsets: [0, 8] }, 7))).rejects.toThrow(
      /<bytes> is truncated: tensor "x" needs bytes 0\.\.8 of the data section but only 7 are present/,
    );
  });

  it('a real fixture cut in half', async () => {
    const whole = fs.readFileSync(WEIGHTS);
    const file = path.join(tmp, 'half.safetensors');
    fs.writeFileSync(file, whole.subarray(0, whole.length >> 1));
    await expect(SafetensorsReader.open(file)).rejects.toBeInstanceOf(CheckpointError);
    await expect(SafetensorsReader.open(file)).rejects.toThrow(
      new RegExp(`${file.replace(/[.\\]/g, '\\$&')} is truncated`),
    );
    await expect(readSafetensors(new Uint8Array(whole.subarray(0, whole.length >> 1)))).rejects.toBeInstanceOf(
      CheckpointError,
    );
  });

  it('a flipped byte in the header', async () => {
    const bytes = new Uint8Array(fs.readFileSync(WEIGHTS));
    bytes[8] ^= 0x40; // '{' becomes ';'
    await expect(open(bytes)).rejects.toBeInstanceOf(CheckpointError);
    const file = path.join(tmp, 'flipped.safetensors');
    fs.writeFileSync(file, bytes);
    await expect(SafetensorsReader.open(file)).rejects.toThrow(
      /flipped\.safetensors has a header that is not valid UTF-8 JSON/,
    );
  });

  it('a missing file is an InputError naming the path', async () => {
    await expect(SafetensorsReader.open(path.join(tmp, 'absent.safetensors'))).rejects.toThrow(
      /absent\.safetensors cannot be opened/,
    );
    await expect(SafetensorsReader.open(path.join(tmp, 'absent.safetensors'))).rejects.toBeInstanceOf(InputError);
  });
});
