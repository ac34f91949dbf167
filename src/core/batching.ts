/**
 * Bounded batches: split a sequence of records into batches of at most `keysMax` records and
 * about `bytesMax` bytes (a single record larger than `bytesMax` travels alone).
 */
import { type KvRecord, utf8Of, type Value } from "./record.ts";

export interface BatchLimits {
  readonly keysMax: number;
  readonly bytesMax: number;
}

/** Approximate wire size of a record: key + value + version + framing. */
export function recordBytes(r: KvRecord): number {
  const utf8 = r.tombstone ? undefined : utf8Of(r);
  const value = utf8 === undefined ? valueUnits(r.value) : utf8.length;
  return r.key.length + value + r.version.nodeId.length + 48;
}

/** Approximate wire size of a value: its UTF-16 units as text, its base64 length as bytes. */
export function valueUnits(v: Value): number {
  return typeof v === "string" ? v.length : Math.ceil(v.length / 3) * 4;
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

/** End index (exclusive) of the batch that starts at `start`: at least one record. */
export function batchEnd(records: readonly KvRecord[], start: number, limits: BatchLimits): number {
  let end = start;
  let bytes = 0;
  while (end < records.length) {
    const size = recordBytes(records[end]!);
    if (end > start && (end - start >= limits.keysMax || bytes + size > limits.bytesMax)) break;
    bytes += size;
    end++;
  }
  return end;
}
