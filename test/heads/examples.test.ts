// Every head's TSDoc @example, run as written against the fixtures (only the file paths point at them).
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DifFeed } from '../../src/feedback/difFeed';
import { extractFeatures } from '../../src/features/extractFeatures';
import { DifFormer } from '../../src/fusion/difFormer';
import { AttentionHead } from '../../src/heads/attentionHead';
import { parseFusionArc } from '../../src/heads/fusionArc';
import { LinearHead, MLPHead, parseHeadArc } from '../../src/heads/mlpHead';
import { Tokenizer } from '../../src/heads/tokenizer';
import { fromReference } from '../../src/diffsslModel';
import { ADMUNet } from '../../src/unet/admUnet';
import { BACKENDS, FIXTURES, fixtureJson, setBackend } from '../helpers';
import { expectMatch, headFixture, tensorOf } from './fixtures';

// The examples' relative paths ('heads/attention/weights.safetensors', …) resolve in the fixture directory.
const at = (p: string) => path.join(FIXTURES, p);

describe(`the TSDoc examples (on ${BACKENDS[0]})`, () => {
  let unet: ADMUNet;
  beforeAll(async () => {
    await setBackend(BACKENDS[0]);
    unet = await ADMUNet.load(
      at('adm-tiny/weights.safetensors'),
      fixtureJson('adm-tiny/config.json').create_model_and_diffusion_args,
    );
  });
  afterAll(() => unet?.dispose());

  it('Tokenizer and AttentionHead', async () => {
    const { cfg, act } = await headFixture('attention');
    const args = cfg.finetune_args;
    const feature = tensorOf(act.get('t0.feat.b15')!) as tf.Tensor4D;
    // Tokenizer
    const { channels, size } = unet.block(15);
    const tok = new Tokenizer({
      channels,
      side: size,
      pool: args.pre_pool_size,
      dim: parseFusionArc(args.fusion_arc).dim,
      norm: args.norm_type,
    });
    await tok.loadWeights(at('heads/attention/weights.safetensors'), { prefix: 'head.pre_layer.15.' });
    const tokens = tok.forward(feature); // [N, 4·4, 64]
    tok.dispose();
    expectMatch(tokens.dataSync(), act.get('t0.tokens.b15')!, 'tokens');
    // AttentionHead
    const head = new AttentionHead({ arc: args.fusion_arc });
    await head.loadWeights(at('heads/attention/weights.safetensors'), { prefix: 'head.intra_inter_block_attention.' });
    const cls = head.encode(tokens); // [N, 64]
    const clf = new AttentionHead({ arc: args.fusion_arc, classes: args.num_classes });
    const logits = clf.forward(tokens); // [N, 10]
    head.dispose();
    clf.dispose();
    expectMatch(cls.dataSync(), act.get('t0.cls')!, 'cls');
    expect(logits.shape).toEqual([2, 10]);
    tf.dispose([feature, tokens, cls, logits]);
  });

  it('LinearHead and MLPHead', async () => {
    for (const name of ['linear', 'mlp']) {
      const { cfg, act } = await headFixture(name);
      const args = cfg.finetune_args;
      const b = args.first_fw_b_list[0];
      const feature = tensorOf(act.get(`t0.feat.b${b}`)!) as tf.Tensor4D;
      let logits: tf.Tensor2D;
      if (name === 'linear') {
        const head = new LinearHead({
          channels: unet.block(15).channels,
          pool: args.pre_pool_size,
          classes: args.num_classes,
        });
        await head.loadWeights(at('heads/linear/weights.safetensors'), { prefix: 'head.' });
        logits = head.forward(feature); // [N, 10]
        head.dispose();
      } else {
        const head = new MLPHead({
          channels: unet.block(10).channels,
          pool: args.pre_pool_size,
          hidden: parseHeadArc(args.head_arc),
          classes: args.num_classes,
        });
        await head.loadWeights(at('heads/mlp/weights.safetensors'), { prefix: 'head.' });
        logits = head.forward(feature); // [N, 10]
        head.dispose();
      }
      expectMatch(logits.dataSync(), act.get('logits')!, `${name} logits`);
      tf.dispose([feature, logits]);
    }
  });

  it('DifFormer', async () => {
    const { cfg, act } = await headFixture('difformer');
    const args = cfg.finetune_args;
    const x0 = tensorOf(act.get('x0')!) as tf.Tensor4D;
    const noise = [0, 1, 2].map((i) => tensorOf(act.get(`t${i}.noise`)!) as tf.Tensor4D);
    const fusion = new DifFormer({
      blocks: args.first_fw_b_list.map((b: number) => unet.block(b)),
      timesteps: args.t_list.length,
      pool: args.pre_pool_size,
      norm: args.norm_type,
      arc: args.fusion_arc,
      classes: args.num_classes,
    });
    await fusion.loadWeights(at('heads/difformer/weights.safetensors'), { prefix: 'head.' });
    const features = await extractFeatures(x0, { t: args.t_list, b: args.first_fw_b_list, model: unet, noise });
    const logits = fusion.forward(
      args.t_list.map((t: number) => args.first_fw_b_list.map((b: number) => ({ b, map: features.get(t, b) }))),
    );
    features.dispose();
    fusion.dispose();
    expectMatch(logits.dataSync(), act.get('logits')!, 'logits');
    tf.dispose([x0, ...noise, logits]);
  });

  it('DifFeed', async () => {
    const { cfg, act } = await headFixture('difffeed');
    const args = cfg.finetune_args;
    const x0 = tensorOf(act.get('x0')!) as tf.Tensor4D;
    const noise = tensorOf(act.get('t0.noise')!) as tf.Tensor4D;
    const feed = new DifFeed(unet, { feedback: args.feedback_b_list, arch: args.feedback_arch }); // or { feedback: 'bottleneck' }
    await feed.loadWeights(at('heads/difffeed/weights.safetensors'), { prefix: 'feedback_layers.' });
    const t = new Array(x0.shape[0]).fill(150);
    const xt = unet.qSample(x0, t, noise);
    const { second } = feed.forward(xt, t, { capture: args.second_fw_b_list });
    const feature = second.get(15)!; // [N, 16, 16, 32], for a DifFormer / attention head
    feed.dispose(); // the U-Net stays
    expectMatch(feature.dataSync(), act.get('t0.feat2.b15')!, 'feat2');
    tf.dispose([x0, noise, xt, feature]);
  });

  it('fromReference', async () => {
    const { act } = await headFixture('difformer');
    const [n90, n150, n300] = [0, 1, 2].map((i) => tensorOf(act.get(`t${i}.noise`)!) as tf.Tensor4D);
    const x0 = tensorOf(act.get('x0')!) as tf.Tensor4D;
    const cfg = JSON.parse(fs.readFileSync(at('heads/difformer/config.json'), 'utf8'));
    const model = fromReference(cfg.finetune_args, unet);
    await model.loadWeights(at('heads/difformer/weights.safetensors'));
    const logits = model.logits(x0, { noise: [n90, n150, n300] }); // one ε per t → [N, num_classes]
    expectMatch(logits.dataSync(), act.get('logits')!, 'logits');
    logits.dispose();
    model.dispose(); // the U-Net stays
    tf.dispose([x0, n90, n150, n300]);
  });
});
