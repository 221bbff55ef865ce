/**
 * One interface over every weights file format, so models load from any of them without knowing
 * which: the format is sniffed from the content, never the extension.
 * @module
 */
import { CheckpointError } from '../errors.js';
import { isByteSource, openByteSource } from './byteSource.js';
import { formatOf, sniffFormat, type WeightsFormat } from './format.js';
import { TorchCheckpointReader } from './pytorch.js';
import { SafetensorsReader } from './safetensors.js';
import { normalizeInput, type FileInput } from './webSource.js';

/** A state dict on disk or in memory, read one float tensor at a time. */
export interface WeightsSource {
  /** The path, or `'<bytes>'`; for error messages. */
  readonly label: string;
  readonly format: WeightsFormat;
  /** Tensor names in file order. */
  keys(): string[];
  /** Shape of a tensor (PyTorch layout, as saved). */
  shape(name: string): number[];
  /** Bytes the tensor occupies in the file (for progress). */
  byteLength(name: string): number;
  /** The tensor's values as float32 (float16/bfloat16/float64 converted). Throws for integer tensors. */
  readFloat32(name: string): Promise<Float32Array>;
  /** Releases the file. Idempotent. */
  close(): Promise<void>;
}

function fromSafetensors(r: SafetensorsReader): WeightsSource {
  return {
    label: r.source,
    format: 'safetensors',
    keys: () => r.keys(),
    shape: (k) => r.info(k).shape,
    byteLength: (k) => r.info(k).byteLength,
    readFloat32: async (k) => {
      const t = await r.read(k);
      if (t.data instanceof Float32Array) return t.data;
      if (t.data instanceof Float64Array) return Float32Array.from(t.data);
      throw new CheckpointError(
        `${r.source}: tensor "${k}" has dtype ${t.dtype}; a float type (F32, F16, BF16, F64) is needed`,
      );
    },
    close: () => r.close(),
  };
}

function fromTorch(r: TorchCheckpointReader): WeightsSource {
  return {
    label: r.label,
    format: r.layout === 'zip' ? 'pytorch-zip' : 'pytorch-legacy',
    keys: () => r.keys(),
    shape: (k) => r.info(k).shape,
    byteLength: (k) => r.info(k).byteLength,
    readFloat32: (k) => r.readFloat32(k),
    close: () => r.close(),
  };
}

/**
 * Opens a weights file of any supported format: safetensors, or a `torch.save` checkpoint (zip or
 * legacy layout; read through a restricted unpickler that runs no code).
 * @param input a path (Node), the file's bytes, or its URL, Blob or Response (read by ranges where the server allows).
 * @throws CheckpointError for an unreadable, corrupt or unsupported file.
 */
export async function openWeights(input: FileInput): Promise<WeightsSource> {
  const normal = normalizeInput(input, 'weights file');
  // A URL, Blob or Response is opened once: its first bytes say the format, then its reader reads the rest.
  const source = normal instanceof Uint8Array || typeof normal === 'string' ? normal : await openByteSource(normal);
  const format = isByteSource(source)
    ? await source.read(0, Math.min(16, source.size)).then(formatOf, async (e: unknown) => {
        await source.close();
        throw e;
      })
    : await sniffFormat(source);
  switch (format) {
    case 'safetensors':
      return fromSafetensors(await SafetensorsReader.open(source));
    case 'pytorch-zip':
    case 'pytorch-legacy':
      return fromTorch(await TorchCheckpointReader.open(source));
    default:
      // Let the safetensors reader say precisely what is wrong with the bytes.
      return fromSafetensors(await SafetensorsReader.open(source));
  }
}
