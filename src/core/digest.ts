/**
 * Order-independent digests for anti-entropy. Each record hashes to 32 bits; a bucket's digest is
 * the sum (mod 2^32) of its records' hashes plus their count, so it is updated incrementally on
 * every write (subtract the old record's hash, add the new one's) and two replicas holding the
 * same records have the same digest whatever order the writes arrived in.
 *
 * A partition is split into BUCKETS buckets by key hash: replicas compare partition digests
 * first, then bucket digests of the partitions that differ, then key versions of the buckets that
 * differ — a two-level Merkle tree, so a sync transfers only the keys that differ.
 */
import { fmix32, mixBlock as mix, murmur3 } from "./hash.ts";
import type { KvRecord } from "./record.ts";
import type { SlotTable } from "./slot-table.ts";

/** Buckets per partition. Part of the protocol: peers must agree. */
export const BUCKETS = 64;
const BUCKET_SEED = 0x5bd1e995;
const RECORD_SEED = 0x1b873593;

export function bucketOf(key: string): number {
  return murmur3(key, BUCKET_SEED) & (BUCKETS - 1);
}

/** bucketOf the key a slot table holds in `slot`, hashed from its bytes (no string made). */
export function bucketOfSlot(table: SlotTable, slot: number): number {
  return table.keyMurmur3(slot, BUCKET_SEED) & (BUCKETS - 1);
}

/**
 * 32-bit hash of everything that identifies a record's state: key, version, tombstone flag.
 * The key and node id are hashed once each; the numbers are mixed in arithmetically, so a
 * write costs no string building. (Part of the anti-entropy protocol: peers must agree.)
 */
export function recordHash(r: KvRecord): number {
  const v = r.version;
  return recordHashOf(r.key, v.wallMs, v.counter, v.nodeId, r.tombstone);
}

/** recordHash from the fields, for stores that keep records in columns. */
export function recordHashOf(
  key: string,
  wallMs: number,
  counter: number,
  nodeId: string,
  tombstone: boolean,
): number {
  return recordHashFrom(recordPartHash(key), wallMs, counter, recordPartHash(nodeId), tombstone);
}

/**
 * The hash of a key or a node id as recordHashOf mixes it in: a store hashes a write's key once
 * for the record replaced and the new one, and each node id once.
 */
export function recordPartHash(s: string): number {
  return murmur3(s, RECORD_SEED);
}

/** recordHashOf with the key's and node id's hashes (recordPartHash) already made. */
export function recordHashFrom(
  keyHash: number,
  wallMs: number,
  counter: number,
  nodeHash: number,
  tombstone: boolean,
): number {
  let h = keyHash;
  h = mix(h, wallMs >>> 0);
  h = mix(h, Math.floor(wallMs / 0x1_0000_0000) >>> 0);
  h = mix(h, counter >>> 0);
  h = mix(h, nodeHash);
  h = mix(h, tombstone ? 1 : 0);
  return fmix32(h);
}

/** A digest: sum of record hashes mod 2^32, and how many records. */
export interface Digest {
  sum: number;
  count: number;
}

/** Per-partition, per-bucket digests, kept up to date by the store. */
export class DigestTable {
  readonly #sums: Uint32Array;
  readonly #counts: Uint32Array;

  constructor(readonly partitions: number) {
    this.#sums = new Uint32Array(partitions * BUCKETS);
    this.#counts = new Uint32Array(partitions * BUCKETS);
  }

  /** Record `next` replaced `prev` (either may be undefined) in `partition`. */
  update(partition: number, prev: KvRecord | undefined, next: KvRecord | undefined): void {
    const key = (prev ?? next)?.key;
    if (key === undefined) return;
    const i = partition * BUCKETS + bucketOf(key);
    if (prev !== undefined) {
      this.#sums[i] = (this.#sums[i]! - recordHash(prev)) >>> 0;
      this.#counts[i] = this.#counts[i]! - 1;
    }
    if (next !== undefined) {
      this.#sums[i] = (this.#sums[i]! + recordHash(next)) >>> 0;
      this.#counts[i] = this.#counts[i]! + 1;
    }
  }

  /** Same as update, with the records' hashes (undefined = no record) already computed. */
  updateHashes(
    partition: number,
    key: string,
    prev: number | undefined,
    next: number | undefined,
  ): void {
    const i = partition * BUCKETS + bucketOf(key);
    if (prev !== undefined) {
      this.#sums[i] = (this.#sums[i]! - prev) >>> 0;
      this.#counts[i] = this.#counts[i]! - 1;
    }
    if (next !== undefined) {
      this.#sums[i] = (this.#sums[i]! + next) >>> 0;
      this.#counts[i] = this.#counts[i]! + 1;
    }
  }

  clearPartition(partition: number): void {
    this.#sums.fill(0, partition * BUCKETS, (partition + 1) * BUCKETS);
    this.#counts.fill(0, partition * BUCKETS, (partition + 1) * BUCKETS);
  }

  /** The partition's digest: buckets folded in order (so equal buckets ⇔ equal digest, w.h.p.). */
  partitionDigest(partition: number): Digest {
    let sum = 0;
    let count = 0;
    for (let b = 0; b < BUCKETS; b++) {
      const i = partition * BUCKETS + b;
      sum = (Math.imul(sum, 31) + this.#sums[i]!) >>> 0;
      count += this.#counts[i]!;
    }
    return { sum, count };
  }

  bucketDigests(partition: number): Digest[] {
    const out: Digest[] = [];
    for (let b = 0; b < BUCKETS; b++) {
      const i = partition * BUCKETS + b;
      out.push({ sum: this.#sums[i]!, count: this.#counts[i]! });
    }
    return out;
  }
}

export function sameDigest(a: Digest, b: Digest): boolean {
  return a.sum === b.sum && a.count === b.count;
}

/** Buckets whose digests differ between two bucket lists of equal length. */
export function differingBuckets(mine: readonly Digest[], theirs: readonly Digest[]): number[] {
  const out: number[] = [];
  for (let b = 0; b < Math.max(mine.length, theirs.length); b++) {
    const x = mine[b], y = theirs[b];
    if (x === undefined || y === undefined || !sameDigest(x, y)) out.push(b);
  }
  return out;
}
