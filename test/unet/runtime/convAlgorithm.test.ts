import { describe, expect, it } from 'vitest';
import { InputError } from '../../../src/errors';
import { checkConvAlgorithm, linearOnLeft, planConv, type ConvShape } from '../../../src/unet/runtime/convAlgorithm';

const shape = (n: number, size: number, cin: number, cout: number, streamed: boolean): ConvShape => ({
  n,
  h: size,
  w: size,
  cin,
  cout,
  streamed,
});

describe('planConv', () => {
  it('runs narrow inputs direct whatever the algorithm', () => {
    for (const algo of ['auto', 'precise', 'fast', 'winograd2', 'winograd4', 'direct'] as const)
      expect(planConv(algo, shape(1, 64, 3, 128, true))).toEqual({ kind: 'direct' });
  });

  it('auto: Winograd on wide convs from 32×32 for resident filters, F(4×4) there, direct below', () => {
    expect(planConv('auto', shape(1, 32, 128, 128, false))).toEqual({ kind: 'winograd', m: 4, side: 'right' });
    expect(planConv('auto', shape(1, 16, 128, 128, false))).toEqual({ kind: 'direct' });
    expect(planConv('auto', shape(1, 64, 64, 128, false))).toEqual({ kind: 'direct' });
  });

  it('auto: streamed filters take Winograd from 8×8 (F(2×2) below 16×16), on the left on few tiles, a GEMM on fewer pixels', () => {
    expect(planConv('auto', shape(1, 8, 1024, 1024, true))).toEqual({ kind: 'winograd', m: 2, side: 'left' });
    expect(planConv('auto', shape(1, 16, 256, 256, true))).toEqual({ kind: 'winograd', m: 4, side: 'left' });
    expect(planConv('auto', shape(1, 64, 512, 512, true))).toEqual({ kind: 'winograd', m: 4, side: 'right' });
    expect(planConv('auto', shape(1, 4, 1024, 1024, true))).toEqual({ kind: 'gemm' });
    expect(planConv('auto', shape(64, 4, 1024, 1024, true))).toEqual({ kind: 'direct' });
  });

  it('the side of a streamed filter follows the tiles of one example, not of the batch', () => {
    // A batch shares each transformed filter: on a small map, packing the tiles stays cheaper than packing the filter.
    expect(planConv('auto', shape(8, 8, 1024, 1024, true))).toEqual({ kind: 'winograd', m: 2, side: 'left' });
    expect(planConv('precise', shape(8, 16, 1024, 1024, true))).toEqual({ kind: 'winograd', m: 2, side: 'left' });
    expect(planConv('precise', shape(8, 32, 512, 512, true))).toEqual({ kind: 'winograd', m: 2, side: 'right' });
  });

  it('precise: F(2×2) wherever auto takes Winograd', () => {
    expect(planConv('precise', shape(1, 32, 256, 256, false))).toEqual({ kind: 'winograd', m: 2, side: 'right' });
    expect(planConv('precise', shape(1, 16, 256, 256, true))).toEqual({ kind: 'winograd', m: 2, side: 'left' });
    expect(planConv('precise', shape(1, 16, 128, 128, false))).toEqual({ kind: 'direct' });
  });

  it('fast is auto', () => {
    for (const s of [shape(1, 32, 256, 256, false), shape(1, 8, 256, 256, true), shape(1, 4, 1024, 1024, true)])
      expect(planConv('fast', s)).toEqual(planConv('auto', s));
  });

  it('an explicit algorithm applies however small the map', () => {
    expect(planConv('winograd4', shape(1, 4, 16, 16, false))).toEqual({ kind: 'winograd', m: 4, side: 'right' });
    expect(planConv('direct', shape(1, 64, 1024, 1024, true))).toEqual({ kind: 'direct' });
  });
});

describe('checkConvAlgorithm and linearOnLeft', () => {
  it('refuses an unknown algorithm with a typed error', () => {
    expect(checkConvAlgorithm(undefined)).toBeUndefined();
    expect(checkConvAlgorithm('fast')).toBe('fast');
    expect(checkConvAlgorithm('precise')).toBe('precise');
    expect(() => checkConvAlgorithm('winograd3' as never)).toThrow(InputError);
  });

  it('puts only streamed weights on few rows on the left', () => {
    expect(linearOnLeft(64, true)).toBe(true);
    expect(linearOnLeft(65, true)).toBe(false);
    expect(linearOnLeft(1, false)).toBe(false);
  });
});
