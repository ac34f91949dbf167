/**
 * Placement: key → partition → replica set.
 *
 * A key lives in partition `murmur3(key) mod P`. A partition's replicas are the first N ring
 * members ordered by rendezvous (highest-random-weight) hashing of (partition, memberId), so
 * adding or removing one member moves only the partitions it wins or held (~1/(n+1) of them).
 * The table is computed once per membership view, so a request does one hash and one array read.
 */
import { murmur3 } from "./hash.ts";

/** Seed for key → partition hashing. Part of the on-the-wire contract: never change it. */
export const KEY_SEED = 0;

export function partitionOf(key: string, partitions: number): number {
  return murmur3(key, KEY_SEED) % partitions;
}

/** Rendezvous weight of a member for a partition: the member id hashed with the partition as seed. */
export function rendezvousWeight(partition: number, memberId: string): number {
  return murmur3(memberId, (partition * 0x9e3779b1) >>> 0);
}

/** Member ids ordered by descending weight for one partition; ties broken by id. */
export function preferenceOrder(partition: number, memberIds: readonly string[]): string[] {
  return memberIds
    .map((id) => ({ id, w: rendezvousWeight(partition, id) }))
    .sort((a, b) => b.w - a.w || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((e) => e.id);
}

/** Replica ids for every partition: `table[p]` is the first `min(N, members)` by preference. */
export function buildPartitionTable(
  memberIds: readonly string[],
  partitions: number,
  replicationFactor: number,
): string[][] {
  const n = Math.min(replicationFactor, memberIds.length);
  const table: string[][] = [];
  for (let p = 0; p < partitions; p++) {
    table.push(preferenceOrder(p, memberIds).slice(0, n));
  }
  return table;
}

/**
 * Consistency levels. `one`, `quorum` and `all` count acknowledgements only from distinct members
 * that are the key's replicas; `any` (as in Cassandra) is satisfied by one member holding the
 * write, a replica or a hint holder.
 */
export type Consistency = "one" | "quorum" | "all" | "any";

/** Number of acknowledgements a request needs: `one`/`any` 1, majority (`quorum`) or `all` of n. */
export function requiredAcks(consistency: Consistency, n: number): number {
  if (n <= 0) return 1;
  switch (consistency) {
    case "one":
    case "any":
      return 1;
    case "quorum":
      return Math.floor(n / 2) + 1;
    case "all":
      return n;
  }
}
