/**
 * Which way each conv and linear layer of the U-Net is computed: the tuning thresholds in one place.
 * Each was measured on wasm, where they matter; the measurements are in docs/tuning.md.
 * @module
 */
import { InputError } from '../../errors.js';
import type { FilterSide, WinogradTile } from './winograd.js';

/**
 * How 3×3 convolutions are computed.
 * - `auto` (default): per layer, Winograd where a conv has at least 128×128 channels and a map of
 *   32×32 or more, or, for streamed filters, 8×8 or more: F(4×4,3×3) on maps of 16×16 or more,
 *   F(2×2,3×3) on smaller ones. Elsewhere `tf.conv2d`, or for streamed filters on few pixels a GEMM
 *   with the filter on the left. Streamed filters on maps of few tiles also go on the left of
 *   Winograd's matMuls: both spare XNNPACK from repacking the filter on every forward. Errors are
 *   about 1e-5 relative to the output's scale, inside the `1e-4 + 1e-4·|ref|` parity tolerance on
 *   every reference fixture and on the whole 256×256 model (docs/performance.md#conv-algorithms).
 * - `precise`: as `auto` with F(2×2) wherever it uses Winograd: about 1.3× slower on the 256×256
 *   model, with errors at the level of `direct` (about 1e-6 relative to the output's scale).
 * - `fast`: the same as `auto` (the name of this choice before it became the default).
 * - `direct`: `tf.conv2d` everywhere. `winograd2`, `winograd4`: that algorithm for every stride-1
 *   conv, however small its map (for measurements and tests).
 *
 * While weights are trained (`trainDiffusion`, `fineTune`) `auto` and `fast` run F(4×4) on convs
 * of at least 4096 pixels of the batch and 16 channels (its filter gradient too on maps of 16×16 or
 * more), `precise` F(2×2) there, `direct` `tf.conv2d` throughout.
 *
 * Stride-2 convs and convs with fewer than 8 input channels are always direct. The measurements
 * behind these choices are in docs/tuning.md.
 * @category Backbone
 */
export type ConvAlgorithm = 'direct' | 'winograd2' | 'winograd4' | 'auto' | 'precise' | 'fast';

const ALGORITHMS: readonly ConvAlgorithm[] = ['direct', 'winograd2', 'winograd4', 'auto', 'precise', 'fast'];

// Convs with fewer input channels (the image's own) always run direct: too narrow for the other paths to pay.
const MIN_CHANNELS = 8;

// Winograd shares each transformed filter over a map's tiles; it pays from this many channel pairs (Cin·Cout) on (docs/tuning.md#winograd).
const WINOGRAD_MIN_CHANNEL_PAIRS = 128 * 128;

// Pixels (H·W) from which Winograd pays for a resident filter, whose transform is cached (docs/tuning.md#winograd).
const WINOGRAD_MIN_PIXELS = 32 * 32;

// Pixels from which Winograd pays for a streamed filter, repacked every forward whatever the algorithm (docs/tuning.md#winograd).
const WINOGRAD_MIN_PIXELS_STREAMED = 8 * 8;

// Pixels from which `auto` takes F(4×4), whose larger transformed filters cost more than they save on smaller maps (docs/tuning.md#winograd4).
const WINOGRAD4_MIN_PIXELS = 16 * 16;

// Streamed filters applied to at most this many pixels (N·H·W) run as a GEMM that does not repack the filter (docs/tuning.md#gemm).
const GEMM_MAX_PIXELS = 512;

// Streamed filters on maps of at most this many tiles per example go on the left of their matMuls, whatever the batch (docs/tuning.md#left-tiles).
const LEFT_MAX_TILES = 64;

// Transformed filters of a conv with its filter on the left are made at most this many bytes at a time, in groups of output channels (docs/tuning.md#left-groups).
const LEFT_GROUP_BYTES = 64 * 1024 ** 2;

// Rows up to which a linear layer with a streamed weight multiplies it from the left (docs/tuning.md#linear).
const LINEAR_LEFT_MAX_ROWS = 64;

// Pixels (N·H·W) from which a trained conv (forward and input gradient) runs as Winograd: its filter is transformed anew at every call (docs/tuning.md#training-winograd).
const TRAIN_WINOGRAD_MIN_PIXELS = 4096;

// Input and output channels from which a trained conv may run as Winograd (docs/tuning.md#training-winograd).
const TRAIN_WINOGRAD_MIN_CHANNELS = 16;

// Pixels per example (H·W) from which a trained Winograd conv takes its filter gradient by Winograd too: XNNPACK packs (α/m)² times the output gradient for it, which small maps do not repay (docs/tuning.md#training-winograd).
const TRAIN_WINOGRAD_FILTER_GRAD_MIN_PIXELS = 16 * 16;

/** How one stride-1 3×3 conv runs: `tf.conv2d`, one GEMM with the filter on the left, or Winograd. */
export type ConvPlan = { kind: 'direct' } | { kind: 'gemm' } | { kind: 'winograd'; m: WinogradTile; side: FilterSide };

/** What {@link planConv} decides from: the conv's map `[N, H, W]`, its channels and where its filter lives. */
export interface ConvShape {
  /** Examples, rows and columns of the map. */
  n: number;
  h: number;
  w: number;
  /** Input and output channels. */
  cin: number;
  cout: number;
  /** Whether the filter is streamed (uploaded on each forward) rather than resident. */
  streamed: boolean;
}

/**
 * `conv` when it is a {@link ConvAlgorithm} or undefined.
 * @throws InputError for anything else.
 */
export function checkConvAlgorithm(conv: ConvAlgorithm | undefined): ConvAlgorithm | undefined {
  if (conv !== undefined && !ALGORITHMS.includes(conv))
    throw new InputError(`conv must be auto, precise, fast, direct, winograd2 or winograd4, got "${conv}"`);
  return conv;
}

/** How a stride-1 3×3 conv of this shape runs under `algorithm` (see {@link ConvAlgorithm}). */
export function planConv(algorithm: ConvAlgorithm, s: ConvShape): ConvPlan {
  if (s.cin < MIN_CHANNELS) return { kind: 'direct' };
  const algo =
    algorithm === 'auto' || algorithm === 'fast' || algorithm === 'precise'
      ? autoAlgorithm(algorithm !== 'precise', s)
      : algorithm;
  if (algo === 'direct' || algo === 'gemm') return { kind: algo };
  const m: WinogradTile = algo === 'winograd4' ? 4 : 2;
  const tiles = Math.ceil(s.h / m) * Math.ceil(s.w / m);
  return { kind: 'winograd', m, side: s.streamed && tiles <= LEFT_MAX_TILES ? 'left' : 'right' };
}

function autoAlgorithm(
  tile4: boolean,
  { n, h, w, cin, cout, streamed }: ConvShape,
): 'direct' | 'winograd2' | 'winograd4' | 'gemm' {
  if (
    cin * cout >= WINOGRAD_MIN_CHANNEL_PAIRS &&
    h * w >= (streamed ? WINOGRAD_MIN_PIXELS_STREAMED : WINOGRAD_MIN_PIXELS)
  )
    return tile4 && h * w >= WINOGRAD4_MIN_PIXELS ? 'winograd4' : 'winograd2';
  return streamed && n * h * w <= GEMM_MAX_PIXELS ? 'gemm' : 'direct';
}

/** How a stride-1 3×3 conv with trained weights runs by Winograd: its tile, and whether its filter gradient does too. */
export interface TrainableConvPlan {
  m: WinogradTile;
  filterGrad: boolean;
}

/**
 * How a stride-1 3×3 conv with trained weights runs under `algorithm`, or null for `tf.conv2d`
 * throughout. `auto` and `fast` take F(4×4) for the forward and the input gradient on at least
 * 4096 pixels of the batch (N·H·W) with 16 or more channels in and out, `precise` F(2×2) there;
 * `winograd2` and `winograd4` take theirs wherever a conv has 8 or more channels; `direct` never.
 * The filter gradient follows on maps of at least 16×16 pixels. Its filter changes at every step,
 * so unlike inference it is transformed at every call, and small batches lose
 * (docs/tuning.md#training-winograd).
 */
export function planTrainableConv(
  algorithm: ConvAlgorithm,
  { n, h, w, cin, cout }: Omit<ConvShape, 'streamed'>,
): TrainableConvPlan | null {
  if (algorithm === 'direct' || Math.min(cin, cout) < MIN_CHANNELS) return null;
  const filterGrad = h * w >= TRAIN_WINOGRAD_FILTER_GRAD_MIN_PIXELS;
  if (algorithm === 'winograd2' || algorithm === 'winograd4')
    return { m: algorithm === 'winograd2' ? 2 : 4, filterGrad };
  if (n * h * w < TRAIN_WINOGRAD_MIN_PIXELS || Math.min(cin, cout) < TRAIN_WINOGRAD_MIN_CHANNELS) return null;
  return { m: algorithm === 'precise' ? 2 : 4, filterGrad };
}

/**
 * In how many groups of output channels a Winograd conv with its filter on the left makes its
 * transformed filters, one group at a time: all at once they are (m+2)²/9 times the filter (288 MiB
 * for F(4×4) of the 256 model's 2048→1024 convs), the largest thing in the heap at b = 24.
 */
export function leftFilterGroups(m: WinogradTile, cin: number, cout: number): number {
  return Math.max(1, Math.ceil((4 * (m + 2) ** 2 * cin * cout) / LEFT_GROUP_BYTES));
}

/** Whether a linear layer on `rows` rows multiplies its weight from the left (which spares a streamed weight XNNPACK's repacking). */
export function linearOnLeft(rows: number, streamed: boolean): boolean {
  return streamed && rows <= LINEAR_LEFT_MAX_ROWS;
}
