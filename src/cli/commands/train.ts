/**
 * `diffssl train HEAD (DATA | --features DIR) -o RUN_DIR`: trains one of the paper's heads on a frozen
 * backbone, from merged extracted features or from images through the U-Net per batch, with the
 * library's trainer and its resumable checkpoints.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FinetuneArgs } from '../../diffsslModel.js';
import { InputError } from '../../errors.js';
import { feedbackLinks } from '../../feedback/difFeed.js';
import { parseFusionArc } from '../../heads/fusionArc.js';
import { parseHeadArc } from '../../heads/mlpHead.js';
import { writeBytesAtomic } from '../../io/atomicFile.js';
import { hasCheckpoint } from '../../train/checkpoint.js';
import { makeOptimizer, referenceRecipe, StepLR, type OptimizerSpec } from '../../train/optimizers.js';
import { train, type EpochReport } from '../../train/trainer.js';
import type { ADMUNet } from '../../unet/admUnet.js';
import { parseArgs, type Flags, type FlagSpec } from '../args.js';
import { DATA_HELP, FEATURE_FLAGS } from '../data.js';
import { choose, isFeatureDir, openFeatures } from '../featureDirs.js';
import {
  buildSystem,
  checkOneSource,
  checkTestLabels,
  HEADS,
  mainSetSource,
  openRunSet,
  readRunConfig,
  readTrainRecord,
  RUN_FILES,
  runConfig,
  settingDifferences,
  trainableSystem,
  trainRecord,
  type EpochRecord,
  type HeadInputs,
  type HeadKind,
  type RunConfig,
  type RunSet,
  type TrainRecord,
} from '../headRun.js';
import { checkOutputDir, CommandFailure, progressBar, UsageError, type CliIO } from '../io.js';
import { checkGrid, loadModel, MODEL_FLAGS, MODEL_HELP, modelIdentity } from '../model.js';

/** The usage lines of `diffssl train`, also in the top-level usage. */
export const TRAIN_USAGE = `  diffssl train HEAD (DATA | --features DIR) -o RUN_DIR [--test DIR|DATA] [--t T] [--b B[,B…]]
                [--epochs 28] [--batch 32] [--lr X] [--optimizer sgd] [--seed 0] [--json]
      Train a head (linear, mlp, attention, difformer, difffeed) on the frozen backbone, from a merged
      diffssl extract directory or from images through the U-Net per batch, into RUN_DIR (config,
      weights, checkpoint, train.json). Re-running the command resumes; a finished run does nothing.
`;

/** The options of `diffssl train`. */
export const TRAIN_FLAGS = {
  ...MODEL_FLAGS,
  ...FEATURE_FLAGS,
  features: { kind: 'string' },
  test: { kind: 'string' },
  hidden: { kind: 'string' },
  arc: { kind: 'string' },
  norm: { kind: 'string' },
  feedback: { kind: 'string' },
  epochs: { kind: 'count' },
  lr: { kind: 'number' },
  optimizer: { kind: 'string' },
  'lr-step': { kind: 'count' },
  'lr-gamma': { kind: 'number' },
  'eval-every': { kind: 'count' },
  'checkpoint-steps': { kind: 'count' },
  'test-labels': { kind: 'string' },
  'test-limit': { kind: 'count' },
  'no-augment': { kind: 'bool' },
} as const satisfies Record<string, FlagSpec>;

/** The pooled side of each head's inputs when --pool is not given (the reference fixtures' values). */
const DEFAULT_POOL: Record<HeadKind, number> = { linear: 2, mlp: 2, attention: 4, difformer: 4, difffeed: 4 };
const DEFAULT_HIDDEN = '256';
const DEFAULT_ARC = 'Use_CLS_Token:True:128,Insert_CLS_Token,Attention:128:4:4:2,Extract_CLS_Token';
const OPTIMIZERS = ['sgd', 'momentum', 'adam'];

const HELP = `Usage:
${TRAIN_USAGE}
  HEAD is one of:
    linear      pool → flatten → Linear (the paper's GD baseline); one --t, one --b
    mlp         the same with hidden layers (--hidden); one --t, one --b
    attention   tokenizer → Transformer with a CLS token → Linear; one --t, one --b
    difformer   one tokenizer per block, one shared Transformer, CLS features of every t
                concatenated; one or more --t, several --b
    difffeed    DifFeed: decoder features fed back into the encoder (--feedback), a second U-Net
                pass, and an attention head on its blocks --b; trains on DATA only

  The training examples are DATA (images, run through the U-Net every batch with fresh noise and a
  random crop and flip, as the reference trains) or --features DIR, a merged diffssl extract
  directory (fixed features, read into memory: much cheaper per epoch, no augmentation). With
  --features, --t and --b may be left out when DIR holds a single step or block (difformer: all of
  DIR's blocks), and the model options must name the model the features were extracted with.

${DATA_HELP}

  -o, --output DIR      the run's directory (created if absent)
  --features DIR        train on the features of a merged diffssl extract directory
  --test DIR|DATA       test examples, evaluated every --eval-every epochs and after the last: a
                        merged extract directory (holding features.json) or DATA
  --t LIST              noise steps the head reads
  --b LIST              blocks the head reads (difffeed: blocks of the second pass)
  --pool P              the head's pre_pool_size: its maps are pooled to P×P (default 2 for linear
                        and mlp, 4 for the others; at most the features' extraction --pool)
  --hidden W[_W…]       mlp: hidden widths, the reference's head_arc (default ${DEFAULT_HIDDEN})
  --arc FUSION_ARC      attention, difformer, difffeed: the reference's fusion_arc (default
                        ${DEFAULT_ARC})
  --norm layer|batch    attention, difformer, difffeed: the tokenizers' norm_type (default layer)
  --feedback F          difffeed: all, bottleneck or windowed (the paper's strategies), or a comma
                        list of decoder blocks, each fed into its mirror encoder block (default bottleneck)
  --epochs N            epochs in all (default 28); a larger N continues a finished run
  --batch N             examples per update (default 32; difffeed 4); the last partial batch is dropped
  --lr X                learning rate (default: the reference's, 1e-2 for linear, mlp and difffeed,
                        5e-2 for attention and difformer)
  --optimizer NAME      sgd (default, the reference's), momentum (0.9) or adam
  --lr-step N           multiply the learning rate by --lr-gamma every N epochs (default 7)
  --lr-gamma X          the factor of --lr-step (default 0.1)
  --seed S              seed of the initial weights, the example order, noise and augmentation (default 0)
  --eval-every N        evaluate --test every N epochs (default 7) and after the last
  --checkpoint-steps N  also save the checkpoint every N updates (default: after every epoch)
  --labels FILE         the IDX labels file of an IDX images DATA
  --limit N             only the first N training images of DATA
  --test-labels FILE    the IDX labels file of an IDX images --test
  --test-limit N        only the first N images of a --test DATA
  --no-augment          no random crop and flip of DATA's training images
  --quiet               no progress bar and no summary
  --json                one JSON object on stdout
${MODEL_HELP}

  A re-run of the same command resumes from the last checkpoint and ends with the same weights as a
  run that never stopped; once done it only reports the result. A run with other settings in the same
  RUN_DIR is refused: use another -o or delete RUN_DIR.
`;

type TrainFlags = Flags<typeof TRAIN_FLAGS>;

/** Usage checks that need nothing but the flags: the head's own options, one input, the optimizer. */
function checkUsage(head: HeadKind, flags: TrainFlags, data: string | undefined): void {
  const bad = (m: string) => new UsageError(`train: ${m}`, 'train');
  checkOneSource('train', 'training', data, flags.features, {
    labels: flags.labels,
    limit: flags.limit,
    'no-augment': flags['no-augment'],
  });
  if (flags.output === undefined) throw bad('give -o RUN_DIR, the run’s directory');
  if (head === 'difffeed' && flags.features !== undefined)
    throw bad('difffeed runs the U-Net twice per image, so it trains on DATA (images), not on --features');
  if (flags.hidden !== undefined && head !== 'mlp') throw bad('--hidden is for the mlp head');
  const attentive = head === 'attention' || head === 'difformer' || head === 'difffeed';
  for (const f of ['arc', 'norm'] as const)
    if (flags[f] !== undefined && !attentive) throw bad(`--${f} is for the attention, difformer and difffeed heads`);
  if (flags.feedback !== undefined && head !== 'difffeed') throw bad('--feedback is for the difffeed head');
  if (flags.norm !== undefined && flags.norm !== 'layer' && flags.norm !== 'batch')
    throw bad(`--norm takes layer or batch, got "${flags.norm}"`);
  if (flags.optimizer !== undefined && !OPTIMIZERS.includes(flags.optimizer))
    throw bad(`--optimizer takes ${OPTIMIZERS.join(', ')}, got "${flags.optimizer}"`);
  for (const f of ['lr', 'lr-gamma'] as const)
    if (flags[f] !== undefined && !(flags[f]! > 0)) throw bad(`--${f} takes a positive number, got ${flags[f]}`);
  try {
    if (flags.hidden !== undefined) parseHeadArc(flags.hidden);
    if (flags.arc !== undefined) parseFusionArc(flags.arc);
  } catch (e) {
    throw bad(`${flags.hidden !== undefined ? '--hidden' : '--arc'}: ${(e as Error).message}`);
  }
  if (data !== undefined && (flags.t === undefined || flags.b === undefined))
    throw bad('training on DATA needs --t and --b (the steps and blocks the head reads)');
  const single = head === 'linear' || head === 'mlp' || head === 'attention';
  if (single && ((flags.t?.length ?? 1) > 1 || (flags.b?.length ?? 1) > 1))
    throw bad(`the ${head} head reads one step and one block; give one --t and one --b (difformer fuses several)`);
  if (head === 'difffeed' && (flags.t?.length ?? 1) > 1) throw bad('difffeed here reads one step; give one --t');
}

/** The decoder blocks DifFeed feeds back, ascending (as the reference pairs them with encoder blocks). */
function feedbackBlocks(spec: string, unet: ADMUNet): number[] {
  if (/^\d+(,\d+)*$/.test(spec)) return spec.split(',').map(Number);
  if (spec === 'all' || spec === 'bottleneck' || spec === 'windowed')
    return feedbackLinks(unet.blocks, spec)
      .map((l) => l.from)
      .sort((a, b) => a - b);
  throw new UsageError(
    `train: --feedback takes all, bottleneck, windowed or a comma list of decoder blocks, got "${spec}" (multi-scale feeds several blocks into one, which the reference's feedback_b_list cannot say)`,
    'train',
  );
}

/** The reference's finetune.py arguments of the head. */
function finetuneArgs(
  head: HeadKind,
  c: { t: number[]; b: number[]; pool: number; classes: number },
  flags: TrainFlags,
  unet: ADMUNet,
): FinetuneArgs {
  const common = { pre_pool_size: c.pool, t_list: c.t, num_classes: c.classes, mode: 'freeze', use_fp16: false };
  if (head === 'linear' || head === 'mlp')
    return {
      head_type: 'linear',
      head_arc: head === 'mlp' ? (flags.hidden ?? DEFAULT_HIDDEN) : '',
      first_fw_b_list: c.b,
      second_fw_b_list: [],
      feedback_b_list: [],
      ...common,
    };
  const attention = { head_type: 'attention', norm_type: flags.norm ?? 'layer', fusion_arc: flags.arc ?? DEFAULT_ARC };
  if (head === 'difffeed') {
    const fb = feedbackBlocks(flags.feedback ?? 'bottleneck', unet);
    for (let i = 1; i < fb.length; i++)
      if (fb[i] <= fb[i - 1])
        throw new UsageError('train: --feedback lists decoder blocks in ascending order, each once', 'train');
    return {
      ...attention,
      feedback_arch: 'C_B_R',
      first_fw_b_list: [],
      second_fw_b_list: c.b,
      feedback_b_list: fb,
      ...common,
    };
  }
  return { ...attention, first_fw_b_list: c.b, second_fw_b_list: [], feedback_b_list: [], ...common };
}

const epochRecord = (r: EpochReport): EpochRecord => ({
  epoch: r.epoch + 1,
  lr: r.lr,
  trainLoss: r.trainLoss,
  trainTop1: r.trainTop1,
  ...(r.eval ? { test: r.eval } : {}),
});

/** What `--json` prints and the summary says, from the run's config and record. */
function report(out: string, config: RunConfig, record: TrainRecord, status: string, startedAt: number) {
  const last = record.history.at(-1);
  const a = config.finetune_args;
  return {
    run: out,
    head: config.head,
    status,
    t: a.t_list,
    b: (config.head === 'difffeed' ? a.second_fw_b_list : a.first_fw_b_list) ?? [],
    pool: a.pre_pool_size,
    classes: a.num_classes,
    input: config.input.kind,
    images: config.input.images,
    epochs: record.epochs,
    startedAtEpoch: startedAt,
    history: record.history,
    train: last ? { loss: last.trainLoss, top1: last.trainTop1 } : null,
    test: record.test,
    files: Object.fromEntries(Object.entries(RUN_FILES).map(([k, f]) => [k, path.join(out, f)])),
  };
}

function summary(r: ReturnType<typeof report>): string {
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  const what =
    r.status === 'already done'
      ? `already trained for ${r.epochs} epochs, nothing to do`
      : `${r.status === 'resumed' ? `resumed at epoch ${r.startedAtEpoch + 1}, ` : ''}trained for ${r.epochs} epochs`;
  const scores = [
    r.train ? `train top-1 ${pct(r.train.top1)}` : '',
    r.test ? `test top-1 ${pct(r.test.top1)}, top-5 ${pct(r.test.top5)} (${r.test.examples} images)` : '',
  ].filter(Boolean);
  return `${r.head} head at t=${r.t.join(',')}, b=${r.b.join(',')} on ${r.images} images: ${what}; ${scores.join('; ')} → ${r.run}\n`;
}

/**
 * Runs `diffssl train` on its arguments (after the command name).
 * @returns the exit status (0; failures and bad usage are thrown for `main` to report).
 */
export async function trainCommand(args: string[], io: CliIO): Promise<number> {
  const { flags, positional, help } = parseArgs('train', args, TRAIN_FLAGS, {
    min: 1,
    max: 2,
    names: 'HEAD and DATA (or --features DIR)',
  });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  const head = positional[0] as HeadKind;
  if (!(HEADS as readonly string[]).includes(head))
    throw new UsageError(`train: unknown head "${positional[0]}"; the heads are ${HEADS.join(', ')}`, 'train');
  const dataSpec = positional[1];
  checkUsage(head, flags, dataSpec);
  const recipe = referenceRecipe(head === 'mlp' ? 'linear' : head);
  const epochs = flags.epochs ?? recipe.epochs;
  const out = checkOutputDir('train', flags.output!, "the run's directory");
  const existing = readRunConfig('train', out);
  const checkpointDir = path.join(out, RUN_FILES.checkpoint);
  const started = existing !== undefined && (await hasCheckpoint(checkpointDir));
  if (!existing && fs.existsSync(out) && fs.readdirSync(out).length > 0)
    throw new CommandFailure(`train: ${flags.output} is not empty and holds no diffssl train run; use another -o`);
  const features = flags.features !== undefined ? await openFeatures('train', flags.features, 'training') : undefined;

  const loaded = await loadModel('train', flags, io);
  const unet = loaded.model;
  const open: RunSet[] = [];
  const disposables: { dispose(): void }[] = [];
  const bar = progressBar(io, { quiet: flags.quiet, unit: 'steps' });
  let writing: Promise<void> = Promise.resolve();
  try {
    const identity = await modelIdentity(loaded);
    // The steps and blocks the head reads: the flags', else (features) the directory's only ones.
    let t: number[], b: number[], pool: number;
    let extractPool: number | null = null;
    if (features) {
      const dir = features.dir;
      t = flags.t
        ? flags.t.map((v) => choose('train', v, features.t, 't', dir))
        : [choose('train', undefined, features.t, 't', dir)];
      b = flags.b
        ? flags.b.map((v) => choose('train', v, features.b, 'b', dir))
        : head === 'difformer'
          ? features.b
          : [choose('train', undefined, features.b, 'b', dir)];
      extractPool = features.info.pool;
      pool = flags.pool ?? (extractPool === null ? DEFAULT_POOL[head] : Math.min(DEFAULT_POOL[head], extractPool));
      if (extractPool !== null && pool > extractPool)
        throw new InputError(
          `train: the features in ${dir} were pooled to ${extractPool}×${extractPool} at extraction; give --pool ${extractPool} or less, or extract with a larger --pool`,
        );
    } else {
      [t, b, pool] = [flags.t!, flags.b!, flags.pool ?? DEFAULT_POOL[head]];
      checkGrid('train', unet, t, b);
    }
    const inputs: HeadInputs = {
      head,
      t,
      b: head === 'difffeed' ? [] : b,
      pool: extractPool,
      identity,
      backbone: loaded.label,
    };
    const augment = !flags['no-augment'];
    const trainSet = await openRunSet('train', mainSetSource(features, dataSpec, flags, io.stderr), inputs, unet, {
      what: 'training',
      augment,
    });
    open.push(trainSet);
    const distinct = new Set(trainSet.labels).size;
    if (distinct < 2)
      throw new InputError(
        `train: the training examples of ${trainSet.source} all have label ${trainSet.labels[0]}: one class, nothing to learn; use images with labels (an image folder, an IDX file with --labels, fashion-mnist:train)`,
      );
    const classes = trainSet.classes?.length ?? trainSet.labels.reduce((m, l) => Math.max(m, l), 0) + 1;
    const batchSize = flags.batch ?? recipe.batchSize;
    if (trainSet.size < batchSize)
      throw new InputError(
        `train: ${trainSet.size} training images are fewer than one batch of ${batchSize}; give a smaller --batch`,
      );
    const optimizer: OptimizerSpec = {
      type: (flags.optimizer ?? 'sgd') as OptimizerSpec['type'],
      lr: flags.lr ?? recipe.optimizer.lr,
    };
    const config = runConfig({
      head,
      finetune_args: finetuneArgs(head, { t, b, pool, classes }, flags, unet),
      classes: trainSet.classes ? [...trainSet.classes] : null,
      backbone: {
        identity,
        label: loaded.label,
        model: loaded.file ?? null,
        // A preset by name, a flags file by its absolute path, as loadModel read them.
        flags:
          typeof loaded.flags === 'string'
            ? loaded.flags
            : flags.flags !== undefined
              ? path.resolve(flags.flags)
              : null,
      },
      input: {
        kind: features ? 'features' : 'images',
        source: trainSet.source,
        images: trainSet.size,
        pool: extractPool,
        fingerprint: trainSet.fingerprint,
      },
      training: {
        optimizer,
        batchSize,
        seed: flags.seed ?? 0,
        lrStep: flags['lr-step'] ?? recipe.stepSize,
        lrGamma: flags['lr-gamma'] ?? recipe.gamma,
        augment: !features && augment,
      },
    });
    // Built now so that a head the backbone cannot carry fails before anything is written.
    const sys = buildSystem(config, unet);
    disposables.push(sys);
    // Settings are compared only once a checkpoint exists: before that there is nothing to lose.
    if (started) {
      const diff = settingDifferences(existing, config);
      if (diff.length)
        throw new CommandFailure(
          `train: ${flags.output} holds a run with other settings (${diff.join('; ')}); use another -o, or delete ${flags.output} to start over`,
        );
    }
    const previous = started ? readTrainRecord(out) : undefined;
    if (previous && previous.history.length > epochs)
      throw new InputError(
        `train: ${flags.output} has already trained ${previous.history.length} epochs; give --epochs ${previous.history.length} or more`,
      );
    const weightsFile = path.join(out, RUN_FILES.weights);
    if (previous?.status === 'done' && previous.epochs === epochs && fs.existsSync(weightsFile)) {
      const r = report(out, existing!, previous, 'already done', epochs);
      io.stdout(flags.json ? `${JSON.stringify(r)}\n` : flags.quiet ? '' : summary(r));
      return 0;
    }

    let testSet: RunSet | undefined;
    if (flags.test !== undefined) {
      const source = isFeatureDir(flags.test)
        ? { features: await openFeatures('train', flags.test, 'test') }
        : {
            data: flags.test,
            labels: flags['test-labels'],
            limit: flags['test-limit'],
            labelsFlag: '--test-labels',
            skipBad: flags['skip-bad'] === true,
            warn: io.stderr,
          };
      testSet = await openRunSet('train', source, inputs, unet, { what: 'test', augment: false });
      open.push(testSet);
      checkTestLabels('train', testSet, classes, config.classes);
    }

    fs.mkdirSync(out, { recursive: true });
    await writeBytesAtomic(path.join(out, RUN_FILES.config), JSON.stringify(config, null, 1));
    const opt = makeOptimizer(optimizer);
    disposables.push(opt);
    let record = trainRecord({ status: 'running', epochs, history: previous?.history ?? [], test: null });
    // Epoch records are written in order after the trainer's own checkpoint; the last write is awaited below.
    writing = writeBytesAtomic(path.join(out, RUN_FILES.record), JSON.stringify(record, null, 1));
    let base: number | undefined;
    const result = await train(trainableSystem(sys), trainSet.data, {
      epochs,
      batchSize,
      optimizer: opt,
      schedule: new StepLR(opt, { stepSize: config.training.lrStep, gamma: config.training.lrGamma }),
      seed: config.training.seed,
      ...(testSet ? { evalData: testSet.data, evalEvery: flags['eval-every'] ?? recipe.evalEvery } : {}),
      checkpoint: {
        path: checkpointDir,
        ...(flags['checkpoint-steps'] !== undefined ? { everySteps: flags['checkpoint-steps'] } : {}),
      },
      resume: true,
      onProgress: (p) => {
        base ??= p.done - 1;
        bar.update(p.done - base, p.total - base);
      },
      onEpoch: (r) => {
        record = { ...record, history: [...record.history.filter((h) => h.epoch <= r.epoch), epochRecord(r)] };
        const snapshot = JSON.stringify(record, null, 1);
        writing = writing.then(() => writeBytesAtomic(path.join(out, RUN_FILES.record), snapshot));
      },
    });
    await writing;
    bar.done();
    // A checkpoint further on than --epochs (its train.json lost): the trainer did nothing; say so before writing.
    if (result.history.length > epochs)
      throw new InputError(
        `train: ${flags.output} has already trained ${result.history.length} epochs; give --epochs ${result.history.length} or more`,
      );
    const last = result.history.at(-1);
    await sys.saveWeights(weightsFile);
    record = trainRecord({
      status: 'done',
      epochs,
      history: result.history.map(epochRecord),
      test: testSet && last?.eval ? { ...last.eval, source: testSet.source } : null,
    });
    await writeBytesAtomic(path.join(out, RUN_FILES.record), JSON.stringify(record, null, 1));
    const r = report(
      out,
      config,
      record,
      result.startedAt.epoch > 0 || result.startedAt.step > 0 ? 'resumed' : 'trained',
      result.startedAt.epoch,
    );
    if (flags.json) io.stdout(`${JSON.stringify(r)}\n`);
    else if (!flags.quiet) io.stdout(summary(r));
    return 0;
  } finally {
    bar.done();
    await writing.catch(() => {});
    disposables.forEach((d) => d.dispose());
    for (const s of open) await s.close();
    unet.dispose();
  }
}
