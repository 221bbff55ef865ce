// diffssl train and diffssl eval end to end, in-process, on the adm-tiny fixture U-Net and a handful of
// Fashion-MNIST images: extract → train → eval with JSON checked, resume, the finished no-op, every
// head, bad inputs (one line, non-zero exit, no stack) and tensors freed on success and on failure.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, setBackend } from '../helpers';
import { cli, cliJson, extractTiny, oneLine, TINY_MODEL } from './cliHarness';

const ARC = 'Use_CLS_Token:True:32,Insert_CLS_Token,Attention:32:2:2:1,Extract_CLS_Token';
let tmp: string;
let trainDir: string;
let testDir: string;

const inUnit = (v: unknown) => typeof v === 'number' && v >= 0 && v <= 1;

beforeAll(async () => {
  await setBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-train-'));
  trainDir = path.join(tmp, 'feats-train');
  testDir = path.join(tmp, 'feats-test');
  await extractTiny('fashion-mnist:train', 24, trainDir, '90,150', '2,4');
  await extractTiny('fashion-mnist:test', 12, testDir, '90,150', '2,4');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('diffssl train and eval', () => {
  it('--help of each, and the top usage lists both', async () => {
    for (const c of ['train', 'eval']) {
      const r = await cli([c, '--help']);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`^Usage:\\n {2}diffssl ${c} `));
    }
    const top = await cli(['--help']);
    expect(top.out).toMatch(/diffssl train HEAD \(DATA \| --features DIR\) -o RUN_DIR/);
    expect(top.out).toMatch(/diffssl eval RUN_DIR \(DATA \| --features DIR\)/);
  });

  it('extract → train linear on features → eval on features and on images; a finished re-run does nothing', async () => {
    const run = path.join(tmp, 'linear');
    const args = ['train', 'linear', '--features', trainDir, '--test', testDir, '--t', '150', '--b', '4'];
    const opts = ['--epochs', '2', '--batch', '8', '--lr', '0.05', '-o', run, ...TINY_MODEL];
    const j = await cliJson([...args, ...opts]);
    expect(j).toMatchObject({
      run,
      head: 'linear',
      status: 'trained',
      t: [150],
      b: [4],
      pool: 2,
      classes: 10,
      input: 'features',
      images: 24,
      epochs: 2,
    });
    expect(j.history.map((h: { epoch: number }) => h.epoch)).toEqual([1, 2]);
    for (const h of j.history)
      expect(Number.isFinite(h.trainLoss) && inUnit(h.trainTop1), JSON.stringify(h)).toBe(true);
    expect(j.test.examples).toBe(12);
    for (const v of [j.test.top1, j.test.top5]) expect(inUnit(v)).toBe(true);
    expect(j.test.top5).toBeGreaterThanOrEqual(j.test.top1);
    for (const f of ['config.json', 'weights.safetensors', 'train.json', 'checkpoint/checkpoint.json'])
      expect(fs.existsSync(path.join(run, f)), f).toBe(true);
    const config = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      format: 'diffssl.head-run',
      head: 'linear',
      finetune_args: { head_type: 'linear', t_list: [150], first_fw_b_list: [4], pre_pool_size: 2, num_classes: 10 },
      input: { kind: 'features', pool: 2, images: 24 },
    });
    expect(config.backbone.identity).toMatch(/^[0-9a-f]{64}$/);
    const record = JSON.parse(fs.readFileSync(path.join(run, 'train.json'), 'utf8'));
    expect(record).toMatchObject({ status: 'done', epochs: 2, test: { examples: 12, source: testDir } });

    // eval on the same test features gives train's final test result; the run's backbone is the default.
    const e = await cliJson(['eval', run, '--features', testDir]);
    expect(e).toMatchObject({ run, head: 'linear', examples: 12 });
    expect(e.top1).toBeCloseTo(j.test.top1, 6);
    expect(e.loss).toBeCloseTo(j.test.loss, 5);
    // On images the features are computed through the U-Net, pooled as the training features were.
    const d = await cliJson(['eval', run, 'fashion-mnist:test', '--limit', '8']);
    expect(d.examples).toBe(8);
    for (const v of [d.top1, d.top5, d.loss > 0 ? 0 : -1]) expect(inUnit(v)).toBe(true);
    const summary = await cli(['eval', run, '--features', testDir]);
    expect(summary.out).toMatch(/^linear head of .* top-1 [\d.]+%, top-5 [\d.]+%, loss [\d.]+ \(12 images\)\n$/);

    // The same command again: nothing trained, nothing written, the same result.
    const stat = (f: string) => fs.statSync(path.join(run, f)).mtimeMs;
    const before = ['weights.safetensors', 'train.json'].map(stat);
    const again = await cliJson([...args, ...opts]);
    expect(again.status).toBe('already done');
    expect(again.history).toEqual(j.history);
    expect(again.test).toEqual(j.test);
    expect(['weights.safetensors', 'train.json'].map(stat)).toEqual(before);
    const text = await cli([...args, ...opts]);
    expect(text.out).toMatch(/^linear head at t=150, b=4 on 24 images: already trained for 2 epochs, nothing to do;/);
  });

  it('a run stopped after one epoch and continued ends with the bytes of a run that never stopped', async () => {
    const base = ['train', 'mlp', '--features', trainDir, '--t', '90', '--b', '2', '--hidden', '16'];
    const opts = [
      '--batch',
      '8',
      '--lr',
      '0.05',
      '--optimizer',
      'momentum',
      '--lr-step',
      '1',
      '--seed',
      '3',
      ...TINY_MODEL,
    ];
    const [split, straight] = [path.join(tmp, 'mlp-split'), path.join(tmp, 'mlp-straight')];
    const first = await cliJson([...base, ...opts, '--epochs', '1', '-o', split]);
    expect(first.status).toBe('trained');
    const second = await cliJson([...base, ...opts, '--epochs', '2', '-o', split]);
    expect(second).toMatchObject({ status: 'resumed', startedAtEpoch: 1, epochs: 2 });
    const whole = await cliJson([...base, ...opts, '--epochs', '2', '-o', straight]);
    expect(whole.status).toBe('trained');
    const bytes = (d: string) => fs.readFileSync(path.join(d, 'weights.safetensors'));
    expect(Buffer.compare(bytes(split), bytes(straight))).toBe(0);
    expect(second.history).toEqual(whole.history);
    // The learning rate stepped down after epoch 1 (--lr-step 1, gamma 0.1), in both.
    expect(whole.history.map((h: { lr: number }) => h.lr)).toEqual([0.05, 0.05 * 0.1]);
    // Fewer epochs than trained is refused, without touching the run.
    const r = await cli([...base, ...opts, '--epochs', '1', '-o', split]);
    expect(r.code).toBe(1);
    expect(oneLine(r.err)).toMatch(/has already trained 2 epochs; give --epochs 2 or more/);
  });

  it('attention on one (t, b) and difformer over several blocks and steps, from features', async () => {
    const att = path.join(tmp, 'attention');
    const args = [
      'train',
      'attention',
      '--features',
      trainDir,
      '--test',
      testDir,
      '--t',
      '150',
      '--b',
      '4',
      '--arc',
      ARC,
      '--pool',
      '2',
      '--epochs',
      '1',
      '--batch',
      '8',
      '-o',
      att,
      ...TINY_MODEL,
    ];
    // On a terminal the bar (steps of this run, with a rate and ETA) goes to stderr; stdout holds the JSON alone.
    const tty = await cli([...args, '--json'], { isTTY: true });
    expect(tty.code, tty.err).toBe(0);
    expect(tty.err).toMatch(/^\r\[[#.]+\] +\d+% +1 \/ 3 steps .*ETA/);
    expect(tty.err).toMatch(/\r\[#+\] 100% {2}3 \/ 3 steps .* done\n$/);
    const a = JSON.parse(tty.out);
    expect(a).toMatchObject({ head: 'attention', t: [150], b: [4], pool: 2, test: { examples: 12 } });
    expect(inUnit(a.test.top1)).toBe(true);
    const dif = path.join(tmp, 'difformer');
    // Without --b, difformer takes every block of the directory.
    const d = await cliJson([
      'train',
      'difformer',
      '--features',
      trainDir,
      '--t',
      '90,150',
      '--arc',
      ARC,
      '--norm',
      'batch',
      '--epochs',
      '1',
      '--batch',
      '8',
      '-o',
      dif,
      ...TINY_MODEL,
    ]);
    expect(d).toMatchObject({ head: 'difformer', t: [90, 150], b: [2, 4], pool: 2, test: null });
    const config = JSON.parse(fs.readFileSync(path.join(dif, 'config.json'), 'utf8'));
    expect(config.finetune_args).toMatchObject({ head_type: 'attention', norm_type: 'batch', fusion_arc: ARC });
    const e = await cliJson(['eval', dif, '--features', testDir, '--batch', '5']);
    expect(e).toMatchObject({ head: 'difformer', examples: 12 });
    expect(inUnit(e.top1) && inUnit(e.top5)).toBe(true);
  });

  it('difffeed on the fly from images (two U-Net passes per batch), then eval on images', async () => {
    const run = path.join(tmp, 'difffeed');
    const j = await cliJson([
      'train',
      'difffeed',
      'fashion-mnist:train',
      '--limit',
      '8',
      '--t',
      '150',
      '--b',
      '12',
      '--feedback',
      '11,12',
      '--arc',
      ARC,
      '--epochs',
      '1',
      '--batch',
      '4',
      '--test',
      'fashion-mnist:test',
      '--test-limit',
      '4',
      '-o',
      run,
      ...TINY_MODEL,
    ]);
    expect(j).toMatchObject({ head: 'difffeed', input: 'images', images: 8, t: [150], b: [12], classes: 10 });
    expect(j.test.examples).toBe(4);
    const config = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));
    expect(config.finetune_args).toMatchObject({ second_fw_b_list: [12], feedback_b_list: [11, 12] });
    expect(config.classes).toHaveLength(10);
    expect(config.training.augment).toBe(true);
    // eval draws the same noise as train's --test did (the run's seed), so the scores agree.
    const e = await cliJson(['eval', run, 'fashion-mnist:test', '--limit', '4']);
    expect(e.examples).toBe(4);
    expect(e.top1).toBeCloseTo(j.test.top1, 6);
  });

  it('bad inputs: one line and exit 1, or the message and usage with exit 2; never a stack trace', async () => {
    const linear = path.join(tmp, 'linear');
    const other = path.join(tmp, 'feats-other');
    await extractTiny('fashion-mnist:test', 4, other, '90', '2', '4');
    // An IDX images file without labels.
    const idx = path.join(tmp, 'images-idx3-ubyte');
    const head = Buffer.from([0, 0, 8, 3, 0, 0, 0, 8, 0, 0, 0, 28, 0, 0, 0, 28]);
    fs.writeFileSync(idx, Buffer.concat([head, Buffer.alloc(8 * 28 * 28, 128)]));
    fs.mkdirSync(path.join(tmp, 'not-a-run'));
    fs.writeFileSync(path.join(tmp, 'not-a-run', 'x.txt'), 'x');
    const T = ['--t', '150', '--b', '4'];
    const cases: [string[], number, RegExp][] = [
      [
        ['train', 'svm', '--features', trainDir, '-o', path.join(tmp, 'x')],
        2,
        /train: unknown head "svm"; the heads are linear, mlp, attention, difformer, difffeed/,
      ],
      [['train', 'linear', '--features', trainDir], 2, /train: give -o RUN_DIR/],
      [
        ['train', 'linear', '-o', path.join(tmp, 'x')],
        2,
        /train: give the training examples: DATA \(images\) or --features DIR/,
      ],
      [
        ['train', 'linear', '--features', trainDir, '--epochs', 'two', '-o', path.join(tmp, 'x')],
        2,
        /train: --epochs takes a positive integer, got "two"/,
      ],
      [
        ['train', 'linear', '--features', trainDir, '--t', '90,150', '--b', '4', '-o', path.join(tmp, 'x')],
        2,
        /the linear head reads one step and one block/,
      ],
      [
        ['train', 'linear', '--features', trainDir, '--b', '4', '-o', path.join(tmp, 'x'), ...TINY_MODEL],
        2,
        /train: .*feats-train holds the noise steps t=90,150; choose one with --t/,
      ],
      [
        ['train', 'difffeed', '--features', trainDir, '-o', path.join(tmp, 'x')],
        2,
        /difffeed runs the U-Net twice per image, so it trains on DATA/,
      ],
      [
        ['train', 'linear', '--features', trainDir, '--hidden', '8', '-o', path.join(tmp, 'x')],
        2,
        /--hidden is for the mlp head/,
      ],
      [
        ['train', 'mlp', '--features', trainDir, '--hidden', '8_x', '-o', path.join(tmp, 'x')],
        2,
        /train: --hidden: head_arc "8_x"/,
      ],
      [['train', 'linear', 'fashion-mnist:train', '-o', path.join(tmp, 'x')], 2, /training on DATA needs --t and --b/],
      [
        ['train', 'linear', 'fashion-mnist:train', '--t', '1000', '--b', '4', '-o', path.join(tmp, 'x'), ...TINY_MODEL],
        1,
        /train: --t 1000 is out of range: this model's steps are 0\.\.999/,
      ],
      [
        ['train', 'linear', 'fashion-mnist:train', '--t', '150', '--b', '99', '-o', path.join(tmp, 'x'), ...TINY_MODEL],
        1,
        /train: unknown block 99: this model has blocks 1\.\.19 \(see diffssl info\)/,
      ],
      [
        [
          'train',
          'difffeed',
          'fashion-mnist:train',
          '--limit',
          '8',
          '--batch',
          '4',
          '--t',
          '150',
          '--b',
          '12',
          '--feedback',
          '3',
          '-o',
          path.join(tmp, 'x'),
          ...TINY_MODEL,
        ],
        1,
        /feedback block 3 is not a decoder block/,
      ],
      [
        [
          'train',
          'difffeed',
          'fashion-mnist:train',
          '--t',
          '150',
          '--b',
          '12',
          '--feedback',
          'multi-scale',
          '-o',
          path.join(tmp, 'x'),
          ...TINY_MODEL,
        ],
        2,
        /train: --feedback takes all, bottleneck, windowed or a comma list of decoder blocks, got "multi-scale"/,
      ],
      [
        ['train', 'linear', '--features', path.join(tmp, 'nope'), ...T, '-o', path.join(tmp, 'x')],
        1,
        /train: the training features .*nope do not exist/,
      ],
      [
        ['train', 'linear', '--features', trainDir, '--t', '999', '--b', '4', '-o', path.join(tmp, 'x'), ...TINY_MODEL],
        1,
        /train: .*feats-train has no noise step t=999; it holds t=90,150/,
      ],
      [
        ['train', 'linear', '--features', trainDir, ...T, '--pool', '4', '-o', path.join(tmp, 'x'), ...TINY_MODEL],
        1,
        /were pooled to 2×2 at extraction; give --pool 2 or less/,
      ],
      [
        ['train', 'linear', '--features', trainDir, ...T, '-o', path.join(tmp, 'x')],
        1,
        /train: the training features in .*feats-train were extracted with another model than the embedded backbone/,
      ],
      [
        ['train', 'linear', idx, ...T, '-o', path.join(tmp, 'x'), ...TINY_MODEL],
        1,
        /train: .*images-idx3-ubyte has no labels; training images need them: .*an IDX file with --labels/,
      ],
      [
        ['train', 'linear', '--features', trainDir, ...T, '--batch', '32', '-o', path.join(tmp, 'x'), ...TINY_MODEL],
        1,
        /24 training images are fewer than one batch of 32; give a smaller --batch/,
      ],
      [
        [
          'train',
          'linear',
          '--features',
          trainDir,
          ...T,
          '--test',
          other,
          '--batch',
          '8',
          '-o',
          path.join(tmp, 'x'),
          ...TINY_MODEL,
        ],
        1,
        /train: the test features in .*feats-other lack t=150 b=4; extract them with --t 150 --b 4/,
      ],
      [
        ['train', 'linear', '--features', trainDir, ...T, '-o', path.join(tmp, 'not-a-run'), ...TINY_MODEL],
        1,
        /not-a-run is not empty and holds no diffssl train run; use another -o/,
      ],
      [
        [
          'train',
          'linear',
          '--features',
          trainDir,
          ...T,
          '--epochs',
          '2',
          '--batch',
          '8',
          '--lr',
          '0.1',
          '-o',
          linear,
          ...TINY_MODEL,
        ],
        1,
        /linear holds a run with other settings \(training\.optimizer\.lr 0\.05 → 0\.1\); use another -o, or delete .*linear to start over/,
      ],
      [['eval', linear], 2, /eval: give the test examples: DATA \(images\) or --features DIR/],
      [['eval', linear, '--features', testDir, '--batch', '0'], 2, /eval: --batch takes a positive integer, got "0"/],
      [['eval', path.join(tmp, 'nope'), '--features', testDir], 1, /eval: the run .*nope does not exist/],
      [
        ['eval', path.join(tmp, 'not-a-run'), '--features', testDir],
        1,
        /eval: .*not-a-run is not a diffssl train run \(it has no config\.json\)/,
      ],
      [['eval', linear, '--features', other], 1, /eval: the test features in .*feats-other lack t=150 b=4/],
      [
        ['eval', path.join(tmp, 'mlp-straight'), '--features', other],
        1,
        /eval: the test features in .*feats-other were pooled to 4×4 at extraction, the head's inputs were pooled to 2×2; extract them with --pool 2/,
      ],
      [
        [
          'eval',
          linear,
          '--features',
          testDir,
          '--model',
          path.join(FIXTURES, 'adm-tiny', 'weights.safetensors'),
          '--flags',
          'adm-tiny-nope',
        ],
        2,
        /--flags adm-tiny-nope is neither a preset/,
      ],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli(args);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(code);
      expect(r.err, args.join(' ')).not.toMatch(/\n\s+at |node:internal/);
      if (code === 1) expect(oneLine(r.err)).toMatch(message);
      else expect(r.err.split('\n')[0]).toMatch(message);
      expect(r.out).toBe('');
    }
    // Nothing was written for the refused runs.
    expect(fs.existsSync(path.join(tmp, 'x'))).toBe(false);
  });

  it('tensors return to their count after a success and after a failure', async () => {
    const args = ['train', 'linear', '--features', trainDir, '--t', '90', '--b', '4', '--epochs', '1'];
    const before = tf.memory().numTensors;
    const ok = await cli([
      ...args,
      '--batch',
      '8',
      '-o',
      path.join(tmp, 'memory'),
      '--test',
      testDir,
      '--quiet',
      ...TINY_MODEL,
    ]);
    expect(ok.code, ok.err).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    const e = await cli(['eval', path.join(tmp, 'memory'), 'fashion-mnist:test', '--limit', '4', '--quiet']);
    expect(e.code, e.err).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    // Failures after the model (and, for train, the features) were loaded.
    const bad = await cli(['eval', path.join(tmp, 'memory'), 'fashion-mnist:test', '--labels', 'labels.idx']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^diffssl: eval: --labels goes with an IDX images file, not fashion-mnist:test/);
    expect(tf.memory().numTensors).toBe(before);
    const tooBig = await cli([...args, '--batch', '99', '-o', path.join(tmp, 'memory-2'), ...TINY_MODEL]);
    expect(tooBig.code).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
  });
});
