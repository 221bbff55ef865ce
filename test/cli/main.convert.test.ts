import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, renderProgress, type CliIO } from '../../src/cli/main';
import { readSafetensors, SafetensorsReader, type ReadTensor } from '../../src/io/safetensors';
import { FIXTURES, fixtureJson } from '../helpers';
import { awkwardCheckpoint, halfKeys, PickleWriter, rawBytes, torchLegacy, torchZip } from '../io/torchWriter';

const tinyOrder = fixtureJson('adm-tiny/config.json').state_dict_keys_in_order as [string, number[]][];
let tmp: string;
let ref: Map<string, ReadTensor>;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-'));
  ref = await readSafetensors(path.join(FIXTURES, 'adm-tiny', 'weights.safetensors'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs the CLI with captured output and a fake clock that advances 50 ms per reading. */
async function cli(args: string[], isTTY = false) {
  let out = '',
    err = '',
    clock = 0;
  const io: CliIO = {
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
    isTTY,
    columns: 100,
    now: () => (clock += 50),
  };
  const code = await main(args, io);
  return { code, out, err };
}
const bytesOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('diffssl convert', () => {
  for (const file of ['weights.pt', 'weights_legacy.pt']) {
    it(`${file} → safetensors: every tensor bit-identical to the fixture's weights.safetensors`, async () => {
      const out = path.join(tmp, `${file}.safetensors`);
      const r = await cli(['convert', path.join(FIXTURES, 'adm-tiny', file), out]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/^converted 304 tensors \(2\.9 MB\) in [\d.]+ s: /);
      expect(r.err).toBe('');
      const got = await readSafetensors(out);
      expect([...got.keys()].sort()).toEqual([...ref.keys()].sort());
      for (const [k, v] of ref) {
        expect(got.get(k)!.dtype).toBe('F32');
        expect(got.get(k)!.shape).toEqual(v.shape);
        expect(bytesOf(got.get(k)!.data).equals(bytesOf(v.data)), k).toBe(true);
      }
      const reader = await SafetensorsReader.open(out);
      expect(reader.metadata).toEqual({ format: 'pt', producer: 'diffssl convert' });
      await reader.close();
    });
  }

  it('keeps float16 as F16 (and bf16, int64 as they are); --float32 widens the floats only', async () => {
    const { spec, expected } = awkwardCheckpoint(ref, tinyOrder, true);
    spec.storages.set('bf', { dtype: 'bfloat16', data: rawBytes(Uint16Array.of(0x3fc0, 0xc010)) });
    spec.storages.set('steps', { dtype: 'int64', data: rawBytes(BigInt64Array.of(12345n)) });
    spec.tensors.push(
      ['extra.bf16', { storage: 'bf', shape: [2] }],
      ['bn.num_batches_tracked', { storage: 'steps', shape: [] }],
    );
    const input = path.join(tmp, 'mixed.pt');
    fs.writeFileSync(input, torchZip(spec));
    const half = halfKeys(tinyOrder);
    for (const float32 of [false, true]) {
      const out = path.join(tmp, `mixed-${float32}.safetensors`);
      const r = await cli(['convert', input, out, ...(float32 ? ['--float32'] : []), '--quiet']);
      expect(r.code, r.err).toBe(0);
      expect(r.out + r.err).toBe('');
      const got = await readSafetensors(out);
      for (const [k] of tinyOrder) {
        expect(got.get(k)!.dtype, k).toBe(half.has(k) && !float32 ? 'F16' : 'F32');
        expect(bytesOf(got.get(k)!.data).equals(bytesOf(expected.get(k)!)), k).toBe(true);
      }
      expect(got.get('extra.bf16')).toEqual({
        dtype: float32 ? 'F32' : 'BF16',
        shape: [2],
        data: Float32Array.of(1.5, -2.25),
      });
      expect(got.get('bn.num_batches_tracked')).toEqual({ dtype: 'I64', shape: [], data: BigInt64Array.of(12345n) });
    }
  });

  it('draws a progress bar with a rate and an ETA on a terminal, and nothing when quiet', async () => {
    const out = path.join(tmp, 'bar.safetensors');
    const r = await cli(['convert', path.join(FIXTURES, 'adm-tiny', 'weights.pt'), out], true);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/\r\[#+\] 100%  2\.9 MB \/ 2\.9 MB .*\/s  done\n$/);
    expect(r.err.split('\r').length).toBeGreaterThan(3);
    const q = await cli(['convert', path.join(FIXTURES, 'adm-tiny', 'weights.pt'), out, '--force', '--quiet'], true);
    expect(q.code).toBe(0);
    expect(q.out + q.err).toBe('');
    expect(renderProgress(250e6, 1e9, 2000, 80)).toBe(
      '[########........................]  25%  250.0 MB / 1.00 GB  125.0 MB/s  ETA 6s',
    );
    expect(renderProgress(250e6, 1e9, 2000, 80).length).toBeLessThan(80);
    expect(renderProgress(0, 1e9, 0, 200)).toMatch(/^\[\.{40}\]   0%  0 B \/ 1\.00 GB  0 B\/s  ETA --$/);
    expect(renderProgress(1e6, 1e9, 1000, 80)).toMatch(/ETA 16m39s$/);
    expect(renderProgress(1e6, 1e10, 1000, 80)).toMatch(/ETA 2h46m$/);
  });

  it('never overwrites without --force, and never leaves a partial file', async () => {
    const out = path.join(tmp, 'exists.safetensors');
    fs.writeFileSync(out, 'keep me');
    const r = await cli(['convert', path.join(FIXTURES, 'adm-tiny', 'weights.pt'), out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/exists \(use --force to replace it\)/);
    expect(fs.readFileSync(out, 'utf8')).toBe('keep me');
    // A checkpoint whose second storage is missing fails before the output is touched.
    const spec = awkwardCheckpoint(ref, tinyOrder, false).spec;
    const broken = path.join(tmp, 'broken.pt');
    fs.writeFileSync(broken, torchZip(spec, { omitStorages: ['1'] }));
    const b = await cli(['convert', broken, out, '--force']);
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/storage "1"/);
    expect(fs.readFileSync(out, 'utf8')).toBe('keep me');
    expect(fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a hostile checkpoint without running it', async () => {
    const marker = path.join(tmp, 'PWNED');
    const evil = new PickleWriter()
      .proto(2)
      .global('posix', 'system')
      .str(`touch ${marker}`)
      .raw(0x85)
      .op('R')
      .stop()
      .bytes();
    for (const [name, bytes] of [
      ['evil-legacy.pt', evil],
      ['evil-zip.pt', torchZip({ tensors: [], storages: new Map() }, { pickle: evil })],
      ['evil-sd.pt', torchLegacy({ tensors: [], storages: new Map() }, { pickle: evil })],
    ] as const) {
      const input = path.join(tmp, name);
      fs.writeFileSync(input, bytes);
      const out = path.join(tmp, `${name}.safetensors`);
      const r = await cli(['convert', input, out]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^diffssl: .*refused global posix\.system/);
      expect(fs.existsSync(out)).toBe(false);
      expect(fs.existsSync(marker)).toBe(false);
    }
  });

  it('usage errors exit 2 with the usage text; --help and --version exit 0', async () => {
    for (const args of [
      [],
      ['frobnicate'],
      ['convert'],
      ['convert', 'a.pt'],
      ['convert', 'a', 'b', 'c'],
      ['convert', 'a', 'b', '--fp8'],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(/Usage:\n {2}diffssl convert <in\.pt> <out\.safetensors>/);
    }
    expect((await cli(['--help'])).code).toBe(0);
    expect((await cli(['convert', '--help'])).out).toMatch(/--float32/);
    expect((await cli(['--version'])).out).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('names the problem for inputs that are not checkpoints', async () => {
    const st = await cli([
      'convert',
      path.join(FIXTURES, 'adm-tiny', 'weights.safetensors'),
      path.join(tmp, 'x.safetensors'),
    ]);
    expect(st).toMatchObject({ code: 1 });
    expect(st.err).toMatch(/already a safetensors file/);
    const missing = await cli(['convert', path.join(tmp, 'nope.pt'), path.join(tmp, 'x.safetensors')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/cannot open weights file .*nope\.pt/);
    const same = await cli(['convert', path.join(tmp, 'a.pt'), path.join(tmp, 'a.pt')]);
    expect(same.err).toMatch(/must not be the input/);
  });
});
