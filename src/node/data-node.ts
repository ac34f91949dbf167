/**
 * A data node: stores its replicas, coordinates any client request, and takes part in gossip
 * membership (src/node/gossip-agent.ts). It joins through --orchestrator and/or --join, retrying
 * while none answers (it never exits for that), and while the orchestrator is silent it offers
 * it the member table every --view-stale, so a restarted orchestrator has the cluster back at once.
 *
 * Background duties, each on its own timer: hint delivery, anti-entropy, rebalancing on ring
 * changes (and an orphan check), tombstone collection. A graceful leave announces LEFT through
 * gossip (no orchestrator needed), hands every partition and hint off, then reports done.
 */
import type { Hono } from "hono";
import type { Config } from "../config.ts";
import { HintStore } from "../core/hint-store.ts";
import { progressFields } from "../core/progress.ts";
import { ChangeLog } from "../core/change-log.ts";

/**
 * The change log is kept while some member polled within this long: a watcher polls at least
 * every few seconds (its long poll waits 5 s at most), so this spans a few missed polls.
 */
const WATCH_LOG_IDLE_MS = 60_000;

/** Change logs started by this process: with the start time, a new epoch for every start. */
let logsStarted = 0;
import { type Scheduler, sleep, type Timer } from "../core/scheduler.ts";
import { tablesDiffer } from "../core/move-planner.ts";
import { LoggedPaxosState, MemoryPaxosState, replayChange } from "../core/paxos.ts";
import { leftMembers, Ring, ringMember, type View } from "../core/view.ts";
import { createApp } from "../http/app.ts";
import type { MemberContext } from "../http/context.ts";
import type { Metrics } from "../http/metrics.ts";
import { gossipCall, gossipRoutes } from "../http/gossip-routes.ts";
import { nodeInternalRoutes } from "../http/internal-routes.ts";
import type { LinkCalls } from "../http/peer-tcp-server.ts";
import type { Logger } from "../log.ts";
import { realScheduler } from "../platform/scheduler.ts";
import type { ClusterAuth } from "../security/cluster-auth.ts";
import type { ClientTokens } from "../security/client-tokens.ts";
import { type NodeStatus, type PeerClient, toWire } from "../transport/index.ts";
import { AntiEntropy } from "./anti-entropy.ts";
import { ClockGuard } from "./clock-guard.ts";
import { Coordinator, gossipDeps } from "./coordinator.ts";
import { PaxosReplica } from "./paxos-replica.ts";
import { GossipAgent } from "./gossip-agent.ts";
import { HintDelivery } from "./hint-delivery.ts";
import { Rebalancer } from "./rebalancer.ts";
import { Store } from "./store.ts";
import type { DataDir, Source } from "./data-dir.ts";
import type { HlcState } from "../core/hlc.ts";
import type { NodeState } from "../core/wal-format.ts";

/** --data-dir logs the clock and incarnation this often when they changed. */
export const STATE_INTERVAL_MS = 1000;

export class DataNode {
  readonly app: Hono;
  /** What its HTTP routes (and the RESP front) see of this member. */
  readonly ctx: MemberContext;
  /** Every peer call as its internal routes answer them, gossip too (also the TCP peer link). */
  readonly peerCalls: LinkCalls;
  readonly store: Store;
  readonly hints: HintStore;
  readonly coordinator: Coordinator;
  readonly rebalancer: Rebalancer;
  readonly antiEntropy: AntiEntropy;
  readonly hintDelivery: HintDelivery;
  /** Client writes this node took, for watches (kept only while some member polls). */
  readonly changes: ChangeLog;
  /** This replica's Paxos acceptor (conditional writes). */
  readonly paxos: PaxosReplica;
  /** Refuses remote versions more than --max-clock-skew ahead of this member's clock. */
  readonly clockGuard: ClockGuard;
  /** The incarnation of this member's own gossip record: /health and /all-nodes agree on it. */
  get incarnation(): number {
    return this.agent.swim.self.incarnation;
  }
  #view: View | undefined;
  #ring: Ring | undefined;
  readonly agent: GossipAgent;
  #lastRejoinAtMs = 0;
  #takenOutSeen = 0;
  #stopped = false;
  #leaving: Promise<boolean> | undefined;
  #tombstonesCollected = 0;
  #timers: Timer[] = [];
  private readonly now: () => number;

  constructor(
    readonly config: Config,
    private readonly peers: PeerClient,
    private readonly log: Logger,
    private readonly sched: Scheduler = realScheduler,
    /** The cluster secret (signs and checks internal calls); `peers` must sign with it too. */
    readonly auth?: ClusterAuth,
    /** Client tokens (--auth-token-file): the public API then needs a bearer token. */
    readonly tokens?: ClientTokens,
    /** --data-dir, opened (DataDir.open): replayed here; main.ts then calls `dataDir.start`. */
    readonly dataDir?: DataDir,
    /** GET /metrics: the process shell's (with process figures); else the app makes one. */
    metrics?: Metrics,
  ) {
    const now = () => sched.now();
    this.now = now;
    this.store = new Store(1, config.storeBytesMax ?? Infinity, now);
    this.clockGuard = new ClockGuard(config.timers.maxClockSkewMs, now, log);
    this.hints = new HintStore({ countMax: config.hintsMax, bytesMax: config.hintBytesMax });
    const restored = dataDir === undefined ? undefined : this.#restore(dataDir);
    // A new epoch each start: a poller that saw the log before a restart knows it may have missed
    // entries (the numbers start again).
    // (Not from sched.random(): that would shift every later draw of the member's stream.)
    const epoch = `${now().toString(36)}.${(++logsStarted).toString(36)}`;
    this.changes = new ChangeLog(epoch, config.watchLogEntries, WATCH_LOG_IDLE_MS);
    const ring = () => this.#ring;
    this.paxos = new PaxosReplica({
      store: this.store,
      ring,
      holds: (p) => this.holdsPartition(p),
      clock: this.clockGuard,
      changes: this.changes,
      now,
      keysMax: config.paxosKeysMax,
      ...(restored === undefined ? {} : { state: restored.paxos }),
    });
    this.coordinator = new Coordinator({
      selfId: config.nodeId,
      ring,
      store: this.store,
      holds: (p) => this.holdsPartition(p),
      holdsOrReceives: (p) => this.holdsOrReceives(p),
      hints: this.hints,
      peers,
      sched,
      clock: this.clockGuard,
      ...gossipDeps(config, () => this.agent),
      requestTimeoutMs: config.timers.requestTimeoutMs,
      readHedge: config.readHedge,
      sloppyQuorum: config.sloppyQuorum,
      log,
      batchKeysMax: config.batchKeysMax,
      batchBytesMax: config.batchBytesMax,
      ...(dataDir === undefined ? {} : { durability: dataDir, gate: () => this.restartGate() }),
      onClientWrite: (r) => this.changes.append(r, now()),
      paxos: this.paxos,
    });
    if (restored !== undefined) this.coordinator.restoreClock(restored.hlc);
    this.rebalancer = new Rebalancer(config, this.store, peers, log, ring, sched);
    this.antiEntropy = new AntiEntropy(
      config,
      this.store,
      peers,
      log,
      ring,
      // Records anti-entropy pulled are logged without waiting (background changes): with
      // --data-dir a partition counts them as merged only once they are durable, or a power cut
      // could take back what made it complete (sim seed 658).
      (p, from) => {
        if (dataDir === undefined) this.rebalancer.onMoveDone(p, from);
        else {
          void dataDir.durable().then(() => this.rebalancer.onMoveDone(p, from), () => {});
        }
      },
      (r, from) => this.coordinator.observe(r, from),
      now,
    );
    this.hintDelivery = new HintDelivery(config, this.hints, this.store, peers, log, ring, now);
    this.agent = new GossipAgent({
      config,
      role: "node",
      swim: config.swim,
      peers,
      log,
      sched,
      authenticated: auth !== undefined,
      // Without an orchestrator this node's own settings hold until it hears an orchestrator's.
      cluster: config.orchestrator === undefined
        ? {
          replicationFactor: config.replicationFactor,
          partitions: config.partitions,
          source: "node",
        }
        : undefined,
      onView: (v) => this.useView(v),
      ...(restored === undefined ? {} : { incarnation: restored.incarnation + 1 }),
    });
    // The members it knew had left stay gone (Swim.rememberLeft), first: a member of the ring it
    // had that left since is not held DOWN in the ring by a stale memory, its own or another's.
    if (this.#restoredLeft.length > 0) this.agent.swim.rememberLeft(this.#restoredLeft, now());
    // The members of the ring it had keep their places while they are away (Swim.rememberRing):
    // the restart gate keeps this node quiet, this keeps the others from taking their keys.
    if (this.#restoredRing !== undefined) this.agent.swim.rememberRing(this.#restoredRing, now());
    const ctx: MemberContext = {
      role: "node",
      selfId: config.nodeId,
      advertise: config.advertise,
      incarnation: () => this.incarnation,
      config,
      coordinator: this.coordinator,
      peers,
      store: this.store,
      holds: (p) => this.holdsPartition(p),
      log,
      view: () => this.#view,
      ring,
      status: () => this.status(),
      leaving: () => this.leaving,
      rebalanceProgress: () => this.rebalancer.progress(),
      leave: () => {
        const refused = this.leaveRefusal();
        if (refused === undefined) void this.leave();
        return refused;
      },
      dutyHolder: () => this.agent.dutyHolder(),
      settingsMismatches: () => this.agent.settingsMismatches(),
      ...(auth === undefined ? {} : { auth }),
      ...(tokens === undefined ? {} : { tokens }),
      sched,
      ...(metrics === undefined ? {} : { metrics }),
    };
    const { routes: internal, calls } = nodeInternalRoutes(ctx, {
      changes: this.changes,
      sched,
      hints: this.hints,
      holds: (p) => this.holdsPartition(p),
      holdsOrReceives: (p) => this.holdsOrReceives(p),
      leaving: () => this.leaving,
      onMoveDone: (p, from) => this.rebalancer.onMoveDone(p, from),
      now,
      clock: this.clockGuard,
      ...(dataDir === undefined ? {} : { durability: dataDir, gate: () => this.restartGate() }),
      paxos: this.paxos,
    });
    internal.route("/", gossipRoutes(ctx, this.agent));
    this.peerCalls = { ...calls, gossip: gossipCall(ctx, this.agent) };
    this.ctx = ctx;
    this.app = createApp(ctx, internal);
  }

  get view(): View | undefined {
    return this.#view;
  }

  /**
   * Replay --data-dir into the store and hints, then log every later change. Returns the clock
   * and incarnation to start past: the newest state entry's, the clock moved on by one state
   * period (versions issued after that entry were not logged here when this member was not a
   * replica of their key), and past every version replayed.
   */
  #restore(
    dir: DataDir,
  ): { hlc: HlcState; incarnation: number; paxos: LoggedPaxosState } {
    const store = this.store;
    const hints = this.hints;
    const hlc: HlcState = { wallMs: 0, counter: 0 };
    let incarnation = 0;
    // The acceptor's state as logged (format 2); a dir with no floor entry never logged it.
    const paxos = new MemoryPaxosState({ wallMs: 0, counter: 0, nodeId: "" });
    let paxosLogged = false;
    const seen = (v: HlcState) => {
      if (v.wallMs > hlc.wallMs || (v.wallMs === hlc.wallMs && v.counter > hlc.counter)) {
        hlc.wallMs = v.wallMs;
        hlc.counter = v.counter;
      }
    };
    const startMs = this.now();
    let ring: NodeState["ring"] = [];
    let left: NodeState["left"] = [];
    const { entries, note } = dir.replay((e) => {
      switch (e.type) {
        case "record":
          store.apply(e.record);
          seen(e.record.version);
          break;
        case "drop":
          if (store.partitionCount !== e.partitionCount) store.resize(e.partitionCount);
          store.dropPartition(e.partition);
          break;
        case "hint-add":
          hints.add(e.target, e.record, e.storedAtMs);
          break;
        case "hint-remove":
          hints.forget(e.target, e.record.key, e.record.version);
          break;
        case "state":
          if (e.state.partitions > 0) store.resize(e.state.partitions);
          ring = e.state.ring;
          left = e.state.left ?? [];
          seen({ wallMs: e.state.hlc.wallMs + STATE_INTERVAL_MS, counter: 0 });
          incarnation = Math.max(incarnation, e.state.incarnation);
          break;
        case "paxos":
          if (e.change.kind === "floor") paxosLogged = true;
          replayChange(paxos, e.change);
          break;
      }
    });
    // Promises this dir never logged (a new dir, or one from before format 2) may have been
    // given: as without a dir, the floor at the start time bars the ballots issued before it.
    if (!paxosLogged) paxos.raiseFloor({ wallMs: this.now(), counter: 0, nodeId: "" });
    const logged = new LoggedPaxosState(paxos, (change) => dir.append({ type: "paxos", change }));
    // The floor opens every dir's Paxos log: from now on its promises are all logged.
    dir.append({ type: "paxos", change: { kind: "floor", ballot: paxos.floor() } });
    this.log.info(
      `--data-dir: recovered ${store.size} keys, ${hints.count} hints from ${entries} entries ` +
        `in ${this.now() - startMs} ms (${note}; Paxos state of ${paxos.size} keys)`,
    );
    store.persist = {
      stored: (record) => dir.append({ type: "record", record }),
      dropped: (partition, partitionCount) =>
        dir.append({ type: "drop", partition, partitionCount }),
    };
    hints.persist = {
      added: (h) =>
        dir.append({
          type: "hint-add",
          target: h.target,
          record: h.record,
          storedAtMs: h.storedAtMs,
        }),
      removed: (h) => dir.append({ type: "hint-remove", target: h.target, record: h.record }),
    };
    this.#restoredLeft = left;
    if (ring.length > 1) {
      this.#restoredRing = ring;
      this.#gateUntilMs = this.now() + this.config.timers.deadAfterMs;
    }
    return { hlc, incarnation, paxos: logged };
  }

  /** The ring this node had before a restart from its data dir, while the gate below is shut. */
  #restoredRing: NodeState["ring"] | undefined;
  /** The members its table held as LEFT before a restart from its data dir. */
  #restoredLeft: NonNullable<NodeState["left"]> = [];
  #gateUntilMs = 0;

  /**
   * Why this node, restarted from its data dir, does not serve reads and writes yet, or
   * undefined. Its data is old, and the ring it sees right after the restart may be only the
   * members that are back so far (after a full-cluster restart the orchestrator knows nobody):
   * answering for keys from that ring could hand out stale values as the newest. So it waits
   * until every member of the ring it had is back (alive, or gracefully gone), or --dead-after
   * passed (the rest are then taken out of the ring anyway). A majority is not enough: the
   * members still away may hold every copy a key's quorum wrote (with N=1 its only copy), and
   * the smaller ring gives that key to members that are back (simulator seed 6).
   */
  restartGate(): string | undefined {
    const before = this.#restoredRing;
    if (before === undefined) return undefined;
    const ring = this.#ring;
    // Back = in this node's ring and alive (a member known but not yet in the ring does not
    // count: the ring would still be too small, and its replica sets not the old ones), or
    // gracefully LEFT (it handed its data off).
    const inRing = new Set(ring?.ids ?? []);
    const back =
      before.filter((m) =>
        (inRing.has(m.id) && (m.id === this.config.nodeId || ring!.isAlive(m.id))) ||
        ring?.byId.get(m.id)?.state === "LEFT"
      ).length;
    if (back === before.length || this.now() >= this.#gateUntilMs) {
      this.#restoredRing = undefined;
      this.log.info(
        `restarted from --data-dir: ${back} of the ${before.length} members of its ring are ` +
          `back; serving`,
      );
      return undefined;
    }
    return `this member restarted from its data dir and waits until every member of its ring ` +
      `is back (${back} of ${before.length} so far) before it answers for keys`;
  }

  /** What --data-dir writes at the head of each log and snapshot, and in its snapshots. */
  durabilitySource(): Source {
    const store = this.store;
    const hints = this.hints;
    const paxos = this.paxos.acceptor.state;
    return {
      state: () => this.#nodeState(),
      capture: function* (this: void) {
        // One partition's records at a time (partitionRecords copies them), then the hints.
        const count = store.partitionCount;
        for (let p = 0; p < count; p++) {
          // Re-bucketed meanwhile (the first view): this snapshot is dropped and tried again.
          if (store.partitionCount !== count) throw new Error("the store was re-partitioned");
          for (const record of store.partitionRecords(p)) yield { type: "record", record };
        }
        for (const h of [...hints.all()]) {
          yield { type: "hint-add", target: h.target, record: h.record, storedAtMs: h.storedAtMs };
        }
        // The acceptor's state (its floor, then each key): logs before the snapshot go.
        if (paxos instanceof LoggedPaxosState) {
          for (const change of paxos.capture()) yield { type: "paxos", change };
        }
      },
    };
  }

  #nodeState(): NodeState {
    const ring = this.#ring;
    return {
      nodeId: this.config.nodeId,
      cluster: this.config.clusterName,
      partitions: this.#view === undefined ? 0 : this.store.partitionCount,
      incarnation: this.incarnation,
      hlc: this.coordinator.clockState(),
      // Until the restart gate opens, the ring from before the restart is still the one to find.
      ring: this.#restoredRing ??
        (ring === undefined ? [] : ring.ids.map((id) => ringMember(ring, id))),
      // Before its first view (it logs its state as it starts), the ones it restored.
      left: this.#view === undefined ? this.#restoredLeft : leftMembers(this.#view.members),
    };
  }

  /** Log the clock and incarnation when they changed (every STATE_INTERVAL_MS). */
  #logState(): void {
    this.dataDir?.logState(this.#nodeState());
  }

  get leaving(): boolean {
    return this.#leaving !== undefined;
  }

  start(): void {
    this.agent.start(this.#seeds());
    const t = this.config.timers;
    const every = (ms: number, fn: () => unknown) =>
      this.#timers.push(this.sched.setInterval(() => void fn(), ms));
    every(Math.max(50, Math.floor(t.viewPushIntervalMs / 2)), () => this.#watchdog());
    every(t.hintIntervalMs, () => this.hintDelivery.round());
    if (this.dataDir !== undefined) every(STATE_INTERVAL_MS, () => this.#logState());
    every(t.hintIntervalMs, () => this.rebalancer.movingIn.size > 0 && this.fill());
    every(t.antiEntropyIntervalMs, () => this.antiEntropy.round());
    every(t.progressIntervalMs, () => this.logProgress());
    // Orphans (data for partitions this node does not own) are handed off when two checks in a
    // row see them: a view-push interval apart, which is far longer than gossip takes to spread
    // a ring change, so data that arrived just before our view caught up is not bounced around.
    every(Math.max(1000, t.viewPushIntervalMs), () => this.rebalancer.checkOrphans());
    every(
      Math.max(1000, Math.min(60_000, Math.floor(t.tombstoneGraceMs / 4))),
      () => this.collectTombstones(),
    );
  }

  stop(): void {
    this.#stopped = true;
    this.agent.stop();
    for (const t of this.#timers) this.sched.clear(t);
    this.#timers = [];
  }

  collectTombstones(): number {
    // Ages are measured on the peers' clock: a member whose own clock runs ahead would otherwise
    // collect tombstones early, and a late copy of the deleted value could come back.
    const lead = Math.max(0, this.agent.clockLeadMs());
    const n = this.store.collectTombstones(
      this.now() - lead - this.config.timers.tombstoneGraceMs,
    );
    this.#tombstonesCollected += n;
    if (n > 0) {
      this.log.info(
        `collected ${n} tombstones older than ${this.config.timers.tombstoneGraceMs}ms`,
      );
    }
    return n;
  }

  /**
   * A progress line for a rebalance or an anti-entropy round running for at least one
   * --progress-interval (shorter ones only log their start and end).
   */
  logProgress(): void {
    const nowMs = this.now();
    const minMs = this.config.timers.progressIntervalMs;
    const jobs = [
      ["rebalance", this.rebalancer.progress()],
      ["anti-entropy", this.antiEntropy.progress()],
    ] as const;
    for (const [job, p] of jobs) {
      if (p === undefined || nowMs - p.startedAtMs < minMs) continue;
      const f = progressFields(p, nowMs);
      this.log.info(
        `${job} progress: ${f.partitions} partitions, ${f.keys} keys, ${f.bytes} bytes, ` +
          `${f.keysPerSec} keys/s, ${f.bytesPerSec} B/s, ETA ${
            f.etaS === null ? "?" : `${f.etaS}s`
          }`,
        { job, ...f },
      );
    }
  }

  /**
   * Members to join through: the orchestrator, then --join, then (after a restart from the data
   * dir) the members of the ring it had, so the cluster finds itself again even when the
   * orchestrator restarted too and knows nobody.
   */
  #seeds(): string[] {
    const o = this.config.orchestrator;
    const before = (this.#restoredRing ?? []).map((m) => m.address);
    return [...new Set([...(o ? [o] : []), ...this.config.join, ...before])];
  }

  /** Use this membership view (from gossip; tests inject one directly). */
  useView(view: View): void {
    const first = this.#view === undefined;
    this.#view = view;
    this.store.resize(view.partitions);
    const before = this.#ring;
    const ring = new Ring(view);
    this.#ring = ring;
    const changed = before === undefined || tablesDiffer(before.table, ring.table);
    if (changed) {
      const inRing = ring.ids.length;
      const msg = `ring: ${view.members.length} members, ${inRing} in the ring, N=${ring.n}`;
      if (first) this.log.info(msg);
      else this.log.debug(msg);
    }
    this.coordinator.onRing(ring);
    // --data-dir: the ring goes into the log at once (not at the next state tick), so a write
    // acknowledged after this change is durable only with it, and a restart knows whom to wait for.
    if (changed) this.#logState();
    const takenOut = this.agent.swim.stats.takenOutOfRing;
    if (takenOut !== this.#takenOutSeen) {
      // Others had us out of the ring (we came back by refuting): they wrote our partitions
      // elsewhere meanwhile, so everything we own is incomplete until checked again.
      this.#takenOutSeen = takenOut;
      // Whoever held them meanwhile is some other ring member: ask them all.
      const others = ring.ids.filter((id) => id !== this.config.nodeId);
      this.rebalancer.markMovingIn(ring.partitionsOf(this.config.nodeId), others);
      this.log.info(`this member was taken out of the ring and came back: re-checking its data`);
    }
    // A member's first ring: if it is in it, it just joined (or restarted empty), so it plans
    // from the ring without itself, and what it owns is "moving in" until it is complete.
    this.rebalancer.onRing(
      ring,
      before === undefined ? ring.without(this.config.nodeId)?.table : undefined,
    );
    if (this.rebalancer.movingIn.size > 0) this.sched.defer(() => void this.fill());
  }

  /** Check partitions still moving in against the co-replicas' digests (see AntiEntropy.fill). */
  fill(): Promise<void> {
    return this.antiEntropy.fill(
      [...this.rebalancer.movingIn.keys()],
      (p) => this.rebalancer.movingFrom(p),
    );
  }

  /**
   * Does this member take a write meant for a previous owner of p (PREVIOUS_OWNER in the
   * coordinator): it holds p, or is receiving it (back, after a restart). Otherwise it never will
   * hold p, and the writer may stop sending it p's writes.
   */
  holdsOrReceives(p: number): boolean {
    return this.rebalancer.movingIn.has(p) || this.holdsPartition(p);
  }

  /**
   * Does this member hold partition p, so that "no record here" means "not found"? Yes when it
   * owns p, or still has data of p (a mover before its drop), and is not still receiving p.
   */
  holdsPartition(p: number): boolean {
    if (this.rebalancer.movingIn.has(p)) return false;
    if (this.store.partitionSize(p) > 0) return true;
    return this.#ring?.table[p]?.includes(this.config.nodeId) ?? false;
  }

  /**
   * While the orchestrator is silent for --view-stale, offer it our table every --view-stale: a
   * restarted orchestrator knows nobody, and this gives it the whole cluster at once.
   */
  #watchdog(): void {
    const o = this.config.orchestrator;
    if (this.#stopped || this.leaving || o === undefined) return;
    const stale = this.config.timers.viewStaleMs;
    const nowMs = this.now();
    if (this.agent.orchestratorSilentMs() > stale && nowMs - this.#lastRejoinAtMs > stale) {
      this.#lastRejoinAtMs = nowMs;
      this.log.debug(`orchestrator ${o} silent for ${stale}ms; offering it our member table`);
      this.agent.rejoin(this.#seeds());
    }
  }

  /**
   * Graceful leave: out of the ring, data and hints handed off, then resolves true. Resolves
   * false if that did not finish within --leave-timeout. Calling it again returns the same leave.
   */
  leave(): Promise<boolean> {
    if (this.#leaving === undefined) {
      const refused = this.leaveRefusal();
      if (refused !== undefined) {
        this.log.error(`cannot leave: ${refused}`);
        return Promise.resolve(false);
      }
    }
    this.#leaving ??= this.#leave().then((ok) => {
      this.onLeft?.(ok);
      return ok;
    });
    return this.#leaving;
  }

  /**
   * Why this node cannot leave now, or undefined. The last live node in the ring has nobody to
   * hand its data to: its leave could only drop everything, so it is refused (the node keeps
   * serving; a second SIGTERM still exits at once).
   */
  leaveRefusal(): string | undefined {
    const ring = this.#ring;
    const others = ring?.ids.filter((id) => id !== this.config.nodeId && ring.isAlive(id)) ?? [];
    if (others.length > 0 || this.store.size + this.hints.count === 0) return undefined;
    return `no other live node in the ring to hand ${this.store.size} records and ` +
      `${this.hints.count} hints to; still serving them`;
  }

  /** Called once a leave finished (true) or timed out (false); main.ts exits the process. */
  onLeft?: (ok: boolean) => void;

  async #leave(): Promise<boolean> {
    const t = this.config.timers;
    const deadline = this.now() + t.leaveTimeoutMs;
    const startMs = this.now();
    this.log.info(`leaving: telling the cluster ${this.config.nodeId} leaves the ring`);
    this.agent.leave();
    // Wait until the view has us out of the ring and every partition and hint is handed off.
    while (this.now() < deadline) {
      const me = this.#view?.members.find((m) => m.id === this.config.nodeId);
      const outOfRing = me === undefined || !me.inRing;
      if (outOfRing) {
        if (this.store.size > 0 && !this.rebalancer.busy) this.rebalancer.checkOrphans();
        if (this.hints.count > 0) await this.#handOffHints();
        if (this.store.size === 0 && this.hints.count === 0 && !this.rebalancer.busy) {
          this.log.info(`left the ring: data handed off in ${this.now() - startMs} ms`);
          return true;
        }
      }
      await sleep(this.sched, 100);
    }
    const pending = `${this.store.size} records, ${this.hints.count} hints`;
    this.log.error(`leave timed out after ${t.leaveTimeoutMs}ms with ${pending} not handed off`);
    return false;
  }

  /**
   * Give held hints to one other live ring member before leaving (the first in partition 0's
   * preference order). Their expiry clock restarts there: a hint can live up to twice half the
   * tombstone grace in the worst case, which the grace's margin covers.
   */
  async #handOffHints(): Promise<void> {
    const ring = this.#ring;
    if (ring === undefined) return;
    const others = ring.order[0]?.filter((id) => id !== this.config.nodeId && ring.isAlive(id)) ??
      [];
    const to = others[0] ? ring.byId.get(others[0]) : undefined;
    if (to === undefined) return;
    const limits = { keysMax: this.config.batchKeysMax, bytesMax: this.config.batchBytesMax };
    for (const target of this.hints.targets()) {
      const batch = this.hints.peek(target, limits);
      try {
        const res = await this.peers.hint(to.address, {
          target,
          records: batch.map((h) => toWire(h.record)),
        }, this.config.timers.requestTimeoutMs);
        if (res.stored === batch.length) this.hints.remove(batch);
      } catch {
        return;
      }
    }
  }

  status(): NodeStatus {
    const ring = this.#ring;
    const counts = this.store.counts();
    const owned = new Set(ring ? ring.partitionsOf(this.config.nodeId) : []);
    let held = 0, heldNotOwned = 0;
    for (let p = 0; p < this.store.partitionCount; p++) {
      if (this.store.partitionSize(p) === 0) continue;
      held++;
      if (!owned.has(p)) heldNotOwned++;
    }
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    const ae = this.antiEntropy.stats;
    const rb = this.rebalancer.stats;
    return {
      id: this.config.nodeId,
      leaving: this.leaving,
      partitionsOwned: owned.size,
      partitionsHeld: held,
      partitionsHeldNotOwned: heldNotOwned,
      keys: counts.live,
      tombstones: counts.tombstones,
      hintsPending: this.hints.count,
      hintsDropped: this.hints.dropped,
      hintsDelivered: this.hintDelivery.delivered,
      hintsExpired: this.hintDelivery.expired,
      movingIn: this.rebalancer.movingIn.size,
      movingOut: this.rebalancer.movingOut,
      readRepairs: this.coordinator.readRepairs,
      staleRingRetries: this.coordinator.staleRetries,
      previousOwnerWrites: this.coordinator.previousOwnerWrites,
      previousOwnerMisses: this.coordinator.previousOwnerMisses,
      routing: { ...this.coordinator.routing },
      readsHedged: this.coordinator.readsHedged,
      readHedgeDelayMs: this.coordinator.hedgeDelayMs ?? null,
      clockSkewRefused: this.clockGuard.refused,
      storeBytes: this.store.bytes,
      ...(this.dataDir === undefined ? {} : { disk: this.dataDir.status() }),
      storeFullRefused: this.store.fullRefused,
      authRefused: this.auth?.refused ?? 0,
      antiEntropy: {
        rounds: ae.rounds,
        lastRoundAt: iso(ae.lastRoundAtMs),
        lastRoundMs: ae.lastRoundMs,
        keysPulled: ae.keysPulled,
        keysPushed: ae.keysPushed,
      },
      rebalance: {
        running: this.rebalancer.busy,
        partitionsSent: rb.partitionsSent,
        keysSent: rb.keysSent,
        bytesSent: rb.bytesSent,
        partitionsDropped: rb.partitionsDropped,
        lastStartedAt: iso(rb.lastStartedAtMs),
        lastFinishedAt: iso(rb.lastFinishedAtMs),
        lastDurationMs: rb.lastDurationMs,
        lastStreamedAt: iso(rb.lastStreamedAtMs),
        lastStreamMs: rb.lastStreamMs,
        lastStreamBytes: rb.lastStreamBytes,
      },
      tombstonesCollected: this.#tombstonesCollected,
      gossip: {
        messagesSent: this.agent.swim.stats.messagesSent,
        bytesSent: this.agent.swim.stats.bytesSent,
        localHealth: this.agent.swim.health,
        incarnation: this.agent.swim.self.incarnation,
        dutyHolder: this.agent.dutyHolder() ?? null,
      },
    };
  }
}
