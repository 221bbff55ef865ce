/**
 * Bounded decompression of raw-deflate and gzip streams: Node's zlib when present, else the web's
 * `DecompressionStream`, so readers work in a browser bundle too.
 * @module
 */
import { CheckpointError } from '../errors.js';
import { importUnbundled } from '../util/dynamicImport.js';

/** The compressed formats {@link inflateBounded} reads, named as `DecompressionStream` names them. */
export type InflateFormat = 'deflate-raw' | 'gzip';

/** The two bytes every gzip member starts with. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Decompresses `data`, stopping once the output would exceed `maxBytes`, so a hostile stream
 * cannot expand without limit. A corrupt stream (bad header, checksum, truncation) is `fail`'s error.
 * @param useStreams take the `DecompressionStream` path even where node:zlib exists (for tests).
 * @internal exported for the ZIP and IDX readers and their tests.
 */
export async function inflateBounded(
  data: Uint8Array,
  format: InflateFormat,
  maxBytes: number,
  fail: (why: string) => Error,
  useStreams = false,
): Promise<Uint8Array> {
  if (!useStreams) {
    const zlib = await importUnbundled<typeof import('node:zlib')>('node:zlib').catch(() => undefined);
    const inflate = format === 'gzip' ? zlib?.gunzipSync : zlib?.inflateRawSync;
    if (inflate) {
      try {
        const out = inflate(data, { maxOutputLength: Math.max(1, maxBytes) });
        return new Uint8Array(out.buffer, out.byteOffset, out.length);
      } catch (e) {
        throw fail(`cannot be inflated: ${(e as Error).message}`);
      }
    }
  }
  if (typeof DecompressionStream === 'undefined')
    throw fail(`is compressed (${format}) and this runtime has neither node:zlib nor DecompressionStream`);
  const chunks: Uint8Array[] = [];
  let n = 0;
  const reader = new Blob([data as Uint8Array<ArrayBuffer>])
    .stream()
    .pipeThrough(new DecompressionStream(format))
    .getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (n + value.length > maxBytes) throw fail(`inflates to more than ${maxBytes} bytes`);
      chunks.push(value);
      n += value.length;
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    if (e instanceof CheckpointError) throw e;
    throw fail(`cannot be inflated: ${(e as Error).message}`);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(n);
  let p = 0;
  for (const c of chunks) {
    out.set(c, p);
    p += c.length;
  }
  return out;
}
