/**
 * Every ```ts, ```js and ```mjs block of README.md and docs/*.md runs as a user's ES module would:
 * bundled with esbuild (`diffssl` → this checkout's src/index.ts, `@tensorflow/*` left to
 * node_modules), then run by a child `node` in an empty temp working directory. It must exit 0
 * within the time limit and write nothing to stderr. The ```ts blocks must also type-check
 * (strict) against src/. Other blocks (```sh, ```text, ```json, …) are not run.
 *
 * Stand-ins: released checkpoints and the user's own files are too large or absent here, so a block
 * may be preceded by
 *
 *     <!-- test: replace "A" with "B"; replace "C" with "D" -->
 *
 * Each pair (JSON string syntax) replaces every occurrence of A by B in the block, in order, before
 * it runs; the test fails when an A is not found, so a stale stand-in cannot pass silently. In B,
 * `$FIXTURES` is the absolute path of test/fixtures, `$REPO` the repository root and `$ADM_TINY` the
 * flag dictionary of test/fixtures/adm-tiny (a 19-block, 32×32 U-Net standing in for a preset).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(__dirname, '../..');
const FIXTURES = path.join(REPO, 'test', 'fixtures');
const RUN_LANGS = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs']);
const TIMEOUT_MS = 90_000; // per block, below vitest's 120 s test timeout so a hang reports its output

interface Snippet {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  code: string;
  replacements: [string, string][];
}

const DIRECTIVE = /^<!--\s*test:(.*?)-->\s*$/;
const PAIR = /^\s*replace\s+("(?:[^"\\]|\\.)*")\s+with\s+("(?:[^"\\]|\\.)*")\s*$/;

/** Parses the `<!-- test: … -->` directive text (after "test:"). */
function parseDirective(text: string, where: string): [string, string][] {
  const parts = text.split(/;(?=\s*replace\s)/);
  return parts.map((part) => {
    const m = PAIR.exec(part);
    if (!m)
      throw new Error(
        `${where}: cannot read the test directive part ${JSON.stringify(part.trim())}; expected replace "A" with "B"`,
      );
    return [JSON.parse(m[1]) as string, JSON.parse(m[2]) as string];
  });
}

/** The fenced code blocks of a markdown file that the test runs, with their directives. */
function extractSnippets(file: string, markdown: string): Snippet[] {
  const lines = markdown.split('\n');
  const out: Snippet[] = [];
  let pending: { line: number; pairs: [string, string][] } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const d = DIRECTIVE.exec(lines[i].trim());
    if (d) {
      if (pending) throw new Error(`${file}:${pending.line}: test directive not followed by a code block`);
      pending = { line: i + 1, pairs: parseDirective(d[1], `${file}:${i + 1}`) };
      continue;
    }
    const fence = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]);
    if (!fence) {
      if (pending && lines[i].trim() !== '')
        throw new Error(`${file}:${pending.line}: test directive not followed by a code block`);
      continue;
    }
    const close = fence[2];
    const lang = fence[3].toLowerCase();
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !(lines[j].trim().startsWith(close) && lines[j].trim().replace(/[`~]/g, '') === ''))
      body.push(lines[j++]);
    if (j === lines.length) throw new Error(`${file}:${i + 1}: code block never closed`);
    if (RUN_LANGS.has(lang))
      out.push({ file, line: i + 1, lang, code: body.join('\n'), replacements: pending?.pairs ?? [] });
    else if (pending)
      throw new Error(`${file}:${pending.line}: test directive before a ${lang || 'plain'} block, which is not run`);
    pending = undefined;
    i = j;
  }
  if (pending) throw new Error(`${file}:${pending.line}: test directive not followed by a code block`);
  return out;
}

function admTinyFlags(): string {
  const config = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'adm-tiny', 'config.json'), 'utf8'));
  return JSON.stringify(config.create_model_and_diffusion_args);
}

/** The block as it runs: every stand-in applied. Throws when a replacement's text is not in the block. */
function applyStandIns(s: Snippet): string {
  let code = s.code;
  for (const [from, to] of s.replacements) {
    if (from === '' || !code.includes(from))
      throw new Error(`${s.file}:${s.line}: stand-in text ${JSON.stringify(from)} is not in the block`);
    const value = to
      .replaceAll('$FIXTURES', FIXTURES)
      .replaceAll('$REPO', REPO)
      .replaceAll('$ADM_TINY', admTinyFlags());
    code = code.replaceAll(from, value);
  }
  return code;
}

function docFiles(): string[] {
  const files = [path.join(REPO, 'README.md')];
  const docs = path.join(REPO, 'docs');
  if (fs.existsSync(docs))
    for (const name of fs.readdirSync(docs).sort()) if (name.endsWith('.md')) files.push(path.join(docs, name));
  return files;
}

const snippets = docFiles().flatMap((f) => extractSnippets(path.relative(REPO, f), fs.readFileSync(f, 'utf8')));

async function bundle(s: Snippet, code: string, outfile: string): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-snippet-src-'));
  try {
    const entry = path.join(dir, `snippet.${s.lang === 'ts' || s.lang === 'typescript' ? 'ts' : 'mjs'}`);
    fs.writeFileSync(entry, code);
    await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile,
      external: ['@tensorflow/*'],
      logLevel: 'silent',
      plugins: [
        {
          name: 'diffssl-from-checkout',
          setup(b) {
            b.onResolve({ filter: /^diffssl$/ }, () => ({ path: path.join(REPO, 'src', 'index.ts') }));
          },
        },
      ],
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('code blocks of README.md and docs/', () => {
  it('finds the snippets of the README and the guides', () => {
    const count = (file: string) => snippets.filter((s) => s.file === file).length;
    expect(count('README.md')).toBeGreaterThanOrEqual(1);
    expect(count(path.join('docs', 'checkpoints.md'))).toBeGreaterThanOrEqual(1);
    expect(count(path.join('docs', 'heads.md'))).toBeGreaterThanOrEqual(2);
    expect(count(path.join('docs', 'cka.md'))).toBeGreaterThanOrEqual(1);
  });

  it('reads the stand-in directive and refuses one whose text is not in its block', () => {
    const [s] = extractSnippets(
      'x.md',
      '<!-- test: replace "a.pt" with "$FIXTURES/b.pt"; replace "\\"q\\"" with "r" -->\n\n```ts\nload("a.pt", "q")\n```\n',
    );
    expect(s.replacements).toEqual([
      ['a.pt', '$FIXTURES/b.pt'],
      ['"q"', 'r'],
    ]);
    expect(applyStandIns(s)).toBe(`load("${FIXTURES}/b.pt", r)`);
    const [stale] = extractSnippets('x.md', '<!-- test: replace "c.pt" with "d.pt" -->\n```js\nload("a.pt")\n```\n');
    expect(() => applyStandIns(stale)).toThrow(/"c.pt" is not in the block/);
    expect(() => extractSnippets('x.md', '<!-- test: replace "a" with "b" -->\n```sh\nls\n```\n')).toThrow(/not run/);
    expect(() => extractSnippets('x.md', '<!-- test: replace "a" with "b" -->\ntext\n```ts\nx\n```\n')).toThrow(
      /not followed/,
    );
  });

  it('every snippet that uses diffssl picks a backend and leaves gradients to the trainer', () => {
    const users = snippets.filter((s) => /from ['"]diffssl['"]/.test(s.code));
    expect(users.length).toBeGreaterThan(0);
    for (const s of users) {
      expect(s.code, `${s.file}:${s.line} never calls useBestBackend()`).toMatch(/await useBestBackend\(/);
      expect(s.code, `${s.file}:${s.line} calls ensureGradients()`).not.toMatch(/ensureGradients/);
    }
  });

  it('every ts block type-checks (strict) against this checkout', () => {
    const dir = path.join(REPO, '.tmp', `snippets-ts-${process.pid}`); // inside the repo: node_modules resolve
    fs.mkdirSync(dir, { recursive: true });
    try {
      const roots = snippets
        .filter((s) => s.lang === 'ts' || s.lang === 'typescript')
        .map((s) => {
          const file = path.join(dir, `${path.basename(s.file, '.md')}-${s.line}.ts`);
          fs.writeFileSync(file, applyStandIns(s));
          return file;
        });
      const program = ts.createProgram(roots, {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ESNext,
        moduleResolution: ts.ModuleResolutionKind.Bundler,
        lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
        types: ['node'],
        typeRoots: [path.join(REPO, 'node_modules', '@types')],
        strict: true,
        esModuleInterop: true,
        skipLibCheck: true,
        resolveJsonModule: true,
        noEmit: true,
        paths: { diffssl: [path.join(REPO, 'src', 'index.ts')] },
      });
      const errors = roots.flatMap((f) => {
        const sf = program.getSourceFile(f)!;
        return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
      });
      const text = errors.map((d) => {
        const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
        return `${path.basename(d.file!.fileName)} line ${line + 1} of the block: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
      expect(text).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const s of snippets) {
    it(`${s.file}:${s.line} (${s.lang}) runs as written`, async () => {
      const code = applyStandIns(s);
      const outDir = path.join(REPO, '.tmp', 'snippets');
      fs.mkdirSync(outDir, { recursive: true });
      const outfile = path.join(outDir, `${path.basename(s.file, '.md')}-${s.line}-${process.pid}.mjs`);
      const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-snippet-'));
      try {
        await bundle(s, code, outfile);
        const res = spawnSync(process.execPath, [outfile], {
          cwd,
          encoding: 'utf8',
          timeout: TIMEOUT_MS,
          env: { ...process.env, NODE_OPTIONS: '' },
        });
        const report = `\n--- stdout\n${res.stdout}\n--- stderr\n${res.stderr.slice(0, 4000)}`;
        expect(res.error, `did not finish within ${TIMEOUT_MS / 1000} s${report}`).toBeUndefined();
        expect(res.status, report).toBe(0);
        expect(res.stderr, report).toBe('');
      } finally {
        fs.rmSync(cwd, { recursive: true, force: true });
        fs.rmSync(outfile, { force: true });
      }
    });
  }
});
