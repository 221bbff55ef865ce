/**
 * CRC-32 (ISO 3309 / IEEE 802.3, polynomial 0xEDB88320), as ZIP entries and PNG chunks use.
 * @module
 */

let table: Uint32Array | undefined;

/** CRC-32 of `bytes`, optionally continuing from a previous value. */
export function crc32(bytes: Uint8Array, previous = 0): number {
  const t = (table ??= (() => {
    const out = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      out[i] = c >>> 0;
    }
    return out;
  })());
  let c = ~previous >>> 0;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}
