import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parseExtract } from '../../src/cli/commands/extract';
import { parseSweep } from '../../src/cli/commands/sweep';
import { chooseShard } from '../../src/cli/extraction';
import { FIXTURES, setBackend } from '../helpers';
import { cli } from './cliHarness';

// The scheduler examples and the cluster guide, read as a scheduler and a shell would, and their
// diffssl command lines checked with the CLI's own parsers, so that they cannot drift from it.
const ROOT = path.resolve(__dirname, '../..');
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), 'utf8');

let tmp: string;
beforeAll(async () => {
  await setBackend('wasm');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'diffssl-cli-cluster-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Every YAML document of `rel`, as plain objects; a syntax error fails. */
function yamlDocs(rel: string): any[] {
  return parseAllDocuments(read(rel)).map((d) => {
    expect(d.errors, rel).toEqual([]);
    return d.toJS();
  });
}

/** A shell script's command lines: continuations joined, comments and blank lines left out. */
const shellLines = (text: string) =>
  text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

/** The arguments after `diffssl` of every line that runs `diffssl extract|sweep|merge`, up to `||`, `&&`, `;`, `#`. */
function diffsslCalls(lines: string[]): string[][] {
  return lines
    .filter((l) => /\bdiffssl (extract|sweep|merge)\b/.test(l))
    .map((line) => {
      // A call quoted for another command (sbatch --wrap "…", sh -c "…") is read inside its quotes.
      const l = /"([^"]*\bdiffssl (?:extract|sweep|merge)\b[^"]*)"/.exec(line)?.[1] ?? line;
      const words = l.split(/\s+/);
      const args = words.slice(words.indexOf('diffssl') + 1);
      const end = args.findIndex((w) => ['||', '&&', ';', '|', '#'].includes(w) || w.startsWith('#'));
      const call = end < 0 ? args : args.slice(0, end);
      // Quotes or expansions would make this plain split wrong; the examples have none.
      expect(call.join(' '), l).not.toMatch(/["'$`\\]/);
      return call;
    });
}

const value = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

describe('the Kubernetes example', () => {
  it('an Indexed Job of N completions on a shared claim, whose command is shard k of N for JOB_COMPLETION_INDEX=k', () => {
    const docs = yamlDocs('examples/kubernetes/extract-job.yaml');
    const claim = docs.find((d) => d.kind === 'PersistentVolumeClaim');
    expect(claim.spec.accessModes).toContain('ReadWriteMany');
    const job = docs.find((d) => d.kind === 'Job');
    expect(job.apiVersion).toBe('batch/v1');
    expect(job.spec.completionMode).toBe('Indexed');
    const n: number = job.spec.completions;
    expect(n).toBeGreaterThan(1);
    expect(job.spec.parallelism).toBe(n);
    const pod = job.spec.template.spec;
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.containers).toHaveLength(1);
    const [container] = pod.containers;
    const volume = pod.volumes.find((v: any) => v.persistentVolumeClaim?.claimName === claim.metadata.name);
    const mount = container.volumeMounts.find((m: any) => m.name === volume.name).mountPath;
    // The failure policy names this container.
    expect(job.spec.podFailurePolicy.rules[0].onExitCodes.containerName).toBe(container.name);

    expect(container.command.slice(0, 3)).toEqual(['npx', 'diffssl', 'extract']);
    const args: string[] = container.command.slice(3);
    const env = Object.fromEntries((container.env ?? []).map((e: any) => [e.name, String(e.value)]));
    for (let k = 0; k < n; k++) {
      const req = parseExtract(args, { ...env, JOB_COMPLETION_INDEX: String(k) })!;
      expect(req.shard).toEqual({ index: k, count: n });
    }
    expect(() => parseExtract(args, { ...env, JOB_COMPLETION_INDEX: String(n) })).toThrow(/index must be an integer/);
    // Data, model and output all live on the shared volume.
    const req = parseExtract(args, { JOB_COMPLETION_INDEX: '0' })!;
    for (const p of [req.data, req.flags.model!, req.dir]) expect(p.startsWith(`${mount}/`), p).toBe(true);

    // The merge Job checks the directory the extract Job writes, on the same claim.
    const [merge] = yamlDocs('examples/kubernetes/merge-job.yaml');
    expect(merge.kind).toBe('Job');
    const mc = merge.spec.template.spec.containers[0];
    expect(mc.command).toEqual(['npx', 'diffssl', 'merge', req.dir]);
    expect(merge.spec.podFailurePolicy.rules[0].onExitCodes).toMatchObject({ containerName: mc.name, values: [3] });
    expect(merge.spec.template.spec.volumes[0].persistentVolumeClaim.claimName).toBe(claim.metadata.name);
    expect(mc.volumeMounts[0].mountPath).toBe(mount);
  });
});

describe('the Slurm example', () => {
  it('an array 0..N−1 whose command is shard k of N for SLURM_ARRAY_TASK_ID=k, and a merge after it', async () => {
    const text = read('examples/slurm/extract.sbatch');
    const array = /^#SBATCH --array=(\d+)-(\d+)$/m.exec(text);
    expect(array).not.toBeNull();
    const [lo, hi] = [Number(array![1]), Number(array![2])];
    const n = hi - lo + 1;
    expect(n).toBeGreaterThan(1);
    // sbatch reads #SBATCH lines only before the first command.
    const lines = text.split('\n');
    const firstCommand = lines.findIndex((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(lines.map((l) => l.startsWith('#SBATCH')).lastIndexOf(true)).toBeLessThan(firstCommand);
    const calls = diffsslCalls(shellLines(text));
    expect(calls).toHaveLength(1);
    const args = calls[0];
    expect(args[0]).toBe('extract');
    for (let id = lo; id <= hi; id++) {
      const env = {
        SLURM_ARRAY_TASK_ID: String(id),
        SLURM_ARRAY_TASK_MIN: String(lo),
        SLURM_ARRAY_TASK_COUNT: String(n),
      };
      expect(parseExtract(args.slice(1), env)!.shard).toEqual({ index: id - lo, count: n });
    }
    const out = value(args, '-o');
    expect(text).toMatch(/sbatch --dependency=afterok:\$jid examples\/slurm\/merge\.sbatch/);
    const merge = diffsslCalls(shellLines(read('examples/slurm/merge.sbatch')));
    expect(merge).toEqual([['merge', out]]);

    // The merge line checks and indexes what extract writes to that -o (here under a temporary root).
    const root = path.join(tmp, 'slurm');
    const local = (p: string) => path.join(root, p);
    const tiny = [
      '--model',
      path.join(FIXTURES, 'adm-tiny', 'weights.safetensors'),
      '--flags',
      path.join(FIXTURES, 'adm-tiny', 'config.json'),
    ];
    for (let k = 0; k < 2; k++) {
      const e = await cli(
        [
          'extract',
          'fashion-mnist:test',
          '--limit',
          '2',
          '--t',
          '90',
          '--b',
          '2',
          ...tiny,
          '-o',
          local(out),
          '--quiet',
        ],
        { env: { SLURM_ARRAY_TASK_ID: String(k), SLURM_ARRAY_TASK_COUNT: '2' } },
      );
      expect(e.code, e.err).toBe(0);
    }
    const m = await cli(['merge', ...merge[0].slice(1).map(local)]);
    expect(m.code, m.err).toBe(0);
    expect(m.out).toMatch(/^merged 2 shards: 2 images/);
  });
});

describe('the command lines of the guides', () => {
  it('every diffssl extract, sweep and merge line of docs/cluster.md and docs/cli.md parses', async () => {
    let checked = 0;
    for (const doc of ['docs/cluster.md', 'docs/cli.md']) {
      const blocks = [...read(doc).matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].map((m) => m[1]);
      for (const args of diffsslCalls(blocks.flatMap(shellLines))) {
        if (args.includes('--help')) continue;
        const what = `${doc}: diffssl ${args.join(' ')}`;
        // A line with --shards takes its index from the scheduler.
        const env = args.includes('--shards') ? { JOB_COMPLETION_INDEX: '0' } : {};
        if (args[0] === 'extract') expect(parseExtract(args.slice(1), env), what).toBeDefined();
        else if (args[0] === 'sweep') {
          const req = parseSweep(args.slice(1));
          expect(req, what).toBeDefined();
          chooseShard('sweep', req!.flags, env);
        } else {
          // merge has nothing to parse but its folder: anything but a usage error (2) means it parsed.
          const r = await cli([
            'merge',
            ...args.slice(1).map((a) => (a.startsWith('-') ? a : path.join(tmp, 'none', a))),
          ]);
          expect(r.code, `${what}: ${r.err}`).not.toBe(2);
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10);
  });
});
