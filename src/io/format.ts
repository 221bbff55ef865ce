/**
 * Tells weight files apart by their first bytes, never by their extension.
 * @module
 */
import { CheckpointError } from '../errors.js';
import { importUnbundled } from '../util/dynamicImport.js';
import { normalizeInput, openWebSource, type FileInput } from './webSource.js';

/** What a weights file is. */
export type WeightsFormat = 'safetensors' | 'pytorch-zip' | 'pytorch-legacy' | 'unknown';

/** Classifies the first bytes of a file (at least 9 are needed for safetensors). */
export function formatOf(head: Uint8Array): WeightsFormat {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04)
    return 'pytorch-zip';
  if (head.length >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return 'pytorch-legacy';
  // u64 header length (small: its high bytes are zero), then the JSON object's '{'.
  if (head.length >= 9 && head[5] === 0 && head[6] === 0 && head[7] === 0 && head[8] === 0x7b) return 'safetensors';
  return 'unknown';
}

/**
 * The format of a path (Node), of bytes, or of a URL, Blob or Response (a Response's body is read).
 * @throws CheckpointError when the file cannot be opened.
 */
export async function sniffFormat(input: FileInput): Promise<WeightsFormat> {
  const source = normalizeInput(input, 'weights file');
  if (source instanceof Uint8Array) return formatOf(source.subarray(0, 16));
  if (typeof source !== 'string') {
    const src = await openWebSource(source);
    try {
      return formatOf(await src.read(0, Math.min(16, src.size)));
    } finally {
      await src.close();
    }
  }
  const fs = await importUnbundled<typeof import('node:fs')>('node:fs');
  let handle: import('node:fs').promises.FileHandle;
  try {
    handle = await fs.promises.open(source, 'r');
  } catch (e) {
    throw new CheckpointError(`cannot open weights file ${source}: ${(e as Error).message}`);
  }
  try {
    const head = new Uint8Array(16);
    const { bytesRead } = await handle.read(head, 0, 16, 0);
    return formatOf(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}
