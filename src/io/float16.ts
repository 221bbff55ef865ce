/**
 * 16-bit float conversions (IEEE half and bfloat16 ↔ float32), bit-exact as PyTorch's: the
 * checkpoint readers decode with them and the U-Net's weight store keeps float16 copies with them.
 * @module
 */
import { InputError } from '../errors.js';

/** IEEE half to float32, exact for every input including subnormals, infinities and NaN payloads. */
export function f16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (dst.length < src.length)
    throw new InputError(`f16ToF32: destination holds ${dst.length} values, source ${src.length}`);
  const table = (F16_TABLE ??= buildF16Table());
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = table[src[i]];
  return dst;
}

/** bfloat16 to float32: bfloat16 is the top half of a float32, so this is exact by construction. */
export function bf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (dst.length < src.length)
    throw new InputError(`bf16ToF32: destination holds ${dst.length} values, source ${src.length}`);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return dst;
}

/** float32 to IEEE half, round-to-nearest-even as PyTorch does; overflow goes to ±inf, NaN stays NaN. */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const exp = ((x >>> 23) & 0xff) - 112; // rebiased for half
    const mant = x & 0x7fffff;
    if (exp === 143) out[i] = sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
    else if (exp >= 0x1f) out[i] = sign | 0x7c00;
    // A rounding carry out of the mantissa correctly bumps the exponent (or reaches inf / the smallest normal).
    else if (exp > 0) out[i] = sign | roundShift((exp << 23) | mant, 13);
    else out[i] = sign | (exp < -10 ? 0 : roundShift(mant | 0x800000, 14 - exp));
  }
  return out;
}

/** `m >>> shift`, rounded to nearest with ties to even. */
function roundShift(m: number, shift: number): number {
  const h = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rem > half || (rem === half && h & 1) ? h + 1 : h;
}

/** float32 to bfloat16, round-to-nearest-even; NaN is kept quiet rather than rounded into infinity. */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

let F16_TABLE: Uint32Array | undefined;

function buildF16Table(): Uint32Array {
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    let exp = (h >>> 10) & 0x1f;
    let mant = h & 0x3ff;
    if (exp === 0x1f) t[h] = sign | 0x7f800000 | (mant << 13);
    else if (exp !== 0) t[h] = sign | ((exp + 112) << 23) | (mant << 13);
    else if (mant === 0) t[h] = sign;
    else {
      // Subnormal half: renormalise, since the same value is a normal float32.
      exp = 113;
      while (!(mant & 0x400)) ((mant <<= 1), exp--);
      t[h] = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  }
  return t;
}
