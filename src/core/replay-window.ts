/**
 * Replay protection for signed internal requests (pure: the time comes in as an argument).
 *
 * Every signing process numbers its requests: a nonce is (source, counter), where `source` is a
 * random prefix drawn once per process and the counter counts up from 0. Per source the receiver
 * keeps the highest counter seen and a bitmap of the `windowSize` counters below it (IPsec's
 * anti-replay window, RFC 4303 §3.4.3): a counter seen before is a replay; one more than
 * `windowSize` below the highest is too old to tell, and refused as well. Requests may arrive
 * out of order (many in flight at once) as long as they are less than `windowSize` apart.
 *
 * Bounded: at most `sourcesMax` sources are kept, `windowSize / 8` bytes each. A source is only
 * forgotten after `idleMs` without a request; set that above twice the signature time window, so
 * that no message a forgotten source signed can still pass the time check. When every slot is
 * busy, a new source is refused ("full") until one goes idle. Only requests whose signature was
 * already verified are checked here, so nobody without the secret can fill it.
 */

export type ReplayVerdict = "fresh" | "replayed" | "too-old" | "full";

interface Window {
  /** Highest counter accepted so far. */
  top: number;
  /** Bit (c mod windowSize) set: counter c (top − windowSize < c ≤ top) was seen. */
  readonly bits: Uint32Array;
  lastMs: number;
}

export class ReplayGuard {
  readonly #sources = new Map<string, Window>();
  readonly #words: number;

  constructor(
    readonly windowSize: number,
    readonly sourcesMax: number,
    readonly idleMs: number,
  ) {
    if (!(windowSize >= 32 && windowSize % 32 === 0)) {
      throw new Error("ReplayGuard: windowSize must be a positive multiple of 32");
    }
    if (!(sourcesMax > 0) || !(idleMs > 0)) {
      throw new Error("ReplayGuard: sourcesMax and idleMs must be > 0");
    }
    this.#words = windowSize / 32;
  }

  /** Sources currently tracked. */
  get size(): number {
    return this.#sources.size;
  }

  /** Record (source, counter) and say whether it is new. `counter` is a safe integer ≥ 0. */
  check(source: string, counter: number, nowMs: number): ReplayVerdict {
    let w = this.#sources.get(source);
    if (w === undefined) {
      if (this.#sources.size >= this.sourcesMax && !this.#evictIdle(nowMs)) return "full";
      w = { top: -1, bits: new Uint32Array(this.#words), lastMs: nowMs };
      this.#sources.set(source, w);
    }
    w.lastMs = nowMs;
    const size = this.windowSize;
    if (counter > w.top) {
      if (counter - w.top >= size) w.bits.fill(0);
      else for (let c = w.top + 1; c < counter; c++) clear(w.bits, c % size);
      w.top = counter;
      set(w.bits, counter % size);
      return "fresh";
    }
    if (w.top - counter >= size) return "too-old";
    const i = counter % size;
    if (isSet(w.bits, i)) return "replayed";
    set(w.bits, i);
    return "fresh";
  }

  /** Drop the first source idle for `idleMs`; false if none is. */
  #evictIdle(nowMs: number): boolean {
    for (const [source, w] of this.#sources) {
      if (nowMs - w.lastMs >= this.idleMs) {
        this.#sources.delete(source);
        return true;
      }
    }
    return false;
  }
}

function set(bits: Uint32Array, i: number): void {
  const j = i >>> 5;
  bits[j] = bits[j]! | (1 << (i & 31));
}

function clear(bits: Uint32Array, i: number): void {
  const j = i >>> 5;
  bits[j] = bits[j]! & ~(1 << (i & 31));
}

function isSet(bits: Uint32Array, i: number): boolean {
  return (bits[i >>> 5]! & (1 << (i & 31))) !== 0;
}
