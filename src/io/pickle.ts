/**
 * A restricted unpickler: the binary pickle opcodes `torch.save` emits for a state dict, and
 * nothing that can run code. Globals resolve only through the caller's allow-list; everything
 * else (including `os.system`, `posix.system`, `builtins.eval`) is refused with a
 * {@link CheckpointError} naming it.
 *
 * Pickle has no jumps, so every opcode consumes at least one byte and the machine stops after at
 * most `bytes.length` steps; stack and memo are capped by the same count, strings and integers by
 * the bytes present, and no value is ever deep-copied or traversed, so hostile input cannot loop,
 * recurse or make it allocate more than a small multiple of its own length.
 * @module
 */
import { CheckpointError } from '../errors.js';
import { copyBytes } from './byteRange.js';

/** A Python tuple (kept apart from lists, which are plain arrays). */
export class PyTuple {
  constructor(readonly items: readonly unknown[]) {}
}

/** What an allowed global does when the pickle calls it (REDUCE) or instantiates it (NEWOBJ). */
export interface PyCallable {
  call(args: readonly unknown[]): unknown;
}

/** A global the host allowed, as it sits on the stack until it is called. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly target: PyCallable,
  ) {}
}

/** The caller's side of unpickling: which globals exist, and what persistent ids stand for. */
export interface UnpickleHost {
  /** The callable a `module.name` global stands for, or undefined to refuse it. */
  findGlobal(module: string, name: string): PyCallable | undefined;
  /** Resolves a persistent id (torch's storage references); absent = persistent ids are refused. */
  persistentLoad?(pid: unknown): unknown;
}

/** Options of {@link unpickle}. */
export interface UnpickleOptions {
  /** Named in error messages (the file, and the entry or position inside it). */
  label: string;
  host: UnpickleHost;
  /** Offset of the pickle's first opcode in `bytes` (default 0). */
  start?: number;
  /**
   * False when `bytes` may be a prefix of a longer stream: running off its end then throws
   * {@link PickleNeedsMoreBytes} instead of a truncation error, so the caller can read more.
   */
  complete?: boolean;
}

/** Thrown (only with `complete: false`) when the pickle continues past the bytes given. */
export class PickleNeedsMoreBytes extends CheckpointError {}

/** The unpickled value and the offset just past its STOP opcode. */
export interface UnpickleResult {
  value: unknown;
  end: number;
}

/** Longest module or attribute name a GLOBAL may spell (Python's are far shorter). */
const MAX_GLOBAL_NAME = 1024;
/** Integers wider than this (LONG1/LONG4) are no state dict's. */
const MAX_LONG_BYTES = 256;

const OPCODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries({
    I: 'INT',
    J: 'BININT',
    K: 'BININT1',
    M: 'BININT2',
    L: 'LONG',
    '\x8a': 'LONG1',
    '\x8b': 'LONG4',
    S: 'STRING',
    T: 'BINSTRING',
    U: 'SHORT_BINSTRING',
    B: 'BINBYTES',
    C: 'SHORT_BINBYTES',
    '\x8e': 'BINBYTES8',
    '\x96': 'BYTEARRAY8',
    '\x97': 'NEXT_BUFFER',
    '\x98': 'READONLY_BUFFER',
    N: 'NONE',
    '\x88': 'NEWTRUE',
    '\x89': 'NEWFALSE',
    V: 'UNICODE',
    '\x8c': 'SHORT_BINUNICODE',
    X: 'BINUNICODE',
    '\x8d': 'BINUNICODE8',
    F: 'FLOAT',
    G: 'BINFLOAT',
    ']': 'EMPTY_LIST',
    a: 'APPEND',
    e: 'APPENDS',
    l: 'LIST',
    ')': 'EMPTY_TUPLE',
    t: 'TUPLE',
    '\x85': 'TUPLE1',
    '\x86': 'TUPLE2',
    '\x87': 'TUPLE3',
    '}': 'EMPTY_DICT',
    d: 'DICT',
    s: 'SETITEM',
    u: 'SETITEMS',
    '\x8f': 'EMPTY_SET',
    '\x90': 'ADDITEMS',
    '\x91': 'FROZENSET',
    '0': 'POP',
    '2': 'DUP',
    '(': 'MARK',
    '1': 'POP_MARK',
    g: 'GET',
    h: 'BINGET',
    j: 'LONG_BINGET',
    p: 'PUT',
    q: 'BINPUT',
    r: 'LONG_BINPUT',
    '\x94': 'MEMOIZE',
    '\x82': 'EXT1',
    '\x83': 'EXT2',
    '\x84': 'EXT4',
    c: 'GLOBAL',
    '\x93': 'STACK_GLOBAL',
    R: 'REDUCE',
    b: 'BUILD',
    i: 'INST',
    o: 'OBJ',
    '\x81': 'NEWOBJ',
    '\x92': 'NEWOBJ_EX',
    '\x80': 'PROTO',
    '.': 'STOP',
    '\x95': 'FRAME',
    P: 'PERSID',
    Q: 'BINPERSID',
  }).map(([k, v]) => [k.charCodeAt(0), v]),
);

/**
 * Runs one pickle (up to its STOP opcode) on a small, safe machine.
 * @throws CheckpointError for a refused global, an unsupported opcode, malformed or truncated input.
 */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): UnpickleResult {
  const { label, host } = opts;
  const complete = opts.complete ?? true;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8');
  let pos = opts.start ?? 0;
  let opStart = pos;
  // Every opcode is at least one byte: these caps are what hostile input is held to.
  const maxOps = Math.max(0, bytes.length - pos);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const fail = (why: string) => new CheckpointError(`${label}: ${why} (pickle byte ${opStart})`);
  const need = (n: number) => {
    if (n < 0 || !Number.isSafeInteger(n)) throw fail(`invalid length ${n}`);
    if (pos + n > bytes.length) {
      if (!complete) throw new PickleNeedsMoreBytes(`${label}: pickle continues past byte ${bytes.length}`);
      throw fail(`truncated: ${n} more bytes needed, ${bytes.length - pos} present`);
    }
  };
  const u8 = () => (need(1), bytes[pos++]);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u64 = (what: string) => {
    need(8);
    pos += 8;
    const v = view.getBigUint64(pos - 8, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`${what} length ${v} is out of range`);
    return Number(v);
  };
  const take = (n: number) => (need(n), (pos += n), bytes.subarray(pos - n, pos));
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0 || end - pos > MAX_GLOBAL_NAME) {
      if (end < 0 && !complete) throw new PickleNeedsMoreBytes(`${label}: pickle continues past byte ${bytes.length}`);
      throw fail('GLOBAL without a newline-terminated name');
    }
    const s = latin1(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const push = (v: unknown) => {
    if (stack.length >= maxOps) throw fail('stack limit exceeded');
    stack.push(v);
  };
  const pop = () => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) throw fail('stack underflow');
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) throw fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const m = marks.pop();
    if (m === undefined) throw fail('no MARK to pop to');
    return stack.splice(m);
  };
  const put = (i: number) => {
    if (memo.size >= maxOps && !memo.has(i)) throw fail('memo limit exceeded');
    memo.set(i, top());
  };
  const get = (i: number) => {
    if (!memo.has(i)) throw fail(`memo key ${i} was never stored`);
    push(memo.get(i));
  };
  const asMap = (v: unknown, op: string) => {
    if (!(v instanceof Map)) throw fail(`${op} on ${describe(v)}, not a dict`);
    return v;
  };
  const asList = (v: unknown, op: string) => {
    if (!Array.isArray(v)) throw fail(`${op} on ${describe(v)}, not a list`);
    return v;
  };
  const setItems = (d: Map<unknown, unknown>, items: unknown[]) => {
    if (items.length % 2) throw fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) d.set(hashable(items[i]), items[i + 1]);
  };
  const hashable = (k: unknown) => {
    if (Array.isArray(k) || k instanceof Map) throw fail(`unhashable dict key ${describe(k)}`);
    return k;
  };
  const global = (module: string, name: string) => {
    const target = host.findGlobal(module, name);
    if (!target)
      throw fail(
        `refused global ${module}.${name}: only state dicts of tensors can be loaded, and this global is not on the allow-list`,
      );
    push(new PyGlobal(module, name, target));
  };
  const call = (fn: unknown, args: unknown, op: string) => {
    if (!(fn instanceof PyGlobal)) throw fail(`${op} on ${describe(fn)}, which is not an allowed global`);
    if (!(args instanceof PyTuple))
      throw fail(`${op} of ${fn.module}.${fn.name} with ${describe(args)} instead of an argument tuple`);
    try {
      return fn.target.call(args.items);
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      throw fail(`${fn.module}.${fn.name}: ${(e as Error).message}`);
    }
  };

  for (let ops = 0; ; ops++) {
    if (ops > maxOps) throw fail('instruction limit exceeded');
    opStart = pos;
    const op = u8();
    switch (op) {
      case 0x80: {
        // PROTO
        const v = u8();
        if (v > 5) throw fail(`pickle protocol ${v} is newer than 5`);
        break;
      }
      case 0x95: {
        // FRAME: a length hint only
        const n = u64('FRAME');
        if (pos + n > bytes.length && complete) throw fail(`FRAME of ${n} bytes runs past the end`);
        break;
      }
      case 0x2e: {
        // STOP
        const value = pop();
        return { value, end: pos };
      }
      case 0x28: // MARK
        if (marks.length >= maxOps) throw fail('mark limit exceeded');
        marks.push(stack.length);
        break;
      case 0x30:
        pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        push(top());
        break; // DUP
      case 0x4e:
        push(null);
        break; // NONE
      case 0x88:
        push(true);
        break; // NEWTRUE
      case 0x89:
        push(false);
        break; // NEWFALSE
      case 0x4a:
        push(i32());
        break; // BININT
      case 0x4b:
        push(u8());
        break; // BININT1
      case 0x4d:
        push(u16());
        break; // BININT2
      case 0x8a:
        push(long(take(u8())));
        break; // LONG1
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0 || n > MAX_LONG_BYTES) throw fail(`LONG4 of ${n} bytes`);
        push(long(take(n)));
        break;
      }
      case 0x47:
        push((need(8), (pos += 8), view.getFloat64(pos - 8, false)));
        break; // BINFLOAT (big-endian)
      case 0x58:
        push(utf8.decode(take(u32())));
        break; // BINUNICODE
      case 0x8c:
        push(utf8.decode(take(u8())));
        break; // SHORT_BINUNICODE
      case 0x8d:
        push(utf8.decode(take(u64('BINUNICODE8'))));
        break; // BINUNICODE8
      case 0x54: {
        // BINSTRING (signed length)
        const n = i32();
        if (n < 0) throw fail(`BINSTRING of negative length ${n}`);
        push(latin1(take(n)));
        break;
      }
      case 0x55:
        push(latin1(take(u8())));
        break; // SHORT_BINSTRING
      case 0x42:
        push(copyBytes(take(u32())));
        break; // BINBYTES
      case 0x43:
        push(copyBytes(take(u8())));
        break; // SHORT_BINBYTES
      case 0x8e:
        push(copyBytes(take(u64('BINBYTES8'))));
        break; // BINBYTES8
      case 0x5d:
        push([]);
        break; // EMPTY_LIST
      case 0x29:
        push(new PyTuple([]));
        break; // EMPTY_TUPLE
      case 0x7d:
        push(new Map());
        break; // EMPTY_DICT
      case 0x74:
        push(new PyTuple(popMark()));
        break; // TUPLE
      case 0x85:
        push(new PyTuple([pop()]));
        break; // TUPLE1
      case 0x86: {
        const b = pop(),
          a = pop();
        push(new PyTuple([a, b]));
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop(),
          b = pop(),
          a = pop();
        push(new PyTuple([a, b, c]));
        break;
      } // TUPLE3
      case 0x6c:
        push(popMark());
        break; // LIST
      case 0x64: {
        const d = new Map();
        setItems(d, popMark());
        push(d);
        break;
      } // DICT
      case 0x61: {
        const v = pop();
        asList(top(), 'APPEND').push(v);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        const list = asList(top(), 'APPENDS');
        for (const v of items) list.push(v);
        break;
      } // APPENDS
      case 0x73: {
        const v = pop(),
          k = pop();
        asMap(top(), 'SETITEM').set(hashable(k), v);
        break;
      } // SETITEM
      case 0x75: {
        const items = popMark();
        setItems(asMap(top(), 'SETITEMS'), items);
        break;
      } // SETITEMS
      case 0x71:
        put(u8());
        break; // BINPUT
      case 0x72:
        put(u32());
        break; // LONG_BINPUT
      case 0x94:
        put(memo.size);
        break; // MEMOIZE
      case 0x68:
        get(u8());
        break; // BINGET
      case 0x6a:
        get(u32());
        break; // LONG_BINGET
      case 0x63: {
        const module = line();
        global(module, line());
        break;
      } // GLOBAL
      case 0x93: {
        // STACK_GLOBAL
        const name = pop(),
          module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw fail('STACK_GLOBAL needs two strings');
        global(module, name);
        break;
      }
      case 0x52: {
        const args = pop(),
          fn = pop();
        push(call(fn, args, 'REDUCE'));
        break;
      } // REDUCE
      case 0x81: {
        const args = pop(),
          cls = pop();
        push(call(cls, args, 'NEWOBJ'));
        break;
      } // NEWOBJ
      case 0x62: {
        // BUILD: only a dict's attributes (OrderedDict._metadata), which are not kept
        const state = pop();
        const obj = top();
        if (!(obj instanceof Map)) throw fail(`BUILD on ${describe(obj)} is not supported`);
        if (!(state === null || state instanceof Map || state instanceof PyTuple))
          throw fail(`BUILD with ${describe(state)} as state`);
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!host.persistentLoad) throw fail('persistent id in a pickle that may not have one');
        try {
          push(host.persistentLoad(pid));
        } catch (e) {
          if (e instanceof CheckpointError) throw e;
          throw fail(`persistent id: ${(e as Error).message}`);
        }
        break;
      }
      default: {
        const name = OPCODE_NAMES[op];
        throw fail(
          `unsupported pickle opcode ${name ?? 'unknown'} (0x${op.toString(16).padStart(2, '0')}): only the opcodes torch.save uses for state dicts are read`,
        );
      }
    }
  }

  /** Little-endian two's complement, as LONG1/LONG4 store it. */
  function long(b: Uint8Array): number | bigint {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
}

/** A short description of a value for error messages; never traverses (values may be cyclic or huge). */
export function describe(v: unknown): string {
  if (v === null) return 'None';
  switch (typeof v) {
    case 'boolean':
      return v ? 'True' : 'False';
    case 'number':
    case 'bigint':
      return `the number ${v}`;
    case 'string':
      return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
    default:
      break;
  }
  if (v instanceof Uint8Array) return `bytes of length ${v.length}`;
  if (v instanceof PyTuple) return `a tuple of ${v.items.length}`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v instanceof Map) return `a dict of ${v.size}`;
  if (v instanceof PyGlobal) return `the global ${v.module}.${v.name}`;
  return `a ${(v as object)?.constructor?.name ?? typeof v}`;
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}
