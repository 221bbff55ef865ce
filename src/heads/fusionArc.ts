/**
 * The reference's `fusion_arc` string: the layer list of its `AttentionHead`, e.g.
 * `Use_CLS_Token:True:64,Insert_CLS_Token,Attention:64:4:4:2,Extract_CLS_Token`.
 * @module
 */
import { InputError } from '../errors.js';

/**
 * Activation after a `Dense` layer.
 * @category Heads
 */
export type DenseActivation = 'relu' | 'sigmoid' | 'tanh' | 'identity';

/**
 * One layer of a fusion arc, in order.
 * @category Heads
 */
export type FusionLayer =
  /** `Insert_CLS_Token`: prepend the learned CLS token to the sequence. */
  | { kind: 'insertCls' }
  /** `Attention:dim:heads:mlp_ratio:blocks`: that many pre-norm Transformer blocks. */
  | { kind: 'attention'; dim: number; heads: number; mlpRatio: number; blocks: number }
  /** `Extract_CLS_Token`: keep token 0 → `[N, D]`. */
  | { kind: 'extractCls' }
  /** `FullyPool`: mean over the tokens → `[N, D]`. */
  | { kind: 'fullyPool' }
  /** `Flatten` (only on a vector, where it changes nothing). */
  | { kind: 'flatten' }
  /** `Dense:in:out:act`: `nn.Linear(in, out)` on the last axis, then the activation. */
  | { kind: 'dense'; in: number; out: number; activation: DenseActivation };

/**
 * A parsed fusion arc.
 * @category Heads
 */
export interface FusionArc {
  /**
   * Whether the head owns a CLS token. The reference evaluates `bool(field)`, so any non-empty
   * field — even `False` — creates one; only an empty field (`Use_CLS_Token::64`) does not.
   */
  clsToken: boolean;
  /** Token width D: the third field of `Use_CLS_Token`; the tokenizers' output width. */
  dim: number;
  layers: FusionLayer[];
}

function int(field: string | undefined, what: string, token: string): number {
  if (field === undefined || !/^\s*[+-]?\d+\s*$/.test(field))
    throw new InputError(`fusion_arc: "${token}": ${what} must be an integer, got ${JSON.stringify(field)}`);
  const v = Number.parseInt(field, 10);
  if (v < 1) throw new InputError(`fusion_arc: "${token}": ${what} must be positive, got ${v}`);
  return v;
}

function fieldsOf(token: string, name: string, count: number): string[] {
  const f = token.split(':');
  if (f.length !== count + 1)
    throw new InputError(
      `fusion_arc: "${token}": ${name} takes ${count} field${count === 1 ? '' : 's'} (${name}${':x'.repeat(count)}), got ${f.length - 1}`,
    );
  return f.slice(1);
}

// Layers without fields: their kind and the reference's name for them.
const PLAIN_LAYERS = [
  ['insertCls', 'Insert_CLS_Token'],
  ['extractCls', 'Extract_CLS_Token'],
  ['fullyPool', 'FullyPool'],
  ['flatten', 'Flatten'],
] as const;

/**
 * Parses a fusion arc. Layer names are matched exactly (the reference matches prefixes and
 * silently skips what it does not know; here an unknown or malformed layer is an error).
 * Like the reference, only the part before a `/` is read.
 * @throws InputError naming the offending layer.
 * @category Heads
 */
export function parseFusionArc(arc: string): FusionArc {
  if (typeof arc !== 'string' || arc.trim() === '')
    throw new InputError(
      `fusion_arc must be a non-empty string such as "Use_CLS_Token:True:1024,Insert_CLS_Token,Attention:1024:8:4:2,Extract_CLS_Token", got ${JSON.stringify(arc)}`,
    );
  const tokens = arc
    .split('/')[0]
    .split(',')
    .map((t) => t.trim());
  const first = tokens[0];
  if (first.split(':')[0] !== 'Use_CLS_Token')
    throw new InputError(
      `fusion_arc must start with Use_CLS_Token:<flag>:<dim> (the reference reads the token width from it), got "${first}"`,
    );
  const [flag, dimField] = fieldsOf(first, 'Use_CLS_Token', 2);
  const out: FusionArc = { clsToken: flag.trim() !== '', dim: int(dimField, 'dim', first), layers: [] };
  tokens.slice(1).forEach((token, i) => {
    const name = token.split(':')[0];
    const plain = PLAIN_LAYERS.find(([, n]) => n === name);
    if (plain) {
      if (token !== name) throw new InputError(`fusion_arc: "${token}": ${name} takes no fields`);
      out.layers.push({ kind: plain[0] });
      return;
    }
    switch (name) {
      case 'Attention': {
        const [d, h, r, n] = fieldsOf(token, 'Attention', 4);
        const mlpRatio = Number(r);
        if (!Number.isFinite(mlpRatio) || mlpRatio <= 0 || r.trim() === '')
          throw new InputError(`fusion_arc: "${token}": mlp_ratio must be a positive number, got ${JSON.stringify(r)}`);
        const layer = {
          kind: 'attention' as const,
          dim: int(d, 'dim', token),
          heads: int(h, 'heads', token),
          mlpRatio,
          blocks: int(n, 'blocks', token),
        };
        if (layer.dim % layer.heads !== 0)
          throw new InputError(`fusion_arc: "${token}": dim ${layer.dim} is not divisible by ${layer.heads} heads`);
        if (Math.trunc(layer.dim * mlpRatio) < 1)
          throw new InputError(`fusion_arc: "${token}": the MLP width int(dim·mlp_ratio) is 0`);
        out.layers.push(layer);
        break;
      }
      case 'Dense': {
        const [a, b, act] = fieldsOf(token, 'Dense', 3);
        if (!['relu', 'sigmoid', 'tanh', 'identity'].includes(act))
          throw new InputError(
            `fusion_arc: "${token}": activation must be relu, sigmoid, tanh or identity, got "${act}"`,
          );
        out.layers.push({
          kind: 'dense',
          in: int(a, 'in_dim', token),
          out: int(b, 'out_dim', token),
          activation: act as DenseActivation,
        });
        break;
      }
      case 'Use_CLS_Token':
        throw new InputError(`fusion_arc: Use_CLS_Token may only come first (found again at position ${i + 2})`);
      case 'Pool':
      case 'Reshape':
        throw new InputError(
          `fusion_arc: "${token}" works on image-shaped input; a fusion head receives tokens [N, L, D] from its tokenizers, so it cannot be used here`,
        );
      default:
        throw new InputError(
          `fusion_arc: unknown layer "${token}" at position ${i + 2}; known: Use_CLS_Token:flag:dim (first), Insert_CLS_Token, Attention:dim:heads:mlp_ratio:blocks, Extract_CLS_Token, FullyPool, Dense:in:out:act, Flatten`,
        );
    }
  });
  return out;
}

/**
 * The string form of a parsed arc (the reference's grammar).
 * @category Heads
 */
export function formatFusionArc(arc: FusionArc): string {
  const parts = [`Use_CLS_Token:${arc.clsToken ? 'True' : ''}:${arc.dim}`];
  for (const l of arc.layers) {
    switch (l.kind) {
      case 'insertCls':
      case 'extractCls':
      case 'fullyPool':
      case 'flatten':
        parts.push(PLAIN_LAYERS.find(([kind]) => kind === l.kind)![1]);
        break;
      case 'attention':
        parts.push(`Attention:${l.dim}:${l.heads}:${l.mlpRatio}:${l.blocks}`);
        break;
      case 'dense':
        parts.push(`Dense:${l.in}:${l.out}:${l.activation}`);
        break;
    }
  }
  return parts.join(',');
}

/**
 * The paper's attention head as a fusion arc: D-wide tokens, a CLS token, `depth` Transformer
 * blocks with `heads` heads and MLP ratio `mlpRatio`, then the CLS feature. The paper's default is
 * `attentionArc(1024, 8, 4, 2)`.
 * @category Heads
 */
export function attentionArc(dim: number, heads = 8, mlpRatio = 4, depth = 2): FusionArc {
  return parseFusionArc(
    `Use_CLS_Token:True:${dim},Insert_CLS_Token,Attention:${dim}:${heads}:${mlpRatio}:${depth},Extract_CLS_Token`,
  );
}
