import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/io/float16';

describe('float16 / bfloat16', () => {
  it('f16ToF32 is exact for all 65536 halves', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const got = f16ToF32(all);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      const want =
        e === 0 ? sign * m * 2 ** -24 : e === 31 ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
      if (Number.isNaN(want)) expect(Number.isNaN(got[h])).toBe(true);
      else if (got[h] !== want || Object.is(got[h], -0) !== Object.is(want, -0))
        expect.fail(`half 0x${h.toString(16)}: ${got[h]} != ${want}`);
    }
    // Every non-NaN half survives the trip back.
    const back = f32ToF16(got);
    for (let h = 0; h < 65536; h++)
      if (!Number.isNaN(got[h]) && back[h] !== h) expect.fail(`0x${h.toString(16)} -> 0x${back[h].toString(16)}`);
  });

  it('f32ToF16 rounds to nearest even on special values', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00],
      [1e10, 0x7c00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000],
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002],
      [2 ** -14, 0x0400],
      [1 / 3, 0x3555],
      [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02],
      [-2, 0xc000],
      [1e-30, 0x0000],
    ];
    const got = f32ToF16(new Float32Array(cases.map(([x]) => x)));
    cases.forEach(([x, want], i) => expect(got[i], `${x}`).toBe(want));
    const nan = f32ToF16(new Float32Array([NaN]))[0];
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
    expect(f16ToF32(new Uint16Array([0x0001]))[0]).toBe(2 ** -24);
  });

  it('bf16 conversions are exact and round to nearest even', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3f80],
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
      [1 / 3, 0x3eab],
      [65504, 0x4780],
      [2 ** -24, 0x3380],
      [1 + 2 ** -8, 0x3f80],
      [1 + 3 * 2 ** -8, 0x3f82],
      [3.4028234663852886e38, 0x7f80],
    ];
    const got = f32ToBf16(new Float32Array(cases.map(([x]) => x)));
    cases.forEach(([x, want], i) => expect(got[i], `${x}`).toBe(want));
    expect(Number.isNaN(bf16ToF32(f32ToBf16(new Float32Array([NaN])))[0])).toBe(true);
    // Read the bits directly: going through a JS number could canonicalise NaN payloads.
    const upBits = new Uint32Array(bf16ToF32(new Uint16Array(65536).map((_, i) => i)).buffer);
    for (let h = 0; h < 65536; h++) if (upBits[h] !== (h << 16) >>> 0) expect.fail(`bf16 0x${h.toString(16)}`);
    const dst = new Float32Array(4);
    expect(bf16ToF32(new Uint16Array([0x3f80, 0xc000]), dst)).toBe(dst);
    expect([...dst]).toEqual([1, -2, 0, 0]);
  });
});
