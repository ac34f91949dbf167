/**
 * Bounded batches: split a sequence of records into batches of at most `keysMax` records and
 * about `bytesMax` bytes (a single record larger than `bytesMax` travels alone).
 */
import type { KvRecord } from "./record.ts";

export interface BatchLimits {
  readonly keysMax: number;
  readonly bytesMax: number;
}

/** Approximate wire size of a record: key + value + version + framing. */
export function recordBytes(r: KvRecord): number {
  return r.key.length + r.value.length + r.version.nodeId.length + 48;
}

export function* batches(records: Iterable<KvRecord>, limits: BatchLimits): Generator<KvRecord[]> {
  let batch: KvRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    const size = recordBytes(r);
    if (batch.length > 0 && (batch.length >= limits.keysMax || bytes + size > limits.bytesMax)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(r);
    bytes += size;
  }
  if (batch.length > 0) yield batch;
}
