/**
 * The coordinator: any member turns a client request into replica calls.
 *
 * Writes go to every replica in parallel and answer after W acks, counted only from distinct
 * members that are the key's replicas. A replica that is DOWN, or fails, gets a hint: the record
 * is held by the next live node in the partition's preference order (or by this node) and
 * delivered when the replica is back. A hint never counts toward `one`/`quorum`/`all`, so a
 * member cut off from the replicas answers 503, never a false success. `any` is acknowledged once
 * one member holds the write, a hint holder included. With --sloppy-quorum (off by default) a
 * hint counts for `one`/`quorum` only when a distinct live fallback member holds it.
 *
 * Reads ask R replicas (falling back to the others when one fails) and return the newest
 * version; replicas that answered with an older version, or nothing, get the newest written
 * back after the answer is sent (read repair). Reads hedge (Cassandra's speculative retry): one
 * still short of its answers after the hedge delay (--read-hedge: by default the 99th percentile
 * of observed peer read latency, bounded) asks the next replica too, and the first good answers
 * win, so a stopped or slow replica costs a read that delay, not --request-timeout. A replica that says it does not hold the key's
 * partition (it was dropped, or has not arrived yet) is not a "not found": the read asks
 * elsewhere. While partitions move after ring changes, the previous owners (of every recent
 * ring, not only the last) are asked too, until each reports it no longer holds the partition.
 */
import type { Config } from "../config.ts";
import type { HintStore } from "../core/hint-store.ts";
import { compareVersions, type HlcState, observe, tick, type Version } from "../core/hlc.ts";
import { tablesDiffer } from "../core/move-planner.ts";
import { type Consistency, requiredAcks } from "../core/placement.ts";
import { gather, type Hedge } from "../core/quorum.ts";
import { hedgeDelayMs, LatencyWindow, type ReadHedgePolicy } from "../core/read-hedge.ts";
import {
  detached,
  isPresent,
  type KvRecord,
  merge,
  newest,
  textRecord,
  Utf8Text,
  type Value,
} from "../core/record.ts";
import type { Ring, ViewMember } from "../core/view.ts";
import { type Scheduler, sleep } from "../core/scheduler.ts";
import type { ClockGuard } from "./clock-guard.ts";
import type { Durability } from "./data-dir.ts";
import { mutations } from "../core/mutations.ts";
import { DkvError } from "../http/errors.ts";
import type { Logger } from "../log.ts";
import { fromWire, type PeerClient, PeerError, toWire } from "../transport/index.ts";
import { PeerBatcher } from "./peer-batcher.ts";
import type { Store } from "./store.ts";
import {
  applyMutation,
  backoffMs,
  type Ballot,
  type Condition,
  holds as conditionHolds,
  inProgress,
  type Mutation,
  type Proposal,
  settledBy,
} from "../core/paxos.ts";
import type { AcceptResult, PaxosReplica, PromiseResult } from "./paxos-replica.ts";
import type { PaxosAnswer, PaxosOp, WireBallot } from "../transport/index.ts";

export interface CoordinatorDeps {
  /** Id stamped into versions this member issues. */
  readonly selfId: string;
  /** The current ring, or undefined before the first view. */
  ring(): Ring | undefined;
  /** Why this member has no view yet, when it has not reached any seed (its 503 says so). */
  notJoined?(): string | undefined;
  /** This member's own store, when it is a data node. */
  readonly store?: Store;
  /**
   * Whether this member holds the key's partition (has data of it, or owns it and is not still
   * receiving it); given with `store`.
   */
  holds?(partition: number): boolean;
  /** Holds the partition or is receiving it (DataNode.holdsOrReceives); given with `store`. */
  holdsOrReceives?(partition: number): boolean;
  /** This member's hint store, when it is a data node. */
  readonly hints?: HintStore;
  /** --data-dir: writes to this member's own store and hints wait for their log entries. */
  readonly durability?: Durability;
  /** --data-dir: why this member serves no key yet after a restart (DataNode.restartGate). */
  gate?(): string | undefined;
  readonly peers: PeerClient;
  /** Clock and timers (injected). */
  readonly sched: Scheduler;
  /** Refuses versions more than --max-clock-skew ahead (they are neither observed nor chased). */
  readonly clock: ClockGuard;
  /**
   * How far this member's clock is ahead of its peers' (median, from gossip). Past
   * --max-clock-skew its versions would be refused by the replicas, so it issues none.
   */
  clockLeadMs?(): number;
  /**
   * After this member's view shows a majority of the ring alive again (a partition healed), how
   * long it still refuses quorum and all: news of ring changes made on the majority side meanwhile
   * (this member, or one it asks, taken out) needs that long to arrive. Two view-push intervals.
   */
  readonly settleMs: number;
  /**
   * When this member's gossip last ticked, and how late a tick may be before it counts as a pause
   * (SIGSTOP, a VM freeze): a member that was paused settles too, since its view is old.
   */
  lastTickAtMs?(): number | undefined;
  readonly pauseAfterMs?: number;
  readonly requestTimeoutMs: number;
  /** Hedged reads (--read-hedge); none when absent. */
  readonly readHedge?: ReadHedgePolicy;
  readonly sloppyQuorum: boolean;
  readonly log: Logger;
  /** Bounds of one coalesced peer message. */
  readonly batchKeysMax: number;
  readonly batchBytesMax: number;
  /** A client write this member's own store took as a replica (for watches: change-log.ts). */
  onClientWrite?(record: KvRecord): void;
  /** This member's Paxos acceptor, when it is a data node (given with `store`). */
  readonly paxos?: PaxosReplica;
}

/** What the coordinator reads from its member's gossip shell (GossipAgent). */
interface GossipSignals {
  clockLeadMs(): number;
  notJoined(): string | undefined;
  readonly lastTickAtMs: number;
}

/**
 * The coordinator deps that come from the member's gossip and timers, the same for a node and the
 * orchestrator. `agent` is read lazily: the coordinator is built before the agent.
 */
export function gossipDeps(
  config: Config,
  agent: () => GossipSignals | undefined,
): Pick<
  CoordinatorDeps,
  "clockLeadMs" | "lastTickAtMs" | "settleMs" | "pauseAfterMs" | "notJoined"
> {
  return {
    notJoined: () => agent()?.notJoined(),
    clockLeadMs: () => agent()?.clockLeadMs() ?? 0,
    // 0: no tick yet (not started), so no pause to detect.
    lastTickAtMs: () => agent()?.lastTickAtMs || undefined,
    settleMs: 2 * config.timers.viewPushIntervalMs,
    pauseAfterMs: 5 * config.swim.probeIntervalMs + 1000,
  };
}

/**
 * The outcome of a conditional write (`Coordinator.cas`): the committed record and the one it
 * replaced, or the condition failed against `current` (undefined: the key is absent).
 */
export type CasOutcome =
  | { readonly ok: true; readonly record: KvRecord; readonly previous: KvRecord | undefined }
  | { readonly ok: false; readonly current: KvRecord | undefined };

const OUTBID = "it promised a higher ballot";

/** A proposal of ours that may still be finished, with the record it replaces (for the answer). */
interface Pending extends Proposal {
  readonly previous: KvRecord | undefined;
}

/** The highest ballot replicas refused ours for, in one Paxos phase. */
interface Bid {
  higher?: Ballot;
  /** Prepare refusals, with the commits each replica reported. */
  views?: PromiseResult[];
  /** Records of replicas that promised but do not hold the partition (still receiving it). */
  partial?: KvRecord[];
}

/** A replica refused our ballot (noted in `bid`): another proposer holds a higher one. */
function outbid(bid: Bid, higher: Ballot | undefined, busy: boolean): Error {
  const h = higher ?? { wallMs: 0, counter: 0, nodeId: "" };
  if (bid.higher === undefined || compareVersions(h, bid.higher) > 0) bid.higher = h;
  return new Error(busy ? "its Paxos state is full (--paxos-keys)" : OUTBID);
}

export interface WriteOutcome {
  readonly record: KvRecord;
  /** Whether any acking replica held a live value before (for DELETE's 404). */
  readonly hadLive: boolean;
}

/** A replica's answer to a write: whether it held a live value, the newer version it kept. */
interface Ack {
  readonly hadLive: boolean;
  readonly newer?: Version;
}

/** One try of a write. */
type Attempt = WriteOutcome & { newer?: Version };

function attemptOf(record: KvRecord, ack: Ack): Attempt {
  return ack.newer === undefined
    ? { record, hadLive: ack.hadLive }
    : { record, hadLive: ack.hadLive, newer: ack.newer };
}

/** "No replica-list check" (read repair, previous owners standing in): -1 on the wire. */
const NO_SET = -1;

/**
 * A write to a previous owner of the key's partition (`#withPreviousOwners`), -2 on the wire: the
 * receiver applies it only if it still holds the partition, else answers it as stale. Applied
 * unconditionally, it would make a member that never held the partition (or let it go) hold a
 * few keys of it, and a member holding a partition is asked for it as if it had all of it.
 */
const PREVIOUS_OWNER = -2;

/** Tries of one client write when replicas report a newer version (clock behind). */
const WRITE_ATTEMPTS = 3;

/**
 * First wait before asking again a replica whose ring placed the key elsewhere (it has not yet
 * adopted the ring this member coordinates with, as right after a join); doubled each time, and
 * never past --request-timeout from the request's start.
 */
const STALE_RETRY_FIRST_MS = 10;

/** The answer of a replica whose ring places the key on other replicas. */
const STALE = "its ring places the key on other replicas";
class StaleRing extends Error {
  constructor() {
    super(STALE);
  }
}

/**
 * Rings before recent ownership changes still being moved away from. Bounded: past this, the
 * oldest is forgotten (a warning says so) and its unsettled partitions rely on anti-entropy.
 */
const PRIOR_RINGS_MAX = 8;

interface Answer {
  readonly member: ViewMember;
  readonly record: KvRecord | undefined;
}

/**
 * A ring from before an ownership change, with the (partition, previous owner) pairs that are
 * settled: the owner said it no longer holds the partition, or it left and is gone.
 */
interface PriorRing {
  readonly ring: Ring;
  /** partition → ids of its previous owners that are settled. */
  readonly settled: Map<number, Set<string>>;
  /** Partitions whose previous owners are all settled. */
  readonly done: Uint8Array;
  doneCount: number;
}

const NOT_HELD = "does not hold the partition (moving, or its ring differs)";

/** A member that owned a partition in a recent ring and may still hold its data. */
interface PreviousOwner {
  prior: PriorRing;
  member: ViewMember;
}

/** No previous owner to ask (the common case: no ring change still moving). */
const NO_PREVIOUS_OWNERS: readonly PreviousOwner[] = [];

/** A replica answered that it does not hold the key's partition: ask elsewhere. */
class NotHeld extends Error {
  constructor() {
    super(NOT_HELD);
  }
}

/**
 * A read short of its answers because replicas said they do not hold the partition: their ring
 * differs from this member's (a ring change on its way) or they are still receiving it. The read
 * is tried again after a short wait while the request has time left (see #readSettled).
 */
class NotHeldQuorum extends DkvError {}

export class Coordinator {
  readonly #hlc: HlcState = { wallMs: 0, counter: 0 };
  #ringSeen: Ring | undefined;
  /** Rings before recent ownership changes, oldest first (at most PRIOR_RINGS_MAX). */
  #priors: PriorRing[] = [];
  readRepairs = 0;
  /** Writes asked again of a replica whose ring had not yet caught up with ours. */
  staleRetries = 0;
  /** Writes also sent to a partition's previous owners while it moved (#withPreviousOwners). */
  previousOwnerWrites = 0;
  /** Previous owners that did not acknowledge such a write (it was answered without them). */
  previousOwnerMisses = 0;
  /**
   * Client reads and writes coordinated here, how many of them for a key this member is a
   * replica of, and the replica reads and writes sent to other members (per key). A client that
   * routes by partition (src/client) makes every request one this member is a replica of, and
   * saves one replica call each.
   */
  readonly routing = { coordinated: 0, asReplica: 0, replicaCalls: 0 };
  /** Replicas asked by a hedge (a read still short of answers after the hedge delay). */
  readsHedged = 0;
  /** Latency of peer reads that answered (ms), for a percentile hedge delay. */
  readonly #readLatency: LatencyWindow | undefined;
  readonly #hedge: Hedge | undefined;
  /** Whether the last view showed fewer than a majority of the ring alive. */
  #minority = false;
  #hadMajority = false;
  /** Quorum and all are refused until then (see settleMs). */
  #settlingUntilMs = 0;

  readonly #batcher: PeerBatcher;

  constructor(private readonly deps: CoordinatorDeps) {
    this.#batcher = new PeerBatcher(deps.peers, {
      keysMax: deps.batchKeysMax,
      bytesMax: deps.batchBytesMax,
      timeoutMs: deps.requestTimeoutMs,
    }, (fn) => deps.sched.defer(fn));
    const policy = deps.readHedge ?? { kind: "off" };
    this.#readLatency = policy.kind === "percentile"
      ? new LatencyWindow(policy.percentile)
      : undefined;
    const timers = new SharedTimers(deps.sched);
    this.#hedge = policy.kind === "off"
      ? undefined
      : (fire) => timers.arm(hedgeDelayMs(policy, this.#readLatency, deps.requestTimeoutMs)!, fire);
  }

  /** The delay after which a read asks one more replica now (undefined: reads do not hedge). */
  get hedgeDelayMs(): number | undefined {
    return hedgeDelayMs(
      this.deps.readHedge ?? { kind: "off" },
      this.#readLatency,
      this.deps.requestTimeoutMs,
    );
  }

  /**
   * Fold a version seen from a peer into our clock. False (counted and warned by the clock guard)
   * when it is more than --max-clock-skew ahead: then it is not observed, and the caller must not
   * store it either.
   */
  observe(record: KvRecord, from = "read answer"): boolean {
    if (!this.deps.clock.admits(record, from)) return false;
    observe(this.#hlc, record.version, this.deps.sched.now());
    return true;
  }

  /**
   * The ring a request at `consistency` is served from now, or the 503 that says why it cannot
   * be (the checks every read and write meets): for callers that fan out themselves (listings).
   */
  ringFor(consistency: Consistency): Ring {
    return this.#ring(consistency, this.deps.sched.now());
  }

  /** The ring for a request starting at `nowMs`, or the 503 that says why it cannot be served. */
  #ring(consistency: Consistency, nowMs: number): Ring {
    const ring = this.deps.ring();
    if (ring === undefined) {
      throw new DkvError(
        "unavailable",
        this.deps.notJoined?.() ?? "no membership view yet: this member has not joined a cluster",
      );
    }
    if (ring.n === 0) {
      // A view, but nobody to store keys: say that, not "not joined" (issue 16, point 4).
      const nodes = ring.view.members.filter((m) => m.role === "node");
      throw new DkvError(
        "unavailable",
        `no data nodes in the ring (view epoch ${ring.view.epoch}: ${nodes.length} node(s) ` +
          `known, none in the ring): start nodes with --orchestrator or --join`,
      );
    }
    const shut = this.deps.gate?.();
    if (shut !== undefined) throw new DkvError("unavailable", shut);
    const tickMs = this.deps.lastTickAtMs?.();
    if (tickMs !== undefined && nowMs - tickMs > (this.deps.pauseAfterMs ?? Infinity)) {
      this.#settlingUntilMs = nowMs + this.deps.settleMs;
    }
    if (
      (consistency === "quorum" || consistency === "all") &&
      (!ring.majorityAlive || nowMs < this.#settlingUntilMs)
    ) {
      throw new DkvError(
        "unavailable",
        ring.majorityAlive
          ? `this member has just come back to a majority of the ring (after a partition or a ` +
            `pause); ` +
            `${consistency} is refused until membership settles (${this.deps.settleMs} ms)`
          : `this member sees only ${ring.aliveInRing} of ${ring.ids.length} ring members alive, ` +
            `not a majority (a partition, or many failures): ${consistency} is refused here; ` +
            `one and any still work`,
      );
    }
    return ring;
  }

  /**
   * Why this member cannot serve quorum reads and writes for its ring now (GET /ready answers 503
   * with it), or undefined when it can: it has joined, has a view with data nodes in the ring, sees
   * a majority of the ring alive, is not settling after a partition or a pause, and its clock is
   * not too far ahead to issue versions. The same checks a quorum request meets.
   */
  notReady(): string | undefined {
    try {
      this.#ring("quorum", this.deps.sched.now());
    } catch (e) {
      if (e instanceof DkvError) return e.message;
      throw e;
    }
    const lead = this.deps.clockLeadMs?.() ?? 0;
    if (lead > this.deps.clock.maxSkewMs) {
      return `this member's clock is ${lead} ms ahead of its peers' (more than --max-clock-skew)`;
    }
    return undefined;
  }

  /**
   * The member adopted a new ring: remember the previous one while partitions move. A member's
   * first ring has no predecessor it saw; when the member itself is in that ring it just joined,
   * so the ring without it is what the previous owners were.
   */
  onRing(ring: Ring): void {
    // Only a member that had a majority and lost it, by members it saw alive no longer being
    // alive, settles when it is back. A starting member's first views show few members alive, and
    // a ring that grew by members not yet seen UP (nodes joining) is short of a majority with
    // nobody lost: neither is a partition.
    if (!ring.majorityAlive) {
      this.#minority ||= this.#hadMajority &&
        ring.aliveInRing < (this.#ringSeen?.aliveInRing ?? 0);
    } else if (!this.#minority) this.#hadMajority = true;
    else {
      this.#minority = false;
      this.#settlingUntilMs = this.deps.sched.now() + this.deps.settleMs;
    }
    // A first ring that has this member in it: it just joined, the ring without it is the one
    // before (an orchestrator is never in the ring, so it has none).
    const before = this.#ringSeen ?? ring.without(this.deps.selfId);
    this.#ringSeen = ring;
    if (before === undefined || !tablesDiffer(before.table, ring.table)) return;
    if (before.table.length !== ring.table.length) return; // partition count changed: nothing maps
    this.#priors.push({
      ring: before,
      settled: new Map(),
      done: new Uint8Array(ring.table.length),
      doneCount: 0,
    });
    if (this.#priors.length > PRIOR_RINGS_MAX) {
      this.#priors.shift();
      this.deps.log.warn(
        `more than ${PRIOR_RINGS_MAX} ring changes still moving: the oldest is no longer asked`,
      );
    }
  }

  /** Count a coordinated request; how many of its replicas are this member (0 or 1). */
  #countRouting(replicas: readonly ViewMember[]): number {
    this.routing.coordinated++;
    let self = 0;
    for (let i = 0; i < replicas.length; i++) if (replicas[i]!.id === this.deps.selfId) self++;
    if (self > 0) this.routing.asReplica++;
    return self;
  }

  #isSelf(m: ViewMember): boolean {
    return m.id === this.deps.selfId && this.deps.store !== undefined;
  }

  /**
   * Write to one replica: whether it held a live value, and the newer version it kept, if any.
   * `set` (the key's replica-list fingerprint) makes the replica refuse when its ring disagrees;
   * without it (read repair) the replica just merges the record.
   */
  async #writeTo(
    m: ViewMember,
    record: KvRecord,
    set?: number,
    /** The key's partition in this member's store, when the caller hashed the key already. */
    p?: number,
  ): Promise<Ack> {
    if (this.#isSelf(m)) return await this.#writeSelf(record, set, p);
    // A previous owner is no replica: those writes are counted in previousOwnerWrites.
    if (set !== PREVIOUS_OWNER) this.routing.replicaCalls++;
    const ack = await this.#batcher.write(m.address, m.id, record, set ?? NO_SET);
    if (ack.stale) throw new StaleRing();
    const n = ack.newer;
    return n
      ? { hadLive: ack.hadLive, newer: { wallMs: n.t, counter: n.c, nodeId: n.n } }
      : { hadLive: ack.hadLive };
  }

  /**
   * `#writeTo` this member's own store: at once, unless a --data-dir log must be waited for (then
   * a promise). `p`: the key's partition in the store, when known.
   */
  #writeSelf(record: KvRecord, set: number | undefined, p: number | undefined): Ack | Promise<Ack> {
    const store = this.deps.store!;
    if (
      set === PREVIOUS_OWNER && !this.deps.holdsOrReceives!(p ?? store.partitionOf(record.key))
    ) {
      throw new StaleRing();
    }
    // Only client writes (set: a quorum write) are bounded by --max-store-bytes; read repair
    // carries data the cluster already accepted.
    if (set !== undefined) store.admitBytes([record]);
    const durability = this.deps.durability;
    durability?.checkWritable();
    const hadLive = store.apply(record, p);
    if (durability === undefined) return this.#selfAck(record, set, hadLive, p);
    return durability.durable().then(() => this.#selfAck(record, set, hadLive, p));
  }

  /** After this member's store applied `record`: the newer version it kept instead, if any. */
  #selfAck(
    record: KvRecord,
    set: number | undefined,
    hadLive: boolean,
    p: number | undefined,
  ): Ack {
    const newer = this.deps.store!.versionOtherThan(record, p);
    if (newer !== undefined) return { hadLive, newer };
    if (set !== undefined) this.deps.onClientWrite?.(record);
    return { hadLive };
  }

  /** `p` as the partition of this member's store (undefined when their partition counts differ). */
  #storePartition(ring: Ring, p: number): number | undefined {
    return this.deps.store?.partitionCount === ring.view.partitions ? p : undefined;
  }

  /**
   * `#writeTo` with the key's replica-list fingerprint; a replica whose ring is behind ours is
   * asked again (the same record: idempotent) while this member still coordinates with that ring
   * and the request has time left, so a write right after a ring change waits for the new ring to
   * reach the replica instead of failing.
   */
  async #writeToSettled(
    m: ViewMember,
    record: KvRecord,
    ring: Ring,
    p: number,
    startMs: number,
  ): Promise<Ack> {
    for (let waitMs = STALE_RETRY_FIRST_MS;; waitMs *= 2) {
      try {
        return await this.#writeTo(m, record, ring.setHash[p], this.#storePartition(ring, p));
      } catch (e) {
        const left = startMs + this.deps.requestTimeoutMs - this.deps.sched.now();
        if (!(e instanceof StaleRing) || waitMs >= left || this.deps.ring() !== ring) throw e;
      }
      await sleep(this.deps.sched, waitMs);
      this.staleRetries++;
    }
  }

  async #readFrom(
    m: ViewMember,
    key: string,
    set = NO_SET,
  ): Promise<Answer & { held: boolean }> {
    if (this.#isSelf(m)) {
      const store = this.deps.store!;
      const p = store.partitionOf(key);
      return { member: m, record: store.get(key, p), held: this.deps.holds!(p) };
    }
    this.routing.replicaCalls++;
    const window = this.#readLatency;
    const startMs = window === undefined ? 0 : this.deps.sched.now();
    const ack = await this.#batcher.read(m.address, m.id, key, set);
    window?.record(this.deps.sched.now() - startMs);
    return { member: m, record: ack.record ? fromWire(ack.record) : undefined, held: ack.held };
  }

  /**
   * A read from one replica that counts toward R; `set` is the key's replica-list fingerprint
   * (a replica whose ring differs answers "not held"). A "not held" answer is a failure; the
   * record it may still carry (written since the replica started receiving) goes to `partial`.
   */
  async #readHeld(m: ViewMember, key: string, set: number, partial: KvRecord[]): Promise<Answer> {
    const a = await this.#readFrom(m, key, set);
    if (!a.held) {
      if (a.record !== undefined) partial.push(a.record);
      throw new NotHeld();
    }
    return a;
  }

  /**
   * Hold `record` for `target` on the first live fallback that takes it (each fallback is taken
   * from the shared list, so one member holds at most one hint of a write), else on this member.
   * Returns who holds it: a fallback's id, "self" when this member kept it only because no
   * fallback took it, or undefined when nobody could.
   */
  async #hint(
    target: ViewMember,
    record: KvRecord,
    fallbacks: ViewMember[],
  ): Promise<string | undefined> {
    while (fallbacks.length > 0) {
      const fb = fallbacks.shift()!;
      try {
        if (this.#isSelf(fb)) {
          if (this.#hintHere(target, record)) {
            await this.deps.durability?.durable();
            return fb.id;
          }
          continue;
        }
        const res = await this.deps.peers.hint(fb.address, {
          target: target.id,
          records: [toWire(record)],
        }, this.deps.requestTimeoutMs);
        if (res.stored === 1) return fb.id;
      } catch {
        // try the next fallback
      }
    }
    if (this.#hintHere(target, record)) {
      await this.deps.durability?.durable();
      return "self";
    }
    return undefined;
  }

  #hintHere(target: ViewMember, record: KvRecord): boolean {
    this.deps.durability?.checkWritable();
    return this.deps.hints?.add(target.id, detached(record), this.deps.sched.now()) ?? false;
  }

  /** The clock's state (--data-dir keeps it across restarts). */
  clockState(): HlcState {
    return { ...this.#hlc };
  }

  /** After a restart: move the clock past what this member had issued or seen before. */
  restoreClock(past: HlcState): void {
    observe(this.#hlc, { ...past, nodeId: this.deps.selfId }, this.deps.sched.now());
  }

  /**
   * Write a record with a fresh version. If an acking replica already held a newer version (a
   * write through another coordinator whose clock was ahead, or in the same millisecond), the
   * clock moves past it and the write is issued again, so a write that starts after another was
   * acknowledged always wins over it. Bounded: at most WRITE_ATTEMPTS tries.
   */
  write(
    key: string,
    value: Value | Utf8Text,
    tombstone: boolean,
    consistency: Consistency,
    /** Wall ms from which the value reads as absent (a ttl); undefined: never. */
    expiresAt?: number,
  ): Promise<WriteOutcome> {
    try {
      const out = this.writeNow(key, value, tombstone, consistency, expiresAt);
      return out instanceof Promise ? out : Promise.resolve(out);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * `write`, done at once when nothing must be waited for (the key's only replica is this member
   * and no --data-dir log is written): the outcome, else a promise of it. The same steps, checks
   * and counters as `write`; throws (synchronously) what `write` rejects with.
   */
  writeNow(
    key: string,
    value: Value | Utf8Text,
    tombstone: boolean,
    consistency: Consistency,
    expiresAt?: number,
  ): WriteOutcome | Promise<WriteOutcome> {
    const lead = this.deps.clockLeadMs?.() ?? 0;
    if (lead > this.deps.clock.maxSkewMs) {
      throw new DkvError(
        "unavailable",
        `this member's clock is ${lead} ms ahead of its peers' (more than --max-clock-skew, ` +
          `${this.deps.clock.maxSkewMs} ms): it issues no versions until its clock is fixed (NTP)`,
      );
    }
    return this.#writeAttempts(key, value, tombstone, consistency, expiresAt, 1, false);
  }

  /** Tries `attempt`.. of a write (see `write`), at once while each try is done at once. */
  #writeAttempts(
    key: string,
    value: Value | Utf8Text,
    tombstone: boolean,
    consistency: Consistency,
    expiresAt: number | undefined,
    attempt: number,
    hadLive: boolean,
  ): WriteOutcome | Promise<WriteOutcome> {
    for (;; attempt++) {
      const out = this.#writeOnce(key, value, tombstone, consistency, expiresAt);
      if (out instanceof Promise) {
        const tried = attempt;
        const had = hadLive;
        return out.then((o) =>
          this.#attemptDone(key, o, tried, had || o.hadLive) ??
            this.#writeAttempts(
              key,
              value,
              tombstone,
              consistency,
              expiresAt,
              tried + 1,
              had || o.hadLive,
            )
        );
      }
      hadLive ||= out.hadLive;
      const done = this.#attemptDone(key, out, attempt, hadLive);
      if (done !== undefined) return done;
    }
  }

  /**
   * The outcome after try `attempt`, or undefined when the write goes again: an acking replica
   * held a newer version, and our clock moved past it.
   */
  #attemptDone(
    key: string,
    out: WriteOutcome & { newer?: Version },
    attempt: number,
    hadLive: boolean,
  ): WriteOutcome | undefined {
    if (out.newer === undefined || attempt >= WRITE_ATTEMPTS) {
      return { record: out.record, hadLive };
    }
    // A newer version too far ahead cannot be chased: it was refused everywhere it could be.
    if (!this.deps.clock.admitsVersion(key, out.newer, "write answer")) {
      return { record: out.record, hadLive };
    }
    observe(this.#hlc, out.newer, this.deps.sched.now());
    return undefined;
  }

  /** One try of a write: at once when the key's only replica is this member and nothing waits. */
  #writeOnce(
    key: string,
    value: Value | Utf8Text,
    tombstone: boolean,
    consistency: Consistency,
    expiresAt: number | undefined,
  ): Attempt | Promise<Attempt> {
    const nowMs = this.deps.sched.now();
    const ring = this.#ring(consistency, nowMs);
    const p = ring.partition(key);
    const replicas = ring.replicasOf(p);
    this.#countRouting(replicas);
    const need = requiredAcks(consistency, replicas.length);
    const version = tick(this.#hlc, nowMs, this.deps.selfId);
    let record: KvRecord;
    if (value instanceof Utf8Text) {
      record = tombstone
        ? { key, value: "", version, tombstone }
        : textRecord(key, value, version, expiresAt);
    } else {
      record = expiresAt === undefined || tombstone
        ? { key, value: tombstone ? "" : value, version, tombstone }
        : { key, value, version, tombstone, expiresAt };
    }
    const previous = this.#previousOwners(ring, p);
    if (replicas.length === 1 && this.#isSelf(replicas[0]!) && previous.length === 0) {
      // N=1 and this node is the replica: nothing to coordinate.
      const ack = this.#writeSelf(record, ring.setHash[p], this.#storePartition(ring, p));
      if (ack instanceof Promise) return ack.then((a) => attemptOf(record, a));
      return attemptOf(record, ack);
    }
    const written = this.#writeReplicas(key, record, ring, p, replicas, need, consistency, nowMs);
    if (previous.length === 0) return written;
    return this.#withPreviousOwners(written, record, p, previous, nowMs);
  }

  /**
   * `record` to each of `previous` (PREVIOUS_OWNER: taken only by one that holds partition `p` or
   * is receiving it), waited for within --request-timeout: the acks of those that took it. One
   * that answers that it neither holds nor receives p never will: it is settled, so later writes
   * and reads skip it (a member's first ring names, as previous owners, members that never held
   * anything). Receiving counts as taking: settling a member that was receiving its partition back
   * after a restart made reads stop asking it (simulator seed 658). One that fails is counted
   * (`previousOwnerMisses`) and left out.
   */
  async #writePrevious(
    record: KvRecord,
    p: number,
    previous: readonly PreviousOwner[],
    nowMs: number,
  ): Promise<Ack[]> {
    this.previousOwnerWrites++;
    const out = await gather(
      previous.map((x) => x.member.id),
      previous.length,
      "all",
      async (id) => {
        const x = previous.find((y) => y.member.id === id)!;
        try {
          return await this.#writeTo(x.member, record, PREVIOUS_OWNER);
        } catch (e) {
          // It neither holds nor receives the partition: a member on the old ring asking it for
          // the key is told so, and reads elsewhere.
          if (!(e instanceof StaleRing)) throw e;
          this.#settle(x.prior, p, id);
          return undefined;
        }
      },
      this.#deadline(nowMs),
      `no answer within --request-timeout (${this.deps.requestTimeoutMs}ms)`,
    );
    this.previousOwnerMisses += out.failed.length;
    return out.ok.filter((a): a is Ack => a !== undefined);
  }

  /**
   * While partition `p` moves after a ring change, a write also goes to its previous owners that
   * are still serving and have not said they let it go, and is acknowledged once each of them has
   * answered too. A member that has not heard of the new ring yet still reads from them (with N=1,
   * from them alone): without this, it would answer the value from before a write acknowledged
   * through the new ring (simulator seeds 562 and 279, rule (list)). Cassandra does the same with
   * its pending ranges, the other way round: writes go to the owners-to-be as well as the owners.
   * A previous owner that does not acknowledge within --request-timeout is left out (it may be
   * gone, or never have held anything: see #writePrevious); the write is answered without it.
   */
  async #withPreviousOwners(
    written: Promise<Attempt>,
    record: KvRecord,
    p: number,
    previous: readonly PreviousOwner[],
    nowMs: number,
  ): Promise<Attempt> {
    const [out, acks] = await Promise.all([
      written,
      this.#writePrevious(record, p, previous, nowMs),
    ]);
    let newer = out.newer;
    let hadLive = out.hadLive;
    for (const a of acks) {
      hadLive ||= a.hadLive;
      if (a.newer && (newer === undefined || compareVersions(a.newer, newer) > 0)) newer = a.newer;
    }
    return newer ? { record: out.record, hadLive, newer } : { record: out.record, hadLive };
  }

  /** `#writeOnce` to the replicas of partition `p` (more than this member), W of them acking. */
  async #writeReplicas(
    key: string,
    record: KvRecord,
    ring: Ring,
    p: number,
    replicas: readonly ViewMember[],
    need: number,
    consistency: Consistency,
    nowMs: number,
  ): Promise<Attempt> {
    // Shared by every failed replica: each takes the next live fallback in preference order.
    // Computed on the first failure only: the common case never needs it.
    let fallbacks: ViewMember[] | undefined;
    // What a hint is worth: `any` counts whoever holds it; sloppy quorum (opt-in) counts a hint
    // only on a distinct live fallback member (each fallback is used once, and fallbacks are never
    // replicas); otherwise a hint is stored in the background and counts for nothing.
    const sloppy = this.deps.sloppyQuorum && (consistency === "one" || consistency === "quorum");
    const hintsCount = consistency === "any" || sloppy || mutations.countHints;
    const byId = new Map(replicas.map((m) => [m.id, m]));
    let full = 0; // replicas that answered 507: --max-store-bytes, or a log they cannot write
    let diskErrors = 0;
    const out = await gather(
      replicas.map((m) => m.id),
      need,
      "all",
      async (id) => {
        const m = byId.get(id)!;
        try {
          if (m.state === "DOWN" && !this.#isSelf(m)) throw new Error("DOWN");
          return await this.#writeToSettled(m, record, ring, p, nowMs);
        } catch (e) {
          if (isStoreFull(e)) {
            full++;
            if (isDiskError(e)) diskErrors++;
            throw e; // a full store is no outage: no hint would fit better elsewhere
          }
          fallbacks ??= ring.fallbacksOf(p).filter((f) => ring.isAlive(f.id));
          const hinting = this.#hint(m, record, fallbacks).then((holder) => {
            if (holder === undefined) {
              this.deps.log.warn(
                `no room for a hint for ${m.id} (key '${key}'): hint stores full or unreachable`,
              );
            }
            return holder;
          });
          if (!hintsCount) throw e;
          const holder = await hinting;
          const counts = holder !== undefined &&
            (consistency === "any" || mutations.countHints || holder !== "self");
          if (counts) return { hadLive: false };
          throw e;
        }
      },
      this.#deadline(nowMs),
      `no answer within --request-timeout (${this.deps.requestTimeoutMs}ms)`,
    );
    if (!out.reached) {
      // Replicas refused for a ring other than ours, and meanwhile this member took a new ring:
      // the same record (the same version: idempotent) goes to the key's replicas in that ring,
      // within the request's time, instead of failing with the ring it started from.
      const now = this.deps.ring();
      if (
        full === 0 && now !== undefined && now !== ring &&
        out.failed.some((f) => f.reason === STALE) &&
        this.deps.sched.now() < nowMs + this.deps.requestTimeoutMs
      ) {
        const next = this.#ring(consistency, this.deps.sched.now());
        const q = next.partition(key);
        const again = next.replicasOf(q);
        this.staleRetries++;
        if (again.length === 1 && this.#isSelf(again[0]!)) {
          return attemptOf(
            record,
            await this.#writeSelf(record, next.setHash[q], this.#storePartition(next, q)),
          );
        }
        return this.#writeReplicas(
          key,
          record,
          next,
          q,
          again,
          requiredAcks(consistency, again.length),
          consistency,
          nowMs,
        );
      }
      throw new DkvError(
        full > 0 ? "store_full" : "unavailable",
        `only ${out.ok.length} of ${replicas.length} replicas acknowledged; ${consistency} needs ${need}` +
          (full > diskErrors
            ? `; ${full - diskErrors} refused: store full (--max-store-bytes)`
            : "") +
          (diskErrors > 0 ? `; ${diskErrors} refused: cannot write its --data-dir log` : "") +
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

  /**
   * A conditional write, linearizable per key: single-decree Paxos among the key's replicas
   * (Cassandra's lightweight transactions; src/core/paxos.ts). Each round: prepare a fresh HLC
   * ballot at a quorum (the promises carry each replica's stored record: the quorum read), finish
   * a proposal found in progress (then start again), check `condition` against the newest record,
   * propose the mutated record and, once a quorum accepted it, commit it as a normal versioned
   * write (a quorum, or all with `consistency` all). Outbid rounds back off with jitter and retry
   * within --request-timeout, then answer 503. `one` and `any` are refused: a conditional write
   * needs a quorum.
   */
  async cas(
    key: string,
    condition: Condition,
    mutation: Mutation,
    consistency: Consistency,
  ): Promise<CasOutcome> {
    if (consistency === "one" || consistency === "any") {
      throw new DkvError(
        "bad_request",
        `conditional writes and atomic operations need consistency quorum or all, not ${consistency}`,
      );
    }
    this.#checkLead();
    /**
     * Our proposals a quorum refused after some replica may have taken one: each may still be
     * finished by another proposer, so each round first asks whether one was (then this call
     * succeeded with it).
     */
    const pending: Pending[] = [];
    try {
      return await this.#casRounds(key, condition, mutation, consistency, pending);
    } catch (e) {
      if (pending.length > 0 && e instanceof DkvError && e.code === "unavailable") {
        throw new DkvError(
          "unavailable",
          `${e.message} (a proposal of this request may still be applied: its outcome is unknown)`,
        );
      }
      throw e;
    }
  }

  async #casRounds(
    key: string,
    condition: Condition,
    mutation: Mutation,
    consistency: Consistency,
    pending: Pending[],
  ): Promise<CasOutcome> {
    const startMs = this.deps.sched.now();
    const endMs = startMs + this.deps.requestTimeoutMs;
    let why = "";
    for (let round = 1;; round++) {
      if (round > 1) {
        const waitMs = backoffMs(round - 1, this.deps.sched.random());
        if (this.deps.sched.now() + waitMs >= endMs) {
          this.casGiveUps++;
          throw new DkvError(
            "unavailable",
            `conditional write on '${key.slice(0, 100)}' not decided within --request-timeout ` +
              `(${this.deps.requestTimeoutMs} ms, ${round - 1} Paxos rounds): ${why}; retry`,
          );
        }
        this.casRetries++;
        await sleep(this.deps.sched, waitMs);
      }
      const nowMs = this.deps.sched.now();
      const ring = this.#ring("quorum", nowMs);
      const p = ring.partition(key);
      const replicas = ring.replicasOf(p);
      if (round === 1) this.#countRouting(replicas);
      const need = requiredAcks("quorum", replicas.length);
      const set = ring.setHash[p]!;
      const ballot = tick(this.#hlc, nowMs, this.deps.selfId);
      // A previous owner that may still hold newer commits but does not answer: a quorum of the
      // new replicas may not have them yet, so no condition can be checked (consistency first).
      const silent = this.#silentPreviousOwners(ring, p);
      if (silent.length > 0) {
        throw new DkvError(
          "unavailable",
          `the partition of '${
            key.slice(0, 100)
          }' is moving after a ring change and its previous ` +
            `owner(s) ${silent.join(", ")} do not answer: conditional writes wait until it is ` +
            `handed off`,
        );
      }
      const bid: Bid = { views: [], partial: [] };
      // The commits a pending proposal's fate needs are under its ballot or higher: the replicas
      // answer only those (none when nothing is pending).
      let since = ballot;
      for (const mine of pending) if (compareVersions(mine.ballot, since) < 0) since = mine.ballot;
      // While the key's partition moves after a ring change, its previous owners may hold
      // commits the new replicas have not received yet: their records join the quorum read, as
      // on the read path.
      const [prepared, prior] = await Promise.all([
        this.#paxosRound(
          replicas,
          need,
          startMs,
          (m) => this.#prepareOn(m, key, ballot, set, bid, since),
        ),
        Promise.all(
          this.#previousOwners(ring, p).map((x) =>
            this.#readFrom(x.member, key).then((a) => a.record, () => undefined)
          ),
        ),
      ]);
      // A pending proposal's fate needs a quorum of replicas' views, promised or not.
      const views = [...prepared.ok, ...bid.views!];
      for (const mine of views.length >= need ? [...pending] : []) {
        const fate = settledBy(views, mine);
        if (fate === "chosen") return { ok: true, record: mine.record, previous: mine.previous };
        if (fate === "dead") pending.splice(pending.indexOf(mine), 1);
        if (fate === "unknown") {
          throw new DkvError(
            "unavailable",
            `conditional write on '${key.slice(0, 100)}': too many other writes were committed ` +
              `meanwhile to tell whether this one was`,
          );
        }
      }
      if (!prepared.reached) {
        why = this.#outbid(bid, prepared.failed, "promised", need, replicas.length);
        continue;
      }
      const promises = prepared.ok;
      const found = inProgress(promises);
      if (found !== undefined) {
        // Finish the proposal in progress under our ballot, then start again (or, when it is
        // ours, we are done).
        const done = await this.#acceptAndCommit(
          replicas,
          need,
          set,
          ballot,
          found.record,
          startMs,
          consistency,
          { ring, p },
        );
        if (done !== undefined) {
          why = done;
          continue;
        }
        const v = found.record.version;
        const mine = pending.find((x) => compareVersions(x.record.version, v) === 0);
        if (mine !== undefined) return { ok: true, record: found.record, previous: mine.previous };
        why = "finished another proposal in progress";
        continue;
      }
      let stored = newest(promises.map((a) => a.record));
      for (const r of [...bid.partial!, ...prior]) if (r !== undefined) stored = merge(stored, r);
      if (stored !== undefined) this.observe(stored, "paxos read");
      const checkMs = this.deps.sched.now();
      const current = isPresent(stored, checkMs) ? stored : undefined;
      const applied = conditionHolds(condition, current, checkMs)
        ? applyMutation(mutation, current, checkMs)
        : undefined;
      if (applied === undefined || !applied.ok) {
        // Before answering that nothing was written, make sure no proposal of ours can still be
        // finished: a commit above their ballots (of the record as it is) rules them out.
        if (pending.length > 0) {
          const noop = stored ?? {
            key,
            value: "",
            version: tick(this.#hlc, checkMs, this.deps.selfId),
            tombstone: true,
          };
          const done = await this.#acceptAndCommit(
            replicas,
            need,
            set,
            ballot,
            noop,
            startMs,
            consistency,
            { ring, p },
          );
          if (done !== undefined) {
            why = done;
            continue;
          }
          pending.length = 0;
        }
        if (applied === undefined) return { ok: false, current };
        throw new DkvError(applied.tooLarge ? "too_large" : "conflict", applied.why);
      }
      const version = tick(this.#hlc, this.deps.sched.now(), this.deps.selfId);
      const record: KvRecord = applied.expiresAt === undefined
        ? { key, value: applied.value, version, tombstone: applied.tombstone }
        : { key, value: applied.value, version, tombstone: false, expiresAt: applied.expiresAt };
      const done = await this.#acceptAndCommit(
        replicas,
        need,
        set,
        ballot,
        record,
        startMs,
        consistency,
        { ring, p },
        () => pending.push({ ballot, record, previous: current }),
      );
      if (done !== undefined) {
        why = done;
        continue;
      }
      return { ok: true, record, previous: current };
    }
  }

  /** Conditional-write rounds that were outbid and retried, and requests that gave up (503). */
  casRetries = 0;
  casGiveUps = 0;

  /** Refuses to issue versions while this member's clock leads its peers' too far. */
  #checkLead(): void {
    const lead = this.deps.clockLeadMs?.() ?? 0;
    if (lead > this.deps.clock.maxSkewMs) {
      throw new DkvError(
        "unavailable",
        `this member's clock is ${lead} ms ahead of its peers' (more than --max-clock-skew, ` +
          `${this.deps.clock.maxSkewMs} ms): it issues no versions until its clock is fixed (NTP)`,
      );
    }
  }

  /** One Paxos phase on every replica (DOWN ones fail without a call), done at `need` answers. */
  #paxosRound<T>(
    replicas: readonly ViewMember[],
    need: number,
    startMs: number,
    call: (m: ViewMember) => Promise<T>,
  ) {
    const byId = new Map(replicas.map((m) => [m.id, m]));
    return gather(
      replicas.map((m) => m.id),
      need,
      "all",
      (id) => {
        const m = byId.get(id)!;
        if (m.state === "DOWN" && !this.#isSelf(m)) return Promise.reject(new Error("DOWN"));
        return call(m);
      },
      this.#deadline(startMs),
      `no answer within --request-timeout (${this.deps.requestTimeoutMs}ms)`,
    );
  }

  /**
   * Why a phase fell short. Outbid (a replica promised a higher ballot): our clock moves past it
   * and the caller retries. Too few replicas answering at all is an outage: a 503 now.
   */
  #outbid(
    bid: Bid,
    failed: readonly { target: string; reason: string }[],
    phase: string,
    need: number,
    n: number,
  ): string {
    if (bid.higher === undefined) {
      throw new DkvError(
        "unavailable",
        `only ${n - failed.length} of ${n} replicas ${phase}; a conditional write needs ${need}` +
          describeFailures(failed),
      );
    }
    const higher = bid.higher;
    // A replica's floor (node id "") is its start time: not a ballot to chase.
    if (
      higher.nodeId !== "" && this.deps.clock.admitsVersion("(ballot)", higher, "paxos refusal")
    ) {
      observe(this.#hlc, higher, this.deps.sched.now());
    }
    return `outbid by concurrent conditional writes (${phase} by ${n - failed.length} of ${n})`;
  }
  async #prepareOn(
    m: ViewMember,
    key: string,
    ballot: Ballot,
    set: number,
    bid: Bid,
    /** The oldest ballot among this request's proposals of unknown fate (else `ballot`). */
    since: Ballot,
  ): Promise<PromiseResult> {
    let a: PromiseResult;
    if (this.#isSelf(m)) {
      // With --data-dir, this member's promise counts once durable, as a peer's (/paxos).
      this.deps.durability?.checkWritable();
      a = this.deps.paxos!.prepare(key, ballot, set, since);
      await this.deps.durability?.durable();
    } else {
      this.routing.replicaCalls++;
      const w = await this.#paxosCall(m, {
        p: "prepare",
        key,
        ballot: wireBallot(ballot),
        set,
        since: wireBallot(since),
      });
      a = {
        ok: w.ok,
        held: w.held ?? false,
        ...(w.higher ? { higher: ballotOf(w.higher) } : {}),
        ...(w.busy ? { busy: true } : {}),
        ...(w.stale ? { stale: true } : {}),
        ...(w.accepted
          ? {
            accepted: { ballot: ballotOf(w.accepted.ballot), record: fromWire(w.accepted.record) },
          }
          : {}),
        ...(w.committed ? { committed: ballotOf(w.committed) } : {}),
        ...(w.recent
          ? { recent: w.recent.map((x) => ({ ballot: ballotOf(x.b), version: ballotOf(x.v) })) }
          : {}),
        ...(w.forgotten ? { forgotten: ballotOf(w.forgotten) } : {}),
        ...(w.record ? { record: fromWire(w.record) } : {}),
      };
    }
    if (a.stale) throw new StaleRing();
    if (!a.ok) {
      // A refusal shows the key's commits too: enough of them settle a pending proposal.
      if (!a.busy) bid.views?.push(a);
      throw outbid(bid, a.higher, a.busy === true);
    }
    if (!a.held) {
      // Still receiving the partition: what it has is written since, and joins the read.
      if (a.record !== undefined) bid.partial?.push(a.record);
      throw new NotHeld();
    }
    return a;
  }

  async #proposeOn(
    m: ViewMember,
    phase: "propose" | "commit",
    ballot: Ballot,
    record: KvRecord,
    set: number,
    bid: Bid,
  ): Promise<void> {
    let a: AcceptResult;
    if (this.#isSelf(m)) {
      // An accept changes this member's acceptor state and a commit its store: with --data-dir,
      // counted once durable (as a replica's /paxos answer), or a power cut could take back a
      // promise, an accept or a CAS already answered.
      this.deps.durability?.checkWritable();
      a = phase === "propose"
        ? this.deps.paxos!.propose(ballot, record, set)
        : this.deps.paxos!.commit(ballot, record, set);
      if (a.ok) await this.deps.durability?.durable();
    } else {
      this.routing.replicaCalls++;
      const w = await this.#paxosCall(m, {
        p: phase,
        ballot: wireBallot(ballot),
        record: toWire(record),
        set,
      });
      a = w.higher
        ? { ok: w.ok, higher: ballotOf(w.higher) }
        : { ok: w.ok, ...(w.stale ? { stale: true } : {}) };
    }
    if (a.stale) throw new StaleRing();
    if (!a.ok) throw outbid(bid, a.higher, false);
  }

  /** One Paxos message to a peer, coalesced with others to it; a refusal of it alone throws. */
  async #paxosCall(m: ViewMember, op: PaxosOp): Promise<PaxosAnswer> {
    const bytes = op.p === "prepare"
      ? op.key.length + 64
      : op.record.k.length + op.record.v.length + 64;
    const w = await this.#batcher.paxos(m.address, m.id, op, bytes);
    if (w.error !== undefined) throw new PeerError(m.address, w.error, w.status);
    return w;
  }

  /**
   * Propose `record` under `ballot` and, once a quorum accepted it, commit it (a quorum, or every
   * replica for `all`). Undefined when done, else why not (outbid: retry).
   */
  async #acceptAndCommit(
    replicas: readonly ViewMember[],
    need: number,
    set: number,
    ballot: Ballot,
    record: KvRecord,
    startMs: number,
    consistency: Consistency,
    /** The key's ring and partition: the commit reaches the partition's previous owners too. */
    moving: { ring: Ring; p: number },
    /** Called when the proposal failed but may have been taken by some replica. */
    onUncertain?: () => void,
  ): Promise<string | undefined> {
    const bid: Bid = {};
    const accepted = await this.#paxosRound(
      replicas,
      need,
      startMs,
      (m) => this.#proposeOn(m, "propose", ballot, record, set, bid),
    );
    if (!accepted.reached) {
      // A refusal from a quorum can still leave the proposal with the others (or a call that
      // failed may have been taken): it may be finished later, by anyone. Even refused by all:
      // a copy of the message (a retry, a duplicate) may have reached an acceptor before the
      // higher promise that refused the copy answered (simulator seed 1602: a duplicate proposal
      // was accepted, finished by another proposer, and the increment applied twice).
      onUncertain?.();
      return this.#outbid(bid, accepted.failed, "accepted", need, replicas.length);
    }
    const commitNeed = requiredAcks(consistency, replicas.length);
    const committed = await this.#paxosRound(
      replicas,
      commitNeed,
      startMs,
      (m) => this.#proposeOn(m, "commit", ballot, record, set, bid),
    );
    if (!committed.reached) {
      // Chosen (a quorum accepted it) but not stored by enough replicas: the next conditional
      // write or atomic op on the key finds it in progress and finishes it.
      throw new DkvError(
        "unavailable",
        `the conditional write was accepted but only ${committed.ok.length} of ` +
          `${replicas.length} replicas stored it; ${consistency} needs ${commitNeed}: it is ` +
          `completed by the next conditional write on the key` + describeFailures(committed.failed),
      );
    }
    // The committed record also goes to the partition's previous owners while it moves, as a
    // plain write does (#withPreviousOwners): members still on the old ring read them.
    const previous = this.#previousOwners(moving.ring, moving.p);
    if (previous.length > 0) {
      await this.#writePrevious(record, moving.p, previous, this.deps.sched.now());
    }
    return undefined;
  }

  read(key: string, consistency: Consistency): Promise<KvRecord | undefined> {
    try {
      const r = this.readNow(key, consistency);
      return r instanceof Promise ? r : Promise.resolve(r);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * `read`, answered at once when this member's store is the answer (one answer needed, this
   * member a replica holding the partition, no previous owner to ask): the record (undefined:
   * none), else a promise of it. The same steps and counters as `read`; throws (synchronously)
   * what `read` rejects with.
   */
  readNow(
    key: string,
    consistency: Consistency,
  ): KvRecord | undefined | Promise<KvRecord | undefined> {
    return this.#readTry(key, consistency, this.deps.sched.now(), STALE_RETRY_FIRST_MS);
  }

  /**
   * One try of `readNow` for a request that started at `startMs`; a try short of its answers
   * because replicas did not hold the partition goes again after `waitMs` (doubled each time)
   * while the request has time left, as a write waits for a replica's ring (#writeToSettled):
   * right after a ring change the replicas, or this member, may not have the new ring yet.
   */
  #readTry(
    key: string,
    consistency: Consistency,
    startMs: number,
    waitMs: number,
  ): KvRecord | undefined | Promise<KvRecord | undefined> {
    const nowMs = this.deps.sched.now();
    const ring = this.#ring(consistency, nowMs);
    const p = ring.partition(key);
    const replicas = ring.replicasOf(p);
    // A request is counted once, not once per try.
    const self = waitMs === STALE_RETRY_FIRST_MS
      ? this.#countRouting(replicas)
      : replicas.filter((m) => m.id === this.deps.selfId).length;
    const selfCount = self > 0 && this.deps.store !== undefined ? 1 : 0;
    const need = requiredAcks(consistency, replicas.length);
    const previous = this.#previousOwners(ring, p);
    if (need === 1 && selfCount === 1 && previous.length === 0) {
      // One answer needed and this node is a replica holding the partition: the local store is
      // that answer.
      const local = this.deps.store!.get(key, p);
      if (this.deps.holds!(p)) return isPresent(local, nowMs) ? local : undefined;
    }
    return this.#readReplicas(key, consistency, nowMs, startMs, ring, p, replicas, previous, need)
      .catch(async (e) => {
        const leftMs = startMs + this.deps.requestTimeoutMs - this.deps.sched.now();
        if (!(e instanceof NotHeldQuorum) || waitMs >= leftMs) throw e;
        await sleep(this.deps.sched, waitMs);
        this.staleRetries++;
        return this.#readTry(key, consistency, startMs, waitMs * 2);
      });
  }

  /** `readNow` from the replicas (and previous owners still moving the partition away). */
  async #readReplicas(
    key: string,
    consistency: Consistency,
    nowMs: number,
    /** When the request started: its --request-timeout runs from then. */
    startMs: number,
    ring: Ring,
    p: number,
    replicas: readonly ViewMember[],
    previous: readonly PreviousOwner[],
    need: number,
  ): Promise<KvRecord | undefined> {
    const self = replicas.filter((m) => this.#isSelf(m));
    const rest = replicas.filter((m) => !this.#isSelf(m) && m.state !== "DOWN");
    // The replicas, with the fingerprint of their list: one whose ring differs, or that does not
    // hold the partition (yet or any more), is a failure, and the next is asked. In parallel, the
    // previous owners still moving the partition away.
    const byId = new Map([...self, ...rest].map((m) => [m.id, m]));
    const set = ring.setHash[p]!;
    const partial: KvRecord[] = [];
    const [out, prior] = await Promise.all([
      gather(
        [...byId.keys()],
        need,
        "need",
        (id) => this.#readHeld(byId.get(id)!, key, set, partial),
        this.#deadline(startMs),
        `no answer within --request-timeout (${this.deps.requestTimeoutMs}ms)`,
        this.#hedge,
      ),
      Promise.all(
        previous.map((x) =>
          this.#readFrom(x.member, key).then(
            (a) => ({ ...x, a }),
            () => ({ ...x, a: undefined }),
          )
        ),
      ),
    ]);
    this.readsHedged += out.hedged;
    for (const x of prior) {
      if (x.a !== undefined ? !x.a.held : x.member.state === "LEFT") {
        this.#settle(x.prior, p, x.member.id);
      }
    }
    if (!out.reached) {
      // A replica still receiving the partition has everything written since the ring changed;
      // a previous owner still holding it has everything from before. Together they stand for
      // one full replica: each previous owner that holds it may complete one "not held" replica.
      const notHeld = out.failed.filter((f) => f.reason === NOT_HELD).length;
      const holders = prior.filter((x) => x.a?.held).length;
      if (out.ok.length + Math.min(notHeld, holders) < need) {
        const down = replicas.filter((m) => !byId.has(m.id)).map((m) => ({
          target: m.id,
          reason: "DOWN",
        }));
        throw new (notHeld > 0 ? NotHeldQuorum : DkvError)(
          "unavailable",
          `only ${out.ok.length} of ${replicas.length} replicas answered; ${consistency} needs ${need}` +
            describeFailures([...out.failed, ...down]),
        );
      }
    }
    let best = newest(out.ok.map((a) => a.record));
    for (const r of partial) best = merge(best, r);
    for (const x of prior) if (x.a?.record) best = merge(best, x.a.record);
    if (best) {
      this.observe(best);
      if (!mutations.noRepair) this.#repair(best, out.ok);
    }
    return isPresent(best, nowMs) ? best : undefined;
  }

  /**
   * Owners of p in recent rings that are not owners now and are not settled, if they still serve
   * (alive, or LEFT and handing off). A DOWN one is skipped but not settled: it may come back.
   */
  #previousOwners(ring: Ring, p: number): readonly PreviousOwner[] {
    if (this.#priors.length === 0) return NO_PREVIOUS_OWNERS;
    const now = ring.table[p]!;
    // Made only when there is one: every write and read of a partition asks.
    let out: PreviousOwner[] | undefined;
    for (const prior of this.#priors) {
      if (prior.done[p] === 1) continue;
      for (const id of prior.ring.table[p] ?? []) {
        if (now.includes(id)) {
          this.#settle(prior, p, id);
          continue;
        }
        const m = ring.byId.get(id);
        if (m === undefined) {
          this.#settle(prior, p, id); // forgotten by the view: gone for good
          continue;
        }
        if (!ring.isServing(id) || out?.some((x) => x.member.id === id)) continue;
        (out ??= []).push({ prior, member: m });
      }
    }
    return out ?? NO_PREVIOUS_OWNERS;
  }

  /** Previous owners of p, not settled, that are not serving (DOWN, or cut off). */
  #silentPreviousOwners(ring: Ring, p: number): string[] {
    const now = ring.table[p]!;
    const out = new Set<string>();
    for (const prior of this.#priors) {
      if (prior.done[p] === 1) continue;
      const settled = prior.settled.get(p);
      for (const id of prior.ring.table[p] ?? []) {
        if (now.includes(id) || settled?.has(id) || ring.byId.get(id) === undefined) continue;
        if (!ring.isServing(id)) out.add(id);
      }
    }
    return [...out];
  }

  /** Previous owner `id` of p in `prior` no longer holds p; forget the ring once all are. */
  #settle(prior: PriorRing, p: number, id: string): void {
    if (prior.done[p] === 1) return;
    let ids = prior.settled.get(p);
    if (ids === undefined) prior.settled.set(p, ids = new Set());
    ids.add(id);
    const owners = prior.ring.table[p] ?? [];
    if (!owners.every((o) => ids!.has(o))) return;
    prior.done[p] = 1;
    prior.settled.delete(p);
    if (++prior.doneCount === prior.done.length) {
      this.#priors = this.#priors.filter((x) => x !== prior);
    }
  }

  /**
   * The deadline of a request that started at `startMs`, started lazily (at the first failed
   * replica call): a member that cannot reach enough replicas answers 503 within
   * --request-timeout of the request's start, however many fallbacks it tried.
   */
  #deadline(startMs: number): () => Promise<void> {
    const endMs = startMs + this.deps.requestTimeoutMs;
    return () => sleep(this.deps.sched, Math.max(0, endMs - this.deps.sched.now()));
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

/**
 * One-shot timers that share one scheduler timer per due millisecond. Every read that goes to a
 * peer arms a hedge and nearly always disarms it again within a millisecond; at tens of thousands
 * of reads a second, one runtime timer each (set, then cleared) cost more than the hedge itself.
 * Here arming is a map look-up and a set insertion, disarming a set deletion; the shared timer
 * fires even when everything due then was disarmed (at most one per millisecond).
 */
class SharedTimers {
  readonly #due = new Map<number, Set<() => void>>();

  constructor(private readonly sched: Scheduler) {}

  /** Run `fire` after `ms` unless the returned function is called first. */
  arm(ms: number, fire: () => void): () => void {
    const at = this.sched.now() + ms;
    let due = this.#due.get(at);
    if (due === undefined) {
      const fns = new Set<() => void>();
      this.#due.set(at, fns);
      this.sched.setTimeout(() => {
        this.#due.delete(at);
        for (const fn of fns) fn();
      }, ms);
      due = fns;
    }
    const fns = due;
    fns.add(fire);
    return () => void fns.delete(fire);
  }
}

const ballotOf = (w: WireBallot): Ballot => ({ wallMs: w.t, counter: w.c, nodeId: w.n });
const wireBallot = (v: Ballot): WireBallot => ({ t: v.wallMs, c: v.counter, n: v.nodeId });

/**
 * A replica's 507: --max-store-bytes, or a --data-dir log it cannot write (a full disk); this
 * member's own, or a peer's.
 */
function isStoreFull(e: unknown): boolean {
  return (e instanceof DkvError && (e.code === "store_full" || e.code === "disk_error")) ||
    (e instanceof PeerError && e.status === 507);
}

function isDiskError(e: unknown): boolean {
  return (e instanceof DkvError && e.code === "disk_error") ||
    (e instanceof PeerError && e.status === 507 && e.message.includes("cannot write its log"));
}

function describeFailures(failed: readonly { target: string; reason: string }[]): string {
  return failed.length ? ` (${failed.map((f) => `${f.target}: ${f.reason}`).join("; ")})` : "";
}
