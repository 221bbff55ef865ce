import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors, type ReadTensor } from '../../src/io/safetensors';
import { ADMUNet } from '../../src/unet/admUnet';
import { qkvAttention } from '../../src/unet/attentionBlock';
import { timestepEmbedding } from '../../src/unet/timestepEmbedding';
import { extractFeatures } from '../../src/features/extractFeatures';
import {
  compareArrays,
  fixtureJson,
  FIXTURES,
  loadTinyUNet,
  nchwToNhwc,
  PARITY_BACKENDS as BACKENDS,
  setBackend,
  type Diff,
  warmUp,
} from '../helpers';

// Float32 parity tolerance of the fixtures: |a − b| ≤ 1e-4 + 1e-4·|b| elementwise.
const ATOL = 1e-4;
const RTOL = 1e-4;

const nhwc = (t: ReadTensor) => nchwToNhwc(t.data as Float32Array, t.shape);
const tensorOf = (t: ReadTensor) => {
  const { data, shape } = nhwc(t);
  return tf.tensor4d(data, shape);
};

/** Worst error seen per fixture and backend, printed once at the end for the closing note. */
const worst = new Map<string, { maxAbs: number; maxRel: number; tolUsed: number; maps: number }>();
function expectClose(key: string, actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): Diff {
  const d = compareArrays(actual, expected, ATOL, RTOL);
  const w = worst.get(key) ?? { maxAbs: 0, maxRel: 0, tolUsed: 0, maps: 0 };
  worst.set(key, {
    maxAbs: Math.max(w.maxAbs, d.maxAbs),
    maxRel: Math.max(w.maxRel, d.maxRel),
    tolUsed: Math.max(w.tolUsed, d.tolUsed),
    maps: w.maps + 1,
  });
  expect(d.ok, `${what}: ${d.bad} elements off (first ${d.firstBad}), max abs ${d.maxAbs}`).toBe(true);
  return d;
}
afterAll(() => {
  for (const [k, w] of worst)
    console.log(
      `parity ${k}: ${w.maps} tensors, max abs ${w.maxAbs.toExponential(2)}, max rel (to the tensor's scale) ${w.maxRel.toExponential(2)}, ${(100 * w.tolUsed).toFixed(1)}% of the tolerance`,
    );
});

for (const backend of BACKENDS) {
  for (const fx of ['adm-tiny', 'adm-small-cond']) {
    describe(`${fx} on ${backend}`, () => {
      const key = `${fx}/${backend}`;
      const cfg = fixtureJson(`${fx}/config.json`);
      let act: Map<string, ReadTensor>;
      let unet: ADMUNet;
      let t: number[];
      let y: number[] | undefined;
      const total: number = cfg.model.total_blocks;

      beforeAll(async () => {
        await setBackend(backend);
        act = await readSafetensors(path.join(FIXTURES, fx, 'activations.safetensors'));
        unet = await ADMUNet.load(path.join(FIXTURES, fx, 'weights.safetensors'), cfg.create_model_and_diffusion_args);
        t = Array.from(act.get('t')!.data as BigInt64Array, Number);
        y = act.has('y') ? Array.from(act.get('y')!.data as BigInt64Array, Number) : undefined;
      });
      afterAll(() => unet?.dispose());

      it('q_sample gives the reference x_t', () => {
        const [x0, noise] = [tensorOf(act.get('x0')!), tensorOf(act.get('noise')!)];
        const xt = unet.qSample(x0, t, noise);
        expectClose(key, xt.dataSync(), nhwc(act.get('x_t')!).data, 'x_t');
        tf.dispose([x0, noise, xt]);
      });

      it('timestep embedding, time_embed and the block embedding match', () => {
        const temb = timestepEmbedding(t, unet.config.modelChannels);
        expectClose(key, temb.dataSync(), act.get('timestep_embedding')!.data as Float32Array, 'timestep_embedding');
        const emb = unet.embed(t, y);
        expectClose(key, emb.dataSync(), act.get('emb')!.data as Float32Array, 'emb');
        tf.dispose([temb, emb]);
      });

      it('attention on the recorded qkv gives the recorded output', () => {
        const legacy = !unet.config.useNewAttentionOrder;
        for (const k of [...act.keys()].filter((k) => k.endsWith('.qkv'))) {
          const qkv = act.get(k)!;
          const b = Number(k.slice(5, k.indexOf('.')));
          const [n, width, l] = qkv.shape;
          // [N, 3C, L] → [N, L, 3C]
          const input = tf.tidy(
            () => tf.transpose(tf.tensor3d(qkv.data as Float32Array, [n, width, l]), [0, 2, 1]) as tf.Tensor3D,
          );
          const spec = cfg.model.blocks[b - 1].layers.find((s: string) => s.startsWith('AttentionBlock'));
          const heads = Number(/heads=(\d+)/.exec(spec)![1]);
          const out = tf.tidy(() => tf.transpose(qkvAttention(input, heads, legacy), [0, 2, 1]));
          expectClose(key, out.dataSync(), act.get(k.replace('.qkv', '.a'))!.data as Float32Array, k);
          tf.dispose([input, out]);
        }
      });

      it('every block output and the final output match the reference', () => {
        const xt = tensorOf(act.get('x_t')!);
        const all = Array.from({ length: total }, (_, i) => i + 1);
        const r = unet.forward(xt, t, { y, capture: all, output: true });
        for (const b of all)
          expectClose(key, r.features.get(b)!.dataSync(), nhwc(act.get(`block_${b}`)!).data, `block ${b}`);
        expectClose(key, r.output!.dataSync(), nhwc(act.get('out')!).data, 'out');
        expect(r.output!.shape).toEqual([
          t.length,
          cfg.create_model_and_diffusion_args.image_size,
          cfg.create_model_and_diffusion_args.image_size,
          cfg.model.out_channels,
        ]);
        r.features.forEach((f) => f.dispose());
        tf.dispose([xt, r.output!]);
      });

      it('early exit returns the same values as the full pass, and no output', () => {
        const xt = tensorOf(act.get('x_t')!);
        const mid = cfg.model.middle_block;
        const r = unet.forward(xt, t, { y, capture: [3, mid] });
        expect(r.output).toBeUndefined();
        expect([...r.features.keys()].sort((a, b) => a - b)).toEqual([3, mid]);
        for (const b of [3, mid])
          expectClose(key, r.features.get(b)!.dataSync(), nhwc(act.get(`block_${b}`)!).data, `early exit block ${b}`);
        r.features.forEach((f) => f.dispose());
        xt.dispose();
      });

      it('forward and extractFeatures leave no tensor behind', async () => {
        const [xt, x0] = [tensorOf(act.get('x_t')!), tensorOf(act.get('x0')!)];
        const before = tf.memory().numTensors;
        const r1 = unet.forward(xt, t, { y });
        r1.output!.dispose();
        const r2 = unet.forward(xt, t, { y, capture: [2, total] });
        r2.features.forEach((f) => f.dispose());
        const feats = await extractFeatures(x0, { t: [10, 500], b: [1, total], model: unet, seed: 3, y, pool: 2 });
        feats.dispose();
        expect(tf.memory().numTensors).toBe(before);
        tf.dispose([xt, x0]);
      });
    });
  }

  describe(`extractFeatures on the head fixtures (${backend})`, () => {
    const key = `heads-features/${backend}`;
    let unet: ADMUNet;
    beforeAll(async () => {
      await setBackend(backend);
      unet = await loadTinyUNet();
      warmUp(unet);
    });
    afterAll(() => unet?.dispose());

    for (const dir of fs.readdirSync(path.join(FIXTURES, 'heads')).sort()) {
      const { t_list: ts, first_fw_b_list: bs } = fixtureJson(`heads/${dir}/config.json`).finetune_args;
      if (!bs.length) continue;
      it(`${dir}: t ${ts}, b ${bs} match the features the reference gave the head`, async () => {
        const act = await readSafetensors(path.join(FIXTURES, 'heads', dir, 'activations.safetensors'));
        const x0 = tensorOf(act.get('x0')!);
        const noise = ts.map((_: number, i: number) => tensorOf(act.get(`t${i}.noise`)!));
        const before = tf.memory().numTensors;
        const feats = await unet.extractFeatures(x0, { t: ts, b: bs, noise });
        for (const b of bs)
          expectClose(key, feats.get(ts[0], b).dataSync(), nhwc(act.get(`t0.feat.b${b}`)!).data, `${dir} b${b}`);
        for (const t of ts)
          for (const b of bs)
            expect(feats.get(t, b).shape).toEqual([2, unet.block(b).size, unet.block(b).size, unet.block(b).channels]);
        // One forward per t, or all t at once, or one example at a time: the same numbers.
        const split = await unet.extractFeatures(x0, { t: ts, b: bs, noise, maxBatch: 1 });
        for (const t of ts)
          for (const b of bs)
            expect(compareArrays(split.get(t, b).dataSync(), feats.get(t, b).dataSync(), 1e-5, 1e-5).ok).toBe(true);
        feats.dispose();
        split.dispose();
        expect(tf.memory().numTensors).toBe(before);
        tf.dispose([x0, ...noise]);
      });
    }
  });
}

describe('conv algorithms against the reference (adm-tiny, wasm)', () => {
  const errors: string[] = [];
  afterAll(() => console.log(`conv algorithms, adm-tiny all blocks + output: ${errors.join('; ')}`));
  // F(4×4) rounds more: it is a speed/accuracy choice, held to a looser bound than the fixtures' tolerance.
  for (const [algo, atol, rtol] of [
    ['direct', ATOL, RTOL],
    ['winograd2', ATOL, RTOL],
    ['winograd4', 5e-4, 5e-4],
  ] as const) {
    it(`${algo}: every block within |a − b| ≤ ${atol} + ${rtol}·|b|`, async () => {
      await setBackend('wasm');
      const cfg = fixtureJson('adm-tiny/config.json');
      const act = await readSafetensors(path.join(FIXTURES, 'adm-tiny', 'activations.safetensors'));
      const unet = await ADMUNet.load(
        path.join(FIXTURES, 'adm-tiny', 'weights.safetensors'),
        cfg.create_model_and_diffusion_args,
        { conv: algo },
      );
      const xt = tensorOf(act.get('x_t')!);
      const t = Array.from(act.get('t')!.data as BigInt64Array, Number);
      const all = Array.from({ length: 19 }, (_, i) => i + 1);
      const r = unet.forward(xt, t, { capture: all, output: true });
      let maxAbs = 0;
      let maxRel = 0;
      for (const b of all) {
        const d = compareArrays(r.features.get(b)!.dataSync(), nhwc(act.get(`block_${b}`)!).data, atol, rtol);
        expect(d.ok, `${algo} block ${b}: max abs ${d.maxAbs}`).toBe(true);
        maxAbs = Math.max(maxAbs, d.maxAbs);
        maxRel = Math.max(maxRel, d.maxRel);
      }
      errors.push(`${algo} max abs ${maxAbs.toExponential(2)} (rel to scale ${maxRel.toExponential(2)})`);
      r.features.forEach((f) => f.dispose());
      tf.dispose([xt, r.output!]);
      unet.dispose();
    });
  }
});
