/**
 * Rebalancing: when the ring's ownership changes, stream each partition from its old owners to
 * its new ones (the move planner says who sends what), in bounded batches, throttled, retried
 * from where it stopped after a failure. A node that no longer owns a partition drops it only
 * after every new owner acknowledged every batch, and only after the new ring had time to reach
 * every member (two view-push intervals: the orchestrator, or the duty holder, pushes its whole
 * table to everyone every interval), so a coordinator still on the old ring is not sent to a
 * member that no longer has the data. Records written during the hand-off are streamed in
 * catch-up passes until a pass finds nothing new; if writes never settle the partition is kept
 * (the orphan check tries again later). A later ring change replaces the plan.
 *
 * Partitions this node newly owns are "moving in" until it has merged the copies of enough of
 * their previous owners (`sourcesNeeded`: 2 of 3) — each one's stream said done (every task ends
 * with done, an empty one too), or anti-entropy found this copy in sync with it while it holds the
 * partition (see AntiEntropy.fill); while moving in, this node tells readers it does not hold them
 * yet (so its "nothing here" is not taken for "not found").
 */
import { recordBytes } from "../core/batching.ts";
import type { Progress } from "../core/progress.ts";
import { mutations } from "../core/mutations.ts";
import {
  type Incoming,
  incoming,
  mergedFrom,
  type MoveTask,
  planMoves,
  tablesDiffer,
} from "../core/move-planner.ts";
import type { KvRecord } from "../core/record.ts";
import type { Ring } from "../core/view.ts";
import { type Scheduler, sleep } from "../core/scheduler.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { type PeerClient, PeerError, toWire } from "../transport/index.ts";
import type { MoveSource, MoveWatch, Store } from "./store.ts";

/**
 * Catch-up passes for records written during a hand-off, before the drop. If the partition still
 * changed in the last pass it is not dropped (the orphan check retries later).
 */
const DROP_PASSES_MAX = 5;

export interface RebalanceStats {
  partitionsSent: number;
  keysSent: number;
  bytesSent: number;
  partitionsDropped: number;
  lastStartedAtMs: number | null;
  lastFinishedAtMs: number | null;
  lastDurationMs: number | null;
  /**
   * When the last round's planned streams were all acknowledged (its drops may still wait for
   * the ring to spread, and their catch-up passes are not counted), how long after its start,
   * and the bytes sent to targets by then (each copy counted).
   */
  lastStreamedAtMs: number | null;
  lastStreamMs: number | null;
  lastStreamBytes: number | null;
}

export class Rebalancer {
  #table: string[][] | undefined;
  #generation = 0;
  #pending: MoveTask[] = [];
  #running = 0;
  /** Streamed partitions waiting for the ring to spread before their drop. */
  #dropsWaiting = 0;
  /** When the current ring was adopted (drops wait dropDelayMs from it). */
  #ringAtMs = 0;
  #roundStartMs = 0;
  /** Records streamed this round, each counted once however many targets it went to. */
  #roundKeys = 0;
  #roundBytes = 0;
  /** Records sent this round, once per target, and their bytes. */
  #roundCopies = 0;
  #roundCopyBytes = 0;
  /** The round's planned streams all ended (only drops, and their catch-ups, may be left). */
  #roundStreamed = false;
  #roundPartitions = 0;
  /** Partitions this node is receiving: partition → whom from, and whose copies it merged. */
  readonly movingIn = new Map<number, Incoming>();
  /** Partitions held but not owned at the last orphan check (dropped if still so next time). */
  #orphans = new Set<number>();
  /** Rate limiter: when the next batch may go. */
  #nextSendAtMs = 0;
  readonly stats: RebalanceStats = {
    partitionsSent: 0,
    keysSent: 0,
    bytesSent: 0,
    partitionsDropped: 0,
    lastStartedAtMs: null,
    lastFinishedAtMs: null,
    lastDurationMs: null,
    lastStreamedAtMs: null,
    lastStreamMs: null,
    lastStreamBytes: null,
  };

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly peers: PeerClient,
    private readonly log: Logger,
    private readonly ring: () => Ring | undefined,
    private readonly sched: Scheduler,
  ) {}

  get movingOut(): number {
    return this.#pending.length + this.#running + this.#dropsWaiting;
  }

  get busy(): boolean {
    return this.movingOut > 0;
  }

  /**
   * A new ring arrived: plan the moves from the previous table to this one. `first` is the table
   * to plan from when this node has none yet (the ring without itself when it just joined).
   */
  onRing(ring: Ring, first?: string[][]): void {
    const before = this.#table ?? first;
    this.#table = ring.table;
    if (before !== undefined && !tablesDiffer(before, ring.table)) return;
    this.#ringAtMs = this.sched.now();
    const plan = planMoves({
      self: this.config.nodeId,
      oldTable: before,
      newTable: ring.table,
      held: (p) => this.store.partitionSize(p) > 0,
      // A LEFT member is handing its own data off, so it counts as a live sender.
      alive: (id) => ring.isServing(id),
    });
    this.#generation++;
    this.#pending = [...plan.tasks];
    // Still moving in what we still own; newly owned partitions join them.
    for (const p of [...this.movingIn.keys()]) {
      if (!ring.table[p]?.includes(this.config.nodeId)) this.movingIn.delete(p);
    }
    for (const p of plan.movingIn) {
      const x = incoming(before?.[p] ?? []);
      this.movingIn.set(p, x);
      for (const from of this.#doneBeforeRing.get(p) ?? []) this.onMoveDone(p, from);
    }
    this.#doneBeforeRing.clear();
    this.#orphans.clear();
    if (plan.tasks.length === 0) return;
    this.#startRound(plan.tasks);
    const drops = plan.tasks.filter((t) => t.drop).length;
    this.log.info(
      `rebalance start: ${plan.tasks.length} partitions to stream (${drops} to hand off and drop), ` +
        `${plan.movingIn.length} moving in`,
    );
    this.#pump();
  }

  /**
   * Periodic safety net: data held for partitions this node does not own (e.g. received from a
   * sender with a newer view, or left over from an interrupted move) is handed to the owners,
   * if it is still unowned at the next check.
   */
  checkOrphans(): void {
    const ring = this.ring();
    if (ring === undefined || this.busy) return;
    const orphans = new Set<number>();
    for (let p = 0; p < ring.table.length; p++) {
      const owners = ring.table[p]!;
      if (
        this.store.partitionSize(p) > 0 && owners.length > 0 && !owners.includes(this.config.nodeId)
      ) {
        orphans.add(p);
      }
    }
    const confirmed = [...orphans].filter((p) => this.#orphans.has(p));
    this.#orphans = orphans;
    if (confirmed.length === 0) return;
    const tasks = confirmed.map((p) => ({
      partition: p,
      targets: [...ring.table[p]!],
      drop: true,
    }));
    this.#pending.push(...tasks);
    this.#startRound(tasks);
    this.log.info(
      `rebalance start: ${confirmed.length} orphaned partitions to hand to their owners`,
    );
    this.#pump();
  }

  /**
   * Treat these partitions as moving in (incomplete) until a sender or anti-entropy says done;
   * `from` are the members that may hold what this node misses (any one of them completes it:
   * they are every other ring member, not a partition's owners).
   */
  markMovingIn(partitions: readonly number[], from: readonly string[]): void {
    for (const p of partitions) this.movingIn.set(p, incoming(from, 1));
  }

  /** Who owned a moving-in partition before (asked by AntiEntropy.fill). */
  movingFrom(p: number): readonly string[] {
    return this.movingIn.get(p)?.from ?? [];
  }

  /**
   * "Done" for partitions that arrived before this node had any ring (a sender with a newer view
   * was quicker than our own first view), with their senders; applied when the first plan is made.
   */
  readonly #doneBeforeRing = new Map<number, string[]>();

  /**
   * `from` finished streaming a partition to us, or anti-entropy found our copy in sync with its
   * (`from` holding it); without `from`: nobody holds anything of it (complete at once).
   */
  onMoveDone(partition: number, from?: string): void {
    if (this.#table === undefined) {
      const list = this.#doneBeforeRing.get(partition) ?? [];
      if (this.#doneBeforeRing.size < 65_536 && list.length < 64) {
        this.#doneBeforeRing.set(partition, [...list, from ?? ""]);
      }
      return;
    }
    const x = this.movingIn.get(partition);
    if (x === undefined) return;
    const ring = this.ring();
    const complete = from === undefined || from === "" ||
      mergedFrom(x, from, (id) => ring?.byId.has(id) ?? true);
    if (complete) this.movingIn.delete(partition);
  }

  /** A round starts: its figures from zero, its totals from what the tasks will stream. */
  #startRound(tasks: readonly MoveTask[]): void {
    this.#roundStartMs = this.sched.now();
    this.#roundKeys =
      this.#roundBytes =
      this.#roundPartitions =
      this.#roundCopies =
      this.#roundCopyBytes =
        0;
    this.#roundStreamed = false;
    this.#roundPartitionsTotal = tasks.length;
    this.#roundKeysTotal = 0;
    this.#roundBytesTotal = 0;
    // Bytes as recordBytes counts them (key, value, version and framing), about: the version's
    // node id is taken to be this node's.
    const perRecord = recordBytes({
      key: "",
      value: "",
      version: { wallMs: 0, counter: 0, nodeId: this.config.nodeId },
    } as KvRecord);
    for (const t of tasks) {
      const n = this.store.partitionSize(t.partition);
      this.#roundKeysTotal += n;
      this.#roundBytesTotal += this.store.partitionBytes(t.partition) + n * perRecord;
    }
    this.stats.lastStartedAtMs = this.#roundStartMs;
  }

  /** Partitions, keys and bytes of the round, planned at its start (writes may add a few). */
  #roundPartitionsTotal = 0;
  #roundKeysTotal = 0;
  #roundBytesTotal = 0;

  /**
   * How far the running round is (for the progress line), or undefined when none runs. Keys and
   * bytes count each record once, as the end line does; totals are taken at the round's start.
   */
  progress(): Progress | undefined {
    if (this.#roundStartMs === 0 || !this.busy) return undefined;
    return {
      startedAtMs: this.#roundStartMs,
      partitionsDone: this.#roundPartitions,
      partitionsTotal: Math.max(this.#roundPartitionsTotal, this.#roundPartitions),
      keysDone: this.#roundKeys,
      keysTotal: Math.max(this.#roundKeysTotal, this.#roundKeys),
      bytesDone: this.#roundBytes,
      bytesTotal: Math.max(this.#roundBytesTotal, this.#roundBytes),
    };
  }

  #pump(): void {
    while (this.#running < this.config.rebalanceConcurrency && this.#pending.length > 0) {
      const task = this.#pending.shift()!;
      this.#running++;
      const generation = this.#generation;
      void this.#run(task, generation).finally(() => {
        this.#running--;
        this.#pump();
        if (this.#running === 0 && this.#pending.length === 0) this.#streamsEnded();
        if (!this.busy) this.#finishRound();
      });
    }
  }

  /** The round's planned streams are all acknowledged: note when (the rate a stream reached). */
  #streamsEnded(): void {
    if (this.#roundStartMs === 0 || this.#roundStreamed) return;
    this.#roundStreamed = true;
    const now = this.sched.now();
    this.stats.lastStreamedAtMs = now;
    this.stats.lastStreamMs = now - this.#roundStartMs;
    this.stats.lastStreamBytes = this.#roundCopyBytes;
  }

  #finishRound(): void {
    if (this.#roundStartMs === 0) return;
    const ms = this.sched.now() - this.#roundStartMs;
    this.stats.lastFinishedAtMs = this.sched.now();
    this.stats.lastDurationMs = ms;
    const mb = this.#roundBytes / 1e6;
    const streamed = this.#roundStreamed && this.stats.lastStreamMs !== null
      ? `; streams took ${this.stats.lastStreamMs} ms (${
        rate(this.stats.lastStreamBytes! / 1e6, this.stats.lastStreamMs)
      } MB/s to the targets)`
      : "";
    this.log.info(
      `rebalance end: ${this.#roundPartitions} partitions, ${this.#roundKeys} keys ` +
        `(${this.#roundCopies} copies to their targets), ` +
        `${mb.toFixed(1)} MB in ${ms} ms (${
          ms > 0 ? ((this.#roundKeys * 1000) / ms).toFixed(0) : "-"
        } keys/s, ${rate(mb, ms)} MB/s)${streamed}`,
    );
    this.#roundStartMs = 0;
  }

  /**
   * Stream one partition to its targets; retry a failed batch with backoff. Before a drop, any
   * record written to the partition since the snapshot (by a coordinator still on an older view)
   * is streamed too, so nothing acknowledged here is dropped unsent.
   */
  async #run(task: MoveTask, generation: number): Promise<void> {
    const p = task.partition;
    if (task.drop && task.targets.length === 0) {
      this.log.warn(`partition ${p} has no owner to hand it to: kept`);
      return;
    }
    // Writes from here on are noted (the catch-up passes send them); the slots held now are
    // streamed, each batch encoded from the arena when it goes.
    const watch = task.drop ? this.store.watch(p) : undefined;
    let handedOn = false;
    try {
      if (!(await this.#stream(task, this.store.moveSource(p), generation))) return;
      if (watch !== undefined && !mutations.dropRightAfterStream) {
        // The wait for the ring to spread holds no streaming slot: other partitions go on.
        this.#dropsWaiting++;
        handedOn = true;
        void this.#catchUpAndDrop(task, watch, generation).finally(() => {
          this.store.unwatch(watch);
          this.#dropsWaiting--;
          if (!this.busy) this.#finishRound();
        });
        return;
      }
      this.#done(task);
    } finally {
      if (watch !== undefined && !handedOn) this.store.unwatch(watch);
    }
  }

  /**
   * Keep answering for a streamed partition until the new ring has reached every member, then
   * stream what was written meanwhile (the slots `watch` noted since the stream started), pass
   * after pass, and drop it once a pass finds nothing new. Kept (not dropped) when it still
   * changed in the last allowed pass.
   */
  async #catchUpAndDrop(task: MoveTask, watch: MoveWatch, generation: number): Promise<void> {
    const p = task.partition;
    const waitMs = this.#ringAtMs + this.dropDelayMs - this.sched.now();
    if (waitMs > 0) await sleep(this.sched, waitMs);
    if (generation !== this.#generation) return;
    for (let pass = 0;; pass++) {
      const changed = this.store.takeWatched(watch);
      if (changed.slots.length === 0) break;
      if (pass >= DROP_PASSES_MAX) {
        this.log.warn(
          `partition ${p} kept changing during ${DROP_PASSES_MAX} catch-up passes: not dropped yet`,
        );
        return;
      }
      if (!(await this.#stream(task, changed, generation))) return;
    }
    // No await from the last check to the drop: no write can slip in between.
    this.#done(task);
  }

  /** Tell the targets the partition is complete; drop it if this node no longer owns it. */
  #done(task: MoveTask): void {
    const p = task.partition;
    for (const targetId of task.targets) {
      const target = this.ring()?.byId.get(targetId);
      if (target === undefined || targetId === this.config.nodeId) continue;
      this.peers.moveDone(
        target.address,
        { partition: p, from: this.config.nodeId },
        this.config.timers.requestTimeoutMs,
      )
        .catch(() => {});
    }
    this.stats.partitionsSent++;
    this.#roundPartitions++;
    if (task.drop && !(this.ring()?.table[p]?.includes(this.config.nodeId) ?? true)) {
      const n = this.store.dropPartition(p);
      this.stats.partitionsDropped++;
      this.log.debug(`dropped partition ${p} (${n} records) after hand-off`);
    }
  }

  /** How long a mover keeps a streamed partition before dropping it. */
  get dropDelayMs(): number {
    return 2 * this.config.timers.viewPushIntervalMs;
  }

  /**
   * Send the records of `src`'s slots to every target of the task, each batch encoded from the
   * arena just before it goes (nothing awaited in between). False if a newer ring superseded
   * the task.
   */
  async #stream(task: MoveTask, src: MoveSource, generation: number): Promise<boolean> {
    const limits = { keysMax: this.config.batchKeysMax, bytesMax: this.config.batchBytesMax };
    const total = src.slots.length;
    // The round's keys and bytes count each record once: for the first target it goes to.
    let firstTarget = true;
    for (const targetId of task.targets) {
      if (targetId === this.config.nodeId) continue;
      const counted = firstTarget;
      firstTarget = false;
      let sent = 0;
      let backoffMs = 100;
      // A target that answers 404 to a move frame predates them (a cluster being upgraded): it
      // gets kv/write, as movers sent before them.
      let json = false;
      while (sent < total) {
        if (generation !== this.#generation) return false;
        const target = this.ring()?.byId.get(targetId);
        if (target === undefined) break; // gone from the view: the next plan covers it
        const { end, bytes } = this.store.moveBatch(src, sent, limits);
        await this.#throttle(bytes);
        const timeoutMs = this.config.timers.requestTimeoutMs * 5;
        let count: number;
        try {
          if (json) {
            const batch = this.store.moveRecords(src, sent, end);
            count = batch.length;
            if (count > 0) {
              await this.peers.write(
                target.address,
                { to: targetId, records: batch.map(toWire) },
                timeoutMs,
              );
            }
          } else {
            const move = this.store.encodeMove(src, sent, end, targetId);
            count = move.count;
            // Every slot of the batch collected since the list was taken: nothing to send.
            if (count > 0) {
              const answer = await this.peers.moveRecords(target.address, move.frame, timeoutMs);
              if (answer.applied !== count) {
                throw new Error(`${targetId} merged ${answer.applied} of ${count} records`);
              }
            }
          }
          sent = end;
          this.stats.keysSent += count;
          this.stats.bytesSent += bytes;
          this.#roundCopies += count;
          this.#roundCopyBytes += bytes;
          if (counted) {
            this.#roundKeys += count;
            this.#roundBytes += bytes;
          }
          backoffMs = 100;
        } catch (e) {
          if (!json && e instanceof PeerError && e.status === 404) {
            json = true; // the same batch at once, as JSON
            continue;
          }
          this.log.debug(
            `rebalance p${task.partition} → ${targetId} failed at ${sent}/${total}: ${
              (e as Error).message
            }`,
          );
          await sleep(this.sched, backoffMs);
          backoffMs = Math.min(backoffMs * 2, 5000);
        }
      }
    }
    return generation === this.#generation;
  }

  async #throttle(bytes: number): Promise<void> {
    const rate = this.config.rebalanceRateBytes;
    if (rate <= 0) return;
    const nowMs = this.sched.now();
    const waitMs = this.#nextSendAtMs - nowMs;
    this.#nextSendAtMs = Math.max(nowMs, this.#nextSendAtMs) + (bytes * 1000) / rate;
    if (waitMs > 0) await sleep(this.sched, waitMs);
  }
}

/** Per second, one decimal ("-" over no time). */
function rate(amount: number, ms: number): string {
  return ms > 0 ? ((amount * 1000) / ms).toFixed(1) : "-";
}
