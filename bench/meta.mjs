// What a bench result needs to be read later: when, on which commit, on what machine and runtime.
// Shared by bench/run.mjs and bench/train.mjs; bench/report.mjs prints it as the page header.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

function git(...args) {
  try {
    return execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

function packageVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return undefined;
  }
}

/** Date, commit (with `dirty` when the work tree had uncommitted changes), machine and versions. */
export function runMeta() {
  const cpus = os.cpus();
  const status = git('status', '--porcelain', '--untracked-files=no');
  return {
    date: new Date().toISOString(),
    commit: git('rev-parse', '--short', 'HEAD'),
    dirty: status === undefined ? undefined : status.length > 0,
    machine: {
      cpu: cpus[0]?.model?.trim() ?? 'unknown',
      cores: cpus.length,
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      // Other work on the machine as the run starts (1, 5 and 15 minute load averages): above the core
      // count, every absolute time in the run is inflated.
      loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    },
    node: process.version,
    tfjs: packageVersion('@tensorflow/tfjs-core'),
    tfjsWasm: packageVersion('@tensorflow/tfjs-backend-wasm'),
  };
}
