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
  const byVersion = compareVersions(incoming.version, current.version);
  if (byVersion !== 0) return byVersion > 0 ? incoming : current;
  // Equal versions with different content (a node restarted with its clock behind and reissued
  // a version): break the tie on content so every replica keeps the same record.
  return compareContent(incoming, current) > 0 ? incoming : current;
}

/** Tombstones win ties; then the greater value. 0 when the content is the same. */
function compareContent(a: KvRecord, b: KvRecord): number {
  if (a.tombstone !== b.tombstone) return a.tombstone ? 1 : -1;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
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

/** Same version and same content: the same write, seen twice. */
export function sameRecord(a: KvRecord, b: KvRecord): boolean {
  return compareVersions(a.version, b.version) === 0 && a.tombstone === b.tombstone &&
    a.value === b.value;
}
