/**
 * The ADM U-Net's structure as data: its blocks in the paper's numbering, the layers inside each,
 * and the reference state dict (names and PyTorch shapes, in `state_dict()` order). The forward
 * pass walks this plan; loading checks weights against it; the block table users see comes from it.
 * @module
 */
import type { ResolvedConfig } from './config.js';

/** One layer inside a block, named by its state-dict prefix (e.g. `input_blocks.4.1`). */
export type LayerSpec =
  | { kind: 'conv'; prefix: string; cin: number; cout: number }
  | { kind: 'res'; prefix: string; cin: number; cout: number; updown: 'up' | 'down' | null }
  | { kind: 'attn'; prefix: string; channels: number; heads: number }
  | { kind: 'down'; prefix: string; channels: number }
  | { kind: 'up'; prefix: string; channels: number };

/**
 * A row of the block table. `b` is the paper's 1-based block number.
 * @category Backbone
 */
export interface BlockInfo {
  /** Block number, 1..total in execution order (input blocks, middle block, output blocks). */
  b: number;
  part: 'input' | 'middle' | 'output';
  /** The reference module: `input_blocks.3`, `middle_block`, `output_blocks.5`. */
  module: string;
  /** Channels of the block's output. */
  channels: number;
  /** Side of the block's (square) output. */
  size: number;
}

/** A block with what the forward pass needs to run it. */
export interface BlockSpec extends BlockInfo {
  /** Channels entering the block (after the skip concatenation for output blocks). */
  inChannels: number;
  layers: LayerSpec[];
  /** For output blocks: the input block whose output is concatenated in (its mirror). */
  skipFrom?: number;
}

/** The whole plan of one model. */
export interface Architecture {
  blocks: BlockSpec[];
  /** Number of input blocks (N_in); the middle block is `numInputBlocks + 1`. */
  numInputBlocks: number;
  timeEmbedDim: number;
  /** Reference state-dict entries `[name, PyTorch shape]` in `state_dict()` order. */
  parameters: [string, number[]][];
}

function resParams(p: string, cin: number, cout: number, embDim: number, scaleShift: boolean): [string, number[]][] {
  const out: [string, number[]][] = [
    [`${p}.in_layers.0.weight`, [cin]],
    [`${p}.in_layers.0.bias`, [cin]],
    [`${p}.in_layers.2.weight`, [cout, cin, 3, 3]],
    [`${p}.in_layers.2.bias`, [cout]],
    [`${p}.emb_layers.1.weight`, [scaleShift ? 2 * cout : cout, embDim]],
    [`${p}.emb_layers.1.bias`, [scaleShift ? 2 * cout : cout]],
    [`${p}.out_layers.0.weight`, [cout]],
    [`${p}.out_layers.0.bias`, [cout]],
    [`${p}.out_layers.3.weight`, [cout, cout, 3, 3]],
    [`${p}.out_layers.3.bias`, [cout]],
  ];
  if (cin !== cout) out.push([`${p}.skip_connection.weight`, [cout, cin, 1, 1]], [`${p}.skip_connection.bias`, [cout]]);
  return out;
}

function layerParams(l: LayerSpec, embDim: number, scaleShift: boolean): [string, number[]][] {
  switch (l.kind) {
    case 'conv':
      return [
        [`${l.prefix}.weight`, [l.cout, l.cin, 3, 3]],
        [`${l.prefix}.bias`, [l.cout]],
      ];
    case 'res':
      return resParams(l.prefix, l.cin, l.cout, embDim, scaleShift);
    case 'attn':
      return [
        [`${l.prefix}.norm.weight`, [l.channels]],
        [`${l.prefix}.norm.bias`, [l.channels]],
        [`${l.prefix}.qkv.weight`, [3 * l.channels, l.channels, 1]],
        [`${l.prefix}.qkv.bias`, [3 * l.channels]],
        [`${l.prefix}.proj_out.weight`, [l.channels, l.channels, 1]],
        [`${l.prefix}.proj_out.bias`, [l.channels]],
      ];
    case 'down':
      return [
        [`${l.prefix}.op.weight`, [l.channels, l.channels, 3, 3]],
        [`${l.prefix}.op.bias`, [l.channels]],
      ];
    case 'up':
      return [
        [`${l.prefix}.conv.weight`, [l.channels, l.channels, 3, 3]],
        [`${l.prefix}.conv.bias`, [l.channels]],
      ];
  }
}

function headsFor(channels: number, numHeads: number, numHeadChannels: number): number {
  return numHeadChannels === -1 ? numHeads : Math.floor(channels / numHeadChannels);
}

/** Builds the plan of guided-diffusion's `UNetModel` for resolved flags, mirroring its constructor. */
export function buildArchitecture(cfg: ResolvedConfig): Architecture {
  const C = cfg.modelChannels;
  const embDim = 4 * C;
  const blocks: BlockSpec[] = [];
  const attn = (prefix: string, ch: number, heads: number): LayerSpec => ({
    kind: 'attn',
    prefix,
    channels: ch,
    heads: headsFor(ch, heads, cfg.numHeadChannels),
  });

  let ch = Math.trunc(cfg.channelMult[0] * C);
  let size = cfg.imageSize;
  let ds = 1;
  const add = (part: BlockInfo['part'], module: string, inChannels: number, layers: LayerSpec[], skipFrom?: number) =>
    blocks.push({
      b: blocks.length + 1,
      part,
      module,
      channels: ch,
      size,
      inChannels,
      layers,
      ...(skipFrom ? { skipFrom } : {}),
    });

  add('input', 'input_blocks.0', cfg.inChannels, [
    { kind: 'conv', prefix: 'input_blocks.0.0', cin: cfg.inChannels, cout: ch },
  ]);
  const skipStack: { b: number; ch: number }[] = [{ b: 1, ch }];
  cfg.channelMult.forEach((mult, level) => {
    for (let i = 0; i < cfg.numResBlocks; i++) {
      const module = `input_blocks.${blocks.length}`;
      const out = Math.trunc(mult * C);
      const layers: LayerSpec[] = [{ kind: 'res', prefix: `${module}.0`, cin: ch, cout: out, updown: null }];
      const cin = ch;
      ch = out;
      if (cfg.attentionDs.includes(ds)) layers.push(attn(`${module}.1`, ch, cfg.numHeads));
      add('input', module, cin, layers);
      skipStack.push({ b: blocks.length, ch });
    }
    if (level !== cfg.channelMult.length - 1) {
      const module = `input_blocks.${blocks.length}`;
      size = Math.floor(size / 2);
      ds *= 2;
      add('input', module, ch, [
        cfg.resblockUpdown
          ? { kind: 'res', prefix: `${module}.0`, cin: ch, cout: ch, updown: 'down' }
          : { kind: 'down', prefix: `${module}.0`, channels: ch },
      ]);
      skipStack.push({ b: blocks.length, ch });
    }
  });
  const numInputBlocks = blocks.length;

  add('middle', 'middle_block', ch, [
    { kind: 'res', prefix: 'middle_block.0', cin: ch, cout: ch, updown: null },
    attn('middle_block.1', ch, cfg.numHeads),
    { kind: 'res', prefix: 'middle_block.2', cin: ch, cout: ch, updown: null },
  ]);

  let outIndex = 0;
  [...cfg.channelMult.entries()].reverse().forEach(([level, mult]) => {
    for (let i = 0; i <= cfg.numResBlocks; i++) {
      const module = `output_blocks.${outIndex++}`;
      const skip = skipStack.pop()!;
      const cin = ch + skip.ch;
      ch = Math.trunc(C * mult);
      const layers: LayerSpec[] = [{ kind: 'res', prefix: `${module}.0`, cin, cout: ch, updown: null }];
      if (cfg.attentionDs.includes(ds)) layers.push(attn(`${module}.1`, ch, cfg.numHeadsUpsample));
      if (level > 0 && i === cfg.numResBlocks) {
        const prefix = `${module}.${layers.length}`;
        layers.push(
          cfg.resblockUpdown
            ? { kind: 'res', prefix, cin: ch, cout: ch, updown: 'up' }
            : { kind: 'up', prefix, channels: ch },
        );
        size *= 2;
        ds = Math.floor(ds / 2);
      }
      add('output', module, cin, layers, skip.b);
    }
  });

  const parameters: [string, number[]][] = [
    ['time_embed.0.weight', [embDim, C]],
    ['time_embed.0.bias', [embDim]],
    ['time_embed.2.weight', [embDim, embDim]],
    ['time_embed.2.bias', [embDim]],
  ];
  if (cfg.numClasses !== null) parameters.push(['label_emb.weight', [cfg.numClasses, embDim]]);
  for (const block of blocks)
    for (const l of block.layers) parameters.push(...layerParams(l, embDim, cfg.useScaleShiftNorm));
  const top = Math.trunc(cfg.channelMult[0] * C);
  parameters.push(
    ['out.0.weight', [ch]],
    ['out.0.bias', [ch]],
    ['out.2.weight', [cfg.outChannels, top, 3, 3]],
    ['out.2.bias', [cfg.outChannels]],
  );
  return { blocks, numInputBlocks, timeEmbedDim: embDim, parameters };
}

/**
 * Multiply-adds of every convolution (3×3, 1×1 skips, attention's qkv and proj_out) for one image,
 * through block `upTo` (default: the whole network with its output conv), as a direct convolution
 * would do them: the yardstick for effective GFLOP/s, whatever algorithm actually runs.
 */
export function convMultiplyAdds(arch: Architecture, outChannels: number, upTo = arch.blocks.length + 1): number {
  let macs = 0;
  let side = arch.blocks[0].size;
  for (const block of arch.blocks) {
    if (block.b > upTo) return macs;
    for (const l of block.layers) {
      switch (l.kind) {
        case 'conv':
          macs += side * side * l.cin * l.cout * 9;
          break;
        case 'res': {
          const out = l.updown === 'down' ? side / 2 : l.updown === 'up' ? side * 2 : side;
          macs += out * out * (l.cin * l.cout * 9 + l.cout * l.cout * 9 + (l.cin !== l.cout ? l.cin * l.cout : 0));
          side = out;
          break;
        }
        case 'attn':
          macs += side * side * 4 * l.channels * l.channels;
          break;
        case 'down':
          side /= 2;
          macs += side * side * l.channels * l.channels * 9;
          break;
        case 'up':
          side *= 2;
          macs += side * side * l.channels * l.channels * 9;
          break;
      }
    }
  }
  const top = arch.blocks[arch.blocks.length - 1].channels;
  return macs + side * side * top * outChannels * 9;
}
