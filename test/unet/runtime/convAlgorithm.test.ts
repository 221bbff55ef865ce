import { describe, expect, it } from 'vitest';
import { InputError } from '../../../src/errors';
import {
  checkConvAlgorithm,
  linearOnLeft,
  planConv,
  planTrainableConv,
  type ConvShape,
} from '../../../src/unet/runtime/convAlgorithm';

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

describe('planTrainableConv', () => {
  const conv = (n: number, size: number, cin: number, cout: number) => ({ n, h: size, w: size, cin, cout });
  it('auto: F(4×4) from 4096 pixels of the batch with 16 channels, the filter gradient too from 16×16 maps', () => {
    expect(planTrainableConv('auto', conv(32, 28, 32, 32))).toEqual({ m: 4, filterGrad: true });
    expect(planTrainableConv('fast', conv(32, 14, 64, 64))).toEqual({ m: 4, filterGrad: false });
    expect(planTrainableConv('auto', conv(16, 16, 16, 16))).toEqual({ m: 4, filterGrad: true });
    expect(planTrainableConv('auto', conv(15, 16, 16, 16))).toBeNull();
    expect(planTrainableConv('auto', conv(32, 28, 8, 32))).toBeNull();
    expect(planTrainableConv('auto', conv(1, 28, 32, 32))).toBeNull();
  });

  it('precise takes F(2×2) where auto takes Winograd; explicit algorithms apply from 8 channels; direct never', () => {
    expect(planTrainableConv('precise', conv(32, 28, 32, 32))).toEqual({ m: 2, filterGrad: true });
    expect(planTrainableConv('winograd2', conv(1, 7, 8, 8))).toEqual({ m: 2, filterGrad: false });
    expect(planTrainableConv('winograd4', conv(1, 4, 3, 8))).toBeNull();
    expect(planTrainableConv('direct', conv(32, 28, 32, 32))).toBeNull();
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
