import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMUNet } from '../../src/unet/admUnet';
import { BACKENDS, gradientChecks, setBackend, type GradientCheck } from '../helpers';

// Central-difference checks of the gradients that reach the weights of every kind of U-Net block,
// on two tiny models (8×8, C = 32, one ResBlock per level, attention at 4×4) that between them use
// every variant of guided-diffusion's layers:
//  - `film`: ResBlocks with use_scale_shift_norm (FiLM), resampling ResBlocks (resblock_updown),
//    QKVAttentionLegacy (heads first), widths 32, 32;
//  - `bias`: ResBlocks adding the embedding as a bias, conv Downsample / Upsample, QKVAttention
//    (use_new_attention_order), learn_sigma, widths 32, 64.
// Block table of both (8×8 → 4×4): 1 input conv, 2 ResBlock, 3 downsampling, 4 ResBlock + attention,
// 5 the middle block, 6 ResBlock + attention, 7 ResBlock + attention + upsampling, 8–9 ResBlocks;
// every decoder ResBlock has a 1×1 skip_connection (its input is wider than its output).
const BASE = {
  image_size: 8,
  num_channels: 32,
  num_res_blocks: 1,
  channel_mult: '1,1',
  attention_resolutions: '4',
  num_head_channels: 16, // 2 heads of 16 channels
  diffusion_steps: 1000,
  noise_schedule: 'linear',
};

const MODELS = {
  film: {
    flags: {
      ...BASE,
      in_channels: 1,
      use_scale_shift_norm: true,
      resblock_updown: true,
      use_new_attention_order: false,
      learn_sigma: false,
    },
    weights: {
      'input conv': ['input_blocks.0.0.weight'],
      'ResBlock (scale-shift norm)': [
        'input_blocks.1.0.in_layers.0.weight',
        'input_blocks.1.0.in_layers.2.weight',
        'input_blocks.1.0.emb_layers.1.weight',
        'input_blocks.1.0.out_layers.0.bias',
        'input_blocks.1.0.out_layers.3.weight',
      ],
      'ResBlock down': ['input_blocks.2.0.in_layers.2.weight', 'input_blocks.2.0.out_layers.3.weight'],
      'attention, legacy order': [
        'input_blocks.3.1.norm.weight',
        'input_blocks.3.1.qkv.weight',
        'input_blocks.3.1.proj_out.weight',
      ],
      'middle block': [
        'middle_block.0.in_layers.2.weight',
        'middle_block.1.qkv.weight',
        'middle_block.2.emb_layers.1.weight',
      ],
      'ResBlock up': ['output_blocks.1.2.in_layers.2.weight', 'output_blocks.1.2.emb_layers.1.bias'],
      'decoder ResBlock skip connection': ['output_blocks.2.0.skip_connection.weight'],
      'time embedding and output head': ['time_embed.0.weight', 'out.0.weight', 'out.2.weight'],
    },
  },
  bias: {
    flags: {
      ...BASE,
      in_channels: 2,
      channel_mult: '1,2',
      use_scale_shift_norm: false,
      resblock_updown: false,
      use_new_attention_order: true,
      learn_sigma: true,
    },
    weights: {
      // The embedding, added as a bias per channel before a GroupNorm, reaches the output only where
      // a group has several channels (with one, the norm subtracts it again, in the reference too):
      // checked at the 64-channel level.
      'ResBlock (embedding as bias)': [
        'input_blocks.1.0.in_layers.2.weight',
        'input_blocks.1.0.out_layers.0.weight',
        'input_blocks.1.0.out_layers.3.bias',
        'input_blocks.3.0.emb_layers.1.weight',
        'input_blocks.3.0.emb_layers.1.bias',
        'input_blocks.3.0.skip_connection.weight',
      ],
      'conv Downsample': ['input_blocks.2.0.op.weight', 'input_blocks.2.0.op.bias'],
      'attention, new order': [
        'input_blocks.3.1.qkv.weight',
        'output_blocks.0.1.qkv.weight',
        'output_blocks.0.1.proj_out.weight',
      ],
      'middle block': [
        'middle_block.0.out_layers.3.weight',
        'middle_block.1.norm.bias',
        'middle_block.2.in_layers.2.weight',
      ],
      'conv Upsample': ['output_blocks.1.2.conv.weight', 'output_blocks.1.2.conv.bias'],
      'decoder ResBlock skip connection': ['output_blocks.3.0.skip_connection.weight'],
    },
  },
};

// Tolerance. Each weight is checked at its element with the largest analytic gradient (so that the
// comparison is not dominated by rounding), moved by h = 1e-2. The truncation error of the central
// difference is O(h²·f‴) ≈ 1e-4 of the gradient for these O(1) weights and activations; the float32
// rounding of the loss (|L| ≈ 10, 6e-8 relative, summed over a few hundred terms: ≈ 1e-5) divided by
// 2h is ≈ 1e-3 absolute. Relative 2e-2 with an absolute floor of 2e-3 leaves room for both (the
// largest relative error seen on wasm and cpu is 2e-3) while a wrong gradient term (a missing
// branch, a transposed matrix, a wrong scale) is off by far more.
const H = 1e-2;
const RTOL = 2e-2;
const ATOL = 2e-3;

for (const backend of BACKENDS) {
  for (const [kind, { flags, weights }] of Object.entries(MODELS)) {
    describe(`ADMUNet gradients, ${kind} model, on ${backend}`, () => {
      let unet: ADMUNet;
      let vars: Map<string, tf.Variable>;
      let x: tf.Tensor4D;
      let r: tf.Tensor4D;
      const t = [3, 600];
      beforeAll(async () => {
        await setBackend(backend);
        // Seeded random weights: the layers guided-diffusion zero-initialises (out_layers.3,
        // proj_out, out.2) get small random ones (see randomWeights), so every residual branch is live.
        unet = ADMUNet.create(flags, 7);
        vars = unet.trainableWeights();
        x = tf.randomNormal([2, 8, 8, unet.config.inChannels], 0, 1, 'float32', 1) as tf.Tensor4D;
        r = tf.randomNormal([2, 8, 8, unet.config.outChannels], 0, 1, 'float32', 2) as tf.Tensor4D;
      });
      afterAll(() => {
        unet.dispose();
        tf.dispose([x, r]);
      });

      const loss = () => tf.tidy(() => tf.sum(tf.mul(unet.forward(x, t).output!, r)) as tf.Scalar);

      it('the residual branches are live: no weight is all zeros', () => {
        for (const [name, v] of vars)
          expect(
            tf.tidy(() => tf.max(tf.abs(v)).dataSync()[0]),
            name,
          ).toBeGreaterThan(0);
      });

      // One backward pass gives the analytic gradients of every weight checked; each check then
      // costs two forwards.
      let checks: Map<string, GradientCheck>;
      const checked = Object.values(weights).flat();
      beforeAll(() => {
        const before = tf.memory().numTensors;
        for (const name of checked) expect(vars.has(name), name).toBe(true);
        const cs = gradientChecks(
          loss,
          checked.map((name) => vars.get(name)!),
          H,
        );
        checks = new Map(checked.map((name, i) => [name, cs[i]]));
        expect(tf.memory().numTensors).toBe(before);
      });

      for (const [layer, names] of Object.entries(weights))
        it(`${layer}: the gradient matches a central difference`, () => {
          for (const name of names) {
            const c = checks.get(name)!;
            const what = `${name}[${c.index}]: analytic ${c.analytic}, numeric ${c.numeric}`;
            // A gradient this large is not the trivial zero of a dead branch.
            expect(Math.abs(c.analytic), what).toBeGreaterThan(10 * ATOL);
            expect(Math.abs(c.analytic - c.numeric), what).toBeLessThanOrEqual(
              RTOL * Math.max(Math.abs(c.analytic), Math.abs(c.numeric)) + ATOL,
            );
          }
        });
    });
  }
}
