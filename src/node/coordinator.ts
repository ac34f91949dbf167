/**
 * The coordinator: any member turns a client request into replica calls.
 *
 * Writes go to every replica in parallel and answer after W acks. A replica that is DOWN, or
 * fails, gets a hint instead: the record is held by the next live node in the partition's
 * preference order (or by this node) and delivered when the replica is back. With sloppy quorum
 * on, a stored hint counts toward W for `one` and `quorum`; `all` always needs every real replica.
 *
 * Reads ask R replicas (falling back to the others when one fails) and return the newest
 * version; replicas that answered with an older version, or nothing, get the newest written
 * back after the answer is sent (read repair). While a partition is moving after a ring change,
 * the previous owners are asked too, until they report they no longer hold it.
 */
import type { HintStore } from "../core/hint-store.ts";
import { compareVersions, type HlcState, observe, tick, type Version } from "../core/hlc.ts";
import { tablesDiffer } from "../core/move-planner.ts";
import { type Consistency, requiredAcks } from "../core/placement.ts";
import { gather } from "../core/quorum.ts";
import { isLive, type KvRecord, merge, newest, sameRecord } from "../core/record.ts";
import type { Ring, ViewMember } from "../core/view.ts";
import type { Scheduler } from "../core/scheduler.ts";
import { DkvError } from "../http/errors.ts";
import type { Logger } from "../log.ts";
import { fromWire, type PeerClient, toWire } from "../transport/index.ts";
import { PeerBatcher } from "./peer-batcher.ts";
import type { Store } from "./store.ts";

export interface CoordinatorDeps {
  /** Id stamped into versions this member issues. */
  readonly selfId: string;
  /** The current ring, or undefined before the first view. */
  ring(): Ring | undefined;
  /** This member's own store, when it is a data node. */
  readonly store?: Store;
  /** This member's hint store, when it is a data node. */
  readonly hints?: HintStore;
  readonly peers: PeerClient;
  /** Clock and timers (injected). */
  readonly sched: Scheduler;
  readonly requestTimeoutMs: number;
  readonly sloppyQuorum: boolean;
  readonly log: Logger;
  /** Bounds of one coalesced peer message. */
  readonly batchKeysMax: number;
  readonly batchBytesMax: number;
}

export interface WriteOutcome {
  readonly record: KvRecord;
  /** Whether any acking replica held a live value before (for DELETE's 404). */
  readonly hadLive: boolean;
}

/** Tries of one client write when replicas report a newer version (clock behind). */
const WRITE_ATTEMPTS = 3;

interface Answer {
  readonly member: ViewMember;
  readonly record: KvRecord | undefined;
}

export class Coordinator {
  readonly #hlc: HlcState = { wallMs: 0, counter: 0 };
  #ringSeen: Ring | undefined;
  /** The ring before the last ownership change, and which of its partitions are settled. */
  #prior: { ring: Ring; settled: Uint8Array } | undefined;
  readRepairs = 0;

  readonly #batcher: PeerBatcher;

  constructor(private readonly deps: CoordinatorDeps) {
    this.#batcher = new PeerBatcher(deps.peers, {
      keysMax: deps.batchKeysMax,
      bytesMax: deps.batchBytesMax,
      timeoutMs: deps.requestTimeoutMs,
    }, (fn) => deps.sched.defer(fn));
  }

  /** Fold a version seen from a peer into our clock. */
  observe(record: KvRecord): void {
    observe(this.#hlc, record.version, this.deps.sched.now());
  }

  #ring(): Ring {
    const ring = this.deps.ring();
    if (ring === undefined || ring.n === 0) {
      throw new DkvError(
        "unavailable",
        "no membership view yet: this member has not joined a cluster",
      );
    }
    return ring;
  }

  /** The member adopted a new ring: remember the previous one while partitions move. */
  onRing(ring: Ring): void {
    const before = this.#ringSeen;
    this.#ringSeen = ring;
    if (before !== undefined && tablesDiffer(before.table, ring.table)) {
      this.#prior = { ring: before, settled: new Uint8Array(ring.table.length) };
    }
  }

  #isSelf(m: ViewMember): boolean {
    return m.id === this.deps.selfId && this.deps.store !== undefined;
  }

  /** Write to one replica: whether it held a live value, and the newer version it kept, if any. */
  async #writeTo(m: ViewMember, record: KvRecord): Promise<{ hadLive: boolean; newer?: Version }> {
    if (this.#isSelf(m)) {
      const store = this.deps.store!;
      const hadLive = store.apply(record);
      const kept = store.get(record.key);
      return kept !== undefined && !sameRecord(kept, record)
        ? { hadLive, newer: kept.version }
        : { hadLive };
    }
    const ack = await this.#batcher.write(m.address, record);
    const n = ack.newer;
    return n
      ? { hadLive: ack.hadLive, newer: { wallMs: n.t, counter: n.c, nodeId: n.n } }
      : { hadLive: ack.hadLive };
  }

  async #readFrom(m: ViewMember, key: string): Promise<Answer & { held: boolean }> {
    if (this.#isSelf(m)) {
      const store = this.deps.store!;
      return {
        member: m,
        record: store.get(key),
        held: store.partitionSize(store.partitionOf(key)) > 0,
      };
    }
    const ack = await this.#batcher.read(m.address, key);
    return { member: m, record: ack.record ? fromWire(ack.record) : undefined, held: ack.held };
  }

  /** Hold `record` for `target` on the first live fallback that takes it, else locally. */
  async #hint(target: ViewMember, record: KvRecord, fallbacks: ViewMember[]): Promise<boolean> {
    while (fallbacks.length > 0) {
      const fb = fallbacks.shift()!;
      try {
        if (this.#isSelf(fb)) {
          if (this.deps.hints?.add(target.id, record, this.deps.sched.now())) return true;
          continue;
        }
        const res = await this.deps.peers.hint(fb.address, {
          target: target.id,
          records: [toWire(record)],
        }, this.deps.requestTimeoutMs);
        if (res.stored === 1) return true;
      } catch {
        // try the next fallback
      }
    }
    if (this.deps.hints?.add(target.id, record, this.deps.sched.now())) return true;
    return false;
  }

  /**
   * Write a record with a fresh version. If an acking replica already held a newer version (a
   * write through another coordinator whose clock was ahead, or in the same millisecond), the
   * clock moves past it and the write is issued again, so a write that starts after another was
   * acknowledged always wins over it. Bounded: at most WRITE_ATTEMPTS tries.
   */
  async write(
    key: string,
    value: string,
    tombstone: boolean,
    consistency: Consistency,
  ): Promise<WriteOutcome> {
    let hadLive = false;
    for (let attempt = 1;; attempt++) {
      const out = await this.#writeOnce(key, value, tombstone, consistency);
      hadLive ||= out.hadLive;
      if (out.newer === undefined || attempt >= WRITE_ATTEMPTS) {
        return { record: out.record, hadLive };
      }
      observe(this.#hlc, out.newer, this.deps.sched.now());
    }
  }

  async #writeOnce(
    key: string,
    value: string,
    tombstone: boolean,
    consistency: Consistency,
  ): Promise<WriteOutcome & { newer?: Version }> {
    const ring = this.#ring();
    const p = ring.partition(key);
    const replicas = ring.replicasOf(p);
    const need = requiredAcks(consistency, replicas.length);
    const version = tick(this.#hlc, this.deps.sched.now(), this.deps.selfId);
    const record: KvRecord = { key, value: tombstone ? "" : value, version, tombstone };
    if (replicas.length === 1 && this.#isSelf(replicas[0]!)) {
      // N=1 and this node is the replica: nothing to coordinate.
      const ack = await this.#writeTo(replicas[0]!, record);
      return { record, ...ack };
    }
    // Shared by every failed replica: each takes the next live fallback in preference order.
    // Computed on the first failure only: the common case never needs it.
    let fallbacks: ViewMember[] | undefined;
    const hintCounts = this.deps.sloppyQuorum && consistency !== "all";
    const byId = new Map(replicas.map((m) => [m.id, m]));
    const out = await gather(replicas.map((m) => m.id), need, "all", async (id) => {
      const m = byId.get(id)!;
      try {
        if (m.state === "DOWN" && !this.#isSelf(m)) throw new Error("DOWN");
        return await this.#writeTo(m, record);
      } catch (e) {
        fallbacks ??= ring.fallbacksOf(p).filter((f) => ring.isAlive(f.id));
        const hinted = await this.#hint(m, record, fallbacks);
        if (!hinted) {
          this.deps.log.warn(
            `no room for a hint for ${m.id} (key '${key}'): hint stores full or unreachable`,
          );
        }
        if (hinted && hintCounts) return { hadLive: false };
        throw e;
      }
    });
    if (!out.reached) {
      throw new DkvError(
        "unavailable",
        `only ${out.ok.length} of ${replicas.length} replicas acknowledged; ${consistency} needs ${need}` +
          describeFailures(out.failed),
      );
    }
    let newer: Version | undefined;
    for (const a of out.ok) {
      if (a.newer && (newer === undefined || compareVersions(a.newer, newer) > 0)) newer = a.newer;
    }
    const result = { record, hadLive: out.ok.some((a) => a.hadLive) };
    return newer ? { ...result, newer } : result;
  }

  async read(key: string, consistency: Consistency): Promise<KvRecord | undefined> {
    const ring = this.#ring();
    const p = ring.partition(key);
    const replicas = ring.replicasOf(p);
    const need = requiredAcks(consistency, replicas.length);
    const self = replicas.filter((m) => this.#isSelf(m));
    const rest = replicas.filter((m) => !this.#isSelf(m) && m.state !== "DOWN");
    const targets = [...self, ...rest];
    const previous = this.#previousOwners(ring, p);
    if (need === 1 && self.length === 1 && previous.length === 0) {
      // One answer needed and this node is a replica: the local store is that answer.
      const local = this.deps.store!.get(key, p);
      return isLive(local) ? local : undefined;
    }
    const byId = new Map(targets.map((m) => [m.id, m]));
    const [out, prior] = await Promise.all([
      gather(targets.map((m) => m.id), need, "need", (id) => this.#readFrom(byId.get(id)!, key)),
      Promise.all(previous.map((m) => this.#readFrom(m, key).catch(() => undefined))),
    ]);
    if (!out.reached) {
      const down = replicas.filter((m) => !targets.includes(m)).map((m) => ({
        target: m.id,
        reason: "DOWN",
      }));
      throw new DkvError(
        "unavailable",
        `only ${out.ok.length} of ${replicas.length} replicas answered; ${consistency} needs ${need}` +
          describeFailures([...out.failed, ...down]),
      );
    }
    let best = newest(out.ok.map((a) => a.record));
    for (const a of prior) {
      if (a === undefined) continue;
      if (!a.held) this.#prior!.settled[p] = 1;
      if (a.record) best = merge(best, a.record);
    }
    if (best) {
      this.observe(best);
      this.#repair(best, out.ok);
    }
    return isLive(best) ? best : undefined;
  }

  /** Owners of p in the ring before the last change that are not owners now, while unsettled. */
  #previousOwners(ring: Ring, p: number): ViewMember[] {
    const prior = this.#prior;
    if (prior === undefined || prior.settled[p] === 1) return [];
    const now = ring.table[p]!;
    const old = prior.ring.replicasOf(p).filter((m) => !now.includes(m.id) && ring.isServing(m.id));
    if (old.length === 0) prior.settled[p] = 1;
    return old.map((m) => ring.byId.get(m.id) ?? m);
  }

  /** Write the newest version back to replicas that answered with an older one or none. */
  #repair(best: KvRecord, answers: readonly Answer[]): void {
    for (const a of answers) {
      if (a.record !== undefined && merge(a.record, best) === a.record) continue;
      this.readRepairs++;
      this.#writeTo(a.member, best).catch((e: Error) =>
        this.deps.log.debug(`read repair of '${best.key}' on ${a.member.id} failed: ${e.message}`)
      );
    }
  }
}

function describeFailures(failed: readonly { target: string; reason: string }[]): string {
  return failed.length ? ` (${failed.map((f) => `${f.target}: ${f.reason}`).join("; ")})` : "";
}
