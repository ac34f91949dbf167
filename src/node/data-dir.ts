/**
 * --data-dir: the shell around the on-disk format (src/core/wal-format.ts) and the recovery rules
 * (src/core/wal-recovery.ts). It opens the dir (lock, identity), replays it into the member at
 * start, then appends every change to the log with group commit and compacts the log into
 * snapshots. The member's write paths call `checkWritable()` before they apply anything and
 * `durable()` before they answer, so an acknowledgement — a client's or a replica's — means the
 * entry is on disk per --fsync:
 *
 * - `always`: written and fdatasync'd before the answer; writes arriving while one fsync runs
 *   share the next one (no deliberate wait).
 * - `batch` (default): the first write of a group waits at most --fsync-interval for others to
 *   join, then one write + fdatasync answers them all (group commit).
 * - `never`: written to the OS before the answer, never synced by dkv: survives the process
 *   dying (kill -9), not a power cut or kernel crash (the OS writes back within ~30 s).
 *
 * A failed write or sync (disk full, I/O error) makes the log unwritable: waiting writes and new
 * ones get 507, reads go on, and after --fsync-interval·200 (at least 1 s) a write attempt
 * tries again by writing a fresh log and a snapshot of everything in memory (which also covers
 * what could not be logged meanwhile).
 */
import type { Config } from "../config.ts";
import { type Scheduler, sleep } from "../core/scheduler.ts";
import { type Entry, EntryWriter, type NodeState, sameNodeState } from "../core/wal-format.ts";
import { logName, type Plan, plan, replay, snapshotName } from "../core/wal-recovery.ts";
import { DkvError } from "../http/errors.ts";
import type { Logger } from "../log.ts";
import { type Disk, type LogFile, PREALLOCATE_BYTES } from "../platform/disk.ts";

export type FsyncMode = "always" | "batch" | "never";

/** What a write path needs of --data-dir (DataDir has it). */
export interface Durability {
  /** Throws 507 when the log cannot be written now: call before applying anything. */
  checkWritable(): void;
  /** Resolves once everything logged so far is durable per --fsync (507 if that failed). */
  durable(): Promise<void>;
}

export interface DurabilityOptions {
  readonly fsync: FsyncMode;
  readonly fsyncIntervalMs: number;
  /** Take a snapshot when the log passes this many bytes and the last snapshot's size. */
  readonly snapshotLogBytes: number;
  readonly repair: boolean;
}

export function durabilityOptions(config: Config): DurabilityOptions {
  return {
    fsync: config.fsync,
    fsyncIntervalMs: config.fsyncIntervalMs,
    snapshotLogBytes: config.snapshotLogBytes,
    repair: config.repairWal,
  };
}

/** One promise for every caller waiting on the same write. */
interface Group {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(e: unknown): void;
}

function group(): Group {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A data dir that cannot be used: main.ts prints the message as one line and exits 1. */
export class DataDirError extends Error {}

const IDENTITY = "IDENTITY";
const CHUNK_BYTES = 1 << 20;
/** After a snapshot could not be written, the next is tried this much later. */
const SNAPSHOT_RETRY_MS = 10_000;

interface Identity {
  format: 1;
  nodeId: string;
  cluster: string;
}

/** What the member gives the log: its state now, and every entry of a snapshot. */
export interface Source {
  state(): NodeState;
  /**
   * Every record and hint, and the Paxos acceptor's state, lazily: the snapshot reads it over
   * many turns of the event loop, so each step must stand on its own (a partition's records
   * copied at once, say).
   */
  capture(): Iterable<Entry>;
}

export interface DiskStatus {
  fsync: FsyncMode;
  /** False after a failed write or sync, until a retry succeeds: writes answer 507 meanwhile. */
  writable: boolean;
  error: string | null;
  errors: number;
  logBytes: number;
  snapshotBytes: number;
  snapshots: number;
  /** Snapshots that could not be written (no room): the log goes on, and grows meanwhile. */
  snapshotErrors: number;
  fsyncs: number;
  /** Entries written in all, and the largest group one write + fsync answered. */
  entries: number;
  largestGroup: number;
  /** Changes that could not be logged while unwritable (covered by the next snapshot). */
  unlogged: number;
}

export class DataDir {
  #plan: Plan | undefined;
  #snapshotBytes: Uint8Array | undefined;
  #logBytes: Uint8Array[] = [];
  #seq = 0;
  #file: LogFile | undefined;
  #source: Source | undefined;
  readonly #w = new EntryWriter();
  /** Entries appended / handed to the write in progress / written (and synced per mode). */
  #appended = 0;
  #taken = 0;
  #written = 0;
  #firstPendingAtMs = 0;
  /** Whoever waits for the entries not handed to a write yet: one promise for all of them. */
  #next: Group | undefined;
  /** Whoever waits for the write in progress. */
  #writing: Group | undefined;
  #running = false;
  #snapshotting: Promise<void> | undefined;
  #lastSnapshotBytes = 0;
  #snapshotWanted = false;
  #snapshotRetryAtMs = 0;
  #failed: string | undefined;
  #retryAtMs = 0;
  #closed = false;
  readonly stats = {
    errors: 0,
    snapshots: 0,
    snapshotErrors: 0,
    fsyncs: 0,
    entries: 0,
    largestGroup: 0,
    unlogged: 0,
  };

  private constructor(
    private readonly disk: Disk,
    private readonly opts: DurabilityOptions,
    private readonly sched: Scheduler,
    private readonly log: Logger,
  ) {}

  /**
   * Open the dir: check (or, when new, write) its identity, plan recovery and read the files.
   * Throws DataDirError with the one-line reason when the dir belongs to another node or
   * cluster, or cannot be read.
   */
  static async open(
    disk: Disk,
    who: { nodeId: string; cluster: string },
    opts: DurabilityOptions,
    sched: Scheduler,
    log: Logger,
  ): Promise<DataDir> {
    const d = new DataDir(disk, opts, sched, log);
    const names = await disk.list();
    if (names.includes(IDENTITY)) {
      const id = parseIdentity(await disk.read(IDENTITY));
      if (id === undefined) throw new DataDirError(`${IDENTITY} file is damaged`);
      if (id.nodeId !== who.nodeId) {
        throw new DataDirError(
          `belongs to node '${id.nodeId}', not '${who.nodeId}' (--node-id, or the address)`,
        );
      }
      if (id.cluster !== who.cluster) {
        throw new DataDirError(
          `belongs to cluster '${id.cluster}', not '${who.cluster}' (--cluster-name)`,
        );
      }
    } else {
      if (names.some((n) => n.endsWith(".wal") || n.endsWith(".snap"))) {
        throw new DataDirError(`has data files but no ${IDENTITY} file`);
      }
      const id: Identity = { format: 1, nodeId: who.nodeId, cluster: who.cluster };
      await disk.writeAtomic(IDENTITY, new TextEncoder().encode(JSON.stringify(id) + "\n"));
    }
    d.#plan = plan(names);
    if (d.#plan.snapshot !== undefined) {
      d.#snapshotBytes = await disk.read(snapshotName(d.#plan.snapshot));
      d.#lastSnapshotBytes = d.#snapshotBytes.length;
    }
    for (const s of d.#plan.logs) d.#logBytes.push(await disk.read(logName(s)));
    return d;
  }

  /**
   * Replay the snapshot and logs into `apply` (synchronously). Throws DataDirError on damage
   * (unless --repair-wal). Returns how many entries, for the log line.
   */
  replay(apply: (e: Entry) => void): { entries: number; note: string } {
    const p = this.#plan!;
    let n = 0;
    const out = replay(p, this.#snapshotBytes, this.#logBytes, this.opts.repair, (e) => {
      n++;
      try {
        apply(e);
      } catch (err) {
        // A whole entry (its checksum matched) that the store refuses: written by a bug.
        throw new DataDirError(`entry ${n} cannot be applied: ${(err as Error).message}`);
      }
    });
    this.#snapshotBytes = undefined;
    const logs = this.#logBytes;
    this.#logBytes = [];
    if (!out.ok) throw new DataDirError(out.message);
    this.#pendingFixes = out;
    this.#seq = Math.max(p.snapshot ?? 0, p.logs.at(-1) ?? 0);
    const notes = [
      p.snapshot === undefined ? "no snapshot" : `snapshot ${p.snapshot}`,
      `${logs.length} log(s), ${logs.reduce((n, b) => n + b.length, 0)} bytes`,
    ];
    if (out.tornBytes > 0) notes.push(`cut a torn tail of ${out.tornBytes} bytes`);
    if (out.repaired !== undefined) {
      notes.push(
        `--repair-wal: dropped ${out.repairedBytes} bytes from ${out.repaired}` +
          (out.dropLogs.length > 0 ? ` and ${out.dropLogs.length} later log(s)` : ""),
      );
    }
    return { entries: out.entries, note: notes.join("; ") };
  }

  #pendingFixes: { truncate: { seq: number; bytes: number }[]; dropLogs: number[] } | undefined;

  /**
   * After replay: carry out its cuts, delete leftovers, and start a fresh log (header and the
   * member's state), synced, before the member serves.
   */
  async start(source: Source): Promise<void> {
    this.#source = source;
    const fixes = this.#pendingFixes ?? { truncate: [], dropLogs: [] };
    for (const t of fixes.truncate) await this.disk.truncate(logName(t.seq), t.bytes);
    for (const s of fixes.dropLogs) await this.disk.remove(logName(s));
    for (const n of this.#plan?.leftovers ?? []) await this.disk.remove(n);
    await this.#openLog(this.#seq + 1);
    await this.disk.syncDir();
  }

  /** A new log `seq`: header and state entry, synced. The old one is closed. */
  async #openLog(seq: number): Promise<void> {
    const f = await this.disk.open(logName(seq), { preallocate: this.#preallocate() });
    if (f.size > 0) await f.truncate(0); // a leftover of an attempt that failed
    const w = new EntryWriter();
    w.header("log");
    w.entry({ type: "state", state: this.#source!.state() });
    await f.append(w.take());
    await f.sync();
    const old = this.#file;
    this.#file = f;
    this.#seq = seq;
    if (old !== undefined) await old.close().catch(() => {});
    this.#kick();
  }

  /**
   * How much of a new log to write ahead as zeros (src/platform/disk.ts): none when nothing is
   * synced (`never`); otherwise a quarter of the size at which the log rolls into a snapshot
   * (at least 16 KiB, at most PREALLOCATE_BYTES), so the zeros add at most a quarter to it.
   */
  #preallocate(): number {
    if (this.opts.fsync === "never") return 0;
    const rollAt = Math.max(this.opts.snapshotLogBytes, this.#lastSnapshotBytes);
    return Math.min(PREALLOCATE_BYTES, Math.max(16 << 10, Math.floor(rollAt / 4)));
  }

  // -------------------------------------------------------------------------------------------
  // Appending.

  /** The state last logged through logState. */
  #stateLogged: NodeState | undefined;

  /** Log the member's state (ring, clock, incarnation, who left) when it changed since the last. */
  logState(state: NodeState): void {
    if (sameNodeState(this.#stateLogged, state)) return;
    this.#stateLogged = state;
    this.append({ type: "state", state });
  }

  /** Log one change (the store and hint store call this for every change they make). */
  append(e: Entry): void {
    if (this.#failed !== undefined || this.#closed) {
      this.stats.unlogged++;
      return;
    }
    if (this.#w.byteLength === 0) this.#firstPendingAtMs = this.sched.now();
    this.#w.entry(e);
    this.#appended++;
    if (this.#groupFull !== undefined && this.#appended - this.#written >= this.#lastGroup) {
      this.#groupFull();
    }
    this.#kick();
  }

  /** Throw 507 if the log cannot be written now (call before applying a write). */
  checkWritable(): void {
    if (this.#failed === undefined) return;
    if (this.sched.now() >= this.#retryAtMs && this.#snapshotting === undefined) {
      this.#retryAtMs = this.sched.now() + this.#retryMs();
      this.#snapshotting = this.#retry().finally(() => (this.#snapshotting = undefined));
    }
    throw unwritable(this.#failed);
  }

  /** Resolves when every entry appended so far is durable per --fsync; 507 if that failed. */
  durable(): Promise<void> {
    if (this.#failed !== undefined) return Promise.reject(unwritable(this.#failed));
    if (this.#appended > this.#taken) {
      this.#kick();
      return (this.#next ??= group()).promise;
    }
    if (this.#written < this.#taken) return (this.#writing ??= group()).promise;
    return Promise.resolve();
  }

  /**
   * Start the write loop after this turn of the event loop, so that every entry the turn
   * appends (a whole batch of requests read from the sockets) shares one write and sync.
   */
  #kick(): void {
    if (this.#running || this.#file === undefined) return;
    this.#running = true;
    this.sched.defer(() => void this.#loop());
  }

  async #loop(): Promise<void> {
    try {
      while (
        (this.#appended > this.#written || this.#shouldSnapshot()) &&
        this.#failed === undefined && !this.#closed
      ) {
        if (this.#appended > this.#written) {
          if (this.opts.fsync === "batch") await this.#gather();
          await this.#flush();
        }
        if (this.#shouldSnapshot()) await this.#rotateAndSnapshot();
      }
    } catch (e) {
      this.#fail(e);
    } finally {
      this.#running = false;
    }
    if (this.#appended > this.#written && this.#failed === undefined && !this.#closed) {
      this.#kick();
    }
  }

  /**
   * --fsync batch: let the group grow for at most --fsync-interval after its first entry, or
   * until it is as large as the last group was (under steady load the writers of the last group
   * are back by then, and waiting longer would only add latency).
   */
  async #gather(): Promise<void> {
    const waitMs = this.#firstPendingAtMs + this.opts.fsyncIntervalMs - this.sched.now();
    if (waitMs <= 0 || this.#appended - this.#written >= this.#lastGroup) return;
    await new Promise<void>((resolve) => {
      const t = this.sched.setTimeout(() => {
        this.#groupFull = undefined;
        resolve();
      }, waitMs);
      this.#groupFull = () => {
        this.sched.clear(t);
        this.#groupFull = undefined;
        resolve();
      };
    });
  }

  /** Set while a batch group gathers: ends the wait once the group is as large as the last. */
  #groupFull: (() => void) | undefined;
  #lastGroup = 1;

  /** Write (and sync per mode) what is pending; answer its waiters. */
  async #flush(): Promise<void> {
    const upTo = this.#appended;
    const group = upTo - this.#written;
    this.#taken = upTo;
    this.#writing = this.#next;
    this.#next = undefined;
    const bytes = this.#w.take();
    const f = this.#file!;
    const before = f.size;
    try {
      await f.append(bytes);
      if (this.opts.fsync !== "never") {
        await f.sync();
        this.stats.fsyncs++;
      }
    } catch (e) {
      // Back to the last whole entry if the disk lets us, so the log stays clean.
      await f.truncate(before).catch(() => {});
      throw e;
    }
    this.#written = upTo;
    this.#lastGroup = Math.max(1, group);
    this.stats.entries += group;
    if (group > this.stats.largestGroup) this.stats.largestGroup = group;
    const done = this.#writing;
    this.#writing = undefined;
    done?.resolve();
  }

  #fail(e: unknown): void {
    const err = e as NodeJS.ErrnoException;
    const message = err.message ?? String(e);
    const reason = err.code === undefined || message.startsWith(err.code)
      ? message
      : `${err.code}: ${message}`;
    this.stats.errors++;
    if (this.#failed === undefined) {
      this.log.error(`--data-dir: writing the log failed (${reason}); writes answer 507`);
    }
    this.#failed = reason;
    this.#retryAtMs = this.sched.now() + this.#retryMs();
    this.#w.take();
    this.stats.unlogged += this.#appended - this.#written;
    this.#written = this.#taken = this.#appended;
    const waiting = [this.#writing, this.#next];
    this.#writing = this.#next = undefined;
    for (const g of waiting) g?.reject(unwritable(reason));
  }

  #retryMs(): number {
    return Math.max(1000, this.opts.fsyncIntervalMs * 200);
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots.

  #logSize(): number {
    return (this.#file?.size ?? 0) + this.#w.byteLength;
  }

  #shouldSnapshot(): boolean {
    if (this.#snapshotting !== undefined) return false;
    if (this.sched.now() < this.#snapshotRetryAtMs) return false;
    return this.#snapshotWanted ||
      this.#logSize() > Math.max(this.opts.snapshotLogBytes, this.#lastSnapshotBytes);
  }

  /**
   * Start log seq+1, then write snapshot seq+1 in the background. Every entry appended before
   * the switch is in the old log (flushed first), every later one in the new log. The snapshot
   * is read from the store after the switch, a partition at a time, while the member goes on
   * serving: each record it holds is then the one of the switch or a newer one, and replaying
   * the new log over it (merge keeps the newest; drops and hint removals come after in the log)
   * ends in the same state as replaying everything. So no pause for a big store.
   */
  async #rotateAndSnapshot(): Promise<void> {
    const seq = this.#seq + 1;
    if (this.#appended > this.#written) await this.#flush();
    // Entries appended from here on wait in the writer and go to the new log.
    await this.#openLog(seq);
    this.#snapshotWanted = false;
    // A snapshot that cannot be written (no room for it) leaves the log as it was: the log goes
    // on, and the next snapshot is tried a while later.
    this.#snapshotting = this.#writeSnapshot(seq)
      .catch((e) => {
        this.stats.snapshotErrors++;
        this.#snapshotRetryAtMs = this.sched.now() + SNAPSHOT_RETRY_MS;
        this.log.warn(`--data-dir: snapshot ${seq} not written (${(e as Error).message})`);
      })
      .finally(() => (this.#snapshotting = undefined));
  }

  /** snap-seq.snap.tmp, synced, renamed; then older snapshots and logs are deleted. */
  async #writeSnapshot(seq: number): Promise<void> {
    const name = snapshotName(seq);
    const tmp = `${name}.tmp`;
    const f = await this.disk.open(tmp);
    let bytes = 0;
    try {
      if (f.size > 0) await f.truncate(0);
      const w = new EntryWriter();
      w.header("snapshot");
      w.entry({ type: "state", state: this.#source!.state() });
      let records = 0;
      // Encoded a megabyte at a time; each append is real I/O, so the member serves in between.
      for (const e of this.#source!.capture()) {
        if (e.type === "record") records++;
        w.entry(e);
        if (w.byteLength >= CHUNK_BYTES) {
          const chunk = w.take();
          await f.append(chunk);
          bytes += chunk.length;
        }
      }
      w.entry({ type: "end", records });
      const last = w.take();
      await f.append(last);
      bytes += last.length;
      await f.sync();
    } catch (e) {
      await f.close().catch(() => {});
      await this.disk.remove(tmp).catch(() => {});
      throw e;
    }
    await f.close();
    await this.disk.rename(tmp, name);
    await this.disk.syncDir();
    this.#lastSnapshotBytes = bytes;
    this.stats.snapshots++;
    for (const n of await this.disk.list()) {
      const m = /^(log|snap)-(\d+)\./.exec(n);
      if (m && Number(m[2]) < seq && !n.endsWith(".tmp")) await this.disk.remove(n);
    }
    this.log.debug(`--data-dir: snapshot ${seq} written (${bytes} bytes); older files removed`);
  }

  /**
   * After a failure: a fresh log, then appends resume. Changes made while the log could not be
   * written were not logged: writes were refused before they were applied, so those are only
   * what the member took in by itself (anti-entropy, hint delivery, a write that got its 507
   * after it was applied), which repair brings back after a restart anyway; a snapshot, asked
   * for at once, covers them too.
   */
  async #retry(): Promise<void> {
    try {
      const old = this.#file;
      this.#file = undefined; // appends wait in the writer until the new log is open
      await old?.close().catch(() => {});
      this.#failed = undefined;
      this.#w.take();
      this.#written = this.#taken = this.#appended;
      await this.#openLog(this.#seq + 1);
      this.log.info(`--data-dir: the log is writable again (log ${this.#seq})`);
      this.#snapshotWanted = true;
      this.#kick();
    } catch (e) {
      this.#fail(e);
    }
  }

  status(): DiskStatus {
    return {
      fsync: this.opts.fsync,
      writable: this.#failed === undefined,
      error: this.#failed?.slice(0, 1000) ?? null,
      errors: this.stats.errors,
      logBytes: this.#logSize(),
      snapshotBytes: this.#lastSnapshotBytes,
      snapshots: this.stats.snapshots,
      snapshotErrors: this.stats.snapshotErrors,
      fsyncs: this.stats.fsyncs,
      entries: this.stats.entries,
      largestGroup: this.stats.largestGroup,
      unlogged: this.stats.unlogged,
    };
  }

  /** Take a snapshot now (tests, and the bench); resolves when it is written. */
  async snapshotNow(): Promise<void> {
    while (this.#running || this.#snapshotting !== undefined) {
      await (this.#snapshotting ?? sleep(this.sched, 1));
    }
    this.#running = true;
    try {
      await this.#rotateAndSnapshot();
    } finally {
      this.#running = false;
    }
    await this.#snapshotting;
    this.#kick();
  }

  /** Flush what is pending and close the log (a graceful exit). */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.durable().catch(() => {});
    await this.#snapshotting;
    this.#closed = true;
    await this.#file?.close().catch(() => {});
  }
}

function unwritable(reason: string): DkvError {
  return new DkvError(
    "disk_error",
    `this member cannot write its log (${reason}); reads still work, writes are refused ` +
      `until the disk has room again`,
  );
}

function parseIdentity(bytes: Uint8Array): Identity | undefined {
  try {
    const o = JSON.parse(new TextDecoder().decode(bytes));
    if (o?.format === 1 && typeof o.nodeId === "string" && typeof o.cluster === "string") {
      return o as Identity;
    }
  } catch {
    // Damaged.
  }
  return undefined;
}
