/**
 * A small WebAssembly binary writer: just enough of the format to build the few SIMD kernels of
 * {@link ./simdKernels} at run time (a module that imports one memory and exports functions), so
 * the package ships no prebuilt binary and needs no toolchain.
 * @module
 */

/** A value type of a parameter or local. */
export type ValType = 'i32' | 'f32' | 'v128';

const VALTYPE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, v128: 0x7b };

// Instructions without immediates, by their text-format names.
const PLAIN: Record<string, number> = {
  end: 0x0b,
  else: 0x05,
  select: 0x1b,
  'i32.eq': 0x46,
  'i32.lt_u': 0x49,
  'i32.gt_u': 0x4b,
  'i32.add': 0x6a,
  'i32.sub': 0x6b,
  'i32.mul': 0x6c,
  'i32.and': 0x71,
};
const SIMD: Record<string, number> = {
  'i32x4.eq': 0x37,
  'v128.and': 0x4e,
  'v128.or': 0x50,
  'v128.bitselect': 0x52,
  'i32x4.extend_low_i16x8_u': 0xa9,
  'i32x4.extend_high_i16x8_u': 0xaa,
  'i32x4.shl': 0xab,
  'i32x4.add': 0xae,
  'f32x4.add': 0xe4,
  'f32x4.sub': 0xe5,
  'f32x4.mul': 0xe6,
};
// Memory access: opcode and natural alignment (log2 bytes).
const MEMORY: Record<string, [number[], number]> = {
  'i32.store': [[0x36], 2],
  'v128.load': [[0xfd, 0x00], 4],
  'v128.store': [[0xfd, 0x0b], 4],
};

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

function name(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...uleb(bytes.length), ...bytes];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** The code of one function, written instruction by instruction in text-format names. */
export class FunctionBody {
  private readonly code: number[] = [];
  private readonly locals: ValType[] = [];

  constructor(readonly params: readonly ValType[]) {}

  /** A new local of `type`; its index. */
  local(type: ValType): number {
    this.locals.push(type);
    return this.params.length + this.locals.length - 1;
  }

  /** Appends instructions without immediates (`i32.add`, `f32x4.mul`, `end`, …). */
  op(...names: string[]): this {
    for (const n of names) {
      if (n in PLAIN) this.code.push(PLAIN[n]);
      else if (n in SIMD) this.code.push(0xfd, ...uleb(SIMD[n]));
      else throw new Error(`wasmAssembler: unknown instruction ${n}`);
    }
    return this;
  }

  get(index: number): this {
    this.code.push(0x20, ...uleb(index));
    return this;
  }

  set(index: number): this {
    this.code.push(0x21, ...uleb(index));
    return this;
  }

  tee(index: number): this {
    this.code.push(0x22, ...uleb(index));
    return this;
  }

  i32(value: number): this {
    this.code.push(0x41, ...sleb(value | 0));
    return this;
  }

  /** `v128.const` of four i32 lanes. */
  v128i32(lanes: [number, number, number, number]): this {
    const bytes = new Uint8Array(new Int32Array(lanes).buffer);
    this.code.push(0xfd, 0x0c, ...bytes);
    return this;
  }

  /** `v128.const` of one float32 in all four lanes. */
  v128f32(value: number): this {
    const bytes = new Uint8Array(new Float32Array([value, value, value, value]).buffer);
    this.code.push(0xfd, 0x0c, ...bytes);
    return this;
  }

  /** `i8x16.shuffle` of the two vectors on the stack by four float32 lanes (0–3 the first's, 4–7 the second's). */
  shuffle32(lanes: [number, number, number, number]): this {
    this.code.push(0xfd, 0x0d, ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]));
    return this;
  }

  /** A load or store with a constant byte offset. */
  mem(op: keyof typeof MEMORY, offset = 0): this {
    const [code, align] = MEMORY[op];
    this.code.push(...code, ...uleb(align), ...uleb(offset));
    return this;
  }

  /** `block` / `loop` / `if` without results; close it with `op('end')`. */
  begin(kind: 'block' | 'loop' | 'if'): this {
    this.code.push({ block: 0x02, loop: 0x03, if: 0x04 }[kind], 0x40);
    return this;
  }

  /** `br` (or `br_if`) to the enclosing block `depth` levels out. */
  br(depth: number, conditional = false): this {
    this.code.push(conditional ? 0x0d : 0x0c, ...uleb(depth));
    return this;
  }

  /** The body as it goes into the code section. */
  encode(): number[] {
    const runs: number[][] = [];
    for (const t of this.locals) {
      const last = runs[runs.length - 1];
      if (last && last[1] === VALTYPE[t]) last[0]++;
      else runs.push([1, VALTYPE[t]]);
    }
    const body = [...vector(runs.map(([count, type]) => [...uleb(count), type])), ...this.code, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

/** One exported function without results. */
export interface ExportedFunction {
  name: string;
  body: FunctionBody;
}

/**
 * A module that imports `env.memory` and exports `functions`. A shared memory must be imported as
 * shared with a maximum no smaller than the memory's own (emscripten's pthread builds use 4 GiB).
 */
export function assembleModule(
  functions: ExportedFunction[],
  memory: { shared: boolean; maxPages?: number },
): Uint8Array<ArrayBuffer> {
  const types = vector(functions.map((f) => [0x60, ...vector(f.body.params.map((p) => [VALTYPE[p]])), 0x00]));
  const limits = memory.shared ? [0x03, 0x00, ...uleb(memory.maxPages ?? 65536)] : [0x00, 0x00];
  const imports = vector([[...name('env'), ...name('memory'), 0x02, ...limits]]);
  const funcs = vector(functions.map((_, i) => uleb(i)));
  const exports = vector(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]));
  const code = vector(functions.map((f) => f.body.encode()));
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, types),
    ...section(2, imports),
    ...section(3, funcs),
    ...section(7, exports),
    ...section(10, code),
  ]);
}
