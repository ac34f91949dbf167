/**
 * Hints: writes held for a replica that was down or timed out, to be delivered when it is back.
 * One entry per (target, key), the newest version kept, so repeated writes to a key cost one
 * slot. Bounded in count and bytes: when full, a new hint is refused (the caller logs it and
 * counts it; the write then has one acknowledgement fewer) — never a crash, never unbounded.
 */
import { type BatchLimits, recordBytes } from "./batching.ts";
import { compareVersions, type Version } from "./hlc.ts";
import type { KvRecord } from "./record.ts";

export interface HintLimits {
  readonly countMax: number;
  readonly bytesMax: number;
}

export interface Hint {
  readonly target: string;
  readonly record: KvRecord;
  /** When the hint was stored (injected clock), for expiry. */
  readonly storedAtMs: number;
}

export class HintStore {
  readonly #byTarget = new Map<string, Map<string, Hint>>();
  #count = 0;
  #bytes = 0;
  /** Hints refused because the store was full. */
  dropped = 0;
  /** --data-dir's hooks: every hint stored (or replaced) and every hint removed. */
  persist?: { added(h: Hint): void; removed(h: Hint): void };

  constructor(private readonly limits: HintLimits) {}

  get count(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  targets(): string[] {
    return [...this.#byTarget.keys()];
  }

  countFor(target: string): number {
    return this.#byTarget.get(target)?.size ?? 0;
  }

  /** Store a hint. Returns false (and counts a drop) when the store is full. */
  add(target: string, record: KvRecord, nowMs: number): boolean {
    let m = this.#byTarget.get(target);
    const prev = m?.get(record.key);
    if (prev !== undefined) {
      if (compareVersions(record.version, prev.record.version) <= 0) return true;
      const grow = recordBytes(record) - recordBytes(prev.record);
      if (this.#bytes + grow > this.limits.bytesMax) {
        this.dropped++;
        return false;
      }
      this.#bytes += grow;
      const h = { target, record, storedAtMs: nowMs };
      m!.set(record.key, h);
      this.persist?.added(h);
      return true;
    }
    const size = recordBytes(record);
    if (this.#count + 1 > this.limits.countMax || this.#bytes + size > this.limits.bytesMax) {
      this.dropped++;
      return false;
    }
    if (m === undefined) {
      m = new Map();
      this.#byTarget.set(target, m);
    }
    const h = { target, record, storedAtMs: nowMs };
    m.set(record.key, h);
    this.#count++;
    this.#bytes += size;
    this.persist?.added(h);
    return true;
  }

  /** Up to one batch of hints for a target, in the order their keys were first hinted. */
  peek(target: string, limits: BatchLimits): Hint[] {
    const out: Hint[] = [];
    let bytes = 0;
    for (const h of this.#byTarget.get(target)?.values() ?? []) {
      const size = recordBytes(h.record);
      if (out.length > 0 && (out.length >= limits.keysMax || bytes + size > limits.bytesMax)) break;
      out.push(h);
      bytes += size;
    }
    return out;
  }

  /** Remove delivered hints — only if not replaced by a newer one since they were peeked. */
  remove(delivered: readonly Hint[]): void {
    for (const h of delivered) {
      const m = this.#byTarget.get(h.target);
      const cur = m?.get(h.record.key);
      if (cur === undefined || cur.record !== h.record) continue;
      m!.delete(h.record.key);
      this.#count--;
      this.#bytes -= recordBytes(h.record);
      if (m!.size === 0) this.#byTarget.delete(h.target);
      this.persist?.removed(cur);
    }
  }

  /** Remove the hint for (target, key) if it holds exactly `version` (replaying a removal). */
  forget(target: string, key: string, version: Version): void {
    const cur = this.#byTarget.get(target)?.get(key);
    if (cur !== undefined && compareVersions(cur.record.version, version) === 0) this.remove([cur]);
  }

  /** Every hint held (a snapshot of --data-dir). */
  *all(): Iterable<Hint> {
    for (const m of this.#byTarget.values()) yield* m.values();
  }

  /** Drop hints stored before `cutoffMs` (they would be older than the tombstone grace). */
  expire(cutoffMs: number): number {
    const old: Hint[] = [];
    for (const m of this.#byTarget.values()) {
      for (const h of m.values()) if (h.storedAtMs < cutoffMs) old.push(h);
    }
    this.remove(old);
    return old.length;
  }
}
