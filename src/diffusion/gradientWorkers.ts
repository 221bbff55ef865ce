/**
 * Data-parallel gradients for {@link trainDiffusion} in Node: `count` worker threads, each with a
 * replica of the U-Net on its own single-threaded wasm backend (`trainWorker.ts`), take a share of
 * each batch's rows. The weights go to them through one shared buffer, their gradients come back
 * through one each, and the main thread adds them up in worker order (so a run is reproducible for a
 * given worker count). On two cores two one-thread replicas outrun one two-thread model, whose
 * elementwise kernels, packing and dispatch run on one core.
 * @module
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ADMUNet } from '../unet/admUnet.js';
import type { ConvAlgorithm } from '../unet/runtime/convAlgorithm.js';
import { specOf, type UNetConfig } from '../unet/config.js';
import { importUnbundled } from '../util/dynamicImport.js';
import { nodeFs } from '../util/nodeFs.js';
import { packagePath } from '../util/packageFiles.js';

/** What the main thread asks of a training worker. */
export type WorkerRequest =
  | {
      kind: 'init';
      config: UNetConfig;
      conv: ConvAlgorithm;
      recompute: boolean;
      /** The weights' names, and their offsets and sizes (elements) in both shared buffers. */
      names: string[];
      offsets: number[];
      sizes: number[];
      /** The weights the main thread publishes (read by every worker). */
      weights: SharedArrayBuffer;
      /** This worker's gradients (written by it alone). */
      grads: SharedArrayBuffer;
    }
  | {
      kind: 'step';
      x0: Float32Array;
      noise: Float32Array;
      shape: [number, number, number, number];
      t: number[];
      /** 1 / the whole batch's element count: the parts' losses and gradients add up to the batch's. */
      scale: number;
      dropout?: { rate: number; seed: number };
    };

/** A training worker's answer. */
export type WorkerReply =
  | { kind: 'ready' }
  /** `missing`: the weights (by index) the loss does not reach, which get no gradient. */
  | { kind: 'done'; loss: number; missing: number[] }
  | { kind: 'error'; name: string; message: string };

interface NodeWorker {
  postMessage(m: unknown): void;
  on(event: 'message' | 'error' | 'exit', f: (x: never) => void): void;
  terminate(): Promise<number>;
}

/** One worker and the request it is answering. */
interface Replica {
  worker: NodeWorker;
  grads: Float32Array;
  waiting?: { resolve: (r: WorkerReply) => void; reject: (e: Error) => void };
  gone?: Error;
}

let scriptOverride: string | undefined;

/** Tests run from the sources, where no `dist/trainWorker.js` exists: they start a bundle of `trainWorker.ts` instead. */
export function setTrainWorkerScript(file: string | undefined): void {
  scriptOverride = file;
}

/** The workers of one training run. */
export class GradientWorkers {
  private constructor(
    private readonly replicas: Replica[],
    private readonly names: string[],
    private readonly offsets: number[],
    private readonly sizes: number[],
    private readonly shapes: number[][],
    private readonly weights: Float32Array,
  ) {}

  /**
   * Starts `count` workers with `unet`'s architecture and conv algorithm and waits until each has built
   * its replica. The weights are sent with the first {@link publish}.
   * @throws Error when a worker cannot start (the others are stopped).
   */
  static async start(
    count: number,
    unet: ADMUNet,
    vars: Map<string, tf.Variable>,
    recompute: boolean,
  ): Promise<GradientWorkers> {
    const spec = specOf(unet.config);
    const { Worker } = await importUnbundled<typeof import('node:worker_threads')>('node:worker_threads');
    const script =
      scriptOverride ??
      (await packagePath(['dist', 'trainWorker.js'], 'trainDiffusion({ workers })', 'train with workers: 1'));
    if (!(await nodeFs()).fs.existsSync(script))
      throw new Error(
        `trainDiffusion({ workers }) cannot find its worker script ${script}: in a checkout of diffssl run npm run build first, or train with workers: 1`,
      );
    const names = [...vars.keys()];
    const sizes = names.map((k) => vars.get(k)!.size);
    let total = 0;
    const offsets = sizes.map((size) => (total += size) - size);
    const weights = new SharedArrayBuffer(total * 4);
    const replicas: Replica[] = [];
    const shapes = names.map((k) => vars.get(k)!.shape);
    const pool = new GradientWorkers(replicas, names, offsets, sizes, shapes, new Float32Array(weights));
    try {
      for (let r = 0; r < count; r++) {
        const grads = new SharedArrayBuffer(total * 4);
        const replica: Replica = {
          worker: new Worker(script) as unknown as NodeWorker,
          grads: new Float32Array(grads),
        };
        replicas.push(replica);
        listen(replica, r);
      }
      await Promise.all(
        replicas.map((p, r) =>
          ask(p, r, {
            kind: 'init',
            config: spec,
            conv: unet.conv,
            recompute,
            names,
            offsets,
            sizes,
            weights,
            grads: p.grads.buffer as SharedArrayBuffer,
          }),
        ),
      );
    } catch (e) {
      await pool.stop();
      throw e;
    }
    return pool;
  }

  /** Copies `vars` into the shared weights, which every worker reads at the start of its next step. */
  publish(vars: Map<string, tf.Variable>): void {
    this.names.forEach((name, i) => this.weights.set(vars.get(name)!.dataSync() as Float32Array, this.offsets[i]));
  }

  /**
   * L_simple's value and gradients for one batch, its rows split between the workers in order.
   * @param x0 the batch's clean images, NHWC, row after row; `noise` alike.
   * @param dropout the dropout of worker `r`'s rows, if any.
   * @returns the loss and a new gradient tensor per weight name the loss reaches (the caller disposes them).
   */
  async grads(
    x0: Float32Array,
    noise: Float32Array,
    shape: [number, number, number, number],
    t: number[],
    dropout: ((r: number) => { rate: number; seed: number }) | undefined,
  ): Promise<{ loss: number; grads: Map<string, tf.Tensor> }> {
    const [n, h, w, c] = shape;
    const perRow = h * w * c;
    const parts = rowsPerWorker(n, this.replicas.length);
    let first = 0;
    const replies = await Promise.all(
      this.replicas.map((p, r) => {
        const rows = parts[r];
        const from = first;
        first += rows;
        return ask(p, r, {
          kind: 'step',
          x0: x0.slice(from * perRow, (from + rows) * perRow),
          noise: noise.slice(from * perRow, (from + rows) * perRow),
          shape: [rows, h, w, c],
          t: t.slice(from, from + rows),
          scale: 1 / (n * perRow),
          dropout: dropout?.(r),
        });
      }),
    );
    let loss = 0;
    const missing = new Set<number>();
    for (const reply of replies as Extract<WorkerReply, { kind: 'done' }>[]) {
      loss += reply.loss;
      reply.missing.forEach((i) => missing.add(i));
    }
    // As in one thread, a weight the loss does not reach gets no gradient (Adam leaves it alone).
    const grads = new Map<string, tf.Tensor>();
    this.names.forEach((name, i) => {
      if (missing.has(i)) return;
      const [o, size] = [this.offsets[i], this.sizes[i]];
      const sum = this.replicas[0].grads.slice(o, o + size);
      for (let r = 1; r < this.replicas.length; r++) {
        const g = this.replicas[r].grads;
        for (let j = 0; j < size; j++) sum[j] += g[o + j];
      }
      grads.set(name, tf.tensor(sum, this.shapes[i]));
    });
    return { loss, grads };
  }

  /** Stops every worker. */
  async stop(): Promise<void> {
    await Promise.all(this.replicas.map((p) => p.worker.terminate().catch(() => 0)));
  }
}

/** `n` rows in `count` parts as even as can be, the larger ones first. */
export function rowsPerWorker(n: number, count: number): number[] {
  return Array.from({ length: count }, (_, r) => Math.floor(n / count) + (r < n % count ? 1 : 0));
}

function listen(p: Replica, r: number): void {
  const fail = (e: Error) => {
    p.gone ??= e;
    p.waiting?.reject(e);
    p.waiting = undefined;
  };
  p.worker.on('message', (m: WorkerReply) => {
    const w = p.waiting;
    p.waiting = undefined;
    if (!w) return;
    if (m.kind === 'error') w.reject(new Error(`training worker ${r} failed: ${m.name}: ${m.message}`));
    else w.resolve(m);
  });
  p.worker.on('error', (e: Error) => fail(new Error(`training worker ${r} failed: ${e?.message ?? e}`)));
  p.worker.on('exit', (code: number) => fail(new Error(`training worker ${r} stopped (exit code ${code})`)));
}

function ask(p: Replica, r: number, req: WorkerRequest): Promise<WorkerReply> {
  if (p.gone) return Promise.reject(p.gone);
  return new Promise((resolve, reject) => {
    p.waiting = { resolve, reject };
    p.worker.postMessage(req);
  });
}
