/**
 * How the U-Net's convs and linear layers run: {@link Params} over a {@link WeightStore}, with the
 * algorithm {@link planConv} picks for each conv, large maps in bands within a memory budget, and
 * Winograd-transformed filters kept between forwards.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { dense, matMulRowsLeft } from '../../ops/dense.js';
import { conv3x3, conv3x3Gemm, withFastInputGrad, type RowPad } from '../../ops/conv3x3.js';
import { recordingGradients } from '../../backend/engine.js';
import { sliceRows } from '../../backend/sliceRows.js';
import { trainableConv3x3, type TrainableConvPaths } from '../../ops/trainableConv.js';
import {
  checkConvAlgorithm,
  leftFilterGroups,
  linearOnLeft,
  planConv,
  planTrainableConv,
  type ConvAlgorithm,
} from './convAlgorithm.js';
import { InputError } from '../../errors.js';
import type { Params } from './params.js';
import { bandRows, mapBands, rowsOf, type Rows } from './rows.js';
import type { WeightStore } from './weightStore.js';
import {
  winogradConv3x3,
  winogradFilterGrad,
  winogradFilterGroups,
  winogradFilters,
  winogradFiltersRows,
  type WinogradTile,
} from './winograd.js';

/** The settings of {@link LayerRunner}, defaults filled in; see `ModelOptions` for what each does. */
export interface LayerOptions {
  conv: ConvAlgorithm;
  winogradCacheBytes: number;
  bandBytes: number;
}

/**
 * The layer settings of a model's options with their defaults.
 * @throws InputError for an unknown `conv` or a `bandBytes` that is not a positive number.
 */
export function layerOptions(opts: Partial<LayerOptions>): LayerOptions {
  const conv = checkConvAlgorithm(opts.conv) ?? 'auto';
  const bandBytes = opts.bandBytes ?? 64 * 1024 ** 2;
  if (!(bandBytes > 0)) throw new InputError(`bandBytes must be a positive number of bytes, got ${opts.bandBytes}`);
  return { conv, winogradCacheBytes: opts.winogradCacheBytes ?? 256 * 1024 ** 2, bandBytes };
}

/**
 * Runs a model's layers on its weights: {@link LayerRunner.params} is what the layer functions get.
 * Owns the Winograd cache (free it with {@link LayerRunner.dispose}); the weights stay the caller's.
 */
export class LayerRunner {
  /** The weights by name and this runner's conv and linear layers, for the layer functions. */
  readonly params: Params;
  private readonly winogradCache = new Map<string, { m: WinogradTile; u: tf.Tensor2D[] }>();
  private winogradCacheLeft: number;
  private readonly bandFloats: number;

  /** @param algorithm the model's current {@link ConvAlgorithm}, read at each conv (it may change between forwards). */
  constructor(
    private readonly weights: WeightStore,
    opts: Pick<LayerOptions, 'winogradCacheBytes' | 'bandBytes'>,
    private readonly algorithm: () => ConvAlgorithm,
  ) {
    this.winogradCacheLeft = opts.winogradCacheBytes;
    this.bandFloats = opts.bandBytes / 4;
    this.params = Object.assign((name: string) => weights.get(name), {
      conv3x3: (x: tf.Tensor4D, prefix: string, stride: 1 | 2 = 1) => {
        if (stride === 1) return this.conv3x3Rows(rowsOf(x), prefix);
        const [w, b] = [weights.get(`${prefix}.weight`), weights.get(`${prefix}.bias`)];
        return weights.trainable
          ? trainableConv3x3(x, w as tf.Tensor4D, b as tf.Tensor1D, stride)
          : conv3x3(x, w, b, stride);
      },
      conv3x3Rows: (x: Rows, prefix: string, epilogue?: (y: tf.Tensor4D, top: number) => tf.Tensor4D) =>
        this.conv3x3Rows(x, prefix, epilogue),
      linear: (x: tf.Tensor2D, prefix: string) => this.linear(x, prefix),
      statRows: ([, h, w, c]: readonly number[]) => bandRows(h, 3 * w * c, this.bandFloats),
    });
  }

  /** Whether convs with `channels` in and out on maps of `[N, H, W]` run in bands, which take one example at a time. */
  banded([, h, w]: readonly number[], channels: number): boolean {
    return this.rowsPerBand(h, w, channels, channels) < h;
  }

  /** Frees the cached Winograd filters. */
  dispose(): void {
    this.winogradCache.forEach(({ u }) => tf.dispose(u));
    this.winogradCache.clear();
  }

  private linear(x: tf.Tensor2D, prefix: string): tf.Tensor2D {
    return tf.tidy(() => {
      const name = `${prefix}.weight`;
      const b = this.weights.get(`${prefix}.bias`);
      if (linearOnLeft(x.shape[0], !this.weights.isResident(name)))
        return tf.add(matMulRowsLeft(x, this.weights.getRows(name)), b) as tf.Tensor2D;
      const [cin, cout] = this.weights.shapeOf(name).slice(-2);
      return dense(x, tf.reshape(this.weights.get(name), [cin, cout]) as tf.Tensor2D, b as tf.Tensor1D);
    });
  }

  // Output rows per band of a conv on a `h × w` map: its input band, the activation made on the way
  // (about 3 band-sized copies) and, for Winograd F(2×2, 3×3), 4× the input and twice 4× the output.
  private rowsPerBand(h: number, w: number, cin: number, cout: number): number {
    return bandRows(h, w * (4 * cin + 4 * (cin + 2 * cout)), this.bandFloats);
  }

  // Bands of output rows, each convolved from its input rows plus one neighbour row on either side
  // (zero rows only at the map's edges), with the filter fetched and transformed once for all.
  private conv3x3Rows(x: Rows, prefix: string, epilogue?: (y: tf.Tensor4D, top: number) => tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w, cin] = x.shape;
      const conv = this.convFor(prefix, x.shape);
      const rows = n === 1 ? this.rowsPerBand(h, w, cin, this.weights.shapeOf(`${prefix}.weight`)[3]) : h;
      return mapBands(h, rows, (top, count) =>
        tf.tidy(() => {
          const first = Math.max(0, top - 1);
          const last = Math.min(h, top + count + 1);
          const y = conv(x.get(first, last - first), [1 - (top - first), 1 - (last - top - count)]);
          return epilogue ? epilogue(y, top) : y;
        }),
      );
    });
  }

  // A stride-1 3×3 conv for maps of `shape` (rows padded by `rowPad`, columns by 1), its algorithm
  // chosen for the whole map and its filter fetched (and transformed) now, in the caller's scope.
  private convFor(prefix: string, [n, h, w]: readonly number[]): (x: tf.Tensor4D, rowPad?: RowPad) => tf.Tensor4D {
    const name = `${prefix}.weight`;
    const b = this.weights.get(`${prefix}.bias`);
    const [, , cin, cout] = this.weights.shapeOf(name);
    if (this.weights.trainable) {
      // Weights change at every step: nothing transformed is kept, and the filter gets a gradient.
      const filter = this.weights.get(name) as tf.Tensor4D;
      const plan = planTrainableConv(this.algorithm(), { n, h, w, cin, cout });
      const paths: TrainableConvPaths = {};
      if (plan) {
        const m = plan.m;
        paths.conv = (v, f, bias, rowPad) => tf.tidy(() => winogradConv3x3(v, winogradFilters(f, m), bias, m, rowPad));
        if (plan.filterGrad) paths.filterGrad = (v, dy, rowPad) => winogradFilterGrad(v, dy, m, rowPad);
      }
      return (x, rowPad) => trainableConv3x3(x, filter, b as tf.Tensor1D, 1, rowPad, paths);
    }
    const streamed = !this.weights.isResident(name);
    const plan = planConv(this.algorithm(), { n, h, w, cin, cout, streamed });
    if (plan.kind === 'gemm') {
      const wT = this.weights.getRows(name);
      return (x, rowPad) => withFastInputGrad(x, wT, (v) => conv3x3Gemm(v, wT, b, rowPad), rowPad);
    }
    if (plan.kind === 'winograd' && plan.side === 'left') {
      const groups = leftFilterGroups(plan.m, cin, cout);
      if (groups > 1 && !recordingGradients()) {
        // Each group's rows are uploaded and transformed on their own, anew for each call (band):
        // maps small enough for the left side come in one band.
        const ug = winogradFilterGroups(
          (first, count) => this.weights.getRows(name, [first, count]),
          cout,
          plan.m,
          groups,
        );
        return (x, rowPad) => winogradConv3x3(x, ug, b, plan.m, rowPad, 'left');
      }
      const wT = this.weights.getRows(name);
      const ut =
        groups > 1
          ? winogradFilterGroups((first, count) => sliceRows(wT, first, count), cout, plan.m, groups)
          : winogradFiltersRows(wT, plan.m);
      return (x, rowPad) => withFastInputGrad(x, wT, (v) => winogradConv3x3(v, ut, b, plan.m, rowPad, 'left'), rowPad);
    }
    const filter = this.weights.get(name) as tf.Tensor4D;
    if (plan.kind === 'direct')
      return (x, rowPad) => withFastInputGrad(x, filter, (v) => conv3x3(v, filter, b, 1, rowPad), rowPad);
    const u = this.winogradFilters(prefix, filter, plan.m);
    return (x, rowPad) => withFastInputGrad(x, filter, (v) => winogradConv3x3(v, u, b, plan.m, rowPad), rowPad);
  }

  // Transformed filters: kept between forwards for resident weights within the cache budget,
  // otherwise made in the caller's scope and freed with it.
  private winogradFilters(prefix: string, w: tf.Tensor4D, m: WinogradTile): tf.Tensor2D[] {
    const cached = this.winogradCache.get(prefix);
    if (cached?.m === m) return cached.u;
    const u = winogradFilters(w, m);
    const bytesOf = (ts: tf.Tensor[]) => ts.reduce((s, t) => s + 4 * t.size, 0);
    const freed = cached ? bytesOf(cached.u) : 0;
    if (!this.weights.isResident(`${prefix}.weight`) || bytesOf(u) > this.winogradCacheLeft + freed) return u;
    if (cached) tf.dispose(cached.u);
    this.winogradCache.set(prefix, { m, u: u.map((t) => tf.keep(t)) });
    this.winogradCacheLeft += freed - bytesOf(u);
    return u;
  }
}
