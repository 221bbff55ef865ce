/**
 * A minimal read-only ZIP reader, enough for the archives `torch.save` writes: a central
 * directory (with ZIP64 records, which PyTorch always writes), stored entries read by offset and
 * small entries read whole (stored or deflated, CRC-checked).
 *
 * Every offset and size is validated against the file before it is used, and the fields that
 * are repeated elsewhere (local headers, data descriptors, the ZIP64 end record) must agree with
 * the central directory, so a corrupt archive fails with a {@link CheckpointError} instead of
 * yielding wrong bytes.
 * @module
 */
import { CheckpointError } from '../errors.js';
import type { ByteSource } from './byteRange.js';
import { crc32 } from './crc32.js';
import { inflateBounded } from './inflate.js';

/** One file of the archive, as the central directory describes it. */
export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflated (others are refused when read). */
  readonly method: number;
  readonly flags: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
  readonly time: number;
  readonly date: number;
  readonly versionNeeded: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_DESCRIPTOR = 0x08074b50;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
/** A central directory larger than this is not a checkpoint's (PyTorch's take ~100 bytes per tensor). */
const MAX_CENTRAL_DIRECTORY = 256 * 1024 * 1024;
const FLAG_ENCRYPTED = 0x0001;
const FLAG_DESCRIPTOR = 0x0008;
const FLAG_STRONG_ENCRYPTION = 0x0040;
const FLAG_UTF8 = 0x0800;

/** An archive opened for reading; entries are located lazily and cached. */
export class ZipArchive {
  private readonly dataOffsets = new Map<string, number>();

  private constructor(
    private readonly src: ByteSource,
    /** Entries by name, in central-directory order. */
    readonly entries: ReadonlyMap<string, ZipEntry>,
    /** Where the central directory starts: every entry's data must end before it. */
    private readonly centralDirectoryOffset: number,
  ) {}

  /**
   * Reads and checks the end records and the whole central directory.
   * @throws CheckpointError for a truncated, corrupt, multi-disk or encrypted archive.
   */
  static async open(src: ByteSource): Promise<ZipArchive> {
    const fail = (why: string) => new CheckpointError(`${src.label} is not a readable zip archive: ${why}`);
    const { cdOffset, cdSize, count, limit } = await readEndRecords(src, fail);
    if (cdSize > MAX_CENTRAL_DIRECTORY)
      throw fail(`its central directory claims ${cdSize} bytes (limit ${MAX_CENTRAL_DIRECTORY})`);
    if (cdOffset + cdSize > limit)
      throw fail(
        `its central directory (bytes ${cdOffset}..${cdOffset + cdSize}) overlaps the end records at ${limit}`,
      );
    if (count * 46 > cdSize) throw fail(`${count} entries cannot fit in a ${cdSize}-byte central directory`);
    const cd = await src.read(cdOffset, cdSize);
    const view = new DataView(cd.buffer, cd.byteOffset, cd.length);
    const entries = new Map<string, ZipEntry>();
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || view.getUint32(p, true) !== SIG_CENTRAL)
        throw fail(`central directory entry ${i} at byte ${cdOffset + p} is damaged`);
      const flags = view.getUint16(p + 8, true);
      const nameLen = view.getUint16(p + 28, true);
      const extraLen = view.getUint16(p + 30, true);
      const commentLen = view.getUint16(p + 32, true);
      const end = p + 46 + nameLen + extraLen + commentLen;
      if (end > cd.length) throw fail(`central directory entry ${i} runs past the directory's end`);
      const nameBytes = cd.subarray(p + 46, p + 46 + nameLen);
      const name = flags & FLAG_UTF8 ? decodeUtf8(nameBytes, fail) : latin1(nameBytes);
      let compressedSize = view.getUint32(p + 20, true);
      let size = view.getUint32(p + 24, true);
      let disk = view.getUint16(p + 34, true);
      let localHeaderOffset = view.getUint32(p + 42, true);
      // ZIP64 extended information: 8-byte values for exactly the fields that hold their sentinel, in this order.
      const zip64 = findExtra(cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen), 0x0001, () =>
        fail(`entry "${name}" has a malformed extra field`),
      );
      if (size === U32_MAX || compressedSize === U32_MAX || localHeaderOffset === U32_MAX || disk === U16_MAX) {
        if (!zip64) throw fail(`entry "${name}" needs a ZIP64 extra field and has none`);
        const z = new DataView(zip64.buffer, zip64.byteOffset, zip64.length);
        let q = 0;
        const u64 = (what: string) => {
          if (q + 8 > z.byteLength) throw fail(`entry "${name}": the ZIP64 extra field lacks the ${what}`);
          const v = z.getBigUint64(q, true);
          q += 8;
          if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`entry "${name}": ${what} ${v} is out of range`);
          return Number(v);
        };
        if (size === U32_MAX) size = u64('size');
        if (compressedSize === U32_MAX) compressedSize = u64('compressed size');
        if (localHeaderOffset === U32_MAX) localHeaderOffset = u64('local header offset');
        if (disk === U16_MAX) {
          if (q + 4 > z.byteLength) throw fail(`entry "${name}": the ZIP64 extra field lacks the disk number`);
          disk = z.getUint32(q, true);
        }
      }
      if (disk !== 0) throw fail(`entry "${name}" lives on disk ${disk}: multi-part archives are not supported`);
      if (flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) throw fail(`entry "${name}" is encrypted`);
      if (localHeaderOffset + 30 + nameLen + compressedSize > cdOffset) {
        throw fail(
          `entry "${name}" (${compressedSize} bytes at ${localHeaderOffset}) does not fit before the central directory at ${cdOffset}`,
        );
      }
      if (entries.has(name)) throw fail(`entry "${name}" appears twice`);
      entries.set(name, {
        name,
        method: view.getUint16(p + 10, true),
        flags,
        crc32: view.getUint32(p + 16, true),
        compressedSize,
        size,
        localHeaderOffset,
        time: view.getUint16(p + 12, true),
        date: view.getUint16(p + 14, true),
        versionNeeded: view.getUint16(p + 6, true),
      });
      p = end;
    }
    if (p !== cd.length) throw fail(`the central directory holds ${cd.length - p} bytes after its ${count} entries`);
    return new ZipArchive(src, entries, cdOffset);
  }

  /** The entry of this name, if any. */
  entry(name: string): ZipEntry | undefined {
    return this.entries.get(name);
  }

  /**
   * Where the entry's (possibly compressed) bytes start in the file. Checks the local header (and
   * the data descriptor, when there is one) against the central directory.
   */
  async dataOffset(entry: ZipEntry): Promise<number> {
    const cached = this.dataOffsets.get(entry.name);
    if (cached !== undefined) return cached;
    const fail = (why: string) => new CheckpointError(`${this.src.label}: zip entry "${entry.name}" ${why}`);
    const head = await this.src.read(entry.localHeaderOffset, 30);
    const v = new DataView(head.buffer);
    if (v.getUint32(0, true) !== SIG_LOCAL)
      throw fail(`has no local header at byte ${entry.localHeaderOffset} (corrupt central directory?)`);
    const nameLen = v.getUint16(26, true);
    const extraLen = v.getUint16(28, true);
    const start = entry.localHeaderOffset + 30 + nameLen + extraLen;
    if (start + entry.compressedSize > this.centralDirectoryOffset) throw fail('runs into the central directory');
    const name = await this.src.read(entry.localHeaderOffset + 30, nameLen);
    const nameStr = entry.flags & FLAG_UTF8 ? new TextDecoder('utf-8').decode(name) : latin1(name);
    if (nameStr !== entry.name) throw fail(`has the name "${nameStr}" in its local header`);
    if (
      v.getUint16(6, true) !== entry.flags ||
      v.getUint16(8, true) !== entry.method ||
      v.getUint16(10, true) !== entry.time ||
      v.getUint16(12, true) !== entry.date ||
      v.getUint16(4, true) !== entry.versionNeeded
    ) {
      throw fail('has a local header that disagrees with the central directory (flags, method, time or version)');
    }
    if (entry.flags & FLAG_DESCRIPTOR) {
      // Sizes and CRC follow the data: an optional signature, the CRC, then 4- or 8-byte sizes.
      const avail = Math.min(24, this.centralDirectoryOffset - (start + entry.compressedSize));
      const d = await this.src.read(start + entry.compressedSize, Math.max(0, avail));
      const dv = new DataView(d.buffer);
      const at = d.length >= 4 && dv.getUint32(0, true) === SIG_DESCRIPTOR ? 4 : 0;
      const crcOk = d.length >= at + 4 && dv.getUint32(at, true) === entry.crc32;
      const small =
        d.length >= at + 12 &&
        dv.getUint32(at + 4, true) === entry.compressedSize % 2 ** 32 &&
        dv.getUint32(at + 8, true) === entry.size % 2 ** 32;
      const large =
        d.length >= at + 20 &&
        dv.getBigUint64(at + 4, true) === BigInt(entry.compressedSize) &&
        dv.getBigUint64(at + 12, true) === BigInt(entry.size);
      if (!crcOk || !(small || large))
        throw fail('has a data descriptor that disagrees with the central directory (CRC or sizes)');
    } else {
      const crc = v.getUint32(14, true),
        cs = v.getUint32(18, true),
        us = v.getUint32(22, true);
      const sizesOk = (cs === entry.compressedSize || cs === U32_MAX) && (us === entry.size || us === U32_MAX);
      if (crc !== entry.crc32 || !sizesOk)
        throw fail('has a local header that disagrees with the central directory (CRC or sizes)');
    }
    this.dataOffsets.set(entry.name, start);
    return start;
  }

  /**
   * The whole entry, decompressed and CRC-checked: for small entries (a pickle, a version record).
   * @param maxBytes refuse entries larger than this before allocating anything.
   */
  async readEntry(entry: ZipEntry, maxBytes: number): Promise<Uint8Array> {
    const fail = (why: string) => new CheckpointError(`${this.src.label}: zip entry "${entry.name}" ${why}`);
    if (entry.size > maxBytes) throw fail(`is ${entry.size} bytes, more than the ${maxBytes} allowed for it`);
    if (entry.method !== 0 && entry.method !== 8)
      throw fail(`uses compression method ${entry.method}; only stored and deflated entries can be read`);
    if (entry.method === 0 && entry.compressedSize !== entry.size)
      throw fail(`is stored but its sizes differ (${entry.compressedSize} vs ${entry.size})`);
    const raw = await this.src.read(await this.dataOffset(entry), entry.compressedSize);
    const data = entry.method === 0 ? raw : await inflateRawBounded(raw, entry.size, fail);
    if (data.length !== entry.size) throw fail(`inflates to ${data.length} bytes, not the ${entry.size} recorded`);
    if (crc32(data) !== entry.crc32) throw fail('fails its CRC-32 check (corrupt file)');
    return data;
  }
}

/** The end-of-central-directory record, and the ZIP64 one when present; values cross-checked. */
async function readEndRecords(src: ByteSource, fail: (why: string) => CheckpointError) {
  const tailLen = Math.min(src.size, 22 + U16_MAX);
  if (src.size < 22) throw fail(`it is only ${src.size} bytes long`);
  const tail = await src.read(src.size - tailLen, tailLen);
  const tv = new DataView(tail.buffer);
  let at = -1;
  // The record is 22 bytes plus a comment that must reach exactly the end of the file.
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) === tail.length) {
      at = i;
      break;
    }
  }
  if (at < 0) throw fail('no end-of-central-directory record (the file is truncated or not a zip)');
  const eocdPos = src.size - tailLen + at;
  const disk = tv.getUint16(at + 4, true),
    cdDisk = tv.getUint16(at + 6, true);
  const n16 = tv.getUint16(at + 8, true),
    total16 = tv.getUint16(at + 10, true);
  const size32 = tv.getUint32(at + 12, true),
    off32 = tv.getUint32(at + 16, true);
  const hasLocator =
    eocdPos >= 20 &&
    (await src.read(eocdPos - 20, 4).then((b) => new DataView(b.buffer).getUint32(0, true))) === SIG_ZIP64_LOCATOR;
  const needs64 =
    n16 === U16_MAX ||
    total16 === U16_MAX ||
    size32 === U32_MAX ||
    off32 === U32_MAX ||
    disk === U16_MAX ||
    cdDisk === U16_MAX;
  if (!hasLocator) {
    if (needs64) throw fail('its end record needs a ZIP64 record and there is none');
    if (disk !== 0 || cdDisk !== 0 || n16 !== total16) throw fail('it is a multi-part archive');
    return { cdOffset: off32, cdSize: size32, count: total16, limit: eocdPos };
  }
  const loc = new DataView((await src.read(eocdPos - 20, 20)).buffer);
  const recPos = loc.getBigUint64(8, true);
  if (loc.getUint32(4, true) !== 0 || loc.getUint32(16, true) !== 1)
    throw fail('it is a multi-part archive (ZIP64 locator)');
  if (recPos > BigInt(eocdPos - 20 - 56)) throw fail(`its ZIP64 end record offset ${recPos} is out of range`);
  const z = new DataView((await src.read(Number(recPos), 56)).buffer);
  if (z.getUint32(0, true) !== SIG_ZIP64_EOCD) throw fail(`no ZIP64 end record at byte ${recPos}`);
  const recSize = z.getBigUint64(4, true);
  if (recSize < 44n || Number(recPos) + 12 + Number(recSize) !== eocdPos - 20)
    throw fail('its ZIP64 end record has a wrong length');
  if (z.getUint32(16, true) !== 0 || z.getUint32(20, true) !== 0)
    throw fail('it is a multi-part archive (ZIP64 record)');
  const big = (o: number, what: string) => {
    const v = z.getBigUint64(o, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`its ZIP64 ${what} ${v} is out of range`);
    return Number(v);
  };
  const n = big(24, 'entry count'),
    total = big(32, 'entry count'),
    cdSize = big(40, 'directory size'),
    cdOffset = big(48, 'directory offset');
  // Where the 32-bit record holds a real value (not its sentinel) the two records must agree.
  const agree = (a: number, sentinel: number, b: number) => a === sentinel || a === b;
  if (n !== total || (disk !== 0 && disk !== U16_MAX) || (cdDisk !== 0 && cdDisk !== U16_MAX))
    throw fail('it is a multi-part archive');
  if (
    !agree(n16, U16_MAX, n) ||
    !agree(total16, U16_MAX, total) ||
    !agree(size32, U32_MAX, cdSize) ||
    !agree(off32, U32_MAX, cdOffset)
  ) {
    throw fail('its end record and ZIP64 end record disagree');
  }
  return { cdOffset, cdSize, count: total, limit: Number(recPos) };
}

/** The data of the first extra sub-field with this id; validates the sub-field chain. */
function findExtra(extra: Uint8Array, id: number, bad: () => Error): Uint8Array | undefined {
  const v = new DataView(extra.buffer, extra.byteOffset, extra.length);
  let found: Uint8Array | undefined;
  let p = 0;
  while (p < extra.length) {
    if (p + 4 > extra.length) throw bad();
    const len = v.getUint16(p + 2, true);
    if (p + 4 + len > extra.length) throw bad();
    if (v.getUint16(p, true) === id && !found) found = extra.subarray(p + 4, p + 4 + len);
    p += 4 + len;
  }
  return found;
}

/**
 * Raw-deflate decompression that stops once the output would exceed `size` bytes (see {@link inflateBounded}).
 * @internal exported for tests of both paths.
 */
export function inflateRawBounded(
  data: Uint8Array,
  size: number,
  fail: (why: string) => Error,
  useStreams = false,
): Promise<Uint8Array> {
  return inflateBounded(data, 'deflate-raw', size, fail, useStreams);
}

function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

function decodeUtf8(bytes: Uint8Array, fail: (why: string) => Error): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fail('an entry name is not valid UTF-8');
  }
}
