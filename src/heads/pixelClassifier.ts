/**
 * ddpm-segmentation's per-pixel MLP ensemble (Baranchuk et al. 2022, `pixel_classifier`): each pixel's
 * feature vector classified on its own by several independently trained small MLPs.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { checkIgnoreIndex, DEFAULT_IGNORE_INDEX } from '../data/labels.js';
import { BatchNorm2d, Linear, type ForwardPassOptions } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { Init, prefixed, type StateEntry } from '../nn/state.js';
import { positiveInt } from '../util/checks.js';
import { mixSeed } from '../util/random.js';
import type { TrainableModel } from '../train/trainableModel.js';

/**
 * What a {@link PixelClassifier} is built from.
 * @category Heads
 */
export interface PixelClassifierConfig {
  /** Features per pixel. */
  channels: number;
  classes: number;
  /** Hidden widths of each member (default [128, 32], or [256, 128] from 30 classes on, as ddpm-segmentation). */
  hidden?: [number, number];
  /** Members of the ensemble (default 10, as ddpm-segmentation). */
  members?: number;
  /** Mask value of unlabelled pixels for training (default 255); outside [0, classes). */
  ignoreIndex?: number;
  /** Seed of the initialisation; member i draws from `mixSeed(seed, i)`. Default 0. */
  seed?: number;
}

/** Checks pixel rows `[P, C]` or an NHWC map `[N, H, W, C]` of `channels` features. */
function checkPixels(x: tf.Tensor, channels: number): void {
  if (!(x instanceof tf.Tensor) || (x.rank !== 2 && x.rank !== 4))
    throw new InputError(
      `PixelClassifier: x must be pixel rows [P, C] or an NHWC map [N, H, W, C], got ${x instanceof tf.Tensor ? `shape [${x.shape}]` : typeof x}`,
    );
  if (x.shape[x.rank - 1] !== channels)
    throw new InputError(
      `PixelClassifier: x has ${x.shape[x.rank - 1]} features per pixel, the classifier takes ${channels}`,
    );
}

/**
 * One member: Linear → ReLU → BatchNorm1d → Linear → ReLU → BatchNorm1d → Linear, state names as the
 * reference's `nn.Sequential` (`layers.0`, `layers.2`, `layers.3`, `layers.5`, `layers.6`). A
 * {@link TrainableModel} of pixel rows `[P, C]` (or maps, flattened): `train` fits it on sampled pixels,
 * rows labelled `ignoreIndex` unscored. BatchNorm1d is {@link BatchNorm2d} over a 1×1 map per row (the
 * same statistics over the rows), so there is one BatchNorm in the library.
 * @example
 * ```ts
 * const clf = new PixelClassifier({ channels: 25, classes: 11, members: 2 });
 * const member = clf.members[0]; // a PixelMLP
 * // pixelRows [P, 25], pixelLabels P ids (255 where unlabelled); segmentationDataset keeps the ignore index
 * await train(member, segmentationDataset(pixelRows, pixelLabels, { classes: 11 }), { epochs: 4, batchSize: 64, optimizer: adam(2e-3) });
 * const scores = member.logits(pixelRows, { training: false }); // [P, 11]
 * ```
 * @category Heads
 */
export class PixelMLP extends Module implements TrainableModel<tf.Tensor> {
  private readonly fc1: Linear;
  private readonly bn1: BatchNorm2d;
  private readonly fc2: Linear;
  private readonly bn2: BatchNorm2d;
  private readonly fc3: Linear;

  constructor(
    readonly channels: number,
    readonly classes: number,
    hidden: [number, number],
    readonly ignoreIndex: number,
    seed: number,
  ) {
    super();
    const init = new Init(seed);
    this.fc1 = new Linear(channels, hidden[0], init);
    this.bn1 = new BatchNorm2d(hidden[0]);
    this.fc2 = new Linear(hidden[0], hidden[1], init);
    this.bn2 = new BatchNorm2d(hidden[1]);
    this.fc3 = new Linear(hidden[1], classes, init);
  }

  /** Class scores `[P, classes]` of pixel rows `[P, C]`, or of every pixel of a map `[N, H, W, C]` in row-major order. */
  logits(x: tf.Tensor, opts: ForwardPassOptions = {}): tf.Tensor2D {
    const training = opts.training ?? false;
    checkPixels(x, this.channels);
    return tf.tidy(() => {
      const rows = tf.reshape(x, [-1, this.channels]) as tf.Tensor2D;
      const p = rows.shape[0];
      // BatchNorm1d over rows is BatchNorm2d over a 1×1 map per row.
      const norm = (bn: BatchNorm2d, h: tf.Tensor2D) =>
        tf.reshape(bn.apply(tf.reshape(h, [p, 1, 1, h.shape[1]]) as tf.Tensor4D, training), [
          p,
          h.shape[1],
        ]) as tf.Tensor2D;
      const h1 = norm(this.bn1, tf.relu(this.fc1.apply(rows)));
      const h2 = norm(this.bn2, tf.relu(this.fc2.apply(h1)));
      return this.fc3.apply(h2);
    });
  }

  state(): StateEntry[] {
    return [
      ...prefixed('layers.0.', this.fc1.state()),
      ...prefixed('layers.2.', this.bn1.state()),
      ...prefixed('layers.3.', this.fc2.state()),
      ...prefixed('layers.5.', this.bn2.state()),
      ...prefixed('layers.6.', this.fc3.state()),
    ];
  }
}

/**
 * The ensemble. Members are trained one by one, each with `train` on its own seed (as ddpm-segmentation
 * trains its `pixel_classifier`s in a loop); the ensemble's prediction is the mean of the members'
 * softmax probabilities, returned as its logarithm so that argmax, {@link SegmentationMeter} and
 * cross-entropy read it as logits. ddpm-segmentation takes a majority vote of the members' argmax
 * instead; the mean of probabilities (soft voting) is chosen here because it has no ties to break (a vote
 * among 2 or 3 members often has), it lets a confident member outweigh unsure ones, and it is a
 * distribution, so the ensemble has a loss and a confidence per pixel. With many members both agree on
 * almost every pixel. State names `members.<i>.layers.<j>.…`, hidden widths [128, 32] (from 30 classes
 * on [256, 128]) and 10 members by default, as ddpm-segmentation.
 * @example
 * ```ts
 * const clf = new PixelClassifier({ channels: 224, classes: 11, members: 3 });
 * for (const [i, m] of clf.members.entries())
 *   await train(m, segmentationDataset(pixelRows, pixelLabels, { classes: 11 }), { epochs: 4, batchSize: 64, optimizer: adam(1e-3), seed: i });
 * const logits = clf.forward(denseMap); // [N, H, W, 11]
 * clf.dispose();
 * ```
 * @category Heads
 */
export class PixelClassifier extends Module {
  readonly config: Readonly<Required<PixelClassifierConfig>>;
  /** The members, each a {@link TrainableModel} of pixel rows. */
  readonly members: readonly PixelMLP[];

  constructor(config: PixelClassifierConfig) {
    super();
    const channels = positiveInt(config?.channels, 'PixelClassifier channels');
    const classes = positiveInt(config.classes, 'PixelClassifier classes');
    const count = positiveInt(config.members ?? 10, 'PixelClassifier members');
    const hidden = config.hidden ?? (classes >= 30 ? [256, 128] : [128, 32]);
    if (!Array.isArray(hidden) || hidden.length !== 2)
      throw new InputError('PixelClassifier: hidden must be two widths, e.g. [128, 32]');
    hidden.forEach((h, i) => positiveInt(h, `PixelClassifier hidden[${i}]`));
    const ignoreIndex = checkIgnoreIndex(config.ignoreIndex ?? DEFAULT_IGNORE_INDEX, classes);
    const seed = config.seed ?? 0;
    this.config = { channels, classes, hidden: [hidden[0], hidden[1]], members: count, ignoreIndex, seed };
    this.members = Array.from(
      { length: count },
      (_, i) => new PixelMLP(channels, classes, this.config.hidden, ignoreIndex, mixSeed(seed, i)),
    );
  }

  /**
   * The ensemble's log mean probability per class.
   * @param x an NHWC map `[N, H, W, C]` (→ `[N, H, W, classes]`) or pixel rows `[P, C]` (→ `[P, classes]`).
   */
  forward<T extends tf.Tensor2D | tf.Tensor4D>(x: T, opts: ForwardPassOptions = {}): T {
    const { channels, classes } = this.config;
    checkPixels(x, channels);
    return tf.tidy(() => {
      const probs = this.members.map((m) => tf.softmax(m.logits(x, opts)));
      const mean = tf.div(tf.addN(probs), probs.length);
      const out = tf.log(tf.maximum(mean, 1e-30));
      return (x.rank === 2 ? out : tf.reshape(out, [x.shape[0], x.shape[1]!, x.shape[2]!, classes])) as T;
    });
  }

  state(): StateEntry[] {
    return this.members.flatMap((m, i) => prefixed(`members.${i}.`, m.state()));
  }
}
