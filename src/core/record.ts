/**
 * A stored record and the merge rule. Replicas converge because merge is deterministic,
 * commutative and idempotent: the record with the greater version wins, whatever order
 * writes arrive in. A delete is a record too (a tombstone), so it wins over older values.
 */
import { compareVersions, type Version } from "./hlc.ts";

export interface KvRecord {
  readonly key: string;
  /** UTF-8 text; empty for a tombstone. */
  readonly value: string;
  readonly version: Version;
  readonly tombstone: boolean;
}

/** The record that should be kept when `incoming` meets `current` (undefined = none stored). */
export function merge(current: KvRecord | undefined, incoming: KvRecord): KvRecord {
  if (current === undefined) return incoming;
  return compareVersions(incoming.version, current.version) > 0 ? incoming : current;
}

/** The newest of several answers (undefined entries = replica had nothing). */
export function newest(records: readonly (KvRecord | undefined)[]): KvRecord | undefined {
  let best: KvRecord | undefined;
  for (const r of records) if (r !== undefined) best = merge(best, r);
  return best;
}

export function isLive(r: KvRecord | undefined): r is KvRecord {
  return r !== undefined && !r.tombstone;
}
