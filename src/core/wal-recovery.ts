/**
 * Recovery rules for --data-dir, as pure decisions over file names and bytes (the shell in
 * src/node/data-dir.ts reads the files and carries the decisions out).
 *
 * Files: `log-<seq>.wal` (the write-ahead log, one file per generation) and `snap-<seq>.snap`
 * (the whole store when log `seq` was started). A snapshot is written as `.tmp`, synced, then
 * renamed, and only after that are older logs and snapshots deleted, so:
 *
 * 1. The newest snapshot is loaded; it must be whole (its `end` entry counts its records) —
 *    otherwise the data dir is damaged. Logs older than it, and `.tmp` files, are leftovers of a
 *    compaction cut short, and are deleted.
 * 2. Logs from the snapshot's seq on are replayed in order; their seqs must have no gap.
 * 3. A torn tail (a log ends inside an entry, or in zeros) is cut off: those writes were
 *    never acknowledged. Zeros where an entry's frame should be end the log: a preallocated
 *    log's space not written yet (cut off quietly when only zeros follow), or, after a power
 *    cut, blocks of later unsynced writes that reached the disk while earlier ones did not
 *    (a sync covers every earlier write, so none of them was acknowledged). Anything else that
 *    does not read (a bad checksum or length with more data after it, an entry whose fields do
 *    not parse) is damage: recovery stops with one line naming file and offset, unless `repair`
 *    (--repair-wal), which keeps the valid prefix and drops the rest (and every later log),
 *    saying how many bytes.
 */
import { type Entry, type FileKind, scanFile } from "./wal-format.ts";

export interface DataFile {
  readonly kind: FileKind;
  readonly seq: number;
}

const NAME = /^(log|snap)-(\d{1,15})\.(wal|snap)$/;

export function logName(seq: number): string {
  return `log-${String(seq).padStart(12, "0")}.wal`;
}

export function snapshotName(seq: number): string {
  return `snap-${String(seq).padStart(12, "0")}.snap`;
}

/** The data file a name stands for, or undefined for any other file. */
export function parseName(name: string): DataFile | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  const kind = m[1] === "log" ? "log" : "snapshot";
  if ((kind === "log") !== (m[3] === "wal")) return undefined;
  return { kind, seq: Number(m[2]) };
}

export interface Plan {
  /** The snapshot to load, if any. */
  readonly snapshot?: number;
  /** Logs to replay, in order. */
  readonly logs: number[];
  /** Files to delete before starting (leftovers of a compaction cut short). */
  readonly leftovers: string[];
  /** Set when the logs have a gap: the data dir is damaged. */
  readonly gap?: string;
}

/** Which files recovery reads, from the names in the data dir. */
export function plan(names: readonly string[]): Plan {
  const snaps: number[] = [];
  const logs: number[] = [];
  const leftovers: string[] = [];
  for (const n of names) {
    if (n.endsWith(".tmp")) leftovers.push(n);
    const f = parseName(n);
    if (f === undefined) continue;
    (f.kind === "log" ? logs : snaps).push(f.seq);
  }
  snaps.sort((a, b) => a - b);
  logs.sort((a, b) => a - b);
  const snapshot = snaps.at(-1);
  for (const s of snaps.slice(0, -1)) leftovers.push(snapshotName(s));
  const keep = snapshot === undefined ? logs : logs.filter((s) => s >= snapshot);
  for (const s of logs) if (!keep.includes(s)) leftovers.push(logName(s));
  let gap: string | undefined;
  for (let i = 1; i < keep.length; i++) {
    if (keep[i] !== keep[i - 1]! + 1) {
      gap = `log ${logName(keep[i - 1]! + 1)} is missing (have ${logName(keep[i]!)})`;
      break;
    }
  }
  if (gap === undefined && snapshot !== undefined && keep.length > 0 && keep[0] !== snapshot) {
    gap = `log ${logName(snapshot)} (written with ${snapshotName(snapshot)}) is missing`;
  }
  return {
    ...(snapshot === undefined ? {} : { snapshot }),
    logs: keep,
    leftovers,
    ...(gap === undefined ? {} : { gap }),
  };
}

/** What recovery did, or the one-line reason it refused. */
export type Outcome =
  | {
    readonly ok: true;
    /** Entries applied (snapshot and logs). */
    readonly entries: number;
    /** Logs to cut short: torn tails, and under repair the damaged log's valid prefix. */
    readonly truncate: { readonly seq: number; readonly bytes: number }[];
    /** Logs to delete (after a repaired damage). */
    readonly dropLogs: number[];
    /** Bytes of torn tails cut off (never acknowledged writes). */
    readonly tornBytes: number;
    /** Under repair: bytes dropped from the damage on, and where it was (for the log line). */
    readonly repairedBytes: number;
    readonly repaired?: string;
  }
  | { readonly ok: false; readonly message: string };

/**
 * Replay a snapshot and logs into `apply`, deciding what to keep. `snapshot` and `logs` are the
 * bytes of the plan's snapshot (undefined when none) and logs, in the plan's order.
 *
 * A torn tail is cut from any log, not only the last: a log is left behind with a torn tail when
 * an append failed (a full disk) and the member went on in a new log once it could; the writes
 * in that tail were answered with an error, never acknowledged.
 */
export function replay(
  p: Plan,
  snapshot: Uint8Array | undefined,
  logs: readonly Uint8Array[],
  repair: boolean,
  apply: (e: Entry) => void,
): Outcome {
  if (p.gap !== undefined) return { ok: false, message: p.gap };
  let entries = 0;
  if (p.snapshot !== undefined && snapshot !== undefined) {
    const name = snapshotName(p.snapshot);
    let end: number | undefined;
    let records = 0;
    const s = scanFile(snapshot, "snapshot", (e) => {
      if (e.type === "end") end = e.records;
      else if (end === undefined) {
        if (e.type === "record") records++;
        apply(e);
        entries++;
      }
    });
    if (s.problem !== undefined) {
      return { ok: false, message: `${name}: ${s.problem.reason} at byte ${s.problem.offset}` };
    }
    if (end === undefined || end !== records) {
      return { ok: false, message: `${name}: incomplete snapshot (no end entry)` };
    }
  }
  const truncate: { seq: number; bytes: number }[] = [];
  let tornBytes = 0;
  for (let i = 0; i < p.logs.length; i++) {
    const seq = p.logs[i]!;
    const bytes = logs[i]!;
    const s = scanFile(bytes, "log", (e) => {
      apply(e);
      entries++;
    });
    if (s.problem === undefined) {
      if (s.zeroTail !== undefined) truncate.push({ seq, bytes: s.validBytes });
      continue;
    }
    if (s.problem.kind === "torn") {
      truncate.push({ seq, bytes: s.validBytes });
      tornBytes += bytes.length - s.validBytes;
      continue;
    }
    const where = `${logName(seq)} at byte ${s.problem.offset} of ${bytes.length}`;
    const dropped = bytes.length - s.validBytes +
      logs.slice(i + 1).reduce((n, b) => n + b.length, 0);
    if (!repair) {
      return {
        ok: false,
        message: `${where}: ${s.problem.reason}; start with --repair-wal to keep the ` +
          `${s.validBytes} valid bytes before it and drop the ${dropped} after`,
      };
    }
    truncate.push({ seq, bytes: s.validBytes });
    return {
      ok: true,
      entries,
      truncate,
      dropLogs: p.logs.slice(i + 1),
      tornBytes,
      repairedBytes: dropped,
      repaired: `${where} (${s.problem.reason})`,
    };
  }
  return { ok: true, entries, truncate, dropLogs: [], tornBytes, repairedBytes: 0 };
}
