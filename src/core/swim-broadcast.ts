/**
 * The piggyback queue: recent membership updates waiting to ride on outgoing messages.
 *
 * One entry per member (newer news about a member replaces the queued one, so a flapping member
 * costs one slot). Each message takes the least-sent entries first, newest first among equals,
 * and an entry leaves the queue after `limit` transmissions. Bounded: when full, the entry sent
 * most often (then the oldest) makes room.
 */
import type { Gossip } from "./swim-merge.ts";

interface Entry {
  readonly gossip: Gossip;
  transmits: number;
  /** Insertion order: higher is newer. */
  readonly order: number;
}

export class BroadcastQueue {
  readonly #entries = new Map<string, Entry>();
  #order = 0;
  /** Entries pushed out because the queue was full. */
  evicted = 0;

  constructor(private readonly entriesMax: number) {
    if (!(entriesMax > 0)) throw new Error("BroadcastQueue: entriesMax must be > 0");
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Queue an update, replacing any queued update about the same member. */
  push(gossip: Gossip): void {
    this.#entries.delete(gossip.id);
    if (this.#entries.size >= this.entriesMax) this.#evictOne();
    this.#entries.set(gossip.id, { gossip, transmits: 0, order: this.#order++ });
  }

  /**
   * Up to `max` updates for one message, skipping members in `skip`; each counts as one
   * transmission and is dropped once sent `limit` times.
   */
  take(max: number, limit: number, skip: ReadonlySet<string> = new Set()): Gossip[] {
    if (max <= 0 || this.#entries.size === 0) return [];
    const picked = [...this.#entries.values()]
      .filter((e) => !skip.has(e.gossip.id))
      .sort((a, b) => a.transmits - b.transmits || b.order - a.order)
      .slice(0, max);
    for (const e of picked) {
      e.transmits++;
      if (e.transmits >= limit) this.#entries.delete(e.gossip.id);
    }
    return picked.map((e) => e.gossip);
  }

  /** Drop the queued update about `id`, if any (the member was forgotten). */
  remove(id: string): void {
    this.#entries.delete(id);
  }

  /** Queued updates, for inspection. */
  peek(): Gossip[] {
    return [...this.#entries.values()].map((e) => e.gossip);
  }

  #evictOne(): void {
    let worst: Entry | undefined;
    for (const e of this.#entries.values()) {
      if (
        worst === undefined || e.transmits > worst.transmits ||
        (e.transmits === worst.transmits && e.order < worst.order)
      ) worst = e;
    }
    if (worst !== undefined) {
      this.#entries.delete(worst.gossip.id);
      this.evicted++;
    }
  }
}
