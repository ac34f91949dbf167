/**
 * The in-memory store of one node: a Map per partition, so a partition can later be streamed,
 * digested or dropped whole. Writes merge by version (newest wins), so applying the same record
 * twice, or two records in either order, ends in the same state.
 */
import { partitionOf } from "../core/placement.ts";
import { isLive, type KvRecord, merge } from "../core/record.ts";

export class Store {
  #partitions: Map<string, KvRecord>[] = [];

  constructor(partitionCount: number) {
    this.resize(partitionCount);
  }

  get partitionCount(): number {
    return this.#partitions.length;
  }

  /** Re-bucket for a new partition count (only when the first view arrives). */
  resize(partitionCount: number): void {
    if (partitionCount === this.#partitions.length) return;
    const all = this.#partitions.flatMap((m) => [...m.values()]);
    this.#partitions = Array.from({ length: partitionCount }, () => new Map());
    for (const r of all) this.apply(r);
  }

  #bucket(key: string): Map<string, KvRecord> {
    return this.#partitions[partitionOf(key, this.#partitions.length)]!;
  }

  /** Merge a record in. Returns whether a live value was stored for the key before. */
  apply(incoming: KvRecord): boolean {
    const bucket = this.#bucket(incoming.key);
    const current = bucket.get(incoming.key);
    const kept = merge(current, incoming);
    if (kept !== current) bucket.set(incoming.key, kept);
    return isLive(current);
  }

  /** What is stored for a key, tombstones included. */
  get(key: string): KvRecord | undefined {
    return this.#bucket(key).get(key);
  }

  /** Live records (tombstones excluded). */
  *live(): Iterable<KvRecord> {
    for (const m of this.#partitions) {
      for (const r of m.values()) if (!r.tombstone) yield r;
    }
  }

  /** Number of keys stored, tombstones included. */
  get size(): number {
    let n = 0;
    for (const m of this.#partitions) n += m.size;
    return n;
  }
}
