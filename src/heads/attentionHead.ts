/**
 * The paper's attention head on tokens: a learned CLS token, pre-norm Transformer blocks, the CLS
 * feature, and optionally a linear classifier.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { multiHeadAttention } from '../ops/multiHeadAttention.js';
import { dense } from '../ops/dense.js';
import { formatFusionArc, parseFusionArc, type DenseActivation, type FusionArc } from './fusionArc.js';
import { gelu, LayerNorm, Linear, type ForwardPassOptions } from '../nn/layers.js';
import { positiveInt } from '../util/checks.js';
import { floatEntry, Init, prefixed, type FloatEntry, type StateEntry } from '../nn/state.js';
import { Module } from '../nn/module.js';

/**
 * Multi-head self-attention as timm's `Attention` (qkv Linear without bias, q scaled by
 * head_dim^-0.5, softmax, proj Linear with bias). q, k and v come from column slices of the qkv
 * weight (cheaper to cut than the [N·L, 3D] activations on wasm); the per-head products run in
 * {@link multiHeadAttention} as plain 2-D matMuls.
 */
function selfAttention(x: tf.Tensor3D, qkv: Linear, proj: Linear, heads: number): tf.Tensor3D {
  return tf.tidy(() => {
    const dim = x.shape[2];
    const w = qkv.weight.variable as tf.Tensor as tf.Tensor2D; // [D, 3D]: columns q | k | v
    const part = (i: number) => dense(x, tf.slice(w, [0, i * dim], [dim, dim]));
    const q = tf.mul(part(0), (dim / heads) ** -0.5) as tf.Tensor3D;
    return proj.apply(multiHeadAttention(q, part(1), part(2), heads)) as tf.Tensor3D;
  });
}

/** timm-style pre-norm Transformer block: `x + Attn(LN(x))`, `x + MLP(LN(x))`. */
class TransformerBlock extends Module {
  private readonly norm1: LayerNorm;
  private readonly qkv: Linear;
  private readonly proj: Linear;
  private readonly norm2: LayerNorm;
  private readonly fc1: Linear;
  private readonly fc2: Linear;
  constructor(
    readonly dim: number,
    readonly heads: number,
    mlpRatio: number,
    init: Init,
  ) {
    super();
    const hidden = Math.trunc(dim * mlpRatio);
    this.norm1 = new LayerNorm(dim);
    this.qkv = new Linear(dim, 3 * dim, init, false);
    this.proj = new Linear(dim, dim, init);
    this.norm2 = new LayerNorm(dim);
    this.fc1 = new Linear(dim, hidden, init);
    this.fc2 = new Linear(hidden, dim, init);
  }
  apply(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, selfAttention(this.norm1.apply(x), this.qkv, this.proj, this.heads)) as tf.Tensor3D;
      return tf.add(h, this.fc2.apply(gelu(this.fc1.apply(this.norm2.apply(h))))) as tf.Tensor3D;
    });
  }
  state(): StateEntry[] {
    return [
      ...prefixed('norm1.', this.norm1.state()),
      ...prefixed('attn.qkv.', this.qkv.state()),
      ...prefixed('attn.proj.', this.proj.state()),
      ...prefixed('norm2.', this.norm2.state()),
      ...prefixed('mlp.fc1.', this.fc1.state()),
      ...prefixed('mlp.fc2.', this.fc2.state()),
    ];
  }
}

/** One built layer with its index in the reference's `nn.Sequential` (which names its weights). */
type Step =
  | { kind: 'insertCls' | 'extractCls' | 'fullyPool' | 'flatten' }
  | { kind: 'block'; index: number; block: TransformerBlock }
  | { kind: 'dense'; index: number; linear: Linear; activation: DenseActivation };

/**
 * What an {@link AttentionHead} is built from.
 * @category Heads
 */
export interface AttentionHeadConfig {
  /** The reference's `fusion_arc` string, or its parsed form. */
  arc: string | FusionArc;
  /** Adds a linear classifier `Linear(outDim, classes)` (state names `head.weight`, `head.bias`). */
  classes?: number;
  /** Seed of the random initialisation (PyTorch's default init; the CLS token starts at zero). Default 0. */
  seed?: number;
}

/**
 * The attention head of the paper on tokens `[N, L, D]`: prepend a learned CLS token (zeros at
 * first), run pre-norm Transformer blocks (qkv Linear without bias, `head_dim^-0.5` on q, proj
 * with bias, MLP Linear–GELU(erf)–Linear, LayerNorm eps 1e-5), take the CLS token, and with
 * `classes` classify it linearly. This is the reference's `AttentionHead` module
 * (`intra_inter_block_attention`: names `cls_token`, `layers.<i>.…`), built from its `fusion_arc`
 * string; the layer indices `<i>` follow the string as the reference's `nn.Sequential` numbers them.
 *
 * From a reference configuration: `arc` is `fusion_arc`; tokens come from {@link Tokenizer}s with
 * `dim` = the arc's token width. A whole reference attention head (tokenizer + this + classifier)
 * is a {@link DifFormer} with one block and one t; {@link fromReference} builds it from the args.
 *
 * @example
 * ```ts
 * // args = heads/attention/config.json's finetune_args (fusion_arc: D = 64, 4 heads, MLP ratio 4, 2 blocks);
 * // tokens = a Tokenizer's output [N, 16, 64]
 * const head = new AttentionHead({ arc: args.fusion_arc });
 * await head.loadWeights('heads/attention/weights.safetensors', { prefix: 'head.intra_inter_block_attention.' });
 * const cls = head.encode(tokens); // [N, 64]
 * // With its own classifier, for your own training:
 * const clf = new AttentionHead({ arc: args.fusion_arc, classes: args.num_classes });
 * const logits = clf.forward(tokens); // [N, 10]
 * head.dispose(); clf.dispose();
 * ```
 * @category Heads
 */
export class AttentionHead extends Module {
  readonly arc: FusionArc;
  /** Width of the feature {@link encode} returns. */
  readonly outDim: number;
  readonly classes: number | null;
  private readonly cls: FloatEntry | null;
  private readonly steps: Step[] = [];
  private readonly classifier: Linear | null;

  constructor(config: AttentionHeadConfig) {
    super();
    const arc = typeof config?.arc === 'string' ? parseFusionArc(config.arc) : config?.arc;
    if (!arc || !Array.isArray(arc.layers) || !Number.isInteger(arc.dim))
      throw new InputError('AttentionHead: arc must be a fusion_arc string or a parsed FusionArc');
    this.arc = arc;
    this.classes = config.classes === undefined ? null : positiveInt(config.classes, 'AttentionHead classes');
    const init = new Init(config.seed ?? 0);
    // Walk the layers once with the shape they see, so that a string the reference would crash on fails here, now.
    let shape: 'seq' | 'vec' = 'seq';
    let width = arc.dim;
    let index = 0;
    const where = () => `fusion_arc "${formatFusionArc(arc)}"`;
    for (const l of arc.layers) {
      switch (l.kind) {
        case 'insertCls':
          if (!arc.clsToken)
            throw new InputError(`${where()}: Insert_CLS_Token needs a CLS token, but Use_CLS_Token's flag is empty`);
          if (shape !== 'seq' || width !== arc.dim)
            throw new InputError(`${where()}: Insert_CLS_Token needs a sequence of width ${arc.dim}`);
          this.steps.push({ kind: l.kind });
          index++;
          break;
        case 'extractCls':
        case 'fullyPool':
          if (shape !== 'seq')
            throw new InputError(
              `${where()}: ${l.kind === 'extractCls' ? 'Extract_CLS_Token' : 'FullyPool'} needs a token sequence`,
            );
          shape = 'vec';
          this.steps.push({ kind: l.kind });
          index++;
          break;
        case 'flatten':
          if (shape !== 'seq') {
            this.steps.push({ kind: l.kind });
            index++;
            break;
          }
          throw new InputError(
            `${where()}: Flatten of a token sequence gives a width that depends on the number of tokens; extract the CLS token or pool first`,
          );
        case 'attention':
          if (shape !== 'seq' || width !== l.dim)
            throw new InputError(
              `${where()}: Attention:${l.dim}:… needs a token sequence of width ${l.dim}, it gets ${shape === 'seq' ? `width ${width}` : 'a vector'}`,
            );
          for (let i = 0; i < l.blocks; i++)
            this.steps.push({
              kind: 'block',
              index: index++,
              block: new TransformerBlock(l.dim, l.heads, l.mlpRatio, init),
            });
          break;
        case 'dense':
          if (width !== l.in) throw new InputError(`${where()}: Dense:${l.in}:${l.out} gets width ${width}`);
          this.steps.push({ kind: 'dense', index, linear: new Linear(l.in, l.out, init), activation: l.activation });
          index += l.activation === 'identity' ? 1 : 2;
          width = l.out;
          break;
      }
    }
    if (shape !== 'vec')
      throw new InputError(`${where()}: the head must end with a vector per example (Extract_CLS_Token or FullyPool)`);
    this.outDim = width;
    this.cls = arc.clsToken ? floatEntry('cls_token', [1, 1, arc.dim], 'same', new Float32Array(arc.dim)) : null;
    this.classifier = this.classes === null ? null : new Linear(width, this.classes, init);
  }

  /**
   * The head's feature (the CLS token after the Transformer), `[N, outDim]`.
   * @param tokens `[N, L, D]`, D = `arc.dim`.
   * @param opts `tap` receives `seq_in` (the tokens), `attn_block<j>` after each Transformer block (j from 0) and `cls`.
   */
  encode(tokens: tf.Tensor3D, opts: ForwardPassOptions = {}): tf.Tensor2D {
    if (!(tokens instanceof tf.Tensor) || tokens.rank !== 3 || tokens.shape[2] !== this.arc.dim)
      throw new InputError(
        `AttentionHead: tokens must be [N, L, ${this.arc.dim}], got ${tokens instanceof tf.Tensor ? `[${tokens.shape}]` : typeof tokens}`,
      );
    const tap = opts.tap;
    return tf.tidy(() => {
      tap?.('seq_in', tokens);
      let x: tf.Tensor = tokens;
      let j = 0;
      for (const s of this.steps) {
        switch (s.kind) {
          case 'insertCls':
            x = tf.concat([tf.tile(this.cls!.variable, [x.shape[0], 1, 1]), x], 1);
            break;
          case 'extractCls':
            {
              const [n, , d] = x.shape as [number, number, number];
              x = tf.reshape(tf.slice(x, [0, 0, 0], [n, 1, d]), [n, d]);
            }
            break;
          case 'fullyPool':
            x = tf.mean(x, 1);
            break;
          case 'flatten':
            break;
          case 'block':
            x = s.block.apply(x as tf.Tensor3D);
            tap?.(`attn_block${j++}`, x);
            break;
          case 'dense':
            x = s.linear.apply(x);
            if (s.activation === 'relu') x = tf.relu(x);
            else if (s.activation === 'sigmoid') x = tf.sigmoid(x);
            else if (s.activation === 'tanh') x = tf.tanh(x);
            break;
        }
      }
      tap?.('cls', x);
      return x as tf.Tensor2D;
    });
  }

  /**
   * Class scores `[N, classes]` of tokens `[N, L, D]`.
   * @throws InputError when the head was built without `classes`.
   */
  forward(tokens: tf.Tensor3D, opts: ForwardPassOptions = {}): tf.Tensor2D {
    if (!this.classifier)
      throw new InputError('AttentionHead was built without classes: use encode() for the feature, or pass classes');
    return tf.tidy(() => this.classifier!.apply(this.encode(tokens, opts)));
  }

  /** Same as {@link AttentionHead.forward}: the name the training helpers call. */
  logits(tokens: tf.Tensor3D, opts: ForwardPassOptions = {}): tf.Tensor2D {
    return this.forward(tokens, opts);
  }

  /** State-dict entries: `cls_token`, `layers.<i>.…` and, with a classifier, `head.weight`/`head.bias`. */
  state(): StateEntry[] {
    const out: StateEntry[] = this.cls ? [this.cls] : [];
    for (const s of this.steps) {
      if (s.kind === 'block') out.push(...prefixed(`layers.${s.index}.`, s.block.state()));
      else if (s.kind === 'dense') out.push(...prefixed(`layers.${s.index}.`, s.linear.state()));
    }
    if (this.classifier) out.push(...prefixed('head.', this.classifier.state()));
    return out;
  }
}
