/**
 * Keys in sorted order (JavaScript string order: UTF-16 code units), for prefix listings: a
 * list of sorted chunks of at most CHUNK_KEYS keys. Finding where a key goes is two binary
 * searches (over the chunks' first keys, then in one chunk); inserting or removing moves at
 * most one chunk's worth of references. So a listing page costs O(log n + page), never a scan,
 * and the index costs one reference (8 bytes) a key plus a little per chunk.
 */

/** Keys per chunk, at most; a full chunk splits in two. */
const CHUNK_KEYS = 512;

export class KeyIndex {
  #chunks: string[][] = [];
  #size = 0;

  /** An index of `keys` (any order, distinct). */
  static of(keys: Iterable<string>): KeyIndex {
    const all = [...keys].sort(byKey);
    const ix = new KeyIndex();
    const half = CHUNK_KEYS / 2;
    for (let i = 0; i < all.length; i += half) ix.#chunks.push(all.slice(i, i + half));
    ix.#size = all.length;
    return ix;
  }

  get size(): number {
    return this.#size;
  }

  /** The chunk that holds `key` or where it would go. */
  #chunkOf(key: string): number {
    const chunks = this.#chunks;
    let lo = 0, hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (chunks[mid]![0]! <= key) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Add `key` (no effect if present). */
  insert(key: string): void {
    if (this.#chunks.length === 0) {
      this.#chunks.push([key]);
      this.#size = 1;
      return;
    }
    const c = this.#chunkOf(key);
    const chunk = this.#chunks[c]!;
    const at = lowerBound(chunk, key);
    if (chunk[at] === key) return;
    chunk.splice(at, 0, key);
    this.#size++;
    if (chunk.length > CHUNK_KEYS) {
      this.#chunks.splice(c + 1, 0, chunk.splice(CHUNK_KEYS / 2));
    }
  }

  /** Remove `key` (no effect if absent). */
  remove(key: string): void {
    if (this.#chunks.length === 0) return;
    const c = this.#chunkOf(key);
    const chunk = this.#chunks[c]!;
    const at = lowerBound(chunk, key);
    if (chunk[at] !== key) return;
    chunk.splice(at, 1);
    this.#size--;
    if (chunk.length === 0) this.#chunks.splice(c, 1);
  }

  /** Keys starting with `prefix` and greater than `after` (when given), in order. */
  *from(prefix: string, after?: string): Generator<string> {
    const start = after !== undefined && after >= prefix ? after : prefix;
    if (this.#chunks.length === 0) return;
    let c = this.#chunkOf(start);
    let i = lowerBound(this.#chunks[c]!, start);
    for (; c < this.#chunks.length; c++, i = 0) {
      const chunk = this.#chunks[c]!;
      for (; i < chunk.length; i++) {
        const k = chunk[i]!;
        if (k === after) continue;
        if (!k.startsWith(prefix)) return;
        yield k;
      }
    }
  }
}

function byKey(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** First index in sorted `a` whose key is >= `key`. */
function lowerBound(a: readonly string[], key: string): number {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
