import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { attentionArc, formatFusionArc, parseFusionArc } from '../../src/heads/fusionArc';
import { fixtureJson } from '../helpers';

describe('fusion_arc grammar', () => {
  it("parses every fixture's string as the fixture's config derived it", () => {
    for (const head of ['attention', 'attention-bn', 'difffeed', 'difffeed-all', 'difformer']) {
      const cfg = fixtureJson(`heads/${head}/config.json`);
      const arc = parseFusionArc(cfg.finetune_args.fusion_arc);
      const want = cfg.derived.fusion_arc_parsed;
      expect(arc.dim).toBe(want.dim);
      expect(arc.clsToken).toBe(true);
      expect(arc.layers).toEqual([
        { kind: 'insertCls' },
        {
          kind: 'attention',
          dim: want.dim_block,
          heads: want.num_heads,
          mlpRatio: want.mlp_ratio,
          blocks: want.num_blocks,
        },
        { kind: 'extractCls' },
      ]);
      expect(formatFusionArc(arc)).toBe(cfg.finetune_args.fusion_arc);
    }
  });

  it("follows the reference's quirks: bool('False') is True, only an empty flag means no CLS token; text after '/' is ignored", () => {
    expect(parseFusionArc('Use_CLS_Token:False:8,Insert_CLS_Token,Attention:8:2:4:1,Extract_CLS_Token').clsToken).toBe(
      true,
    );
    expect(parseFusionArc('Use_CLS_Token::8,Attention:8:2:4:1,FullyPool').clsToken).toBe(false);
    expect(
      parseFusionArc('Use_CLS_Token:True:8,Insert_CLS_Token,Attention:8:2:4:1,Extract_CLS_Token/whatever,else').layers
        .length,
    ).toBe(3);
  });

  it('reads fractional MLP ratios, Dense layers and FullyPool', () => {
    const arc = parseFusionArc(
      ' Use_CLS_Token:True:16 , Insert_CLS_Token, Attention:16:4:2.5:1, FullyPool, Dense:16:16:relu',
    );
    expect(arc.layers).toEqual([
      { kind: 'insertCls' },
      { kind: 'attention', dim: 16, heads: 4, mlpRatio: 2.5, blocks: 1 },
      { kind: 'fullyPool' },
      { kind: 'dense', in: 16, out: 16, activation: 'relu' },
    ]);
    expect(attentionArc(1024)).toEqual(
      parseFusionArc('Use_CLS_Token:True:1024,Insert_CLS_Token,Attention:1024:8:4:2,Extract_CLS_Token'),
    );
  });

  it('rejects what the reference would silently skip or crash on, naming the layer', () => {
    const bad: [string, RegExp][] = [
      ['', /non-empty/],
      ['Insert_CLS_Token,Attention:8:2:4:1', /must start with Use_CLS_Token/],
      ['Use_CLS_Token:True:8,Insert_CLS_Token,Atention:8:2:4:1,Extract_CLS_Token', /unknown layer "Atention:8:2:4:1"/],
      ['Use_CLS_Token:True:8,Insert_CLS_Token,Attention:8:2:4,Extract_CLS_Token', /takes 4 fields/],
      ['Use_CLS_Token:True:8,Insert_CLS_Token,Attention:8:3:4:1,Extract_CLS_Token', /divisible/],
      ['Use_CLS_Token:True:8,Insert_CLS_Token,Attention:8:x:4:1,Extract_CLS_Token', /heads must be an integer/],
      ['Use_CLS_Token:True:8,Insert_CLS_Token,Attention:8:2:-1:1,Extract_CLS_Token', /mlp_ratio/],
      ['Use_CLS_Token:True:8,Pool:2:2,Extract_CLS_Token', /image-shaped/],
      ['Use_CLS_Token:True:8,Reshape', /image-shaped/],
      ['Use_CLS_Token:True:8,Use_CLS_Token:True:8', /only come first/],
      ['Use_CLS_Token:True:8,Dense:8:8:gelu', /activation/],
      ['Use_CLS_Token:True:8,Insert_CLS_Token:1', /takes no fields/],
      ['Use_CLS_Token:True:8,,Extract_CLS_Token', /unknown layer ""/],
    ];
    for (const [arc, msg] of bad) {
      let err: unknown;
      try {
        parseFusionArc(arc);
      } catch (e) {
        err = e;
      }
      expect(err, arc).toBeInstanceOf(InputError);
      expect((err as Error).message, arc).toMatch(msg);
    }
  });
});
