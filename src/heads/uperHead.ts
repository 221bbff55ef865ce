/**
 * A UperNet decoder (Xiao et al. 2018, mmseg's `UPerHead`) sized for small data: the segmentation head
 * the paper puts on several U-Net blocks for ADE20K (§4.4).
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { checkIgnoreIndex, DEFAULT_IGNORE_INDEX } from '../data/labels.js';
import { adaptiveAvgPool2d } from '../ops/adaptiveAvgPool.js';
import { dense } from '../ops/dense.js';
import { interpolateBilinear } from '../ops/interpolate.js';
import { trainableConv3x3 } from '../ops/trainableConv.js';
import { BatchNorm2d, type ForwardPassOptions } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { floatEntry, Init, prefixed, type FloatEntry, type StateEntry } from '../nn/state.js';
import { positiveInt } from '../util/checks.js';
import type { TrainableModel } from '../train/trainableModel.js';

/**
 * What a {@link UperHead} is built from.
 * @category Heads
 */
export interface UperHeadConfig {
  /** Channels of each input map, in the order the maps are given (any sides, any order). */
  channels: number[];
  classes: number;
  /** Width of every internal map (default 64; mmseg's ADE20K head uses 512). */
  width?: number;
  /** Output sides of the pyramid pooling module on the smallest map (default 1, 2, 3, 6 as PSPNet). */
  poolScales?: number[];
  /** Side of the logits: bilinear (half-pixel centres) from the largest input's side (default: that side). */
  outputSide?: number;
  /** Mask value of unlabelled pixels for training (default 255); outside [0, classes). */
  ignoreIndex?: number;
  /** Seed of the initialisation (PyTorch's default init, seeded). Default 0. */
  seed?: number;
}

/** mmseg's `ConvModule`: conv without bias → BatchNorm → ReLU; 1×1 convs are per-pixel matMuls. */
class ConvModule extends Module {
  readonly weight: FloatEntry;
  readonly bn: BatchNorm2d;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: 1 | 3,
    init: Init,
  ) {
    super();
    const fanIn = inChannels * kernel * kernel;
    const shape = kernel === 1 ? [outChannels, inChannels, 1, 1] : [outChannels, inChannels, 3, 3];
    this.weight = floatEntry('conv.weight', shape, kernel === 1 ? 'conv1x1' : 'conv', init.fanIn(shape, fanIn));
    this.bn = new BatchNorm2d(outChannels);
  }
  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => {
      const w = this.weight.variable as tf.Tensor;
      const y =
        this.kernel === 1
          ? dense(x, w as tf.Tensor2D)
          : trainableConv3x3(x, w as tf.Tensor4D, tf.zeros([this.outChannels]) as tf.Tensor1D);
      return tf.relu(this.bn.apply(y, training));
    });
  }
  state(): StateEntry[] {
    return [this.weight, ...prefixed('bn.', this.bn.state())];
  }
}

/**
 * UperNet over feature maps of several sides (U-Net blocks, first- or second-pass): a 1×1 lateral
 * conv per map to a common width, a pyramid pooling module (PPM) on the smallest map in place of its
 * lateral, top-down fusion (each level plus its coarser neighbour, bilinearly resized), a 3×3 conv per
 * level, every level resized to the largest side and joined, a 3×3 fusion conv and a 1×1 classifier.
 * Each conv is followed by BatchNorm and ReLU. Maps of equal side are fused in the order given.
 * State names as mmseg's `UPerHead`: `lateral_convs.<i>.conv.weight`, `psp_modules.<j>.1.conv.weight`,
 * `bottleneck.…`, `fpn_convs.<i>.…`, `fpn_bottleneck.…`, `conv_seg.weight`/`bias` (levels ordered from
 * the largest map to the smallest).
 *
 * It is a {@link TrainableModel} of a list of maps: `logits` gives one row per pixel, so `train` fits it
 * with flattened masks as labels (see {@link segmentationDataset}), pixels labelled `ignoreIndex` unscored.
 * @example
 * ```ts
 * const head = new UperHead({ channels: [64, 64, 32], classes: 11, outputSide: 28 });
 * const logits = head.forward([map8, map13, map17]); // [N, 28, 28, 11]
 * head.dispose();
 * ```
 * @category Heads
 */
export class UperHead extends Module implements TrainableModel<tf.Tensor4D[]> {
  readonly config: Readonly<Required<Omit<UperHeadConfig, 'outputSide'>> & { outputSide?: number }>;
  readonly ignoreIndex: number;
  private readonly laterals: ConvModule[] = [];
  private readonly psp: ConvModule[] = [];
  private readonly bottleneck: ConvModule;
  private readonly fpnConvs: ConvModule[] = [];
  private readonly fpnBottleneck: ConvModule;
  private readonly clsWeight: FloatEntry;
  private readonly clsBias: FloatEntry;

  constructor(config: UperHeadConfig) {
    super();
    if (!Array.isArray(config?.channels) || config.channels.length === 0)
      throw new InputError('UperHead: channels must list the channels of each input map, e.g. [64, 64, 32]');
    const channels = config.channels.map((c, i) => positiveInt(c, `UperHead channels[${i}]`));
    const classes = positiveInt(config.classes, 'UperHead classes');
    const width = positiveInt(config.width ?? 64, 'UperHead width');
    const poolScales = (config.poolScales ?? [1, 2, 3, 6]).map((s, i) => positiveInt(s, `UperHead poolScales[${i}]`));
    if (config.outputSide !== undefined) positiveInt(config.outputSide, 'UperHead outputSide');
    this.ignoreIndex = checkIgnoreIndex(config.ignoreIndex ?? DEFAULT_IGNORE_INDEX, classes);
    this.config = {
      channels,
      classes,
      width,
      poolScales,
      ignoreIndex: this.ignoreIndex,
      seed: config.seed ?? 0,
      ...(config.outputSide !== undefined ? { outputSide: config.outputSide } : {}),
    };
    const init = new Init(this.config.seed);
    // Levels are the inputs in the order given, largest first; the last goes through the PPM, not a lateral.
    for (let i = 0; i + 1 < channels.length; i++) this.laterals.push(new ConvModule(channels[i], width, 1, init));
    const deepest = channels[channels.length - 1];
    for (let j = 0; j < poolScales.length; j++) this.psp.push(new ConvModule(deepest, width, 1, init));
    this.bottleneck = new ConvModule(deepest + poolScales.length * width, width, 3, init);
    for (let i = 0; i + 1 < channels.length; i++) this.fpnConvs.push(new ConvModule(width, width, 3, init));
    this.fpnBottleneck = new ConvModule(channels.length * width, width, 3, init);
    this.clsWeight = floatEntry(
      'conv_seg.weight',
      [classes, width, 1, 1],
      'conv1x1',
      init.fanIn([classes, width], width),
    );
    this.clsBias = floatEntry('conv_seg.bias', [classes], 'same', init.fanIn([classes], width));
  }

  /** Checks the maps: one per configured input, NHWC, sides not growing along the list. */
  private checkMaps(maps: tf.Tensor4D[]): void {
    const { channels } = this.config;
    if (!Array.isArray(maps) || maps.length !== channels.length)
      throw new InputError(
        `UperHead: expected ${channels.length} feature maps (channels [${channels}]), got ${Array.isArray(maps) ? maps.length : typeof maps}`,
      );
    maps.forEach((m, i) => {
      if (!(m instanceof tf.Tensor) || m.rank !== 4)
        throw new InputError(`UperHead: map ${i} must be an NHWC rank-4 tensor`);
      if (m.shape[3] !== channels[i])
        throw new InputError(`UperHead: map ${i} has ${m.shape[3]} channels, the head was built for ${channels[i]}`);
      if (m.shape[0] !== maps[0].shape[0])
        throw new InputError(`UperHead: map ${i} has ${m.shape[0]} examples, map 0 has ${maps[0].shape[0]}`);
      if (i > 0 && (m.shape[1] > maps[i - 1].shape[1] || m.shape[2] > maps[i - 1].shape[2]))
        throw new InputError(
          `UperHead: maps must go from the largest side to the smallest; map ${i} is ${m.shape[1]}×${m.shape[2]}, map ${i - 1} ${maps[i - 1].shape[1]}×${maps[i - 1].shape[2]}: sort them (and channels) by side`,
        );
    });
  }

  /**
   * Per-pixel class scores.
   * @param maps one NHWC map per configured input, from the largest side to the smallest.
   * @returns `[N, S, S, classes]`, S = `outputSide` or the first map's side.
   * @throws InputError for a wrong number of maps, channels, batch sizes or side order.
   */
  forward(maps: tf.Tensor4D[], opts: ForwardPassOptions = {}): tf.Tensor4D {
    this.checkMaps(maps);
    const training = opts.training ?? false;
    return tf.tidy(() => {
      const last = maps.length - 1;
      const deepest = maps[last];
      const side = (m: tf.Tensor4D): [number, number] => [m.shape[1], m.shape[2]];
      const pooled = this.psp.map((conv, j) =>
        interpolateBilinear(conv.apply(adaptiveAvgPool2d(deepest, this.config.poolScales[j]), training), side(deepest)),
      );
      const levels = maps.slice(0, last).map((m, i) => this.laterals[i].apply(m, training));
      levels.push(this.bottleneck.apply(tf.concat([deepest, ...pooled], 3) as tf.Tensor4D, training));
      for (let i = last - 1; i >= 0; i--)
        levels[i] = tf.add(levels[i], interpolateBilinear(levels[i + 1], side(levels[i])));
      const outs = levels.map((l, i) => (i < last ? this.fpnConvs[i].apply(l, training) : l));
      const top = side(outs[0]);
      const fused = this.fpnBottleneck.apply(
        tf.concat(
          outs.map((o) => interpolateBilinear(o, top)),
          3,
        ) as tf.Tensor4D,
        training,
      );
      let logits = dense(
        fused,
        this.clsWeight.variable as tf.Tensor as tf.Tensor2D,
        this.clsBias.variable as tf.Tensor as tf.Tensor1D,
      );
      const s = this.config.outputSide;
      if (s !== undefined && (s !== top[0] || s !== top[1])) logits = interpolateBilinear(logits, s);
      return logits;
    });
  }

  /** One row of logits per pixel, `[N·S·S, classes]` in row-major pixel order: what `train` scores against flattened masks. */
  logits(maps: tf.Tensor4D[], opts: ForwardPassOptions = {}): tf.Tensor2D {
    return tf.tidy(() => {
      const y = this.forward(maps, opts);
      return tf.reshape(y, [-1, this.config.classes]) as tf.Tensor2D;
    });
  }

  state(): StateEntry[] {
    return [
      ...this.laterals.flatMap((m, i) => prefixed(`lateral_convs.${i}.`, m.state())),
      ...this.psp.flatMap((m, j) => prefixed(`psp_modules.${j}.1.`, m.state())),
      ...prefixed('bottleneck.', this.bottleneck.state()),
      ...this.fpnConvs.flatMap((m, i) => prefixed(`fpn_convs.${i}.`, m.state())),
      ...prefixed('fpn_bottleneck.', this.fpnBottleneck.state()),
      this.clsWeight,
      this.clsBias,
    ];
  }
}
