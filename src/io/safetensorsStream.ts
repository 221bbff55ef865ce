/**
 * A safetensors writer for tensors that do not fit in memory together: the header is written from
 * the tensors' dtypes and shapes alone, then each tensor's bytes are asked for and written one at
 * a time. Atomic like {@link writeSafetensors}: temp file beside the target, fsync, rename.
 * @module
 */
import { InputError } from '../errors.js';
import { isCount } from '../util/checks.js';
import { writeAtomic, writeFully } from './atomicFile.js';
import { ITEM_SIZE, layOutHeader, METADATA_KEY, type StreamTensor } from './safetensorsHeader.js';
import { progressClock, type ProgressCallback, type WriteProgressInfo } from '../util/progress.js';

export type { StreamDtype, StreamTensor } from './safetensorsHeader.js';

/**
 * Options of {@link writeSafetensorsStream}.
 * @category I/O
 */
export interface StreamWriteOptions {
  /** The header's `__metadata__` string map. */
  metadata?: Record<string, string>;
  /** Called after each tensor is written with a `'write'` report; `done`/`total` count bytes of tensor data. */
  onProgress?: ProgressCallback<WriteProgressInfo>;
}

/**
 * Writes `tensors` to `path`, calling `produce(name)` for each tensor's raw little-endian bytes in
 * turn, so peak memory is one tensor, not the file.
 *
 * Data is laid out widest dtype first (so every tensor is aligned to its item size, as the format
 * has no padding between tensors), in the given order within a dtype width, which keeps reads
 * from a source file mostly sequential. Header keys are sorted.
 * @throws InputError for a bad name, dtype or shape, or when `produce` returns the wrong length;
 * whatever `produce` throws is passed on. On any failure the target is left untouched.
 * @category I/O
 */
export async function writeSafetensorsStream(
  path: string,
  tensors: StreamTensor[],
  produce: (name: string) => Promise<Uint8Array> | Uint8Array,
  opts: StreamWriteOptions = {},
): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new InputError('writeSafetensorsStream expects a non-empty path');
  if (!Array.isArray(tensors)) throw new InputError('tensors must be an array of {name, dtype, shape}');
  const { header, layout, total } = planStream(tensors, opts.metadata);
  await writeAtomic(path, async (handle) => {
    await writeFully(handle, header);
    let written = 0;
    const clock = progressClock();
    for (const t of layout) {
      const bytes = await produce(t.name);
      if (!(bytes instanceof Uint8Array) || bytes.length !== t.byteLength) {
        throw new InputError(
          `tensor "${t.name}": ${bytes instanceof Uint8Array ? `${bytes.length} bytes were produced` : 'no bytes were produced'}, ${t.dtype} [${t.shape}] needs ${t.byteLength}`,
        );
      }
      await writeFully(handle, bytes);
      written += bytes.length;
      opts.onProgress?.({ kind: 'write', ...clock(written, total), key: t.name });
    }
  });
}

/** Validates the tensors and computes the header and the data layout. */
function planStream(tensors: StreamTensor[], metadata?: Record<string, string>) {
  const seen = new Set<string>();
  const list = tensors.map((t, order) => {
    if (t === null || typeof t !== 'object')
      throw new InputError(`tensor ${order} is not a {name, dtype, shape} object`);
    const { name, dtype, shape } = t;
    if (typeof name !== 'string' || name === METADATA_KEY)
      throw new InputError(`tensor ${order} has an invalid name ${JSON.stringify(name)}`);
    if (seen.has(name)) throw new InputError(`tensor "${name}" is listed twice`);
    seen.add(name);
    if (typeof dtype !== 'string' || !Object.hasOwn(ITEM_SIZE, dtype))
      throw new InputError(`tensor "${name}" has unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw new InputError(`tensor "${name}" has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
    }
    const byteLength = shape.reduce((a, d) => a * d, 1) * ITEM_SIZE[dtype];
    if (!Number.isSafeInteger(byteLength)) throw new InputError(`tensor "${name}" of shape [${shape}] is too large`);
    return { name, dtype, shape: [...shape], byteLength };
  });
  return layOutHeader(list, metadata);
}
