/**
 * `diffssl eval RUN_DIR (DATA | --features DIR)`: loss, top-1 and top-5 of a trained head (a
 * `diffssl train` run) on test examples.
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../../errors.js';
import { evaluate } from '../../train/trainer.js';
import { OUTPUT_FLAGS, OUTPUT_HELP, parseArgs, type FlagSpec } from '../args.js';
import { DATA_FLAGS, DATA_HELP } from '../data.js';
import { openFeatures } from '../featureDirs.js';
import {
  mainSetSource,
  buildSystem,
  checkOneSource,
  checkTestLabels,
  openRunSet,
  readRunConfig,
  RUN_FILES,
  trainableSystem,
  withProgress,
  type RunSet,
} from '../headRun.js';
import { CommandFailure, progressBar, type CliIO } from '../io.js';
import { loadModel, MODEL_FLAGS, MODEL_HELP, modelIdentity } from '../model.js';

/** The usage lines of `diffssl eval`, also in the top-level usage. */
export const EVAL_USAGE = `  diffssl eval RUN_DIR (DATA | --features DIR) [--batch N] [--seed S] [--labels FILE] [--limit N] [--json]
      Loss, top-1 and top-5 accuracy of the head a diffssl train run wrote, on test images (through
      the run's backbone) or on a merged diffssl extract directory of the same model, steps, blocks
      and pool.
`;

/** The options of `diffssl eval`. */
export const EVAL_FLAGS = {
  ...MODEL_FLAGS,
  ...DATA_FLAGS,
  ...OUTPUT_FLAGS,
  features: { kind: 'string' },
  batch: { kind: 'count' },
  seed: { kind: 'int' },
} as const satisfies Record<string, FlagSpec>;

const HELP = `Usage:
${EVAL_USAGE}
${DATA_HELP}

  --features DIR     evaluate on the features of a merged diffssl extract directory (extracted with
                     the run's model, --t, --b and --pool)
  --batch N          examples per forward (default: the run's training batch). On DATA the noise is
                     drawn per batch, so only the run's batch gives train's --test result again
  --seed S           seed of the noise on DATA (default: the run's seed, as train's --test used)
  --labels FILE      the IDX labels file of an IDX images DATA
  --limit N          only the first N images of DATA
${OUTPUT_HELP}
${MODEL_HELP}

  Without --model, eval loads the backbone the run was trained with (recorded in its config.json);
  a --model must be that same model.
`;

/**
 * Runs `diffssl eval` on its arguments (after the command name).
 * @returns the exit status (0; failures and bad usage are thrown for `main` to report).
 */
export async function evalCommand(args: string[], io: CliIO): Promise<number> {
  const { flags, positional, help } = parseArgs('eval', args, EVAL_FLAGS, {
    min: 1,
    max: 2,
    names: 'RUN_DIR and DATA (or --features DIR)',
  });
  if (help) {
    io.stdout(HELP);
    return 0;
  }
  const [runArg, dataSpec] = positional;
  checkOneSource('eval', 'test', dataSpec, flags.features, {
    labels: flags.labels,
    limit: flags.limit,
    'skip-bad': flags['skip-bad'],
  });
  const dir = path.resolve(runArg);
  if (!fs.existsSync(dir))
    throw new CommandFailure(`eval: the run ${runArg} does not exist; give the -o RUN_DIR of a diffssl train run`);
  const config = readRunConfig('eval', dir);
  if (!config)
    throw new CommandFailure(
      `eval: ${runArg} is not a diffssl train run (it has no ${RUN_FILES.config}); give the -o RUN_DIR of a diffssl train run`,
    );
  const weights = path.join(dir, RUN_FILES.weights);
  if (!fs.existsSync(weights))
    throw new CommandFailure(
      `eval: ${runArg} has no trained weights yet (${RUN_FILES.weights} is written when training ends); run its diffssl train command again to finish it`,
    );
  const features = flags.features !== undefined ? await openFeatures('eval', flags.features, 'test') : undefined;
  // The run's own backbone unless another is given (then it must be the same model).
  const b = config.backbone;
  const loaded = await loadModel(
    'eval',
    flags.model !== undefined
      ? flags
      : { ...(b.model ? { model: b.model } : {}), ...(b.flags ? { flags: b.flags } : {}), backend: flags.backend },
    io,
  );
  const unet = loaded.model;
  let set: RunSet | undefined;
  let sys: ReturnType<typeof buildSystem> | undefined;
  const bar = progressBar(io, { quiet: flags.quiet, unit: 'images' });
  try {
    const identity = await modelIdentity(loaded);
    if (identity !== b.identity)
      throw new InputError(
        `eval: ${loaded.label} is not the model the head in ${runArg} was trained on (${b.label}); give that one with --model and --flags`,
      );
    const a = config.finetune_args;
    set = await openRunSet(
      'eval',
      mainSetSource(features, dataSpec, flags, io.stderr),
      {
        head: config.head,
        t: a.t_list,
        b: a.first_fw_b_list,
        pool: config.input.pool,
        identity,
        backbone: b.label,
      },
      unet,
      { what: 'test', augment: false },
    );
    checkTestLabels('eval', set, a.num_classes, config.classes);
    sys = buildSystem(config, unet);
    await sys.loadWeights(weights);
    const r = await evaluate(trainableSystem(sys), withProgress(set.data, bar), {
      batchSize: flags.batch ?? config.training.batchSize,
      seed: flags.seed ?? config.training.seed,
    });
    bar.done();
    const result = {
      run: dir,
      head: config.head,
      data: set.label,
      source: set.source,
      examples: r.examples,
      loss: r.loss,
      top1: r.top1,
      top5: r.top5,
    };
    if (flags.json) io.stdout(`${JSON.stringify(result)}\n`);
    else if (!flags.quiet)
      io.stdout(
        `${config.head} head of ${runArg} on ${set.source}: top-1 ${(r.top1 * 100).toFixed(1)}%, top-5 ${(r.top5 * 100).toFixed(1)}%, loss ${r.loss.toFixed(4)} (${r.examples} images)\n`,
      );
    return 0;
  } finally {
    bar.done();
    sys?.dispose();
    await set?.close();
    unet.dispose();
  }
}
