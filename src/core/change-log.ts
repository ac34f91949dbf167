/**
 * The recent client writes a data node applied, numbered, for watches (GET ...?watch=true). A
 * member serving a watch polls every data node for the entries after the last number it saw
 * (/internal/v1/watch/poll) and delivers each change once, by version, whichever replica
 * reported it first.
 *
 * Only client writes are logged (a coordinator's write to a replica): moves, anti-entropy, hints
 * and read repair carry writes some replica already logged. Bounded: at most `capacity` entries,
 * the oldest dropped first; a poll from before the oldest kept entry is told `gap` (it catches up
 * by listing). Idle: entries are kept only while some member polled within `idleMs`, so a node
 * nobody watches keeps none (the numbers go on, so a poller that comes back sees a gap).
 * `epoch` names this log: a node that restarted has a new one, and its numbers start again.
 */
import { detached, type KvRecord } from "./record.ts";
import type { Scheduler } from "./scheduler.ts";

/** Polls waiting for an entry, at most (past it a poll answers at once: the poller asks again). */
const WAITERS_MAX = 10_000;

export interface ChangeSlice {
  /** The entries after the asked number that match, oldest first. */
  readonly records: KvRecord[];
  /** The number to ask after next time (the last entry looked at, matching or not). */
  readonly seq: number;
  /** Entries after the asked number were dropped (or the log is another epoch's). */
  readonly gap: boolean;
}

export class ChangeLog {
  #entries: (KvRecord | undefined)[];
  /** Number of the next entry; entries first.. next-1 are kept (at most capacity). */
  #next = 1;
  #first = 1;
  #activeUntilMs = -Infinity;
  readonly #waiters = new Set<() => void>();

  constructor(
    readonly epoch: string,
    readonly capacity: number,
    readonly idleMs: number,
  ) {
    this.#entries = new Array<KvRecord | undefined>(capacity);
  }

  /** Number of the last entry (0 before any). */
  get last(): number {
    return this.#next - 1;
  }

  /** A member polled: keep logging for another idleMs. */
  touch(nowMs: number): void {
    this.#activeUntilMs = nowMs + this.idleMs;
  }

  /** Log a client write the store took (only while someone polls). */
  append(r: KvRecord, nowMs: number): void {
    if (nowMs > this.#activeUntilMs) {
      if (this.#first !== this.#next) this.#entries.fill(undefined);
      this.#next++;
      this.#first = this.#next;
      return;
    }
    this.#entries[this.#next % this.capacity] = detached(r);
    this.#next++;
    if (this.#next - this.#first > this.capacity) this.#first = this.#next - this.capacity;
    for (const wake of [...this.#waiters]) wake();
  }

  /** Resolves at the next entry, or after `ms` (the caller's long poll). */
  waitForMore(sched: Scheduler, ms: number): Promise<void> {
    if (this.#waiters.size >= WAITERS_MAX) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        this.#waiters.delete(wake);
        sched.clear(timer);
        resolve();
      };
      const timer = sched.setTimeout(wake, ms);
      this.#waiters.add(wake);
    });
  }

  /**
   * Entries after `after` whose key starts with `prefix` (or is `key`, when given), at most
   * `limit` of them.
   */
  since(after: number, prefix: string, key: string | undefined, limit: number): ChangeSlice {
    const gap = after + 1 < this.#first || after > this.last;
    let i = Math.max(after + 1, this.#first);
    const records: KvRecord[] = [];
    for (; i < this.#next && records.length < limit; i++) {
      const r = this.#entries[i % this.capacity]!;
      if (key !== undefined ? r.key === key : r.key.startsWith(prefix)) records.push(r);
    }
    return { records, seq: i - 1, gap };
  }
}
