/**
 * Files as a browser hands them over — a URL, a `Blob`/`File`, a fetch `Response`, an
 * `ArrayBuffer` — read by offset like a local file: a URL by HTTP range requests (so a 2.2 GB
 * checkpoint never sits in one buffer), a Blob by slices. Works in Node too (global `fetch`).
 * @module
 */
import { CheckpointError, InputError } from '../errors.js';
import { nodeFs } from '../util/nodeFs.js';
import { bytesSource, checkRange, endedEarly, type ByteSource } from './byteRange.js';
import { isNode } from '../util/isNode.js';

/**
 * A file as the web gives it: its URL, a `Blob` (a dropped `File`), a fetch `Response`, or its bytes.
 * @category I/O
 */
export type WebInput = URL | Blob | Response | ArrayBuffer;

/**
 * A file wherever it is: a path (Node; in a browser a string is a URL relative to the page), a
 * `http(s):`/`blob:`/`data:` URL string, a {@link WebInput}, or its bytes.
 * @category I/O
 */
export type FileInput = string | Uint8Array | WebInput;

/** The largest range read at once from a URL: reads smaller than this come from one cached window. */
const WINDOW = 4 << 20;

/**
 * `source` as a path, bytes or a URL/Blob/Response: ArrayBuffers become bytes; URL strings, and
 * every string where there is no file system, become URLs.
 * @throws InputError for anything else.
 */
export function normalizeInput(source: FileInput, what = 'file'): string | Uint8Array | URL | Blob | Response {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (source instanceof URL) return source;
  if (typeof Blob !== 'undefined' && source instanceof Blob) return source;
  if (typeof Response !== 'undefined' && source instanceof Response) return source;
  if (typeof source === 'string') {
    if (/^(https?|blob|data):/i.test(source)) return new URL(source);
    if (isNode) return source;
    const base = (globalThis as { location?: { href: string } }).location?.href;
    try {
      return new URL(source, base);
    } catch {
      throw new InputError(`${what} "${source}" is not a URL, and this runtime has no file system to read a path from`);
    }
  }
  throw new InputError(
    `the ${what} must be a path, a URL, a Blob, a Response, an ArrayBuffer or a Uint8Array, got ${describe(source)}`,
  );
}

/**
 * Opens a URL (range requests; a server without them sends the whole file, which is then held in
 * memory), a Blob (read by slices) or a Response (its body read once, into memory).
 * @throws CheckpointError when the file cannot be fetched or read.
 */
export async function openWebSource(source: URL | Blob | Response): Promise<ByteSource> {
  if (source instanceof URL) return urlSource(source);
  if (typeof Response !== 'undefined' && source instanceof Response) {
    const label = source.url || '<response>';
    return bytesSource(await responseBytes(source, label), label);
  }
  const blob = source as Blob;
  const label = (blob as { name?: string }).name || '<blob>';
  const read = async (position: number, length: number) => {
    checkRange(label, blob.size, position, length);
    const got = new Uint8Array(await blob.slice(position, position + length).arrayBuffer());
    if (got.length !== length) throw endedEarly(label, position, length);
    return got;
  };
  return { label, size: blob.size, read, readInto: intoFrom(read), async close() {} };
}

/**
 * All bytes of a small file (IDX data, JSON): a path through Node's fs is not handled here.
 * @throws CheckpointError when it cannot be fetched or read.
 */
export async function readWebBytes(source: URL | Blob | Response): Promise<Uint8Array> {
  if (source instanceof URL) return responseBytes(await fetchOk(source), source.href);
  if (typeof Response !== 'undefined' && source instanceof Response)
    return responseBytes(source, source.url || '<response>');
  return new Uint8Array(await (source as Blob).arrayBuffer());
}

/**
 * All bytes of a file (IDX data, an image): a path read with Node's fs, a URL fetched, a Blob or
 * Response read, bytes as they are.
 * @param what names the kind of file in errors (`IDX file`, `image file`).
 * @throws CheckpointError when it cannot be read; InputError for a source of the wrong type.
 */
export async function readFileBytes(input: FileInput, what: string): Promise<Uint8Array> {
  const source = normalizeInput(input, what);
  if (source instanceof Uint8Array) return source;
  if (typeof source !== 'string') return readWebBytes(source);
  try {
    const { fs } = await nodeFs();
    const b = await fs.promises.readFile(source);
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  } catch (e) {
    throw new CheckpointError(`cannot read ${what} ${source}: ${(e as Error).message}`);
  }
}

/** How errors name a file: its path or URL, a File's name, or `fallback` for bytes. */
export function inputLabel(input: FileInput, fallback: string): string {
  if (typeof input === 'string') return input;
  if (input instanceof URL) return input.href;
  if (typeof Response !== 'undefined' && input instanceof Response) return input.url || fallback;
  return (input as { name?: string }).name || fallback;
}

async function urlSource(url: URL): Promise<ByteSource> {
  const label = url.href;
  const first = await fetchOk(url, `bytes=0-${WINDOW - 1}`);
  if (first.status !== 206) return bytesSource(await responseBytes(first, label), label);
  const size = totalFromRange(first.headers.get('content-range'));
  if (size === undefined) {
    // A 206 without a total: the file's size is unknowable by ranges, so read it whole.
    void first.body?.cancel();
    return bytesSource(await responseBytes(await fetchOk(url), label), label);
  }
  let window = { start: 0, bytes: await responseBytes(first, label) };
  const fetchRange = async (start: number, end: number) => {
    const res = await fetchOk(url, `bytes=${start}-${end - 1}`);
    const bytes = await responseBytes(res, label);
    if (res.status !== 206 || bytes.length !== end - start)
      throw new CheckpointError(
        `${label}: asked for bytes ${start}..${end} and got ${res.status === 206 ? `${bytes.length} bytes` : `HTTP ${res.status}`}; did the file change on the server?`,
      );
    return bytes;
  };
  const read = async (position: number, length: number) => {
    checkRange(label, size, position, length);
    const inWindow = position >= window.start && position + length <= window.start + window.bytes.length;
    if (!inWindow) {
      if (length >= WINDOW) return fetchRange(position, position + length);
      const end = Math.min(size, position + WINDOW);
      window = { start: position, bytes: await fetchRange(position, end) };
    }
    const from = position - window.start;
    return window.bytes.slice(from, from + length);
  };
  const close = async () => {
    window = { start: 0, bytes: new Uint8Array(0) };
  };
  return { label, size, read, readInto: intoFrom(read), close };
}

/** `readInto` from `read`: web reads always make a new buffer anyway. */
const intoFrom =
  (read: (position: number, length: number) => Promise<Uint8Array>) =>
  async (position: number, target: Uint8Array): Promise<void> =>
    target.set(await read(position, target.length));

async function fetchOk(url: URL, range?: string): Promise<Response> {
  if (typeof fetch !== 'function') throw new InputError(`cannot fetch ${url.href}: this runtime has no fetch`);
  let res: Response;
  try {
    res = await fetch(url, range ? { headers: { Range: range } } : {});
  } catch (e) {
    throw new CheckpointError(`cannot fetch ${url.href}: ${(e as Error).message}`);
  }
  if (!res.ok) {
    void res.body?.cancel();
    throw new CheckpointError(`cannot fetch ${url.href}: HTTP ${res.status} ${res.statusText}`.trim());
  }
  return res;
}

async function responseBytes(res: Response, label: string): Promise<Uint8Array> {
  if (res.bodyUsed)
    throw new InputError(`${label}: the Response's body was already read; pass a fresh Response or the URL`);
  try {
    return new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    throw new CheckpointError(`${label}: reading the response failed: ${(e as Error).message}`);
  }
}

/** The total of `Content-Range: bytes a-b/total`, or undefined when absent or `*`. */
function totalFromRange(header: string | null): number | undefined {
  const m = header?.match(/\/(\d+)\s*$/);
  return m ? Number(m[1]) : undefined;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (typeof x !== 'object') return typeof x;
  return Object.prototype.toString.call(x).slice(8, -1);
}
