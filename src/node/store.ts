/**
 * The in-memory store of one node: a Map per partition, so a partition can be streamed, digested
 * or dropped whole. Writes merge by version (newest wins), so applying the same record twice, or
 * two records in either order, ends in the same state. Every change updates the partition's
 * anti-entropy digest incrementally.
 */
import { bucketOf, type Digest, DigestTable } from "../core/digest.ts";
import { partitionOf } from "../core/placement.ts";
import { isLive, type KvRecord, merge } from "../core/record.ts";

export class Store {
  #partitions: Map<string, KvRecord>[] = [];
  #digests: DigestTable = new DigestTable(0);

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
    this.#digests = new DigestTable(partitionCount);
    for (const r of all) this.apply(r);
  }

  partitionOf(key: string): number {
    return partitionOf(key, this.#partitions.length);
  }

  /** Merge a record in. Returns whether a live value was stored for the key before. */
  apply(incoming: KvRecord): boolean {
    const p = this.partitionOf(incoming.key);
    const bucket = this.#partitions[p]!;
    const current = bucket.get(incoming.key);
    const kept = merge(current, incoming);
    if (kept !== current) {
      bucket.set(incoming.key, kept);
      this.#digests.update(p, current, kept);
    }
    return isLive(current);
  }

  /** What is stored for a key, tombstones included. */
  get(key: string): KvRecord | undefined {
    return this.#partitions[this.partitionOf(key)]!.get(key);
  }

  /** Live records (tombstones excluded). */
  *live(): Iterable<KvRecord> {
    for (const m of this.#partitions) {
      for (const r of m.values()) if (!r.tombstone) yield r;
    }
  }

  /** Records of one partition, tombstones included (a snapshot: safe to write while iterating). */
  partitionRecords(partition: number): KvRecord[] {
    return [...(this.#partitions[partition]?.values() ?? [])];
  }

  /** Records of one partition whose key falls in one of `buckets`. */
  bucketRecords(partition: number, buckets: ReadonlySet<number>): KvRecord[] {
    const out: KvRecord[] = [];
    for (const r of this.#partitions[partition]?.values() ?? []) {
      if (buckets.has(bucketOf(r.key))) out.push(r);
    }
    return out;
  }

  partitionSize(partition: number): number {
    return this.#partitions[partition]?.size ?? 0;
  }

  /** Forget a partition whole (it moved to its new owners). Returns how many records went. */
  dropPartition(partition: number): number {
    const m = this.#partitions[partition];
    if (m === undefined) return 0;
    const n = m.size;
    m.clear();
    this.#digests.clearPartition(partition);
    return n;
  }

  /** Remove tombstones whose delete happened before `cutoffMs`. Returns how many. */
  collectTombstones(cutoffMs: number): number {
    let n = 0;
    for (let p = 0; p < this.#partitions.length; p++) {
      const m = this.#partitions[p]!;
      for (const [k, r] of m) {
        if (r.tombstone && r.version.wallMs < cutoffMs) {
          m.delete(k);
          this.#digests.update(p, r, undefined);
          n++;
        }
      }
    }
    return n;
  }

  partitionDigest(partition: number): Digest {
    return this.#digests.partitionDigest(partition);
  }

  bucketDigests(partition: number): Digest[] {
    return this.#digests.bucketDigests(partition);
  }

  /** Number of keys stored, tombstones included. */
  get size(): number {
    let n = 0;
    for (const m of this.#partitions) n += m.size;
    return n;
  }

  /** Live keys and tombstones, counted separately. */
  counts(): { live: number; tombstones: number } {
    let live = 0, tombstones = 0;
    for (const m of this.#partitions) {
      for (const r of m.values()) r.tombstone ? tombstones++ : live++;
    }
    return { live, tombstones };
  }
}
