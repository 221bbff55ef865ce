/**
 * Multi-threaded wasm in Node. tfjs-backend-wasm 4.22.0 ships a threaded SIMD binary but never
 * uses it in Node: its feature flag says no, its pthread workers are created from `blob:` URLs
 * that Node's Worker refuses, emscripten caps the pool at half the reported cores, and the pooled
 * workers keep the process alive. This module works around each of those for the duration of the
 * backend's initialisation only, then verifies the result; on any failure it restores stock,
 * single-threaded wasm. It relies on internals of that exact version, so any other version is
 * refused up front.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { importUnbundled } from '../../util/dynamicImport.js';
import { startSimdHelpers } from './simdKernels.js';
import { isNode } from '../../util/isNode.js';

/**
 * The tfjs-backend-wasm version whose internals this shim was written against.
 * @category Backend
 */
export const THREADED_WASM_VERSION = '4.22.0';

/**
 * Outcome of {@link initThreadedWasm}.
 * @category Backend
 */
export interface ThreadedWasmResult {
  /** Whether the active wasm backend runs more than one thread. */
  threaded: boolean;
  /** XNNPACK's thread count (1 on stock wasm). */
  threads: number;
  /** Why it is or is not threaded. */
  reason: string;
}

/**
 * Options of {@link initThreadedWasm}.
 * @category Backend
 */
export interface ThreadedWasmOptions {
  /** Threads to ask for; default: the number of logical cores. */
  threads?: number;
  /** Where the worker scripts are written (default: the OS temp dir). */
  tempDir?: string;
}

interface WasmModuleApi {
  setThreadsCount(n: number): void;
  getThreadsCount(): number;
  version_wasm?: string;
}

interface PThreadPool {
  unusedWorkers: { unref?: () => void }[];
  runningWorkers: { unref?: () => void }[];
  allocateUnusedWorker: () => void;
}

type Restore = () => void;

const PROCESS_EVENTS = ['uncaughtException', 'unhandledRejection'] as const;

/**
 * Runs `start` (anything that creates a wasm backend instance) and then removes the
 * `uncaughtException` and `unhandledRejection` listeners added to `process` meanwhile. The wasm
 * module's emscripten code adds two that rethrow from inside the handler, which makes Node exit
 * with status 7 and print the minified bundle instead of the script's own error. Listeners that
 * were there before, a user's, stay; one a user adds while `start` is pending would be removed too.
 * Outside Node it only runs `start`.
 */
export async function withoutEmscriptenHandlers<T>(start: () => Promise<T>): Promise<T> {
  if (!isNode) return start();
  const emitter: NodeJS.EventEmitter = process;
  const before = new Map(PROCESS_EVENTS.map((e) => [e, new Set(emitter.listeners(e))]));
  try {
    return await start();
  } finally {
    for (const e of PROCESS_EVENTS)
      for (const l of emitter.listeners(e))
        if (!before.get(e)!.has(l)) emitter.removeListener(e, l as (...args: unknown[]) => void);
  }
}

/**
 * Patches what the threaded build needs during its initialisation, and returns how to undo it.
 * Each `Blob` the backend makes (the pthread worker script, the module factory) becomes a real file
 * with a prelude supplying what the bundle's code expects from its CommonJS wrapper.
 */
async function patchGlobals(dir: string, threads: number): Promise<Restore> {
  const fs = await importUnbundled<typeof import('node:fs')>('node:fs');
  const path = await importUnbundled<typeof import('node:path')>('node:path');
  const os = (await importUnbundled<{ default: typeof import('node:os') }>('node:os')).default;
  const g = globalThis as unknown as { Blob: unknown; URL: { createObjectURL: unknown } };
  const saved = { Blob: g.Blob, createObjectURL: g.URL.createObjectURL, cpus: os.cpus };
  const prelude =
    "var require$$0 = require('fs'), require$$1 = require('path'), require$$2 = require('worker_threads'), require$$3 = require('perf_hooks'), require$$4 = require('os');\n" +
    'var commonjsGlobal = globalThis;\n' +
    'URL.createObjectURL = (x) => String(x);\n';
  let count = 0;
  g.Blob = function FileBackedBlob(parts: string[]) {
    const file = path.join(dir, `part-${count++}.cjs`);
    fs.writeFileSync(file, prelude + parts.join(''));
    // A constructor may return an object: the backend only ever passes this to createObjectURL.
    return new String(file);
  };
  g.URL.createObjectURL = (x: unknown) => String(x);
  // emscripten sizes the pool from the core count and XNNPACK takes half of it.
  const real = saved.cpus.call(os);
  os.cpus = () => Array.from({ length: Math.max(2 * threads, real.length) }, (_, i) => real[i % real.length]);
  return () => {
    g.Blob = saved.Blob;
    g.URL.createObjectURL = saved.createObjectURL;
    os.cpus = saved.cpus;
  };
}

function unrefWorkers(pool: PThreadPool): void {
  for (const w of [...pool.unusedWorkers, ...pool.runningWorkers]) w.unref?.();
  const allocate = pool.allocateUnusedWorker;
  pool.allocateUnusedWorker = function allocateUnref(this: PThreadPool) {
    allocate.call(this);
    pool.unusedWorkers[pool.unusedWorkers.length - 1]?.unref?.();
  };
}

/** Re-registers the wasm backend with its factory, dropping any instance already made. */
function resetWasmBackend(factory: () => Promise<tf.KernelBackend> | tf.KernelBackend, priority: number): void {
  if (tf.engine().registry.wasm) tf.removeBackend('wasm');
  else if (tf.findBackendFactory('wasm')) tf.removeBackend('wasm');
  tf.registerBackend('wasm', factory, priority);
}

// A 3×3 conv small enough to check against plain JS: the threaded kernels must compute the same thing.
function sanityCheck(): boolean {
  return tf.tidy(() => {
    const x = tf.div(tf.reshape(tf.range(0, 2 * 6 * 6 * 4), [2, 6, 6, 4]), 100) as tf.Tensor4D;
    const w = tf.div(tf.reshape(tf.range(0, 3 * 3 * 4 * 8), [3, 3, 4, 8]), 300) as tf.Tensor4D;
    const got = tf.conv2d(x, w, 1, 'same').dataSync();
    const xv = x.dataSync();
    const wv = w.dataSync();
    let worst = 0;
    for (let n = 0; n < 2; n++)
      for (let i = 0; i < 6; i++)
        for (let j = 0; j < 6; j++)
          for (let o = 0; o < 8; o++) {
            let s = 0;
            for (let di = -1; di <= 1; di++)
              for (let dj = -1; dj <= 1; dj++) {
                const [y, z] = [i + di, j + dj];
                if (y < 0 || z < 0 || y >= 6 || z >= 6) continue;
                for (let c = 0; c < 4; c++)
                  s += xv[((n * 6 + y) * 6 + z) * 4 + c] * wv[(((di + 1) * 3 + dj + 1) * 4 + c) * 8 + o];
              }
            worst = Math.max(worst, Math.abs(s - got[((n * 6 + i) * 6 + j) * 8 + o]));
          }
    return worst < 1e-4;
  });
}

/**
 * Makes `wasm` the active backend with several threads in Node (about 2× faster on two cores),
 * falling back to stock single-threaded wasm when anything about it fails: another tfjs-backend-wasm
 * version, a browser, no SharedArrayBuffer, an unwritable temp dir, workers that do not start, or
 * wrong numbers. Workers are unref'd so they never keep the process alive, and the process handlers
 * emscripten installs are removed (see `withoutEmscriptenHandlers`). Call it before other
 * work: it re-creates the wasm backend, so tensors already on wasm are lost.
 * @category Backend
 */
export async function initThreadedWasm(opts: ThreadedWasmOptions = {}): Promise<ThreadedWasmResult> {
  return withoutEmscriptenHandlers(() => startWasm(opts));
}

async function startWasm(opts: ThreadedWasmOptions): Promise<ThreadedWasmResult> {
  const wasmApi = (await import('@tensorflow/tfjs-backend-wasm')) as unknown as WasmModuleApi;
  const factory = tf.findBackendFactory('wasm');
  const priority = (tf.engine().registryFactory as Record<string, { priority: number }>).wasm?.priority ?? 2;
  const stock = async (reason: string): Promise<ThreadedWasmResult> => {
    // An existing stock instance is reused: re-creating it would orphan the tensors that live on it.
    if (hasInstance() && !threadedNow()) {
      await tf.setBackend('wasm');
      return { threaded: false, threads: 1, reason };
    }
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    wasmApi.setThreadsCount(-1);
    if (factory) resetWasmBackend(factory, priority);
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not start');
    await tf.ready();
    return { threaded: false, threads: 1, reason };
  };
  const hasInstance = () => !!(tf.engine().registry as Record<string, unknown>).wasm;
  const threadedNow = () => {
    try {
      return wasmApi.getThreadsCount() > 1;
    } catch {
      return false;
    }
  };
  if (!isNode)
    return stock('not Node: browsers use tfjs-backend-wasm’s own threading where the page is cross-origin isolated');
  if (wasmApi.version_wasm !== THREADED_WASM_VERSION)
    return stock(
      `tfjs-backend-wasm ${wasmApi.version_wasm} is not ${THREADED_WASM_VERSION}, the version this shim knows`,
    );
  if (typeof SharedArrayBuffer === 'undefined') return stock('no SharedArrayBuffer');
  if (!factory) return stock('no wasm backend factory is registered');
  const os = await importUnbundled<typeof import('node:os')>('node:os');
  const fs = await importUnbundled<typeof import('node:fs')>('node:fs');
  const path = await importUnbundled<typeof import('node:path')>('node:path');
  const threads = Math.max(1, Math.floor(opts.threads ?? os.cpus().length));
  if (threads < 2)
    return stock(opts.threads === undefined ? 'one core: nothing to gain from threads' : 'one thread, as asked');
  if (hasInstance() && threadedNow()) {
    await tf.setBackend('wasm');
    return { threaded: true, threads: wasmApi.getThreadsCount(), reason: 'already threaded' };
  }
  let dir: string;
  try {
    dir = fs.mkdtempSync(path.join(opts.tempDir ?? os.tmpdir(), 'diffssl-wasm-'));
  } catch (e) {
    return stock(`cannot write the worker scripts: ${(e as Error).message}`);
  }
  // The workers read their scripts once at start-up; clear them when the process ends.
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

  let restore: Restore | undefined;
  try {
    restore = await patchGlobals(dir, threads);
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasmApi.setThreadsCount(threads);
    resetWasmBackend(factory, priority);
    if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") returned false');
    await tf.ready();
    restore();
    restore = undefined;
    const pool = (tf.backend() as unknown as { wasm: { PThread?: PThreadPool } }).wasm.PThread;
    if (!pool) throw new Error('the threaded module has no pthread pool');
    unrefWorkers(pool);
    const got = wasmApi.getThreadsCount();
    if (got < 2) throw new Error(`XNNPACK started ${got} thread`);
    if (!sanityCheck()) throw new Error('the threaded conv2d gave wrong numbers');
    // The SIMD kernels run between XNNPACK's calls, when its threads idle: as many threads for them.
    const helpers = await startSimdHelpers(got - 1);
    const forKernels = helpers > 0 ? `, the SIMD kernels on ${helpers + 1}` : '';
    return { threaded: true, threads: got, reason: `${got} threads via the Node worker shim${forKernels}` };
  } catch (e) {
    restore?.();
    return stock(`threaded wasm failed (${String((e as Error)?.message ?? e).split('\n')[0]}); using stock wasm`);
  }
}
