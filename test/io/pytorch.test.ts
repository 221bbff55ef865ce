import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, DiffSSLError, InputError, WeightsError } from '../../src/errors';
import { TorchCheckpointReader, type TorchDtype } from '../../src/io/pytorch';
import { f32ToBf16, f32ToF16 } from '../../src/io/float16';
import { readSafetensors, type ReadTensor } from '../../src/io/safetensors';
import { openWeights } from '../../src/io/weights';
import { ADMUNet } from '../../src/unet/admUnet';
import { buildArchitecture } from '../../src/unet/architecture';
import { resolveConfig } from '../../src/unet/config';
import type { PresetName } from '../../src/unet/presets';
import { BACKENDS, compareArrays, FIXTURES, fixtureJson, nchwToNhwc, setBackend } from '../helpers';
import {
  awkwardCheckpoint,
  halfKeys,
  ITEM,
  PickleWriter,
  rawBytes,
  stateDictPickle,
  torchLegacy,
  torchZip,
  type StateSpec,
  type StorageSpec,
  type TensorSpec,
} from './torchWriter';

const tinyCfg = fixtureJson('adm-tiny/config.json');
const tinyFlags = tinyCfg.create_model_and_diffusion_args;
const tinyOrder = tinyCfg.state_dict_keys_in_order as [string, number[]][];
const FILES: [fixture: string, file: string, layout: 'zip' | 'legacy'][] = [
  ['adm-tiny', 'weights.pt', 'zip'],
  ['adm-tiny', 'weights_legacy.pt', 'legacy'],
  ['adm-small-cond', 'weights.pt', 'zip'],
];
const bytesOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

let tmp: string;
let tinyRef: Map<string, ReadTensor>;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-pt-'));
  tinyRef = await readSafetensors(path.join(FIXTURES, 'adm-tiny', 'weights.safetensors'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function errorOf(p: Promise<unknown>): Promise<Error | undefined> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  return undefined;
}

/** Opens, reads every tensor, closes: what a loader does. */
async function readAll(source: string | Uint8Array): Promise<Map<string, Float32Array>> {
  const r = await TorchCheckpointReader.open(source);
  try {
    const out = new Map<string, Float32Array>();
    for (const k of r.keys()) out.set(k, await r.readFloat32(k));
    return out;
  } finally {
    await r.close();
  }
}

describe("the fixtures' torch.save files", () => {
  for (const [fx, file, layout] of FILES) {
    it(`${fx}/${file} (${layout}): every tensor is bit-identical to weights.safetensors, in state-dict order, from a path and from bytes`, async () => {
      const cfg = fixtureJson(`${fx}/config.json`);
      const ref = await readSafetensors(path.join(FIXTURES, fx, 'weights.safetensors'));
      const file0 = path.join(FIXTURES, fx, file);
      // Node Buffers too, whose slice() is a view, also at an odd offset in a larger buffer.
      const odd = Buffer.concat([Buffer.alloc(3), fs.readFileSync(file0)]).subarray(3);
      for (const source of [file0, new Uint8Array(fs.readFileSync(file0)), fs.readFileSync(file0), odd]) {
        const r = await TorchCheckpointReader.open(source);
        expect(r.layout).toBe(layout);
        expect(r.keys()).toEqual(cfg.state_dict_keys_in_order.map(([k]: [string]) => k));
        for (const k of r.keys()) {
          const info = r.info(k);
          expect(info.dtype).toBe('float32');
          expect(info.shape).toEqual(ref.get(k)!.shape);
          expect(info.byteLength).toBe((ref.get(k)!.data as Float32Array).byteLength);
          expect(bytesOf(await r.readFloat32(k)).equals(bytesOf(ref.get(k)!.data as Float32Array)), k).toBe(true);
        }
        expect(() => r.info('time_embed.0.weigth')).toThrow(
          /has no tensor "time_embed\.0\.weigth".*nearest keys: "time_embed\.0\.weight"/,
        );
        await r.close();
        await r.close(); // idempotent
        expect(() => r.info(r.keys()[0] ?? 'x')).toThrow(/torch checkpoint reader for .* is closed/);
      }
      const w = await openWeights(file0);
      expect(w.format).toBe(layout === 'zip' ? 'pytorch-zip' : 'pytorch-legacy');
      expect(() => w.shape('no.such.key')).toThrow(InputError);
      await w.close();
    });
  }
});

describe('U-Net parity through .pt files', () => {
  // Worst error per file and backend, printed for the closing note.
  const worst = new Map<string, number>();
  afterAll(() => worst.forEach((v, k) => console.log(`parity ${k}: max abs ${v.toExponential(2)}`)));
  for (const backend of BACKENDS) {
    for (const [fx, file] of FILES) {
      it(`${fx}/${file} on ${backend}: blocks match the reference activations`, async () => {
        await setBackend(backend);
        const cfg = fixtureJson(`${fx}/config.json`);
        const act = await readSafetensors(path.join(FIXTURES, fx, 'activations.safetensors'));
        const before = tf.memory().numTensors;
        let progress = 0;
        const unet = await ADMUNet.load(path.join(FIXTURES, fx, file), cfg.create_model_and_diffusion_args, {
          onProgress: (p) => (progress = p.done / p.total),
        });
        expect(progress).toBe(1);
        const x = nchwToNhwc(act.get('x_t')!.data as Float32Array, act.get('x_t')!.shape);
        const xt = tf.tensor4d(x.data, x.shape);
        const t = Array.from(act.get('t')!.data as BigInt64Array, Number);
        const y = act.has('y') ? Array.from(act.get('y')!.data as BigInt64Array, Number) : undefined;
        const total = cfg.model.total_blocks as number;
        const blocks = [2, Math.ceil(total / 2)];
        const { features } = unet.forward(xt, t, { y, capture: blocks });
        for (const b of blocks) {
          const want = act.get(`block_${b}`)!;
          const d = compareArrays(features.get(b)!.dataSync(), nchwToNhwc(want.data as Float32Array, want.shape).data);
          expect(d.ok, `block ${b}: ${d.bad} off, max abs ${d.maxAbs}`).toBe(true);
          worst.set(`${fx}/${file} ${backend}`, Math.max(worst.get(`${fx}/${file} ${backend}`) ?? 0, d.maxAbs));
        }
        features.forEach((f) => f.dispose());
        xt.dispose();
        // Every weight, not only those of the blocks run, is the reference's bit for bit.
        const ref = await readSafetensors(path.join(FIXTURES, fx, 'weights.safetensors'));
        for (const [k, v] of unet.stateDict())
          expect(bytesOf(v.data).equals(bytesOf(ref.get(k)!.data as Float32Array)), k).toBe(true);
        unet.dispose();
        expect(tf.memory().numTensors).toBe(before);
      });
    }
  }
});

describe('checkpoints laid out like convert_to_fp16(), with shared storages and strided views', () => {
  it("the float16 rule used to build them is exactly the manifests' float16_under_use_fp16", () => {
    for (const name of fixtureJson('manifests/index.json').unet_models as string[]) {
      const m = fixtureJson(`manifests/${name}.json`);
      expect([...halfKeys(m.state_dict)].sort(), name).toEqual([...m.float16_under_use_fp16].sort());
    }
  });

  for (const fp16 of [true, false]) {
    it(`${fp16 ? 'float16/float32 mixed' : 'float32'}: zip and legacy layouts read to the exact values`, async () => {
      const { spec, expected } = awkwardCheckpoint(tinyRef, tinyOrder, fp16);
      for (const bytes of [torchZip(spec), torchLegacy(spec)]) {
        const r = await TorchCheckpointReader.open(bytes);
        expect(r.keys()).toEqual(tinyOrder.map(([k]) => k));
        const half = r.keys().filter((k) => r.info(k).dtype === 'float16');
        expect(half.length).toBe(fp16 ? halfKeys(tinyOrder).size : 0);
        expect(r.info('time_embed.0.weight').stride).toEqual([1, 128]);
        expect(r.info('time_embed.0.bias').storage).toBe(r.info('time_embed.2.bias').storage);
        for (const k of r.keys())
          expect(bytesOf(await r.readFloat32(k)).equals(bytesOf(expected.get(k)!)), k).toBe(true);
        await r.close();
      }
    });
  }

  for (const backend of BACKENDS) {
    it(`on ${backend}: the float32 layout gives the reference activations, the fp16 one loads to its rounded values`, async () => {
      await setBackend(backend);
      const act = await readSafetensors(path.join(FIXTURES, 'adm-tiny', 'activations.safetensors'));
      const x = nchwToNhwc(act.get('x_t')!.data as Float32Array, act.get('x_t')!.shape);
      const xt = tf.tensor4d(x.data, x.shape);
      const t = Array.from(act.get('t')!.data as BigInt64Array, Number);
      const blocks = [3, 10];
      const f32 = path.join(tmp, `awkward32-${backend}.pt`);
      fs.writeFileSync(f32, torchZip(awkwardCheckpoint(tinyRef, tinyOrder, false).spec));
      const unet = await ADMUNet.load(f32, tinyFlags);
      const { features } = unet.forward(xt, t, { capture: blocks });
      for (const b of blocks) {
        const want = act.get(`block_${b}`)!;
        const d = compareArrays(features.get(b)!.dataSync(), nchwToNhwc(want.data as Float32Array, want.shape).data);
        expect(d.ok, `block ${b}: ${d.bad} off, max abs ${d.maxAbs}`).toBe(true);
      }
      const { spec, expected } = awkwardCheckpoint(tinyRef, tinyOrder, true);
      const half = await ADMUNet.load(torchLegacy(spec), tinyFlags);
      for (const [k, v] of half.stateDict()) expect(bytesOf(v.data).equals(bytesOf(expected.get(k)!)), k).toBe(true);
      tf.dispose([xt, ...features.values()]);
      [unet, half].forEach((m) => m.dispose());
    });
  }

  it('reads into caller buffers reused across tensors (what the converter does), with the same values', async () => {
    const { spec, expected } = awkwardCheckpoint(tinyRef, tinyOrder, true);
    const r = await TorchCheckpointReader.open(torchZip(spec));
    const max = Math.max(...r.keys().map((k) => r.info(k).byteLength));
    const f32 = new Float32Array(2 + max);
    const bytes = new Uint8Array(8 + max);
    for (const k of r.keys()) {
      const got = await r.readFloat32(k, f32.subarray(2));
      expect(got.buffer).toBe(f32.buffer);
      expect(bytesOf(got).equals(bytesOf(expected.get(k)!)), k).toBe(true);
      const raw = await r.readBytes(k, bytes.subarray(8));
      expect(raw.buffer).toBe(bytes.buffer);
      expect(bytesOf(raw).equals(bytesOf(await r.readBytes(k))), k).toBe(true);
    }
    await expect(r.readFloat32('out.2.weight', new Float32Array(3))).rejects.toThrow(InputError);
    await expect(r.readBytes('out.2.weight', bytes.subarray(1))).rejects.toThrow(/aligned to 4/);
    await r.close();
  });

  it('every storage dtype reads in its own type; readFloat32 refuses integers (num_batches_tracked)', async () => {
    const vals = Float32Array.of(1.5, -2.25, 3, 256);
    const storages = new Map<string, StorageSpec>([
      ['f32', { dtype: 'float32', data: rawBytes(vals) }],
      ['f16', { dtype: 'float16', data: rawBytes(f32ToF16(vals)) }],
      ['bf16', { dtype: 'bfloat16', data: rawBytes(f32ToBf16(vals)) }],
      ['f64', { dtype: 'float64', data: rawBytes(Float64Array.from(vals)) }],
      ['i64', { dtype: 'int64', data: rawBytes(BigInt64Array.of(123456789012n)) }],
      ['i32', { dtype: 'int32', data: rawBytes(Int32Array.of(-5, 7)) }],
      ['i16', { dtype: 'int16', data: rawBytes(Int16Array.of(-300)) }],
      ['i8', { dtype: 'int8', data: rawBytes(Int8Array.of(-3)) }],
      ['u8', { dtype: 'uint8', data: Uint8Array.of(200) }],
      ['b', { dtype: 'bool', data: Uint8Array.of(1, 0) }],
    ]);
    const tensors: [string, TensorSpec][] = [...storages].map(([k, s]) => [
      k,
      { storage: k, shape: [s.data.length / ITEM[s.dtype]] },
    ]);
    tensors.push(['scalar', { storage: 'i64', shape: [] }]);
    for (const bytes of [torchZip({ tensors, storages }), torchLegacy({ tensors, storages })]) {
      const r = await TorchCheckpointReader.open(bytes);
      for (const k of ['f32', 'f16', 'bf16', 'f64'])
        expect(Array.from(await r.readFloat32(k)), k).toEqual(Array.from(vals));
      expect(r.info('f64').dtype).toBe('float64');
      expect((await r.read('f64')).data).toBeInstanceOf(Float64Array);
      expect((await r.read('i64')).data).toEqual(BigInt64Array.of(123456789012n));
      expect(await r.read('scalar')).toEqual({ dtype: 'int64', shape: [], data: BigInt64Array.of(123456789012n) });
      expect((await r.read('i32')).data).toEqual(Int32Array.of(-5, 7));
      expect((await r.read('i16')).data).toEqual(Int16Array.of(-300));
      expect((await r.read('i8')).data).toEqual(Int8Array.of(-3));
      expect((await r.read('u8')).data).toEqual(Uint8Array.of(200));
      expect(await r.read('b')).toEqual({ dtype: 'bool', shape: [2], data: Uint8Array.of(1, 0) });
      for (const k of ['i64', 'i32', 'u8', 'b']) await expect(r.readFloat32(k)).rejects.toThrow(/dtype .*a float type/);
      await r.close();
    }
  });

  it('legacy storage views, big-endian files, Parameters, deflated and protocol-4 pickles read correctly', async () => {
    const vals = Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 1);
    const storages = new Map<string, StorageSpec>([['root', { dtype: 'float32', data: rawBytes(vals) }]]);
    // Legacy storage views: 'v' is elements 4..11 of 'root'; the tensor is a 2×3 view of it at offset 1.
    const viewed = torchLegacy(
      { tensors: [['w', { storage: 'v', shape: [2, 3], offset: 1 }]], storages },
      { views: new Map([['v', ['root', 4, 7]]]) },
    );
    expect(Array.from(await (await TorchCheckpointReader.open(viewed)).readFloat32('w'))).toEqual(
      Array.from(vals.subarray(5, 11)),
    );
    // A checkpoint written on a big-endian machine: zip with byteorder "big", and legacy with little_endian False.
    const swapped = rawBytes(vals);
    for (let i = 0; i < swapped.length; i += 4) swapped.subarray(i, i + 4).reverse();
    const big = {
      tensors: [['w', { storage: 'root', shape: [3, 4] }]] as [string, TensorSpec][],
      storages: new Map([['root', { dtype: 'float32' as TorchDtype, data: swapped }]]),
    };
    for (const bytes of [torchZip(big, { byteorder: 'big' }), torchLegacy(big, { bigEndian: true })]) {
      const r = await TorchCheckpointReader.open(bytes);
      expect(r.bigEndian).toBe(true);
      expect(Array.from(await r.readFloat32('w'))).toEqual(Array.from(vals));
    }
    // nn.Parameter: _rebuild_parameter(_rebuild_tensor_v2(...), True, OrderedDict()), in a protocol-4 pickle with STACK_GLOBAL.
    const w = new PickleWriter()
      .proto(4)
      .str('collections')
      .str('OrderedDict')
      .raw(0x93)
      .raw(0x94)
      .op(')')
      .op('R')
      .str('p');
    w.str('torch._utils').str('_rebuild_parameter').raw(0x93).str('torch._utils').str('_rebuild_tensor_v2').raw(0x93);
    w.mark()
      .mark()
      .str('storage')
      .str('torch')
      .str('FloatStorage')
      .raw(0x93)
      .str('root')
      .str('cpu')
      .int(12)
      .op('t')
      .raw(0x51);
    w.int(2).int(5).raw(0x85).int(1).raw(0x85).bool(true).get(0).op(')').op('R').op('t').op('R'); // (storage, 2, (5,), (1,), True, OrderedDict())
    w.bool(true).get(0).op(')').op('R').raw(0x87).op('R').op('s').stop(); // _rebuild_parameter(tensor, True, OrderedDict())
    const param = torchZip({ tensors: [], storages }, { pickle: w.bytes(), deflatePickle: true });
    expect(Array.from(await (await TorchCheckpointReader.open(param)).readFloat32('p'))).toEqual(
      Array.from(vals.subarray(2, 7)),
    );
  });
});

const MARKER_DIR = () => fs.mkdtempSync(path.join(tmp, 'evil-'));
/** A pickle that would run `touch marker` through `module.name` if it were executed. */
function evilPickle(module: string, name: string, marker: string, viaStack = false): Uint8Array {
  const w = new PickleWriter().proto(viaStack ? 4 : 2);
  if (viaStack) w.str(module).str(name).raw(0x93);
  else w.global(module, name);
  return w.str(`touch ${marker}`).raw(0x85).op('R').stop().bytes();
}
/** A valid-looking state dict whose second value is a call to `module.name`. */
function evilStateDict(module: string, name: string, marker: string): Uint8Array {
  const w = new PickleWriter().proto(2).global('collections', 'OrderedDict').op(')').op('R').mark();
  w.str('ok').global('torch._utils', '_rebuild_tensor_v2').mark().storageRef('FloatStorage', '0', 1);
  w.int(0).op(')').op(')').bool(false).global('collections', 'OrderedDict').op(')').op('R').op('t').op('R');
  w.str('evil').global(module, name).str(`touch ${marker}`).raw(0x85).op('R').op('u').stop();
  return w.bytes();
}
const oneFloat = (): StateSpec => ({
  tensors: [['0', { storage: '0', shape: [1] }]],
  storages: new Map([['0', { dtype: 'float32', data: rawBytes(Float32Array.of(1)) }]]),
});

describe('hostile and broken checkpoints: a typed error, quickly, and nothing runs', () => {
  for (const [m, n] of [
    ['posix', 'system'],
    ['os', 'system'],
    ['builtins', 'eval'],
    ['subprocess', 'call'],
    ['torch.serialization', 'load'],
    ['numpy.core.multiarray', '_reconstruct'],
  ]) {
    it(`${m}.${n}: as the legacy stream's first pickle, as data.pkl, by STACK_GLOBAL, and inside a state dict`, async () => {
      const dir = MARKER_DIR();
      const marker = path.join(dir, 'PWNED');
      const files: [string, Uint8Array][] = [
        ['legacy', evilPickle(m, n, marker)],
        ['zip', torchZip(oneFloat(), { pickle: evilPickle(m, n, marker) })],
        [
          'zip, STACK_GLOBAL, deflated',
          torchZip(oneFloat(), { pickle: evilPickle(m, n, marker, true), deflatePickle: true }),
        ],
        ['zip, inside a state dict', torchZip(oneFloat(), { pickle: evilStateDict(m, n, marker) })],
        ['legacy, inside a state dict', torchLegacy(oneFloat(), { pickle: evilStateDict(m, n, marker) })],
      ];
      for (const [what, bytes] of files) {
        const file = path.join(dir, 'evil.pt');
        fs.writeFileSync(file, bytes);
        for (const attempt of [
          () => TorchCheckpointReader.open(file),
          () => openWeights(file),
          () => ADMUNet.load(file, tinyFlags),
        ]) {
          const e = await errorOf(attempt());
          expect(e, what).toBeInstanceOf(CheckpointError);
          expect(e!.message, what).toContain(`refused global ${m}.${n}`);
        }
        expect(fs.existsSync(marker), what).toBe(false);
      }
    });
  }

  it('a storage declared far larger than its bytes (zip entry, legacy data, or the file) is refused before any allocation', async () => {
    const spec = oneFloat();
    const huge = stateDictPickle(spec, { declared: new Map([['0', 2 ** 40]]) });
    for (const [bytes, re] of [
      [
        torchZip(spec, { pickle: huge }),
        /declares 1099511627776 float32 elements \(4398046511104 bytes\) but its archive entry holds 4/,
      ],
      [
        torchLegacy(spec, { pickle: stateDictPickle(spec, { legacy: true, declared: new Map([['0', 2 ** 40]]) }) }),
        /holds 1 elements but was declared with 1099511627776/,
      ],
      [
        torchLegacy(spec, {
          pickle: stateDictPickle(spec, { legacy: true, declared: new Map([['0', 2 ** 40]]) }),
          counts: new Map([['0', 2n ** 40n]]),
        }),
        /truncated: storage "0" needs bytes/,
      ],
      [
        torchLegacy(spec, { counts: new Map([['0', 2n ** 62n]]) }),
        /holds 4611686018427387904 elements but was declared with 1/,
      ],
    ] as [Uint8Array, RegExp][]) {
      const e = await errorOf(TorchCheckpointReader.open(bytes));
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e!.message).toMatch(re);
    }
  });

  it('tensors that reach outside their storage, or expand a small storage into a large tensor, are refused', async () => {
    const storages = new Map<string, StorageSpec>([['0', { dtype: 'float32', data: rawBytes(new Float32Array(12)) }]]);
    const cases: [TensorSpec, RegExp][] = [
      [{ storage: '0', shape: [13] }, /needs more elements than its storage/],
      [{ storage: '0', shape: [3, 4], offset: 1 }, /runs past the 12 elements/],
      [{ storage: '0', shape: [4, 4], stride: [3, 1] }, /needs more elements|runs past/],
      [
        { storage: '0', shape: [2 ** 20, 2 ** 20], stride: [0, 0] },
        /needs more elements than its storage "0" has \(12\); overlapping or broadcast views/,
      ],
      [{ storage: '0', shape: [2, 2], stride: [100, 1] }, /runs past/],
    ];
    for (const [t, re] of cases) {
      for (const bytes of [
        torchZip({ tensors: [['t', t]], storages }),
        torchLegacy({ tensors: [['t', t]], storages }),
      ]) {
        const e = await errorOf(TorchCheckpointReader.open(bytes));
        expect(e).toBeInstanceOf(CheckpointError);
        expect(e!.message).toMatch(re);
      }
    }
  });

  it('a missing storage, a storage nobody declared, two declarations that disagree, a non-dict, a non-tensor value', async () => {
    const spec = oneFloat();
    const two: StateSpec = {
      tensors: [
        ['a', { storage: '0', shape: [1] }],
        ['b', { storage: '1', shape: [1] }],
      ],
      storages: new Map([...spec.storages, ['1', { dtype: 'float32', data: rawBytes(Float32Array.of(2)) }]]),
    };
    const disagree = new PickleWriter().proto(2).global('collections', 'OrderedDict').op(')').op('R').mark();
    for (const [name, type] of [
      ['a', 'FloatStorage'],
      ['b', 'HalfStorage'],
    ]) {
      disagree.str(name).global('torch._utils', '_rebuild_tensor_v2').mark().storageRef(type, '0', 1);
      disagree.int(0).op(')').op(')').bool(false).op('}').op('t').op('R');
    }
    const cases: [Uint8Array, RegExp][] = [
      [torchZip(two, { omitStorages: ['1'] }), /storage "1" but the archive has no archive\/data\/1/],
      [torchLegacy(two, { keys: ['0'] }), /use storage "1", which the file does not contain/],
      [
        torchLegacy({ ...spec, storages: two.storages }, { keys: ['0', '1'] }),
        /lists storage "1" that no tensor declared/,
      ],
      [torchZip(spec, { pickle: disagree.op('u').stop().bytes() }), /declared twice, differently/],
      [
        torchZip(spec, { pickle: new PickleWriter().proto(2).op(']').stop().bytes() }),
        /holds a list of 0, not a state dict/,
      ],
      [
        torchZip(spec, { pickle: new PickleWriter().proto(2).op('}').str('epoch').int(3).op('s').stop().bytes() }),
        /"epoch" is the number 3, not a tensor/,
      ],
      [
        torchZip(spec, { pickle: new PickleWriter().proto(2).op('}').int(3).str('x').op('s').stop().bytes() }),
        /key the number 3 is not a string/,
      ],
    ];
    for (const [bytes, re] of cases) {
      const e = await errorOf(readAll(bytes));
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e!.message).toMatch(re);
    }
  });

  it('self-referencing and exponential structures end at once', async () => {
    const spec = oneFloat();
    // The state dict maps a key to itself; a tensor whose size is a list that contains itself; 2^60 "laughs" as a value.
    const selfDict = new PickleWriter().proto(2).op('}').raw(0x71, 0).str('k').raw(0x68, 0).op('s').stop().bytes();
    const cyclicSize = new PickleWriter()
      .proto(2)
      .op('}')
      .str('t')
      .global('torch._utils', '_rebuild_tensor_v2')
      .mark()
      .storageRef('FloatStorage', '0', 1)
      .int(0)
      .op(']')
      .raw(0x71, 9)
      .raw(0x68, 9)
      .op('a')
      .op(')')
      .bool(false)
      .op('}')
      .op('t')
      .op('R')
      .op('s')
      .stop()
      .bytes();
    const laughs = new PickleWriter().proto(2).op('}').str('k').str('lol');
    for (let i = 0; i < 60; i++) laughs.raw(0x71, 0).raw(0x68, 0).raw(0x86);
    for (const [pickle, re] of [
      [selfDict, /"k" is a dict of 1, not a tensor/],
      [cyclicSize, /has size a list of 1/],
      [laughs.op('s').stop().bytes(), /"k" is a tuple of 2/],
    ] as [Uint8Array, RegExp][]) {
      const e = await errorOf(TorchCheckpointReader.open(torchZip(spec, { pickle })));
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e!.message).toMatch(re);
    }
  });

  it("an unknown opcode, a pickle without STOP, and a pickle that is not torch's are refused by name", async () => {
    const spec = oneFloat();
    const cases: [Uint8Array, RegExp][] = [
      [
        torchZip(spec, { pickle: Uint8Array.of(0x80, 2, 0x69, ...Buffer.from('os\nsystem\n'), 0x2e) }),
        /unsupported pickle opcode INST/,
      ],
      [Uint8Array.of(0x80, 2, 0xfe, 0x2e), /unsupported pickle opcode unknown \(0xfe\)/],
      [torchZip(spec, { pickle: Uint8Array.of(0x80, 2, 0x4e) }), /truncated/],
      [new PickleWriter().proto(2).int(7).stop().bytes(), /not with torch.save's magic number/],
      [Uint8Array.of(0x80, 2, 0x4e), /truncated/],
    ];
    for (const [bytes, re] of cases) {
      const e = await errorOf(TorchCheckpointReader.open(bytes));
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e!.message).toMatch(re);
    }
  });

  it('truncated files (zip and legacy) are refused wherever they are cut', async () => {
    for (const file of ['weights.pt', 'weights_legacy.pt']) {
      const full = fs.readFileSync(path.join(FIXTURES, 'adm-tiny', file));
      for (const frac of [0, 0.0001, 0.001, 0.01, 0.02, 0.1, 0.5, 0.9, 0.99, 0.9999]) {
        const n = Math.floor(full.length * frac);
        const p = path.join(tmp, `cut-${file}`);
        fs.writeFileSync(p, full.subarray(0, Math.max(2, n)));
        const e = await errorOf(ADMUNet.load(p, tinyFlags));
        expect(e, `${file} cut at ${n}`).toBeInstanceOf(CheckpointError);
      }
      const e = await errorOf(readAll(new Uint8Array(full.subarray(0, full.length - 1))));
      expect(e, `${file} one byte short`).toBeInstanceOf(CheckpointError);
    }
  });

  it("flipped bytes in the fixture's central directory (a name, an offset, a CRC, a size, a signature) are caught", async () => {
    const good = new Uint8Array(fs.readFileSync(path.join(FIXTURES, 'adm-tiny', 'weights.pt')));
    const v = new DataView(good.buffer);
    const eocd = good.length - 22;
    const cd = v.getUint32(eocd + 16, true);
    // Walk to the central directory entry of weights/data/7 and to that of data.pkl.
    const at = (name: string) => {
      for (let p = cd; ;) {
        const n = v.getUint16(p + 28, true);
        if (Buffer.from(good.subarray(p + 46, p + 46 + n)).toString() === name) return p;
        p += 46 + n + v.getUint16(p + 30, true) + v.getUint16(p + 32, true);
      }
    };
    const s7 = at('weights/data/7'),
      pkl = at('weights/data.pkl');
    const flips: [string, number][] = [
      ['storage name', s7 + 46 + 13],
      ['storage local offset', s7 + 42],
      ['storage CRC', s7 + 16],
      ['storage size', s7 + 24],
      ['storage compressed size', s7 + 20],
      ['entry signature', s7],
      ['data.pkl CRC', pkl + 17],
      ['data.pkl size', pkl + 24],
      ['end record directory offset', eocd + 16],
      ['end record entry count', eocd + 10],
    ];
    for (const [what, i] of flips) {
      const bad = good.slice();
      bad[i] ^= 0x01;
      const e = await errorOf(ADMUNet.load(bad, tinyFlags));
      expect(e, what).toBeInstanceOf(CheckpointError);
    }
  });

  it("every flipped byte in a small checkpoint's central directory is an error or changes nothing", async () => {
    const { spec } = {
      spec: {
        tensors: [
          ['a', { storage: '0', shape: [2, 3] }],
          ['b', { storage: '0', shape: [3], offset: 3 }],
          ['c', { storage: '1', shape: [4] }],
        ] as [string, TensorSpec][],
        storages: new Map<string, StorageSpec>([
          ['0', { dtype: 'float32', data: rawBytes(Float32Array.from({ length: 6 }, (_, i) => i)) }],
          ['1', { dtype: 'float16', data: rawBytes(f32ToF16(Float32Array.of(1, 2, 3, 4))) }],
        ]),
      },
    };
    const good = torchZip(spec);
    const want = await readAll(good);
    const v = new DataView(good.buffer);
    const cd = Number(v.getBigUint64(good.length - 22 - 20 - 56 + 48, true));
    let caught = 0;
    for (let i = cd; i < good.length; i++) {
      const bad = good.slice();
      bad[i] ^= 0x04;
      const got = await readAll(bad).catch((e: unknown) => {
        expect(e).toBeInstanceOf(CheckpointError);
        return undefined;
      });
      if (got) expect(got).toEqual(want);
      else caught++;
    }
    expect(caught / (good.length - cd)).toBeGreaterThan(0.8);
  });

  it('errors are typed for bad arguments too', async () => {
    await expect(TorchCheckpointReader.open(42 as unknown as string)).rejects.toThrow(InputError);
    await expect(TorchCheckpointReader.open(path.join(tmp, 'does-not-exist.pt'))).rejects.toThrow(CheckpointError);
    await expect(TorchCheckpointReader.open(new Uint8Array(0))).rejects.toThrow(/not a torch.save checkpoint/);
    await expect(TorchCheckpointReader.open(torchZip(oneFloat()), { maxPickleBytes: 10 })).rejects.toThrow(
      /more than the 10 allowed/,
    );
    await expect(TorchCheckpointReader.open(torchLegacy(oneFloat()), { maxPickleBytes: 100 })).rejects.toThrow(
      /pickles exceed 100 bytes/,
    );
    const r = await TorchCheckpointReader.open(torchZip(oneFloat()));
    expect(() => r.info('nope')).toThrow(InputError);
    expect(await errorOf(r.readFloat32('nope'))).toBeInstanceOf(DiffSSLError);
  });
});

describe("release checkpoints: a .pt with each manifest's keys and shapes passes the U-Net's key check", () => {
  for (const name of fixtureJson('manifests/index.json').unet_models as PresetName[]) {
    it(name, async () => {
      const m = fixtureJson(`manifests/${name}.json`);
      const order = m.state_dict as [string, number[]][];
      // Every tensor is a contiguous view at offset 0 of one shared byte storage sized for the largest:
      // the real keys and shapes in a file of tens of MB instead of gigabytes.
      const numel = Math.max(...order.map(([, s]) => s.reduce((a, b) => a * b, 1)));
      const spec: StateSpec = {
        tensors: order.map(([k, shape]) => [k, { storage: '0', shape }]),
        storages: new Map([['0', { dtype: 'uint8', data: new Uint8Array(numel) }]]),
      };
      const w = await openWeights(torchZip(spec));
      expect(w.keys().map((k) => [k, w.shape(k)])).toEqual(buildArchitecture(resolveConfig(name)).parameters);
      await w.close();
      // Through ADMUNet.load, the key check passes and loading stops at the first read (the stand-in data is bytes, not floats).
      const e = await errorOf(ADMUNet.load(torchZip(spec), name));
      expect(e).not.toBeInstanceOf(WeightsError);
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e!.message).toMatch(/dtype uint8/);
      // A key too few is a WeightsError naming it.
      const short = await errorOf(ADMUNet.load(torchZip({ ...spec, tensors: spec.tensors.slice(1) }), name));
      expect(short).toBeInstanceOf(WeightsError);
      expect(short!.message).toContain(order[0][0]);
    });
  }
});
