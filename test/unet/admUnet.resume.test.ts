import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { ADMUNet } from '../../src/unet/admUnet';
import type { ForwardState } from '../../src/unet/runtime/batchParts';
import { BACKENDS, fixtureJson, loadTinyUNet, setBackend, warmUp } from '../helpers';

const bytes = (t: tf.Tensor) => Buffer.from((t.dataSync() as Float32Array).buffer);
const same = (a: tf.Tensor, b: tf.Tensor) => Buffer.compare(bytes(a), bytes(b)) === 0;

// adm-tiny: 32×32, blocks 1–9 encoder, 10 the middle, 11–19 decoder; decoder block b takes encoder block 20 − b.
for (const backend of BACKENDS) {
  describe(`a forward that holds its state and one that resumes from it, on ${backend}`, () => {
    let unet: ADMUNet;
    // The same weights run in bands of 4 rows, one example at a time, with every map parked between blocks.
    let banded: ADMUNet;
    let xt: tf.Tensor4D;
    const t = [40, 700];
    beforeAll(async () => {
      await setBackend(backend);
      unet = await loadTinyUNet();
      banded = ADMUNet.fromStateDict(
        fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args,
        unet.stateDict(),
        { bandBytes: 32 * 1024 },
      );
      warmUp(unet);
      xt = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    });
    afterAll(() => {
      unet?.dispose();
      banded?.dispose();
      xt?.dispose();
    });

    it('resumed at block k, a forward gives bit for bit what a whole one gives, with additions from k on', () => {
      for (const model of [unet, banded])
        for (const k of [2, 6, 10]) {
          const before = tf.memory().numTensors;
          const first = model.forward(xt, t, { capture: [k - 1], hold: k });
          first.features.forEach((f) => f.dispose());
          const state = first.state!;
          expect(state.block).toBe(k);
          const info = model.block(k);
          const add = new Map([
            [k, tf.randomNormal([2, info.size, info.size, info.channels], 0, 0.3, 'float32', k) as tf.Tensor4D],
          ]);
          const capture = [k, 12, 17];
          const whole = model.forward(xt, t, { add, capture, output: true });
          const resumed = model.forward(xt, t, { add, capture, output: true, resume: state });
          expect(state.spent).toBe(true);
          for (const b of capture)
            expect(same(resumed.features.get(b)!, whole.features.get(b)!), `k ${k}, block ${b}`).toBe(true);
          expect(same(resumed.output!, whole.output!), `k ${k}, output`).toBe(true);
          tf.dispose([...add.values(), ...whole.features.values(), whole.output!, ...resumed.features.values()]);
          resumed.output!.dispose();
          expect(tf.memory().numTensors, `k ${k}`).toBe(before);
        }
    });

    it('a state held inside a tf.tidy outlives it', () => {
      let state: ForwardState | undefined;
      tf.tidy(() => {
        state = unet.forward(xt, t, { capture: [5], hold: 6 }).state;
      });
      const resumed = unet.forward(xt, t, { capture: [15], resume: state });
      const whole = unet.forward(xt, t, { capture: [15] });
      expect(same(resumed.features.get(15)!, whole.features.get(15)!)).toBe(true);
      tf.dispose([...resumed.features.values(), ...whole.features.values()]);
    });

    it('a forward may hold while running decoder blocks whose skips come after the held block', () => {
      // Stopping at 13 runs decoder blocks 11–13, which take encoder blocks 9, 8, 7: holding 7 leaves them theirs.
      const first = unet.forward(xt, t, { capture: [13], hold: 7 });
      const again = unet.forward(xt, t, { capture: [18], resume: first.state! });
      const whole = unet.forward(xt, t, { capture: [13, 18] });
      expect(same(first.features.get(13)!, whole.features.get(13)!)).toBe(true);
      expect(same(again.features.get(18)!, whole.features.get(18)!)).toBe(true);
      tf.dispose([...first.features.values(), ...again.features.values(), ...whole.features.values()]);
    });

    it('a state is used once, fits only the model and steps that held it, and frees what it holds', () => {
      const before = tf.memory().numTensors;
      const held = () => {
        const r = unet.forward(xt, t, { capture: [5], hold: 6 });
        r.features.forEach((f) => f.dispose());
        return r.state!;
      };
      const state = held();
      const holding = tf.memory().numTensors;
      expect(() => banded.forward(xt, t, { capture: [12], resume: state })).toThrow(/a forward of this model held/);
      expect(() => unet.forward(xt, [40, 699], { capture: [12], resume: state })).toThrow(
        /t = \[40,700\].*same xt, t and y/,
      );
      expect(() => unet.forward(xt, t, { capture: [5, 12], resume: state })).toThrow(
        /blocks 5 before it cannot be captured/,
      );
      const one = tf.zeros([2, 16, 16, 32]) as tf.Tensor4D;
      expect(() => unet.forward(xt, t, { capture: [12], add: new Map([[4, one]]), resume: state })).toThrow(
        /blocks 4 before it cannot be captured or added to/,
      );
      one.dispose();
      expect(tf.memory().numTensors).toBe(holding); // the refusals took nothing: the state still holds its skips
      const r = unet.forward(xt, t, { capture: [12], resume: state });
      r.features.forEach((f) => f.dispose());
      expect(() => unet.forward(xt, t, { capture: [12], resume: state })).toThrow(/already used or disposed/);
      const unused = held();
      unused.dispose();
      unused.dispose(); // idempotent
      expect(unused.spent).toBe(true);
      expect(tf.memory().numTensors).toBe(before);
    });

    it('refuses holds it cannot keep, with InputErrors that say why, and leaks nothing', () => {
      const before = tf.memory().numTensors;
      const cases: [object, RegExp][] = [
        [{ capture: [5], hold: 1 }, /hold must be a block from 2 to 10/],
        [{ capture: [15], hold: 11 }, /hold must be a block from 2 to 10/],
        [{ capture: [5], hold: 2.5 }, /hold must be a block from 2 to 10/],
        [{ capture: [3], hold: 6 }, /hold 6 is past this forward, which stops after block 3/],
        [{ capture: [14], hold: 7 }, /runs decoder block 14, which takes encoder outputs before block 7/],
        [{ hold: 3 }, /runs decoder blocks 18, 19, which take encoder outputs before block 3/],
      ];
      expect([
        unet.canHold(7, 13),
        unet.canHold(6, 5),
        unet.canHold(7, 14),
        unet.canHold(6, 4),
        unet.canHold(1, 5),
      ]).toEqual([true, true, false, false, false]);
      for (const [opts, message] of cases) {
        expect(() => unet.forward(xt, t, opts)).toThrow(InputError);
        expect(() => unet.forward(xt, t, opts)).toThrow(message);
      }
      const r = unet.forward(xt, t, { capture: [5], hold: 6 });
      r.features.forEach((f) => f.dispose());
      expect(() => unet.forward(xt, t, { capture: [12], hold: 8, resume: r.state })).toThrow(
        /hold and resume cannot be used together/,
      );
      r.state!.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}
