/**
 * The orchestrator: the member nodes join through, which holds the cluster's settings
 * (replication factor, partitions) and, while it is alive, the duty of taking long-DOWN members
 * out of the ring. Membership itself is gossip (SWIM, src/core/swim.ts) among all members, the
 * orchestrator included, so the cluster keeps working — and keeps changing membership — while it
 * is down. It also pushes its full table to every member each view-push interval. It stores no
 * data, but serves the public API by routing to the owners with the same coordinator the nodes use.
 *
 * The same class runs `--role gateway`: a member that joins like a node (through --orchestrator
 * or --join), holds no data, is never in the ring and never holds the orchestrator's duty, and
 * coordinates every request it gets (the original project's "load balancer server"). Several can
 * run behind any TCP load balancer.
 */
import { Hono } from "hono";
import type { Config } from "../config.ts";
import { tablesDiffer } from "../core/move-planner.ts";
import { leftMembers, Ring, ringMember, type View } from "../core/view.ts";
import { createApp } from "../http/app.ts";
import type { MemberContext } from "../http/context.ts";
import type { Metrics } from "../http/metrics.ts";
import { gossipRoutes } from "../http/gossip-routes.ts";
import type { Logger } from "../log.ts";
import { ClockGuard } from "../node/clock-guard.ts";
import { realScheduler } from "../platform/scheduler.ts";
import type { Scheduler, Timer } from "../core/scheduler.ts";
import { Coordinator, gossipDeps } from "../node/coordinator.ts";
import { GossipAgent } from "../node/gossip-agent.ts";
import type { ClusterAuth } from "../security/cluster-auth.ts";
import type { ClientTokens } from "../security/client-tokens.ts";
import type { PeerClient } from "../transport/index.ts";
import type { HlcState } from "../core/hlc.ts";
import type { NodeState } from "../core/wal-format.ts";
import type { DataDir, Source } from "../node/data-dir.ts";
import { STATE_INTERVAL_MS } from "../node/data-node.ts";

export class Orchestrator {
  readonly app: Hono;
  /** What its HTTP routes (and the RESP front) see of this member. */
  readonly ctx: MemberContext;
  readonly agent: GossipAgent;
  /** The incarnation of this member's own gossip record: /health and /all-nodes agree on it. */
  get incarnation(): number {
    return this.agent.swim.self.incarnation;
  }
  #view: View | undefined;
  #ring: Ring | undefined;
  #coordinator: Coordinator;
  #timers: Timer[] = [];

  constructor(
    readonly config: Config,
    peers: PeerClient,
    private readonly log: Logger,
    private readonly sched: Scheduler = realScheduler,
    /** The cluster secret (signs and checks internal calls); `peers` must sign with it too. */
    readonly auth?: ClusterAuth,
    /** Client tokens (--auth-token-file): the public API then needs a bearer token. */
    readonly tokens?: ClientTokens,
    /** GET /metrics: the process shell's (with process figures); else the app makes one. */
    metrics?: Metrics,
    /**
     * --data-dir, opened (DataDir.open): the member table's ring, incarnation and clock survive a
     * restart (no data: only state entries); main.ts then calls `dataDir.start`.
     */
    readonly dataDir?: DataDir,
  ) {
    const role = config.role === "gateway" ? "gateway" : "orchestrator";
    const restored = dataDir === undefined ? undefined : restoreState(dataDir, log);
    this.agent = new GossipAgent({
      config,
      role,
      swim: config.swim,
      peers,
      log,
      sched,
      authenticated: auth !== undefined,
      // A gateway takes the cluster's settings from the members it joins.
      cluster: role === "gateway" ? undefined : {
        replicationFactor: config.replicationFactor,
        partitions: config.partitions,
        source: "orchestrator",
      },
      onView: (v) => this.useView(v),
      ...(restored === undefined ? {} : { incarnation: restored.incarnation + 1 }),
    });
    // An orchestrator restarted from its dir holds the members it knew had left as gone, first
    // (Swim.rememberLeft): a node's stale memory of one of them in its ring must not bring it
    // back DOWN (simulator seed 1514).
    if (restored !== undefined && restored.left.length > 0) {
      this.#restoredLeft = restored.left;
      this.agent.swim.rememberLeft(restored.left, sched.now());
    }
    // It holds the ring it had (Swim.rememberRing): a node that joins before the members of that
    // ring are back joins their ring, not a ring of its own that answers 404 for their keys
    // (simulator seeds 1213, 1497, 2428 and others).
    if (restored !== undefined && restored.ring.length > 0) {
      this.agent.swim.rememberRing(restored.ring, sched.now());
    }
    this.#coordinator = new Coordinator({
      selfId: config.nodeId,
      ring: () => this.#ring,
      peers,
      sched,
      clock: new ClockGuard(config.timers.maxClockSkewMs, () => sched.now(), log),
      ...gossipDeps(config, () => this.agent),
      requestTimeoutMs: config.timers.requestTimeoutMs,
      readHedge: config.readHedge,
      sloppyQuorum: config.sloppyQuorum,
      log,
      batchKeysMax: config.batchKeysMax,
      batchBytesMax: config.batchBytesMax,
    });
    if (restored !== undefined) this.#coordinator.restoreClock(restored.hlc);
    const ctx: MemberContext = {
      role,
      selfId: config.nodeId,
      advertise: config.advertise,
      incarnation: () => this.incarnation,
      config,
      coordinator: this.#coordinator,
      peers,
      log,
      view: () => this.#view,
      ring: () => this.#ring,
      dutyHolder: () => this.agent.dutyHolder(),
      settingsMismatches: () => this.agent.settingsMismatches(),
      ...(auth === undefined ? {} : { auth }),
      ...(tokens === undefined ? {} : { tokens }),
      sched,
      ...(metrics === undefined ? {} : { metrics }),
    };
    const internal = new Hono();
    internal.route("/", gossipRoutes(ctx, this.agent));
    this.ctx = ctx;
    this.app = createApp(ctx, internal);
  }

  get view(): View | undefined {
    return this.#view;
  }

  /** Use this membership view (from gossip; tests inject one directly). */
  useView(view: View): void {
    const before = this.#ring;
    this.#view = view;
    this.#ring = new Ring(view);
    this.#coordinator.onRing(this.#ring);
    if (before === undefined || tablesDiffer(before.table, this.#ring.table)) {
      // --data-dir: the ring goes into the log at once, as on a node.
      this.#logState();
      const nodes = view.members.filter((m) => m.role === "node");
      this.log.info(
        `ring: ${nodes.filter((m) => m.inRing).length} of ${nodes.length} nodes in the ring ` +
          `(${nodes.map((m) => `${m.id}=${m.state}${m.inRing ? "" : "(out)"}`).join(" ")})`,
      );
    }
  }

  start(): void {
    if (this.config.role === "gateway") {
      const o = this.config.orchestrator;
      this.agent.start(o === undefined ? this.config.join : [o, ...this.config.join]);
      return;
    }
    this.agent.start(this.config.join);
    this.#timers.push(
      this.sched.setInterval(() => this.agent.pushToAll(), this.config.timers.viewPushIntervalMs),
    );
    if (this.dataDir !== undefined) {
      this.#timers.push(this.sched.setInterval(() => this.#logState(), STATE_INTERVAL_MS));
    }
  }

  /** What --data-dir writes at the head of each log and in its snapshots: state only. */
  durabilitySource(): Source {
    return { state: () => this.#state(), capture: function* () {} };
  }

  #state(): NodeState {
    const ring = this.#ring;
    return {
      nodeId: this.config.nodeId,
      cluster: this.config.clusterName,
      partitions: this.#view?.partitions ?? 0,
      incarnation: this.incarnation,
      hlc: this.#coordinator.clockState(),
      ring: ring === undefined ? [] : ring.ids.map((id) => ringMember(ring, id)),
      // Before its first view (it logs its state as it starts), the ones it restored.
      left: this.#view === undefined ? this.#restoredLeft : leftMembers(this.#view.members),
    };
  }

  /** The members its table held as LEFT before a restart from its data dir. */
  #restoredLeft: NonNullable<NodeState["left"]> = [];
  /** Log the ring, clock and incarnation when they changed (as a node does). */
  #logState(): void {
    this.dataDir?.logState(this.#state());
  }

  stop(): void {
    this.agent.stop();
    for (const t of this.#timers) this.sched.clear(t);
    this.#timers = [];
  }
}

/**
 * Replay an orchestrator's --data-dir: the newest state entry's ring and left members, the
 * highest incarnation, and the clock one state period past the logged one (versions it issued
 * after that entry were not logged). An orchestrator's log holds state entries only; anything
 * else is skipped.
 */
function restoreState(
  dir: DataDir,
  log: Logger,
): {
  ring: NodeState["ring"];
  left: NonNullable<NodeState["left"]>;
  incarnation: number;
  hlc: HlcState;
} {
  let ring: NodeState["ring"] = [];
  let left: NonNullable<NodeState["left"]> = [];
  let incarnation = 0;
  const hlc: HlcState = { wallMs: 0, counter: 0 };
  const { entries, note } = dir.replay((e) => {
    if (e.type !== "state") return;
    ring = e.state.ring;
    left = e.state.left ?? [];
    incarnation = Math.max(incarnation, e.state.incarnation);
    hlc.wallMs = Math.max(hlc.wallMs, e.state.hlc.wallMs + STATE_INTERVAL_MS);
  });
  log.info(
    `--data-dir: recovered a ring of ${ring.length} nodes and ${left.length} that left from ` +
      `${entries} entries (${note})`,
  );
  return { ring, left, incarnation, hlc };
}
