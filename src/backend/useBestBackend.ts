/**
 * Picks the fastest tfjs backend that is present, on the caller's tfjs instance.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { importUnbundled } from '../util/dynamicImport.js';
import { initThreadedWasm, withoutEmscriptenHandlers } from './wasm/threads.js';
import { isNode } from '../util/isNode.js';

/**
 * One candidate that {@link useBestBackend} tried.
 * @category Backend
 */
export interface BackendAttempt {
  name: string;
  ok: boolean;
  /** Why it was taken or passed over. */
  why: string;
}

/**
 * What {@link useBestBackend} chose, and why.
 * @category Backend
 */
export interface BackendChoice {
  /** The tfjs backend now active (`tensorflow`, `webgpu`, `webgl`, `wasm` or `cpu`). */
  backend: string;
  /** One sentence: why this one. */
  reason: string;
  /** Every candidate in the order tried. */
  tried: BackendAttempt[];
}

/**
 * Options of {@link useBestBackend}.
 * @category Backend
 */
export interface BackendOptions {
  /** Use exactly this backend (`tensorflow`, `wasm`, `cpu`, …) or fail; no fallback. */
  force?: string;
  /** Where the browser finds the wasm binaries (passed to `setWasmPaths`); Node needs nothing. */
  wasmPaths?: string;
  /**
   * wasm threads in Node (default: one per core, through the worker shim of `initThreadedWasm`;
   * 1 keeps stock single-threaded wasm). Ignored in browsers.
   */
  threads?: number;
}

type Candidate = { name: string; backend: string; load: () => Promise<string | void>; why: string };

function candidates(opts: BackendOptions): Candidate[] {
  const registered = (name: string) => async () => {
    if (!tf.findBackendFactory(name)) throw new Error(`no ${name} backend is registered (import its package first)`);
  };
  return [
    {
      name: 'tfjs-node-gpu',
      backend: 'tensorflow',
      why: 'native TensorFlow with CUDA',
      load: async () => void (await importUnbundled('@tensorflow/tfjs-node-gpu')),
    },
    {
      name: 'tfjs-node',
      backend: 'tensorflow',
      why: 'native TensorFlow (multi-threaded, oneDNN)',
      load: async () => void (await importUnbundled('@tensorflow/tfjs-node')),
    },
    { name: 'webgpu', backend: 'webgpu', why: 'GPU in the browser', load: registered('webgpu') },
    { name: 'webgl', backend: 'webgl', why: 'GPU in the browser', load: registered('webgl') },
    {
      name: 'wasm',
      backend: 'wasm',
      why: 'XNNPACK with SIMD, no native code needed',
      load: async () => {
        const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as { setWasmPaths?: (p: string) => void };
        if (opts.wasmPaths) wasm.setWasmPaths?.(opts.wasmPaths);
        if (!isNode) return;
        if (opts.threads === 1) return 'one thread, as asked';
        const r = await initThreadedWasm(opts.threads === undefined ? {} : { threads: opts.threads });
        return r.reason;
      },
    },
    {
      name: 'cpu',
      backend: 'cpu',
      why: 'plain JavaScript, always available but 25–55× slower than wasm',
      load: async () => void (await import('@tensorflow/tfjs-backend-cpu')),
    },
  ].filter((c) => isNode || !c.name.startsWith('tfjs-node'));
}

/**
 * Activates the fastest backend present, in this order: tfjs-node-gpu, tfjs-node (optional peers,
 * used when the project has them), webgpu and webgl (browsers, when registered), wasm (bundled),
 * cpu. Works on the tfjs-core instance the project uses. In Node, starting wasm leaves the process's
 * error handling as it was: an uncaught error still exits with status 1 and its own stack.
 *
 * @example
 * ```ts
 * const { backend, reason } = await useBestBackend();
 * console.log(`diffssl runs on ${backend}: ${reason}`);
 * await useBestBackend({ force: 'cpu' }); // exactly cpu, or an error
 * ```
 * @throws InputError when `force` names a backend that cannot start.
 * @category Backend
 */
export async function useBestBackend(opts: BackendOptions = {}): Promise<BackendChoice> {
  const all = candidates(opts);
  const list = opts.force ? all.filter((c) => c.name === opts.force || c.backend === opts.force) : all;
  if (opts.force && list.length === 0)
    throw new InputError(`unknown backend "${opts.force}"; known: ${all.map((c) => c.name).join(', ')}`);
  const tried: BackendAttempt[] = [];
  for (const c of list) {
    try {
      const start = async () => {
        const detail = await c.load();
        if (!(await tf.setBackend(c.backend))) throw new Error(`tf.setBackend('${c.backend}') returned false`);
        await tf.ready();
        return detail;
      };
      // wasm's emscripten code installs process handlers that turn any later uncaught error into exit status 7.
      const detail = c.backend === 'wasm' ? await withoutEmscriptenHandlers(start) : await start();
      const why = detail ? `${c.why} (${detail})` : c.why;
      tried.push({ name: c.name, ok: true, why });
      const passed = tried.filter((t) => !t.ok).map((t) => t.name);
      const reason = opts.force
        ? `forced: ${why}`
        : `${why}${passed.length ? `; not available: ${passed.join(', ')}` : ''}`;
      return { backend: c.backend, reason, tried };
    } catch (e) {
      tried.push({ name: c.name, ok: false, why: String((e as Error)?.message ?? e).split('\n')[0] });
    }
  }
  throw new InputError(`no backend could start: ${tried.map((t) => `${t.name} (${t.why})`).join('; ')}`);
}
