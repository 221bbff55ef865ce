import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { ADMUNet } from '../../src/unet/admUnet';
import type { ForwardOptions } from '../../src/unet/options';
import { BACKENDS, compareArrays, setBackend } from '../helpers';

// Every kind of block, small enough for cpu: 16×16, two levels (a ResBlock down/up), attention at
// 8×8 (in the encoder, the middle block and the decoder), 2 input and 3 output channels.
const FLAGS = {
  image_size: 16,
  in_channels: 2,
  num_channels: 32,
  num_res_blocks: 1,
  channel_mult: '1,1',
  attention_resolutions: '8',
  num_head_channels: 16,
  use_scale_shift_norm: true,
  resblock_updown: true,
  learn_sigma: false,
  diffusion_steps: 1000,
  noise_schedule: 'linear',
};

type Grads = Record<string, tf.Tensor>;

// `tf.variableGrads`'s result keyed by the weights' reference names rather than tfjs's variable names.
function byReferenceName(grads: Grads, vars: Map<string, tf.Variable>): Grads {
  return Object.fromEntries([...vars].filter(([, v]) => v.name in grads).map(([k, v]) => [k, grads[v.name]]));
}

for (const backend of BACKENDS) {
  describe(`ADMUNet.forward({ checkpoint }) on ${backend}`, () => {
    let unet: ADMUNet;
    let vars: Map<string, tf.Variable>;
    let x: tf.Tensor4D;
    const t = [7, 420];
    beforeAll(async () => {
      await setBackend(backend);
      unet = ADMUNet.create(FLAGS, 3);
      vars = unet.trainableWeights();
      x = tf.randomNormal([2, 16, 16, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
    });
    afterAll(() => {
      unet.dispose();
      x.dispose();
    });

    // The loss `sum(y · r)` of what `pick` takes from a forward with `opts`, and its gradients.
    function step(
      opts: ForwardOptions,
      pick: (r: ReturnType<ADMUNet['forward']>) => tf.Tensor4D,
      named: Map<string, tf.Variable> = vars,
    ) {
      const { value, grads } = tf.variableGrads(() =>
        tf.tidy(() => {
          const y = pick(unet.forward(x, t, opts));
          return tf.sum(tf.mul(y, tf.randomNormal(y.shape, 0, 1, 'float32', 5))) as tf.Scalar;
        }),
      );
      const loss = value.dataSync()[0];
      value.dispose();
      return { loss, grads: byReferenceName(grads, named) };
    }

    // Checkpointed and plain backprop give the same loss and the same gradient for the same variables.
    function expectSame(plain: { loss: number; grads: Grads }, ckpt: { loss: number; grads: Grads }) {
      try {
        expect(Math.abs(ckpt.loss - plain.loss)).toBeLessThanOrEqual(1e-4 + 1e-4 * Math.abs(plain.loss));
        expect(Object.keys(ckpt.grads).sort()).toEqual(Object.keys(plain.grads).sort());
        for (const [name, g] of Object.entries(plain.grads)) {
          const d = compareArrays(ckpt.grads[name].dataSync(), g.dataSync());
          expect(d.ok, `${name}: ${d.bad} off, first ${d.firstBad}, max abs ${d.maxAbs}`).toBe(true);
        }
      } finally {
        tf.dispose([...Object.values(plain.grads), ...Object.values(ckpt.grads)]);
      }
    }

    const output = (r: ReturnType<ADMUNet['forward']>) => r.output!;

    it('the whole network: the same loss and gradients for every variable, and nothing leaks', () => {
      const plain = step({}, output);
      expect(Object.keys(plain.grads).length).toBe(vars.size);
      const before = tf.memory().numTensors;
      const ckpt = step({ checkpoint: true }, output);
      // The gradients are all that is left: the saved inputs and the recomputations are freed.
      expect(tf.memory().numTensors).toBe(before + vars.size);
      // Every block's variables got their gradient through the checkpoint, not a zero stand-in.
      for (const name of [
        'input_blocks.0.0.weight',
        'input_blocks.2.0.in_layers.2.weight',
        'middle_block.1.qkv.weight',
        'output_blocks.2.0.in_layers.2.weight',
        'out.2.weight',
      ])
        expect(
          tf.tidy(() => tf.max(tf.abs(ckpt.grads[name])).dataSync()[0]),
          name,
        ).toBeGreaterThan(0);
      expectSame(plain, ckpt);
    });

    it('early exit: blocks after the deepest captured one neither run nor get gradients', () => {
      const mid = unet.numInputBlocks + 1;
      const opts = { capture: [2, mid] };
      const pick = (r: ReturnType<ADMUNet['forward']>) => r.features.get(mid)!;
      const plain = step(opts, pick);
      const ckpt = step({ ...opts, checkpoint: true }, pick);
      const later = [...vars.keys()].filter((k) => k.startsWith('output_blocks.') || k.startsWith('out.'));
      expect(later.length).toBeGreaterThan(0);
      for (const k of later) expect(ckpt.grads[k], k).toBeUndefined();
      expect(Object.keys(ckpt.grads).length).toBe(vars.size - later.length);
      expectSame(plain, ckpt);
    });

    it('with added maps (which get their gradient too), dropout and a frozen encoder', () => {
      const b = 2;
      const { size, channels } = unet.block(b);
      // DifFeed's additions are made by trainable layers: a variable stands for them here.
      const extra = tf.variable(
        tf.randomNormal([2, size, size, channels], 0, 0.5, 'float32', 9),
      ) as tf.Variable<tf.Rank.R4>;
      const named = new Map([...vars, ['added', extra as tf.Variable]]);
      const frozen = [...vars.keys()].filter((k) => k.startsWith('input_blocks.'));
      frozen.forEach((k) => (vars.get(k)!.trainable = false));
      try {
        const opts: ForwardOptions = { add: new Map([[b, extra]]), dropout: { rate: 0.3, seed: 4 } };
        const plain = step(opts, output, named);
        const ckpt = step({ ...opts, checkpoint: true }, output, named);
        for (const k of frozen) expect(ckpt.grads[k], k).toBeUndefined();
        expect(ckpt.grads.added).toBeDefined();
        expect(Object.keys(ckpt.grads).length).toBe(named.size - frozen.length);
        expectSame(plain, ckpt);
      } finally {
        frozen.forEach((k) => (vars.get(k)!.trainable = true));
        extra.dispose();
      }
    });

    // The batch split into examples runs the same code on every backend: checked on the first only.
    it.runIf(backend === BACKENDS[0])(
      'a batch run one example at a time (maps in bands) gives the same gradients',
      () => {
        // A band budget this small splits the batch into examples in every block.
        const banded = ADMUNet.create(FLAGS, 3, { bandBytes: 4096 });
        try {
          const bvars = banded.trainableWeights();
          const run = (checkpoint: boolean) => {
            const { value, grads } = tf.variableGrads(() =>
              tf.tidy(() => {
                const y = banded.forward(x, t, { checkpoint }).output!;
                return tf.sum(tf.mul(y, tf.randomNormal(y.shape, 0, 1, 'float32', 5))) as tf.Scalar;
              }),
            );
            const loss = value.dataSync()[0];
            value.dispose();
            return { loss, grads: byReferenceName(grads, bvars) };
          };
          const plain = run(false);
          expect(Object.keys(plain.grads).length).toBe(bvars.size);
          expectSame(plain, run(true));
        } finally {
          banded.dispose();
        }
      },
    );

    it('outside a gradient it is a plain forward', () => {
      tf.tidy(() => {
        const d = compareArrays(
          unet.forward(x, t, { checkpoint: true }).output!.dataSync(),
          unet.forward(x, t).output!.dataSync(),
          0,
          0,
        );
        expect(d.ok, `max abs ${d.maxAbs}`).toBe(true);
      });
    });

    it('is refused, naming what to do, while the weights are not trainable; nothing leaks', () => {
      const frozenModel = ADMUNet.create(FLAGS, 3);
      try {
        const before = tf.memory().numTensors;
        expect(() =>
          tf.variableGrads(() => tf.sum(frozenModel.forward(x, t, { checkpoint: true }).output!) as tf.Scalar),
        ).toThrow(InputError);
        expect(() => frozenModel.forward(x, t, { checkpoint: true })).toThrow(/trainableWeights\(\)/);
        expect(() => unet.forward(x, t, { checkpoint: 'yes' as unknown as boolean })).toThrow(InputError);
        expect(tf.memory().numTensors).toBe(before);
      } finally {
        frozenModel.dispose();
      }
    });
  });
}
