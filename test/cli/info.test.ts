import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePNG } from '../decodePNG';
import { FIXTURES, setBackend } from '../helpers';
import { cli, oneLine } from './cliHarness';

// The embedded backbone's weights are committed with the model (models/fashion-mnist-adm); without them those tests skip.
const HAS_BACKBONE = fs.existsSync(path.resolve(__dirname, '../../models/fashion-mnist-adm/weights.safetensors'));
const tiny = path.join(FIXTURES, 'adm-tiny', 'weights.safetensors');
const tinyFlags = path.join(FIXTURES, 'adm-tiny', 'config.json');
let tmp: string;
beforeAll(async () => {
  await setBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-info-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('diffssl info', () => {
  it.skipIf(!HAS_BACKBONE)('describes the embedded backbone: flags, parameters, 19 blocks, memory', async () => {
    const r = await cli(['info']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/^model: the embedded backbone \(models\/fashion-mnist-adm\)\n/);
    expect(r.out).toMatch(/images: 28×28×1, unconditional, T = 1000 steps \(t in 0\.\.999\)/);
    expect(r.out).toMatch(/parameters: 1,8\d\d,\d\d\d\n/);
    expect(r.out).toMatch(/memory: weights 7\.\d MB as float32 \(4 B × parameters\)/);
    expect(r.out).toMatch(/blocks \(19; extract features with --b\):/);
    expect(r.out).toMatch(/\n {4}1 {2}input {3}input_blocks\.0 +32 +28 +100\.4 kB\n/);
    const j = await cli(['info', '--json']);
    expect(j.code).toBe(0);
    const info = JSON.parse(j.out);
    expect(j.out.trim().split('\n')).toHaveLength(1);
    expect(info.blocks).toHaveLength(19);
    expect(info.blocks[0]).toEqual({
      b: 1,
      part: 'input',
      module: 'input_blocks.0',
      channels: 32,
      side: 28,
      featureBytes: 100352,
    });
    expect(info.parameters * 4).toBe(info.memory.weightsFloat32);
    expect(info.memory.how).toMatch(/4 bytes × parameters/);
    expect(info.config.imageSize).toBe(28);
  });

  it('--model with flags from a config.json (create_model_and_diffusion_args) or beside the weights', async () => {
    const r = await cli(['info', '--model', tiny, '--flags', tinyFlags, '--json']);
    expect(r.code, r.err).toBe(0);
    const info = JSON.parse(r.out);
    expect(info.config).toMatchObject({ imageSize: 32, inChannels: 3 });
    expect(info.flags.num_head_channels).toBe(16);
    expect(info.blocks.length).toBeGreaterThan(10);
    // flags.json beside the weights is found without --flags.
    const dir = path.join(tmp, 'm');
    fs.mkdirSync(dir);
    fs.copyFileSync(tiny, path.join(dir, 'w.safetensors'));
    fs.writeFileSync(
      path.join(dir, 'flags.json'),
      JSON.stringify(JSON.parse(fs.readFileSync(tinyFlags, 'utf8')).create_model_and_diffusion_args),
    );
    const b = await cli(['info', '--model', path.join(dir, 'w.safetensors')]);
    expect(b.code, b.err).toBe(0);
    expect(b.out).toMatch(/images: 32×32×3/);
  });

  it('bad model options: one line, exit 1 (a file) or 2 (usage)', async () => {
    const cases: [string[], number, RegExp][] = [
      [
        ['info', '--model', path.join(tmp, 'nope.safetensors'), '--flags', tinyFlags],
        1,
        /model file .*nope\.safetensors does not exist/,
      ],
      [['info', '--model', tiny], 2, /--model needs --flags/],
      [['info', '--flags', tinyFlags], 2, /--flags goes with --model/],
      [
        ['info', '--model', tiny, '--flags', 'no_such_preset'],
        2,
        /neither a preset \(64x64_diffusion, .*\) nor a JSON file/,
      ],
      [['info', '--model', tiny, '--flags', '256x256_diffusion_uncond'], 1, /does not fit|missing|mis-shaped/],
      [
        ['info', '--model', tiny, '--flags', path.join(tmp, 'missing.json')],
        1,
        /cannot read the flags file .*missing\.json/,
      ],
      [['info', '--jsn'], 2, /info: unknown option --jsn/],
      [['info', 'extra'], 2, /info takes no arguments/],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli(args);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(code);
      expect(r.out).toBe('');
      if (code === 1) expect(oneLine(r.err)).toMatch(message);
      else expect(r.err.split('\n')[0]).toMatch(message);
    }
  });
});

describe('diffssl sample', () => {
  it.skipIf(!HAS_BACKBONE)('writes a PNG grid of DDIM samples; a progress bar on a terminal', async () => {
    const out = path.join(tmp, 'grid.png');
    const r = await cli(['sample', '--n', '4', '--steps', '2', '--seed', '1', '-o', out], { isTTY: true });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^sampled 4 images \(2 DDIM steps, η = 0\) in [\d.]+ s: .*grid\.png\n$/);
    expect(r.err).toMatch(/\r\[#+\] 100% {2}2 \/ 2 steps .* done\n$/);
    const png = decodePNG(fs.readFileSync(out));
    expect([png.width, png.height]).toEqual([2 * 30 + 2, 2 * 30 + 2]);
    const j = await cli(['sample', '--n', '2', '--steps', '2', '--columns', '2', '-o', out, '--json']);
    expect(j.code, j.err).toBe(0);
    expect(JSON.parse(j.out)).toMatchObject({ n: 2, steps: 2, seed: 0, eta: 0, side: 28, channels: 1 });
    expect(decodePNG(fs.readFileSync(out)).width).toBe(2 * 30 + 2);
  });

  it('with --model: a learned-variance model, RGB', async () => {
    const out = path.join(tmp, 'tiny.png');
    const r = await cli([
      'sample',
      '--model',
      tiny,
      '--flags',
      tinyFlags,
      '--n',
      '2',
      '--steps',
      '2',
      '-o',
      out,
      '--json',
    ]);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ n: 2, steps: 2, side: 32, channels: 3 });
    expect(decodePNG(fs.readFileSync(out)).width).toBe(2 * 34 + 2);
  });

  it.skipIf(!HAS_BACKBONE)('bad inputs', async () => {
    const cases: [string[], number, RegExp][] = [
      [['sample'], 2, /sample needs -o FILE/],
      [
        ['sample', '-o', '/missing/dir/g.png'],
        1,
        /cannot write \/missing\/dir\/g\.png: the folder \/missing\/dir does not exist/,
      ],
      [['sample', '-o', path.join(tmp, 'g.png'), '--steps', '5000'], 1, /--steps 5000 is more than the model's 1000/],
      [
        ['sample', '-o', path.join(tmp, 'g.png'), '--steps', '1'],
        1,
        /--steps 1: no integer stride gives exactly 1 of 1000 steps/,
      ],
      [['sample', '-o', path.join(tmp, 'g.png'), '--n', 'many'], 2, /--n takes a positive integer, got "many"/],
      [
        ['sample', '-o', path.join(tmp, 'g.png'), '--class', '1', '--n', '1', '--steps', '1'],
        1,
        /--class is for class-conditional/,
      ],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli(args);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(code);
      if (code === 1) expect(oneLine(r.err)).toMatch(message);
      else expect(r.err.split('\n')[0]).toMatch(message);
    }
    expect(fs.existsSync(path.join(tmp, 'g.png'))).toBe(false);
  });

  it('--help on every command, and the top usage lists them with the exit statuses', async () => {
    for (const c of ['convert', 'info', 'extract', 'merge', 'sweep', 'knn', 'cka', 'sample']) {
      const r = await cli([c, '--help']);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`Usage:\\n {2}diffssl ${c} `));
    }
    const top = await cli(['--help']);
    expect(top.out).toMatch(/diffssl extract DATA --t 90,150 --b 19,24 -o DIR/);
    expect(top.out).toMatch(/3 an incomplete sharded\nrun/);
  });
});
