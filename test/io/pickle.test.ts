import { describe, expect, it } from 'vitest';
import { CheckpointError } from '../../src/errors';
import {
  describe as describeValue,
  PickleNeedsMoreBytes,
  PyGlobal,
  PyTuple,
  unpickle,
  type UnpickleHost,
} from '../../src/io/pickle';
import { PickleWriter } from './torchWriter';

/** Only OrderedDict is allowed: enough for CPython's own pickles of plain data. */
const host: UnpickleHost = {
  findGlobal: (m, n) => (m === 'collections' && n === 'OrderedDict' ? { call: () => new Map() } : undefined),
};
const run = (bytes: Uint8Array, h: UnpickleHost = host) => unpickle(bytes, { label: 'test', host: h }).value;
const hex = (s: string) =>
  Uint8Array.from(Buffer.from(s.replace('{x}', '78'.repeat(260)).replace('{y}', '79'.repeat(260)), 'hex'));
const errorOf = (f: () => unknown): Error => {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('did not throw');
};

// pickle.dumps(obj, protocol=p) from CPython 3 (see the comment below for obj); '{x}'/'{y}' stand for 260 'x'/'y' bytes.
// obj = {'ints': [0, 1, 255, 256, 65535, 65536, -1, -2**31, 2**31-1, 2**31, 2**62, -2**62, 2**70, -2**70],
//        'floats': [0.5, -1e300, inf], 'strs': ['', 'ascii', 'ümlaut ∑', 'x'*260], 'consts': [None, True, False],
//        'tuples': [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)], 'shared': [s, s] with s = [7, 'x'],
//        'od': OrderedDict([('b', 1), ('a', 2)]), and for p >= 3 'bytes': [b'', b'\x00\xff', b'y'*260]}
const CPYTHON: Record<number, string> = {
  2: '80027d7100285804000000696e747371015d7102284b004b014bff4d00014dffff4a000001004affffffff4a000000804affffff7f8a0500000080008a0800000000000000408a0800000000000000c08a090000000000000000408a090000000000000000c0655806000000666c6f61747371035d710428473fe000000000000047fe37e43c8800759c477ff00000000000006558040000007374727371055d71062858000000007107580500000061736369697108580b000000c3bc6d6c61757420e2889171095804010000{x}710a655806000000636f6e737473710b5d710c284e88896558060000007475706c6573710d5d710e28294b0185710f4b014b028671104b014b024b03877111284b014b024b034b0474711265580600000073686172656471135d7114285d7115284b0758010000007871166568156558020000006f64711763636f6c6c656374696f6e730a4f726465726564446963740a71182952711928580100000062711a4b01580100000061711b4b0275752e',
  3: '80037d7100285804000000696e747371015d7102284b004b014bff4d00014dffff4a000001004affffffff4a000000804affffff7f8a0500000080008a0800000000000000408a0800000000000000c08a090000000000000000408a090000000000000000c0655806000000666c6f61747371035d710428473fe000000000000047fe37e43c8800759c477ff00000000000006558040000007374727371055d71062858000000007107580500000061736369697108580b000000c3bc6d6c61757420e2889171095804010000{x}710a655806000000636f6e737473710b5d710c284e88896558060000007475706c6573710d5d710e28294b0185710f4b014b028671104b014b024b03877111284b014b024b034b0474711265580600000073686172656471135d7114285d7115284b0758010000007871166568156558020000006f64711763636f6c6c656374696f6e730a4f726465726564446963740a71182952711928580100000062711a4b01580100000061711b4b027558050000006279746573711c5d711d284300711e430200ff711f4204010000{y}712065752e',
  4: '8004955d030000000000007d94288c04696e7473945d94284b004b014bff4d00014dffff4a000001004affffffff4a000000804affffff7f8a0500000080008a0800000000000000408a0800000000000000c08a090000000000000000408a090000000000000000c0658c06666c6f617473945d9428473fe000000000000047fe37e43c8800759c477ff0000000000000658c0473747273945d94288c00948c056173636969948c0bc3bc6d6c61757420e28891945804010000{x}94658c06636f6e737473945d94284e8889658c067475706c6573945d9428294b0185944b014b0286944b014b024b038794284b014b024b034b047494658c06736861726564945d94285d94284b078c017894656815658c026f64948c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c0162944b018c0161944b02758c056279746573945d9428430094430200ff944204010000{y}9465752e',
};

describe('restricted unpickler: what CPython writes', () => {
  for (const p of [2, 3, 4, 5]) {
    it(`protocol ${p}: every value comes back, shared references stay shared`, () => {
      const bytes = hex(CPYTHON[p === 5 ? 4 : p]);
      if (p === 5) bytes[1] = 5; // protocol 5 writes the same opcodes for this object
      const v = run(bytes) as Map<string, unknown>;
      expect(v.get('ints')).toEqual([
        0,
        1,
        255,
        256,
        65535,
        65536,
        -1,
        -(2 ** 31),
        2 ** 31 - 1,
        2 ** 31,
        2n ** 62n,
        -(2n ** 62n),
        2n ** 70n,
        -(2n ** 70n),
      ]);
      expect(v.get('floats')).toEqual([0.5, -1e300, Infinity]);
      expect(v.get('strs')).toEqual(['', 'ascii', 'ümlaut ∑', 'x'.repeat(260)]);
      expect(v.get('consts')).toEqual([null, true, false]);
      const tuples = v.get('tuples') as PyTuple[];
      expect(tuples.every((t) => t instanceof PyTuple)).toBe(true);
      expect(tuples.map((t) => t.items)).toEqual([[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]]);
      const shared = v.get('shared') as unknown[][];
      expect(shared[0]).toEqual([7, 'x']);
      expect(shared[0]).toBe(shared[1]);
      expect([...(v.get('od') as Map<string, number>)]).toEqual([
        ['b', 1],
        ['a', 2],
      ]);
      if (p >= 3)
        expect(v.get('bytes')).toEqual([new Uint8Array(0), Uint8Array.of(0, 255), new Uint8Array(260).fill(0x79)]);
    });
  }
});

describe('restricted unpickler: opcodes torch and CPython do not use above', () => {
  it('BINUNICODE8, BINBYTES8, SHORT_BINSTRING, BINSTRING, LONG4, DICT, LIST, POP, POP_MARK, DUP, NEWOBJ, BUILD, LONG_BINPUT/GET', () => {
    const w = new PickleWriter().proto(4).mark();
    w.raw(0x8d, 3, 0, 0, 0, 0, 0, 0, 0, 0x61, 0x62, 0x63); // BINUNICODE8 'abc'
    w.raw(0x8e, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2); // BINBYTES8
    w.raw(0x55, 2, 0x68, 0x69); // SHORT_BINSTRING 'hi'
    w.raw(0x54, 1, 0, 0, 0, 0xe9); // BINSTRING 'é' (latin-1)
    w.raw(0x8b, 2, 0, 0, 0, 0xff, 0x7f); // LONG4 32767
    w.mark().str('k').int(1).op('d'); // DICT
    w.mark().int(1).int(2).op('l'); // LIST
    w.int(99).op('0'); // POP
    w.mark().int(5).int(6).op('1'); // POP_MARK
    w.int(3).op('2'); // DUP → 3 3
    w.global('collections', 'OrderedDict').op(')').raw(0x81); // NEWOBJ → {}
    w.op('}').op('b'); // BUILD with a dict state (attributes are dropped)
    w.raw(0x72, 0xff, 0xff, 0xff, 0xff).raw(0x6a, 0xff, 0xff, 0xff, 0xff); // LONG_BINPUT/LONG_BINGET at 2^32−1
    w.op('t').stop();
    const v = run(w.bytes()) as PyTuple;
    const [s8, b8, ss, bs, l4, d, l, d1, d2, od, od2] = v.items;
    expect([s8, b8, ss, bs, l4]).toEqual(['abc', Uint8Array.of(1, 2), 'hi', 'é', 32767]);
    expect([...(d as Map<string, number>)]).toEqual([['k', 1]]);
    expect([l, d1, d2]).toEqual([[1, 2], 3, 3]);
    expect(od).toBeInstanceOf(Map);
    expect(od2).toBe(od);
  });

  it('BINPERSID hands the id to the host; REDUCE calls an allowed global with its arguments', () => {
    const seen: unknown[] = [];
    const h: UnpickleHost = {
      findGlobal: (m, n) => (m === 'm' && n === 'f' ? { call: (args) => ({ called: args }) } : undefined),
      persistentLoad: (pid) => (seen.push(pid), 'storage!'),
    };
    const w = new PickleWriter().proto(2).global('m', 'f').mark().str('a').op(')').raw(0x51).op('t').op('R').stop();
    expect(run(w.bytes(), h)).toEqual({ called: ['a', 'storage!'] });
    expect(seen).toEqual([new PyTuple([])]);
  });

  it('reports where each pickle ends, so consecutive pickles can be read', () => {
    const a = new PickleWriter().proto(2).int(1).stop().bytes();
    const b = new PickleWriter().proto(2).str('two').stop().bytes();
    const both = new Uint8Array([...a, ...b]);
    const first = unpickle(both, { label: 't', host });
    expect(first).toEqual({ value: 1, end: a.length });
    expect(unpickle(both, { label: 't', host, start: first.end })).toEqual({ value: 'two', end: both.length });
  });

  it('a prefix that ends mid-pickle asks for more bytes when the stream may go on, and is truncated otherwise', () => {
    const p = new PickleWriter().proto(2).str('a long enough string').stop().bytes();
    const cut = p.subarray(0, 10);
    expect(() => unpickle(cut, { label: 't', host, complete: false })).toThrow(PickleNeedsMoreBytes);
    const e = errorOf(() => unpickle(cut, { label: 't', host }));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e).not.toBeInstanceOf(PickleNeedsMoreBytes);
    expect(e.message).toMatch(/truncated/);
  });
});

describe('restricted unpickler: nothing outside the allow-list runs', () => {
  const evil = (module: string, name: string, viaStack = false) => {
    const w = new PickleWriter().proto(viaStack ? 4 : 2);
    if (viaStack) w.str(module).str(name).raw(0x93);
    else w.global(module, name);
    return w.str('touch /tmp/should-not-exist').raw(0x85).op('R').stop().bytes();
  };
  for (const [m, n] of [
    ['posix', 'system'],
    ['os', 'system'],
    ['builtins', 'eval'],
    ['builtins', 'exec'],
    ['subprocess', 'Popen'],
    ['torch', 'load'],
    ['collections', 'namedtuple'],
    ['__builtin__', 'getattr'],
  ]) {
    for (const viaStack of [false, true]) {
      it(`${viaStack ? 'STACK_GLOBAL' : 'GLOBAL'} ${m}.${n} is refused, naming it`, () => {
        let called = 0;
        const h: UnpickleHost = {
          findGlobal: (mod, name) =>
            mod === 'collections' && name === 'OrderedDict' ? { call: () => (called++, new Map()) } : undefined,
        };
        const e = errorOf(() => run(evil(m, n, viaStack), h));
        expect(e).toBeInstanceOf(CheckpointError);
        expect(e.message).toContain(`refused global ${m}.${n}`);
        expect(called).toBe(0);
      });
    }
  }

  it('opcodes outside the supported set are refused by name (INST, OBJ, EXT1, PERSID, NEWOBJ_EX, EMPTY_SET, text INT, an undefined byte)', () => {
    const cases: [number[], RegExp][] = [
      [[0x69, ...Buffer.from('os\nsystem\n')], /INST/],
      [[0x28, 0x6f], /OBJ/],
      [[0x82, 1], /EXT1/],
      [[0x50, ...Buffer.from('0\n')], /PERSID/],
      [[0x92], /NEWOBJ_EX/],
      [[0x8f], /EMPTY_SET/],
      [[0x49, ...Buffer.from('1\n')], /\bINT\b/],
      [[0xfe], /unknown \(0xfe\)/],
    ];
    for (const [ops, re] of cases) {
      const e = errorOf(() => run(Uint8Array.from([0x80, 2, ...ops, 0x2e])));
      expect(e).toBeInstanceOf(CheckpointError);
      expect(e.message).toMatch(re);
      expect(e.message).toMatch(/unsupported pickle opcode/);
    }
  });

  it('REDUCE of anything but an allowed global, BUILD on anything but a dict, and a persistent id without a host are refused', () => {
    expect(() => run(new PickleWriter().proto(2).str('os.system').op(')').op('R').stop().bytes())).toThrow(
      /REDUCE on the string/,
    );
    expect(() => run(new PickleWriter().proto(2).op(']').op('}').op('b').stop().bytes())).toThrow(/BUILD on a list/);
    expect(() => run(new PickleWriter().proto(2).str('x').raw(0x51).stop().bytes())).toThrow(/persistent id/);
    expect(() =>
      run(new PickleWriter().proto(2).global('collections', 'OrderedDict').str('notatuple').op('R').stop().bytes()),
    ).toThrow(/argument tuple/);
  });
});

describe('restricted unpickler: malformed and hostile input ends quickly with a typed error', () => {
  const bad = (bytes: number[] | Uint8Array, re: RegExp) => {
    const e = errorOf(() => run(Uint8Array.from(bytes)));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(re);
  };

  it('stack underflow, a missing MARK, a memo key never stored, an odd SETITEMS, protocol 6, a missing STOP', () => {
    bad([0x80, 2, 0x2e], /underflow/);
    bad([0x80, 2, 0x4b, 1, 0x28, 0x30, 0x2e], /underflow/); // POP below the MARK
    bad([0x80, 2, 0x74, 0x2e], /no MARK/);
    bad([0x80, 2, 0x68, 7, 0x2e], /memo key 7/);
    bad([0x80, 2, 0x7d, 0x28, 0x4b, 1, 0x75, 0x2e], /odd number/);
    bad([0x80, 6, 0x4e, 0x2e], /protocol 6/);
    bad([0x80, 2, 0x4e], /truncated/);
  });

  it('lengths beyond the bytes present are refused before anything is allocated', () => {
    bad([0x80, 4, 0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x2e], /truncated/); // BINUNICODE8 of 2^52 bytes
    bad([0x80, 4, 0x8e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x2e], /out of range/); // BINBYTES8 of 2^64−1
    bad([0x80, 2, 0x58, 0xff, 0xff, 0xff, 0xff, 0x2e], /truncated/); // BINUNICODE of 4 GiB
    bad([0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0x7f, 0x2e], /LONG4 of 2147483647 bytes/);
    bad([0x80, 4, 0x95, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x4e, 0x2e], /FRAME length/); // a 2^62-byte frame
    bad([0x80, 4, 0x95, 0, 0, 0, 0, 0, 1, 0, 0, 0x4e, 0x2e], /FRAME of 1099511627776 bytes runs past the end/);
    bad([0x80, 2, 0x54, 0xff, 0xff, 0xff, 0xff, 0x2e], /negative length/);
  });

  it('pickles cannot loop: a million DUP/POP pairs without STOP, cycles and an exponential structure all finish', () => {
    const n = 1_000_000;
    const spin = new Uint8Array(2 + 1 + 2 * n);
    spin.set([0x80, 2, 0x4e]);
    for (let i = 0; i < n; i++) spin.set([0x32, 0x30], 3 + 2 * i);
    bad(spin, /truncated/);
    // A list that contains itself, and a dict that maps to itself.
    const cyc = run(new PickleWriter().proto(2).op(']').raw(0x71, 0).raw(0x68, 0).op('a').stop().bytes()) as unknown[];
    expect(cyc[0]).toBe(cyc);
    expect(describeValue(cyc)).toBe('a list of 1');
    // "Billion laughs": each level lists the previous one twice; 60 levels would be 2^60 leaves if expanded.
    const w = new PickleWriter().proto(2).str('lol');
    for (let i = 0; i < 60; i++) w.raw(0x71, 0).raw(0x68, 0).raw(0x86); // BINPUT 0, BINGET 0, TUPLE2
    const laughs = run(w.stop().bytes()) as PyTuple;
    expect(laughs.items[0]).toBe(laughs.items[1]);
  });

  it('describe() never walks into a value', () => {
    const big = new Array(10);
    big[0] = big;
    expect(describeValue(new PyTuple(big))).toBe('a tuple of 10');
    expect(describeValue(new PyGlobal('torch', 'FloatStorage', { call: () => 0 }))).toBe(
      'the global torch.FloatStorage',
    );
    expect(describeValue('x'.repeat(1000)).length).toBeLessThan(80);
  });
});
