/**
 * Segmentation scores: a confusion matrix accumulated over batches, mean IoU and pixel accuracy as
 * mmseg reports them.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { checkIgnoreIndex, checkMasks, DEFAULT_IGNORE_INDEX, type Masks } from '../data/labels.js';
import { positiveInt } from '../util/checks.js';

/**
 * What a {@link SegmentationMeter} measures.
 * @category Evaluation
 */
export interface SegmentationScores {
  /** Mean IoU over the classes present in the masks or the predictions (union > 0), mmseg's nanmean. */
  mIoU: number;
  /** Correct pixels over scored pixels. */
  pixelAccuracy: number;
  /** Mean over the classes present in the masks of each class's recall (mmseg's mAcc). */
  meanAccuracy: number;
  /** Per-class IoU; NaN where the class is in neither masks nor predictions. */
  iou: number[];
  /** `confusion[truth * classes + predicted]`: pixel counts. */
  confusion: Float64Array;
  /** Scored pixels (all but the ignored ones). */
  pixels: number;
}

/**
 * Options of {@link SegmentationMeter}.
 * @category Evaluation
 */
export interface SegmentationMeterOptions {
  classes: number;
  /** Mask value of unlabelled pixels, not scored (default 255); outside [0, classes). */
  ignoreIndex?: number;
}

/**
 * Accumulates a confusion matrix over batches of predictions and masks, then scores it.
 * @example
 * ```ts
 * const meter = new SegmentationMeter({ classes: 11 });
 * meter.update(head.forward(maps), masks); // logits [N, H, W, 11] or class ids [N, H, W]
 * const { mIoU, pixelAccuracy } = meter.scores();
 * ```
 * @category Evaluation
 */
export class SegmentationMeter {
  readonly classes: number;
  readonly ignoreIndex: number;
  private readonly confusion: Float64Array;

  constructor(opts: SegmentationMeterOptions) {
    this.classes = positiveInt(opts?.classes, 'SegmentationMeter classes');
    this.ignoreIndex = checkIgnoreIndex(opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX, this.classes);
    this.confusion = new Float64Array(this.classes * this.classes);
  }

  /**
   * Adds a batch.
   * @param predictions logits `[N, H, W, classes]` (their argmax is taken) or class ids: an int tensor
   *   `[N, H, W]`, or a flat array with `shape` given.
   * @param masks the true ids, as {@link pixelCrossEntropy} takes them.
   * @param shape `[N, H, W]` of flat predictions.
   * @throws InputError for mismatched shapes (naming both), ids out of range, an ignore index that is a
   *   class, logits that hold NaN or predictions that are not ids; the meter is unchanged then.
   */
  update(predictions: tf.Tensor | ArrayLike<number>, masks: Masks, shape?: [number, number, number]): void {
    const k = this.classes;
    let ids: ArrayLike<number>;
    let dims: [number, number, number];
    if (predictions instanceof tf.Tensor) {
      if (predictions.rank === 4) {
        if (predictions.shape[3] !== k)
          throw new InputError(`SegmentationMeter: logits have ${predictions.shape[3]} classes, the meter ${k}`);
        if (tf.tidy(() => tf.any(tf.isNaN(predictions)).dataSync()[0]))
          throw new InputError(
            'SegmentationMeter: the logits hold NaN (argmax would pick an arbitrary class): check the features and lower the learning rate',
          );
        ids = tf.tidy(() => tf.argMax(predictions, 3).dataSync());
      } else if (predictions.rank === 3) ids = predictions.dataSync();
      else
        throw new InputError(
          `SegmentationMeter: predictions must be logits [N, H, W, classes] or ids [N, H, W], got shape [${predictions.shape}]`,
        );
      dims = predictions.shape.slice(0, 3) as [number, number, number];
    } else {
      if (!shape || shape.length !== 3)
        throw new InputError('SegmentationMeter: flat predictions need their shape [N, H, W]');
      ids = predictions;
      dims = shape;
      if (ids.length !== dims[0] * dims[1] * dims[2])
        throw new InputError(`SegmentationMeter: ${ids.length} predictions for shape [${dims}]`);
    }
    const truth = checkMasks(masks, dims, k, this.ignoreIndex);
    for (let i = 0; i < truth.length; i++) {
      const p = ids[i];
      if (!Number.isInteger(p) || p < 0 || p >= k)
        throw new InputError(`SegmentationMeter: prediction ${i} is ${p}, not a class id in [0, ${k})`);
    }
    for (let i = 0; i < truth.length; i++) if (truth[i] !== this.ignoreIndex) this.confusion[truth[i] * k + ids[i]]++;
  }

  /** Scores of everything added so far. */
  scores(): SegmentationScores {
    const k = this.classes;
    const c = this.confusion;
    let correct = 0,
      pixels = 0;
    const iou: number[] = [];
    const recalls: number[] = [];
    for (let j = 0; j < k; j++) {
      let row = 0,
        col = 0;
      for (let m = 0; m < k; m++) {
        row += c[j * k + m];
        col += c[m * k + j];
      }
      const tp = c[j * k + j];
      correct += tp;
      pixels += row;
      const union = row + col - tp;
      iou.push(union > 0 ? tp / union : NaN);
      if (row > 0) recalls.push(tp / row);
    }
    const present = iou.filter((v) => !Number.isNaN(v));
    const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN);
    return {
      mIoU: mean(present),
      pixelAccuracy: pixels ? correct / pixels : NaN,
      meanAccuracy: mean(recalls),
      iou,
      confusion: c.slice(),
      pixels,
    };
  }

  /** Forgets everything added. */
  reset(): void {
    this.confusion.fill(0);
  }
}

/**
 * Scores one set of predictions against masks: a {@link SegmentationMeter} with one update.
 * @example
 * ```ts
 * const { mIoU } = segmentationScores(logits, masks, { classes: 11 });
 * ```
 * @category Evaluation
 */
export function segmentationScores(
  predictions: tf.Tensor | ArrayLike<number>,
  masks: Masks,
  opts: SegmentationMeterOptions & { shape?: [number, number, number] },
): SegmentationScores {
  const meter = new SegmentationMeter(opts);
  meter.update(predictions, masks, opts.shape);
  return meter.scores();
}
