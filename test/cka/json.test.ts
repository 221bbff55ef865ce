import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors';
import { ckaMatrixJSON, writeCKAJSON } from '../../src/cka/json';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cka-json-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('CKA matrix JSON', () => {
  it('keeps values and labels, and round-trips through a file', async () => {
    const m = [
      [0.5, 0.25],
      [0.125, 1],
    ];
    const j = ckaMatrixJSON(m, { rowLabels: ['a', 'b'], colLabels: ['c', 'd'], debiased: true, examples: 40 });
    expect(j).toEqual({
      format: 'diffssl.cka-matrix',
      version: 1,
      rows: ['a', 'b'],
      cols: ['c', 'd'],
      values: m,
      debiased: true,
      examples: 40,
    });
    expect(ckaMatrixJSON(m).cols).toEqual(['0', '1']);
    const file = path.join(tmp, 'cka.json');
    await writeCKAJSON(file, m, { rowLabels: ['a', 'b'] });
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({
      format: 'diffssl.cka-matrix',
      version: 1,
      rows: ['a', 'b'],
      cols: ['a', 'b'],
      values: m,
    });
    expect(() => ckaMatrixJSON([[1, 2, 3]], { colLabels: ['x'] })).toThrow(/colLabels must be 3 strings/);
    expect(() => ckaMatrixJSON([[Infinity]])).toThrow(InputError);
  });
});
