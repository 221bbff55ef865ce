import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, InputError } from '../../src/errors';
import { loadFashionMNIST } from '../../src/data/fashionMnist';
import { DEFAULT_BACKBONE, loadDefaultBackbone } from '../../src/defaultBackbone';
import { readIdx } from '../../src/io/idx';
import { SafetensorsReader } from '../../src/io/safetensors';
import { readFileBytes } from '../../src/io/webSource';
import { ADMUNet } from '../../src/unet/admUnet';
import { importUnbundled } from '../../src/util/dynamicImport.browser';
import { packagePath, shippedFile } from '../../src/util/packageFiles.browser';
import { setBackend } from '../helpers';

const ROOT = path.resolve(__dirname, '../..');
const WEIGHTS = path.join(ROOT, DEFAULT_BACKBONE.dir, 'weights.safetensors');
const TEST_IMAGES = path.join(ROOT, 'data/fashion-mnist/t10k-images-idx3-ubyte.gz');
const TEST_LABELS = path.join(ROOT, 'data/fashion-mnist/t10k-labels-idx1-ubyte.gz');

interface Served {
  url: (file: string) => URL;
  /** Every request: its Range header and the bytes sent. */
  log: { range?: string; sent: number }[];
  close: () => Promise<void>;
}

/** A static server of `files` (name → bytes): with ranges like most servers, or without, like python's http.server; `lie` announces a larger file than it sends. */
async function serve(
  files: Record<string, Uint8Array>,
  opts: { ranges?: boolean; lie?: number } = {},
): Promise<Served> {
  const log: Served['log'] = [];
  const server = http.createServer((req, res) => {
    const body = files[decodeURIComponent(req.url!.slice(1))];
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    const size = body.length + (opts.lie ?? 0);
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (opts.ranges !== false && m) {
      const start = Number(m[1]);
      const end = Math.min(Number(m[2]) + 1, size);
      const part = body.subarray(start, Math.min(end, body.length));
      log.push({ range: req.headers.range, sent: part.length });
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${end - 1}/${size}`, 'Content-Length': part.length });
      res.end(part);
      return;
    }
    log.push({ range: req.headers.range, sent: body.length });
    res.writeHead(200, { 'Content-Length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: (file) => new URL(`http://127.0.0.1:${port}/${file}`),
    log,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** Whether two models hold the same bytes in every weight. */
function sameWeights(a: ADMUNet, b: ADMUNet): boolean {
  const sb = b.stateDict();
  for (const [k, v] of a.stateDict()) {
    const w = sb.get(k)!.data;
    if (
      Buffer.compare(
        Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength),
        Buffer.from(w.buffer, w.byteOffset, w.byteLength),
      ) !== 0
    )
      return false;
  }
  return sb.size === a.stateDict().size;
}

describe('weights and data from the web (URL, Blob, Response, ArrayBuffer)', () => {
  const weights = new Uint8Array(fs.readFileSync(WEIGHTS));
  let reference: ADMUNet;
  beforeAll(async () => {
    await setBackend('wasm');
    reference = await ADMUNet.load(WEIGHTS, DEFAULT_BACKBONE.flags);
  });
  afterAll(() => reference.dispose());

  it('a URL is read by range requests, a window at a time, never as one buffer, and gives the same weights', async () => {
    const s = await serve({ 'w.safetensors': weights });
    try {
      const seen: number[] = [];
      const unet = await ADMUNet.load(s.url('w.safetensors'), DEFAULT_BACKBONE.flags, {
        onProgress: (p) => seen.push(p.done / p.total),
      });
      expect(sameWeights(unet, reference)).toBe(true);
      unet.dispose();
      expect(s.log.every((r) => r.range !== undefined)).toBe(true);
      expect(Math.max(...s.log.map((r) => r.sent))).toBeLessThanOrEqual(4 << 20);
      expect(s.log.length).toBeLessThan(12);
      expect(seen.at(-1)).toBe(1);
      expect(seen.every((v, i) => i === 0 || v >= seen[i - 1])).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('a server without range requests still works (the file is read whole)', async () => {
    const s = await serve({ 'w.safetensors': weights }, { ranges: false });
    try {
      const unet = await loadDefaultBackbone({ weights: s.url('w.safetensors').href });
      expect(sameWeights(unet, reference)).toBe(true);
      unet.dispose();
    } finally {
      await s.close();
    }
  });

  it('a Blob, a Response and an ArrayBuffer give the same weights', async () => {
    const buffer = weights.slice().buffer;
    for (const input of [new Blob([buffer]), new Response(buffer), buffer]) {
      const unet = await ADMUNet.load(input, DEFAULT_BACKBONE.flags);
      expect(sameWeights(unet, reference)).toBe(true);
      unet.dispose();
    }
  });

  it('IDX files and Fashion-MNIST load from URLs as from paths', async () => {
    const s = await serve({ 'x.gz': fs.readFileSync(TEST_IMAGES), 'y.gz': fs.readFileSync(TEST_LABELS) });
    try {
      const a = await readIdx(s.url('x.gz'));
      const b = await readIdx(TEST_IMAGES);
      expect(a.shape).toEqual(b.shape);
      expect(Buffer.compare(Buffer.from(a.data as Uint8Array), Buffer.from(b.data as Uint8Array))).toBe(0);
      const viaUrl = await loadFashionMNIST({ split: 'test', files: { images: s.url('x.gz'), labels: s.url('y.gz') } });
      const shipped = await loadFashionMNIST({ split: 'test' });
      expect(viaUrl.labels).toEqual(shipped.labels);
      expect(tf.max(tf.abs(tf.sub(viaUrl.images, shipped.images))).dataSync()[0]).toBe(0);
      viaUrl.dispose();
      shipped.dispose();
    } finally {
      await s.close();
    }
  });

  it('a missing file, a dead server and a file shorter than announced are CheckpointErrors naming the URL; nothing leaks', async () => {
    const s = await serve({ 'w.safetensors': weights, 'short.safetensors': weights.subarray(0, 5_000_000) });
    const before = tf.memory().numTensors;
    try {
      await expect(ADMUNet.load(s.url('nope.safetensors'), DEFAULT_BACKBONE.flags)).rejects.toThrow(
        /nope\.safetensors: HTTP 404/,
      );
      // announces the full size, sends 5 MB: the later ranges come back short
      const liar = await serve(
        { 'w.safetensors': weights.subarray(0, 5_000_000) },
        { lie: weights.length - 5_000_000 },
      );
      await expect(ADMUNet.load(liar.url('w.safetensors'), DEFAULT_BACKBONE.flags)).rejects.toThrow(CheckpointError);
      await liar.close();
      await expect(ADMUNet.load(s.url('short.safetensors'), DEFAULT_BACKBONE.flags)).rejects.toThrow(
        /short\.safetensors is truncated/,
      );
      const dead = s.url('w.safetensors');
      await s.close();
      await expect(ADMUNet.load(dead, DEFAULT_BACKBONE.flags)).rejects.toThrow(/cannot fetch http:\/\/127\.0\.0\.1/);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await s.close().catch(() => {});
    }
  });

  it('a used Response or a value of the wrong type is an InputError that says what to pass', async () => {
    const used = new Response(weights.slice().buffer);
    await used.arrayBuffer();
    await expect(SafetensorsReader.open(used)).rejects.toThrow(/already read/);
    await expect(ADMUNet.load(42 as never, DEFAULT_BACKBONE.flags)).rejects.toThrow(InputError);
    await expect(readFileBytes({} as never, 'IDX file')).rejects.toThrow(/a path, a URL, a Blob, a Response/);
  });
});

describe('the browser build’s twins of the Node-only modules', () => {
  it('refuse Node built-ins, sharp and tfjs-node with an InputError that says what to do', async () => {
    for (const m of ['node:fs', 'sharp', '@tensorflow/tfjs-node'])
      await expect(importUnbundled(m)).rejects.toThrow(/Node-only.*pass a URL, a Blob or bytes/);
    await expect(packagePath(['data'], 'loadFashionMNIST', 'pass files')).rejects.toThrow(CheckpointError);
  });

  it('find the shipped files as URLs beside the bundle', async () => {
    const url = await shippedFile('models/fashion-mnist-adm/weights.safetensors', 'x', 'y');
    expect(url).toBeInstanceOf(URL);
    expect(String(url)).toMatch(/\/models\/fashion-mnist-adm\/weights\.safetensors$/);
  });
});
