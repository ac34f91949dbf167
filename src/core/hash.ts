/**
 * MurmurHash3 (x86, 32-bit) over UTF-8 bytes, written with Math.imul so every runtime and
 * platform computes the same value. Fast, stable, non-cryptographic: used for key → partition
 * and for rendezvous weights. Golden values in test/unit/hash.test.ts pin it.
 */

const encoder = new TextEncoder();

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** Scramble one 32-bit word (murmur3's k1 step). */
function scramble(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

/** Fold one full 4-byte block into the running hash. Also used by the digest's record hash. */
export function mixBlock(h: number, k: number): number {
  h ^= scramble(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** The common tail: the last 1–3 bytes (already packed into `k`), the length, the finalizer. */
function finish(h: number, k: number, tail: number, len: number): number {
  if (tail > 0) h ^= scramble(k);
  return fmix32(h ^ len);
}

/** Hash raw bytes. `seed` is an unsigned 32-bit integer. Returns an unsigned 32-bit integer. */
export function murmur3Bytes(bytes: Uint8Array, seed = 0): number {
  return murmur3Range(bytes, 0, bytes.length, seed);
}

/** murmur3Bytes of `bytes[start, end)`, without a view of them (a key in a store's arena). */
export function murmur3Range(bytes: Uint8Array, start: number, end: number, seed = 0): number {
  let h = seed >>> 0;
  const len = end - start;
  const blocks = start + (len & ~3);
  for (let i = start; i < blocks; i += 4) {
    h = mixBlock(
      h,
      bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24),
    );
  }
  const tail = len & 3;
  let k = 0;
  if (tail === 3) k ^= bytes[blocks + 2]! << 16;
  if (tail >= 2) k ^= bytes[blocks + 1]! << 8;
  if (tail >= 1) k ^= bytes[blocks]!;
  return finish(h, k, tail, len);
}

/**
 * Hash a string's UTF-8 encoding. ASCII strings (the common case for keys and ids) are hashed
 * straight from their char codes, which are their UTF-8 bytes, without allocating; others are
 * encoded first. Both paths give the same value for the same bytes.
 */
export function murmur3(text: string, seed = 0): number {
  const len = text.length;
  for (let i = 0; i < len; i++) {
    if (text.charCodeAt(i) > 0x7f) return murmur3Bytes(encoder.encode(text), seed);
  }
  let h = seed >>> 0;
  const blocks = len & ~3;
  for (let i = 0; i < blocks; i += 4) {
    h = mixBlock(
      h,
      text.charCodeAt(i) | (text.charCodeAt(i + 1) << 8) | (text.charCodeAt(i + 2) << 16) |
        (text.charCodeAt(i + 3) << 24),
    );
  }
  const tail = len & 3;
  let k = 0;
  if (tail === 3) k ^= text.charCodeAt(blocks + 2) << 16;
  if (tail >= 2) k ^= text.charCodeAt(blocks + 1) << 8;
  if (tail >= 1) k ^= text.charCodeAt(blocks);
  return finish(h, k, tail, len);
}

/** Murmur3's finalizer: a full-avalanche mix of a 32-bit integer. */
export function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
