/**
 * Helper threads for the SIMD kernels. tfjs-backend-wasm's threads run only XNNPACK's matMuls and
 * convs; the Winograd transforms run on the calling thread, so on two cores one core idles through
 * them. Each helper is a Node worker with its own instance of the kernel module on the same shared
 * `WebAssembly.Memory`: the caller hands it part of a kernel's range through a small shared control
 * block, runs its own part, then blocks (`Atomics.wait`) until the helpers are done. Every output
 * element is computed by the same instructions whichever thread computes it, so results are bit for
 * bit those of one thread. Node only (a browser's main thread may not block), threaded wasm only.
 * @module
 */
import { importUnbundled } from '../../util/dynamicImport.js';
import { isNode } from '../../util/isNode.js';

// Control block, Int32 slots: the request's sequence number (−1: stop), the sequence number done,
// the function's index, the argument count, the outcome (1 ok, 2 threw), then the arguments.
const [REQUEST, DONE, FN, ARGC, OUTCOME, ARGS] = [0, 1, 2, 3, 4, 5];
const MAX_ARGS = 64;
// A kernel's part takes milliseconds; a helper silent for this long has died.
const WAIT_MS = 60_000;

const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { memory, bytes, names, control } = workerData;
const c = new Int32Array(control);
const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports;
const fns = names.map((n) => exports[n]);
parentPort.postMessage('ready');
let seen = 0;
for (;;) {
  Atomics.wait(c, ${REQUEST}, seen);
  seen = Atomics.load(c, ${REQUEST});
  if (seen < 0) break;
  let outcome = 1;
  try {
    const args = [];
    for (let i = 0; i < c[${ARGC}]; i++) args.push(c[${ARGS} + i]);
    fns[c[${FN}]](...args);
  } catch {
    outcome = 2;
  }
  c[${OUTCOME}] = outcome;
  Atomics.store(c, ${DONE}, seen);
  Atomics.notify(c, ${DONE});
}
`;

/** One helper thread: its control block and the last request handed to it. */
interface Helper {
  control: Int32Array;
  seq: number;
  worker: { terminate(): unknown };
}

/** The helpers of one kernel module on one memory. */
export class KernelHelpers {
  private constructor(
    private readonly helpers: Helper[],
    private readonly names: readonly string[],
  ) {}

  /** How many threads a kernel's range may be split over: the helpers and the caller. */
  get threads(): number {
    return this.helpers.length + 1;
  }

  /**
   * Runs `name` once per entry of `parts` (its arguments): the first on this thread, the others on
   * the helpers, all at once; returns when every part is done. `run` is the calling thread's own
   * instance of the function.
   */
  runParts(name: string, run: (...args: number[]) => void, parts: number[][]): void {
    if (parts.length > this.threads) throw new RangeError(`${parts.length} parts for ${this.threads} threads`);
    const fn = this.names.indexOf(name);
    if (fn < 0) throw new RangeError(`no kernel named ${name}`);
    const posted = parts.slice(1).map((args, i) => {
      const h = this.helpers[i];
      if (args.length > MAX_ARGS) throw new RangeError(`${name}: more than ${MAX_ARGS} arguments`);
      h.control[FN] = fn;
      h.control[ARGC] = args.length;
      h.control.set(args, ARGS);
      h.control[OUTCOME] = 0;
      h.seq += 1;
      Atomics.store(h.control, REQUEST, h.seq);
      Atomics.notify(h.control, REQUEST);
      return h;
    });
    let failure: unknown = null;
    try {
      run(...parts[0]);
    } catch (e) {
      failure = e;
    }
    // Waits even after a failure here: the helpers write into memory the caller may reuse.
    for (const h of posted) {
      const started = Date.now();
      while (Atomics.load(h.control, DONE) !== h.seq) {
        if (Date.now() - started > WAIT_MS) throw new Error(`${name}: a kernel helper thread stopped answering`);
        Atomics.wait(h.control, DONE, h.seq - 1, 1000);
      }
      if (h.control[OUTCOME] !== 1 && !failure) failure = new Error(`${name}: the kernel failed in a helper thread`);
    }
    if (failure) throw failure;
  }

  /** Stops the helpers (they are unref'd, so this is only needed when their memory goes away). */
  stop(): void {
    for (const h of this.helpers) {
      Atomics.store(h.control, REQUEST, -1);
      Atomics.notify(h.control, REQUEST);
    }
  }

  /**
   * Starts `count` helpers, each instantiating `bytes` (the kernel module, exporting `names`) on
   * `memory`; resolves once all are ready, or null where they cannot run (not Node, memory not
   * shared, a worker that fails to start within 10 s).
   */
  static async start(
    memory: WebAssembly.Memory,
    bytes: Uint8Array,
    names: readonly string[],
    count: number,
  ): Promise<KernelHelpers | null> {
    if (count < 1 || typeof SharedArrayBuffer === 'undefined' || !(memory.buffer instanceof SharedArrayBuffer))
      return null;
    if (!isNode) return null;
    const { Worker } = await importUnbundled<typeof import('node:worker_threads')>('node:worker_threads');
    const started: Helper[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const control = new Int32Array(new SharedArrayBuffer(4 * (ARGS + MAX_ARGS)));
        const worker = new Worker(WORKER_SOURCE, {
          eval: true,
          workerData: { memory, bytes, names, control: control.buffer },
        });
        started.push({ control, seq: 0, worker });
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('a kernel helper did not start')), 10_000);
          worker.once('message', () => {
            clearTimeout(timer);
            resolve();
          });
          worker.once('error', (e) => {
            clearTimeout(timer);
            reject(e);
          });
        });
        worker.unref();
      }
      return new KernelHelpers(started, names);
    } catch {
      for (const h of started) void h.worker.terminate();
      return null;
    }
  }
}

/**
 * `[start, end)` ranges that cut `total` into at most `parts` near-equal pieces whose bounds are
 * multiples of `align` (but the last end), leaving out empty ones.
 */
export function splitRange(total: number, parts: number, align = 1): [number, number][] {
  const units = Math.ceil(total / align);
  const out: [number, number][] = [];
  for (let p = 0, start = 0; p < parts && start < total; p++) {
    const end = Math.min(total, Math.round((units * (p + 1)) / parts) * align);
    if (end > start) out.push([start, end]);
    start = Math.max(start, end);
  }
  return out;
}
