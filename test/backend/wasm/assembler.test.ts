import { describe, expect, it } from 'vitest';
import { assembleModule, FunctionBody } from '../../../src/backend/wasm/assembler';

// A function storing `a + b·k` at `addr` (k a constant given in the body), enough to check the
// encodings that the kernels rely on: multi-byte LEB128 immediates, negative constants, locals, loops.
function build(k: number): Uint8Array<ArrayBuffer> {
  const b = new FunctionBody(['i32', 'i32', 'i32']);
  const acc = b.local('i32');
  const i = b.local('i32');
  b.get(1).set(acc);
  b.i32(0).set(i);
  b.begin('loop');
  b.get(acc).get(2).op('i32.add').set(acc);
  b.get(i).i32(1).op('i32.add').tee(i).i32(k).op('i32.lt_u').br(0, true);
  b.op('end');
  b.get(0).get(acc).mem('i32.store');
  return assembleModule([{ name: 'run', body: b }], { shared: false });
}

describe('wasmAssembler', () => {
  it('assembles a module that validates, imports the memory and runs', () => {
    for (const k of [1, 63, 64, 300, 70000]) {
      const memory = new WebAssembly.Memory({ initial: 1 });
      const bytes = build(k);
      expect(WebAssembly.validate(bytes)).toBe(true);
      const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
      (exports.run as (...a: number[]) => void)(8, -5, 3);
      expect(new Int32Array(memory.buffer)[2]).toBe(-5 + 3 * k);
    }
  });

  it('encodes negative and large constants', () => {
    for (const v of [-1, -64, -65, 63, 64, 0x7fffffff, -0x80000000, 0x38000000]) {
      const b = new FunctionBody(['i32']);
      b.get(0).i32(v).mem('i32.store');
      const memory = new WebAssembly.Memory({ initial: 1 });
      const { exports } = new WebAssembly.Instance(
        new WebAssembly.Module(assembleModule([{ name: 'f', body: b }], { shared: false })),
        { env: { memory } },
      );
      (exports.f as (a: number) => void)(0);
      expect(new Int32Array(memory.buffer)[0]).toBe(v | 0);
    }
  });

  it('imports a shared memory when asked to', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 16, shared: true });
    const b = new FunctionBody(['i32']);
    b.get(0).i32(7).mem('i32.store');
    const { exports } = new WebAssembly.Instance(
      new WebAssembly.Module(assembleModule([{ name: 'f', body: b }], { shared: true, maxPages: 16 })),
      { env: { memory } },
    );
    (exports.f as (a: number) => void)(4);
    expect(new Int32Array(memory.buffer)[1]).toBe(7);
  });

  it('names an unknown instruction', () => {
    expect(() => new FunctionBody([]).op('i32.frobnicate')).toThrow(/unknown instruction i32.frobnicate/);
  });
});
