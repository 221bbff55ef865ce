// `npm run demo` (examples/demo.mjs) in its --quick miniature, bundled against this checkout's src/ and run as
// a child process: it must finish, print its tables and conclusions, and write the heatmaps and demo.json.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleScript } from '../helpers';

const REPO = path.resolve(__dirname, '../..');
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-demo-'));
let script: string | undefined;
afterAll(() => {
  fs.rmSync(out, { recursive: true, force: true });
  if (script) fs.rmSync(script, { force: true });
});

describe('examples/demo.mjs --quick', () => {
  it('runs the sweep, the four heads and CKA, and writes what it says it wrote', () => {
    const source = fs
      .readFileSync(path.join(REPO, 'examples/demo.mjs'), 'utf8')
      .replace("} from 'diffssl';", `} from ${JSON.stringify(path.join(REPO, 'src/index.ts'))};`);
    script = bundleScript(source, 'demo');
    const r = spawnSync(process.execPath, [script, out, '--quick'], { encoding: 'utf8', timeout: 300_000, cwd: out });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Sweep: linear probe \/ 20-NN on the 4×4-pooled map/);
    expect(r.stdout).toMatch(/head: DifFeed/);
    expect(r.stderr).toMatch(/sweep done: best linear probe at t=\d+, b=\d+/);

    const j = JSON.parse(fs.readFileSync(path.join(out, 'demo.json'), 'utf8'));
    expect(j.t).toEqual([10, 700]);
    expect(j.grid.linear).toHaveLength(2);
    expect(j.grid.linear[0]).toHaveLength(3);
    const accuracies = [...j.grid.linear.flat(), ...j.grid.knn.flat(), ...j.heads.map((h: { top1: number }) => h.top1)];
    for (const a of accuracies) (expect(a).toBeGreaterThanOrEqual(0), expect(a).toBeLessThanOrEqual(1));
    expect(j.heads.map((h: { what: string }) => h.what.split(',')[0])).toEqual([
      'linear',
      'attention',
      'DifFormer',
      'DifFeed',
    ]);
    // The best cell is the grid's maximum, and the printed conclusion matches the numbers.
    expect(j.best.linear).toBe(Math.max(...j.grid.linear.flat()));
    expect(j.cka.matrix).toHaveLength(3);
    j.cka.matrix.forEach((row: number[], i: number) => expect(row[i]).toBeCloseTo(1, 4));
    for (const png of ['sweep-linear.png', 'sweep-knn.png', 'cka-blocks.png'])
      expect(fs.readFileSync(path.join(out, png)).subarray(1, 4).toString()).toBe('PNG');
  });
});
