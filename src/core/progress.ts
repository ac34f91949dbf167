/**
 * Progress of a long background job (a rebalance round, an anti-entropy round) as log fields:
 * done/total for partitions, keys and bytes, the rates so far, and an ETA. Pure: the caller
 * passes the clock's reading.
 *
 * The ETA extrapolates the slowest-known measure: bytes when their total is known (a rebalance
 * plans them at its start), else partitions (anti-entropy only learns the keys it moves as it
 * goes). Undefined (null in the fields) until something is done.
 */
export interface Progress {
  readonly startedAtMs: number;
  readonly partitionsDone: number;
  readonly partitionsTotal: number;
  readonly keysDone: number;
  /** Unknown for anti-entropy: it finds the keys that differ as it goes. */
  readonly keysTotal?: number;
  readonly bytesDone: number;
  readonly bytesTotal?: number;
}

export interface ProgressFields {
  readonly [k: string]: string | number | null;
  partitions: string;
  keys: string;
  bytes: string;
  keysPerSec: number;
  bytesPerSec: number;
  elapsedS: number;
  etaS: number | null;
}

export function progressFields(p: Progress, nowMs: number): ProgressFields {
  const elapsedMs = Math.max(1, nowMs - p.startedAtMs);
  const perSec = (n: number) => Math.round((n * 1000) / elapsedMs);
  const of = (done: number, total: number | undefined) =>
    total === undefined ? String(done) : `${done}/${total}`;
  let fraction: number | undefined;
  if (p.bytesTotal !== undefined && p.bytesTotal > 0) fraction = p.bytesDone / p.bytesTotal;
  else if (p.partitionsTotal > 0) fraction = p.partitionsDone / p.partitionsTotal;
  const etaS = fraction === undefined || fraction <= 0
    ? null
    : Math.max(0, Math.round((elapsedMs * (1 - fraction)) / fraction / 1000));
  return {
    partitions: of(p.partitionsDone, p.partitionsTotal),
    keys: of(p.keysDone, p.keysTotal),
    bytes: of(p.bytesDone, p.bytesTotal),
    keysPerSec: perSec(p.keysDone),
    bytesPerSec: perSec(p.bytesDone),
    elapsedS: Math.round(elapsedMs / 1000),
    etaS,
  };
}
