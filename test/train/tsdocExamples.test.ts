// The TSDoc examples of the training and data layers type-check against the public API as written.
// Convention: an example may use every export of src/index.ts and `tf`, plus the names declared in
// CONTEXT below (what the surrounding prose calls "your U-Net", "your data"); nothing else.
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const FOLDERS = ['src/train', 'src/data'];

const CONTEXT = `import type * as tf from '@tensorflow/tfjs-core';
import type { ADMUNet, Dataset, ImageSource, TrainableModel } from '../../src/index';
declare global {
  /** A loaded backbone. */
  const unet: ADMUNet;
  /** Labelled training images. */
  const trainImages: ImageSource;
  /** Features [N, D] and their labels. */
  const features: tf.Tensor2D;
  const labels: Int32Array;
  /** A model over rows of features, with training and validation data for it. */
  const head: TrainableModel<tf.Tensor2D>;
  const data: Dataset<tf.Tensor2D>;
  const val: Dataset<tf.Tensor2D>;
}
export {};
`;

/** Every ```ts block inside an `@example` of a TSDoc comment, with where it is. */
function examples(file: string): { where: string; code: string }[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: { where: string; code: string }[] = [];
  for (const m of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const lines = m[0].split('\n').map((l) => l.replace(/^\s*\*( |$)/, ''));
    let inExample = false;
    let block: string[] | null = null;
    lines.forEach((l, i) => {
      if (/^@example/.test(l)) inExample = true;
      else if (/^@\w/.test(l)) inExample = false;
      if (!inExample) return;
      if (block === null && /^```(ts|typescript)\s*$/.test(l.trim())) block = [];
      else if (block !== null && l.trim() === '```') {
        const line = text.slice(0, m.index).split('\n').length + i;
        out.push({ where: `${path.relative(ROOT, file)}:${line}`, code: block.join('\n') });
        block = null;
      } else block?.push(l);
    });
  }
  return out;
}

const dir = fs.mkdtempSync(path.join(ROOT, '.tmp', 'examples-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('TSDoc examples of src/train and src/data', () => {
  it('type-check against the public API', () => {
    const found = FOLDERS.flatMap((f) =>
      fs
        .readdirSync(path.join(ROOT, f))
        .filter((n) => n.endsWith('.ts'))
        .flatMap((n) => examples(path.join(ROOT, f, n))),
    );
    expect(found.length).toBeGreaterThanOrEqual(6);
    const options: ts.CompilerOptions = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      types: ['node'],
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      esModuleInterop: true,
    };
    const host = ts.createCompilerHost(options);
    const exportsOf = ts.createProgram([path.join(ROOT, 'src/index.ts')], options, host);
    const index = exportsOf.getSourceFile(path.join(ROOT, 'src/index.ts'))!;
    const names = exportsOf
      .getTypeChecker()
      .getExportsOfModule(exportsOf.getTypeChecker().getSymbolAtLocation(index)!)
      .map((s) => s.name);
    const preamble = `import * as tf from '@tensorflow/tfjs-core';\nimport { ${names.join(', ')} } from '../../src/index';\n`;
    fs.writeFileSync(path.join(dir, 'context.ts'), CONTEXT);
    const files = found.map(({ code }, i) => {
      const file = path.join(dir, `example${i}.ts`);
      fs.writeFileSync(file, `${preamble}export {};\n${code}\n`);
      return file;
    });
    const program = ts.createProgram([path.join(dir, 'context.ts'), ...files], options, host, exportsOf);
    const problems = ts
      .getPreEmitDiagnostics(program)
      // Unused imports of the preamble are not the example's fault.
      .filter((d) => d.file && d.file.fileName.startsWith(dir) && d.code !== 6133 && d.code !== 6192)
      .map((d) => {
        const i = files.indexOf(path.resolve(d.file!.fileName));
        const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
        return `${i >= 0 ? found[i].where : d.file!.fileName} (example line ${line - 2}): ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
      });
    expect(problems).toEqual([]);
  });
});
