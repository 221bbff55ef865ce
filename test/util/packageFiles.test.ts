import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packagePath } from '../../src/util/packageFiles';
import { bundleScript } from '../helpers';

const ROOT = path.resolve(__dirname, '../..');
let bundle: string;
beforeAll(() => {
  bundle = bundleScript(
    `import { packagePath } from '${path.join(ROOT, 'src/util/packageFiles.ts')}';
export const where = () => packagePath(['models'], 'the test', 'nothing');`,
    'package-files',
  );
});
afterAll(() => fs.rmSync(bundle, { force: true }));

describe('packagePath', () => {
  it('finds the folder of the nearest package.json above the module', async () => {
    expect(await packagePath(['models', 'x'], 'the test', 'nothing')).toBe(path.join(ROOT, 'models', 'x'));
  });

  it("finds it from an ES module imported by `node -e`, whose global __filename is '[eval]'", () => {
    const r = spawnSync(
      process.execPath,
      ['-e', `import(${JSON.stringify(pathToFileURL(bundle).href)}).then(async (m) => console.log(await m.where()))`],
      { cwd: '/', encoding: 'utf8', timeout: 30_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(path.join(ROOT, 'models'));
  });
});
