import { describe, expect, it } from 'vitest';
import { CheckpointError, checkStateDict, DiffSSLError, InputError, ShardError, WeightsError } from '../src/errors';

describe('typed errors', () => {
  it('each is a DiffSSLError and an Error, named after its class', () => {
    for (const E of [DiffSSLError, InputError, CheckpointError, WeightsError, ShardError]) {
      const e = new E('msg');
      expect(e).toBeInstanceOf(Error);
      expect(e).toBeInstanceOf(DiffSSLError);
      expect(e.name).toBe(E.name);
      expect(e.message).toBe('msg');
    }
    expect(new InputError('x')).not.toBeInstanceOf(CheckpointError);
    const shard = new ShardError('m', [2], [1], ['shard-00000-of-00003: seed is 1, shard-00001-of-00003 has 0']);
    expect([shard.missing, shard.duplicated, shard.mismatched.length]).toEqual([[2], [1], 1]);
    expect(new ShardError('m').missing).toEqual([]);
  });

  it('checkStateDict lists every missing, mis-shaped and unexpected key in one WeightsError, prefix put back', () => {
    const expected: [string, number[]][] = [
      ['a.weight', [4, 3]],
      ['a.bias', [4]],
      ['b.weight', [2, 2]],
    ];
    const ok = new Map<string, number[]>([
      ['a.weight', [4, 3]],
      ['a.bias', [4]],
      ['b.weight', [2, 2]],
    ]);
    expect(() => checkStateDict(expected, ok, { subject: 'f', advice: 'check it.' })).not.toThrow();
    const got = new Map<string, number[]>([
      ['a.weight', [3, 4]],
      ['b.weight', [2, 2]],
      ['c.weight', [1]],
    ]);
    let err: WeightsError | undefined;
    try {
      checkStateDict(expected, got, {
        subject: 'w.safetensors does not fit',
        advice: 'Check the flags.',
        prefix: 'head.',
      });
    } catch (e) {
      err = e as WeightsError;
    }
    expect(err).toBeInstanceOf(WeightsError);
    expect(err!.missing).toEqual(['head.a.bias']);
    expect(err!.mismatched).toEqual([['head.a.weight', [4, 3], [3, 4]]]);
    expect(err!.unexpected).toEqual(['head.c.weight']);
    expect(err!.message).toBe(
      'w.safetensors does not fit: 1 missing: head.a.bias; 1 mis-shaped: head.a.weight (model [4,3], file [3,4]); 1 unexpected: head.c.weight. Check the flags.',
    );
    // strict: false lets unexpected keys through
    expect(() =>
      checkStateDict(expected, new Map([...ok, ['c.weight', [1]]]), { subject: 'f', advice: '', strict: false }),
    ).not.toThrow();
  });

  it('long lists are cut at 20 names with the total', () => {
    const expected = Array.from({ length: 25 }, (_, i) => [`k${i}`, [1]] as [string, number[]]);
    expect(() => checkStateDict(expected, new Map(), { subject: 's', advice: 'a' })).toThrow(
      /25 missing: k0, k1, .*k19, … \(25 in all\)\. a$/,
    );
  });
});
