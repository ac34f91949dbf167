/**
 * The shell around the pure SWIM state machine (src/core/swim.ts): it owns the timer, sends the
 * machine's messages over the peer transport (POST /internal/v1/gossip, one way, best effort),
 * feeds it incoming ones, and turns its table into the membership view every other part uses.
 *
 * It also does the orchestrator's one standing duty when this member holds it (the orchestrator
 * while it is alive, else the lowest-id live node, decided by every member from its own table):
 * taking a member that has been DOWN longer than --dead-after out of the ring. Two members doing
 * it at once is harmless: the record they produce is the same and merges idempotently.
 */
import type { Config } from "../config.ts";
import type { Role } from "../core/membership.ts";
import type { Scheduler, Timer } from "../core/scheduler.ts";
import { Swim, type SwimConfig, type SwimMember, type SwimMsg } from "../core/swim.ts";
import type { View, ViewMember } from "../core/view.ts";
import type { Logger } from "../log.ts";
import {
  type ClusterSettings,
  type GossipEnvelope,
  type GossipOut,
  type PeerClient,
  PeerError,
} from "../transport/index.ts";

export interface GossipAgentOptions {
  readonly config: Config;
  readonly role: Role;
  readonly swim: SwimConfig;
  readonly peers: PeerClient;
  readonly log: Logger;
  /** Clock, randomness and timers. */
  readonly sched: Scheduler;
  /** Settings this member starts with (an orchestrator's flags), or undefined to learn them. */
  readonly cluster: ClusterSettings | undefined;
  /** The incarnation to start at (--data-dir: past the one before a restart); default: now. */
  readonly incarnation?: number;
  /**
   * Every gossip message reaching us was signed with the cluster secret. Then cluster settings
   * are taken from any member (relayed copies included); without a secret only from messages
   * an orchestrator sent itself.
   */
  readonly authenticated: boolean;
  /** The view changed (membership or settings). */
  onView(view: View): void;
}

/** The median lead is recomputed at most this often. */
const CLOCK_RECOMPUTE_MS = 100;
/** Peers sampled at most (bounds the map against forged senders). */
const CLOCK_SAMPLES_MAX = 1024;

export class GossipAgent {
  readonly swim: Swim;
  #cluster: ClusterSettings | undefined;
  #epoch = 0;
  #view: View | undefined;
  /** When we first saw each member DOWN (for --dead-after). */
  readonly #downSince = new Map<string, number>();
  #timer: Timer | undefined;
  #stopped = false;
  /** Last time we heard anything from the orchestrator (any message it sent). */
  #orchestratorHeardAtMs = 0;
  #lastDutyHolder: string | undefined;
  /** swim.stats.membersForgotten when the view was last built. */
  #forgottenSeen = 0;
  /** Per peer: (our clock − its clock) when its last gossip arrived. */
  readonly #clockSamples = new Map<string, number>();
  #clockLeadMs = 0;
  #clockComputedAtMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly opts: GossipAgentOptions) {
    const c = opts.config;
    this.#cluster = opts.cluster;
    this.swim = new Swim(
      {
        id: c.nodeId,
        address: c.advertise,
        role: opts.role,
        incarnation: Math.max(opts.sched.now(), opts.incarnation ?? 0),
        state: "UP",
        inRing: opts.role === "node",
      },
      opts.swim,
      () => opts.sched.random(),
    );
  }

  get view(): View | undefined {
    return this.#view;
  }

  get cluster(): ClusterSettings | undefined {
    return this.#cluster;
  }

  dutyHolder(): string | undefined {
    return this.swim.dutyHolder();
  }

  start(seeds: readonly string[]): void {
    this.#sendAll(this.swim.join(seeds.filter((s) => s !== this.opts.config.advertise)));
    this.#refresh();
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    this.opts.sched.clear(this.#timer);
  }

  /** Join (again) through these addresses: a full-table exchange. */
  rejoin(seeds: readonly string[]): void {
    this.#sendAll(this.swim.join(seeds));
  }

  /** Leave: tell everyone we are LEFT (then the ring no longer has us). */
  leave(): void {
    this.#sendAll(this.swim.leave());
    this.#refresh();
  }

  /** An incoming gossip message. */
  receive(envelope: GossipEnvelope): void {
    const nowMs = this.opts.sched.now();
    if (envelope.at !== undefined) this.#noteClock(envelope.msg.from, envelope.at, nowMs);
    this.#sendAll(this.swim.handle(envelope.msg as SwimMsg, nowMs));
    // Heard from the orchestrator itself (not news about it relayed by others).
    const fromOrchestrator = envelope.msg.from !== this.swim.self.id &&
      this.swim.member(envelope.msg.from)?.role === "orchestrator";
    if (fromOrchestrator) this.#orchestratorHeardAtMs = nowMs;
    if (envelope.cluster && (this.opts.authenticated || fromOrchestrator)) {
      this.#learnCluster(envelope.cluster);
    }
    this.#refresh();
  }

  /**
   * How far this member's clock is ahead of its peers': the median over the peers of (our clock −
   * theirs) when their last message arrived (delivery delay makes it a slight underestimate).
   * 0 until a majority of known peers was heard from; kept while too few are heard from.
   */
  clockLeadMs(): number {
    return this.#clockLeadMs;
  }

  #noteClock(from: string, theirMs: number, nowMs: number): void {
    if (from === this.swim.self.id) return;
    if (!this.#clockSamples.has(from) && this.#clockSamples.size >= CLOCK_SAMPLES_MAX) return;
    this.#clockSamples.set(from, nowMs - theirMs);
    if (nowMs - this.#clockComputedAtMs < CLOCK_RECOMPUTE_MS) return;
    this.#clockComputedAtMs = nowMs;
    const leads = [...this.#clockSamples.values()];
    const peers = this.swim.members().filter((m) => m.id !== this.swim.self.id).length;
    // Too few peers heard from: keep the last figure (a member cut off keeps knowing its clock
    // was ahead; one that never heard from most peers uses 0).
    if (leads.length * 2 <= peers) return;
    leads.sort((a, b) => a - b);
    this.#clockLeadMs = leads[Math.floor(leads.length / 2)]!;
  }

  /** Milliseconds since any message from an orchestrator (Infinity if never). */
  orchestratorSilentMs(): number {
    return this.#orchestratorHeardAtMs === 0
      ? Infinity
      : this.opts.sched.now() - this.#orchestratorHeardAtMs;
  }

  /** Full-table push to every member (the orchestrator does this every view-push interval). */
  pushToAll(): void {
    const addresses = this.swim.members()
      .filter((m) => m.id !== this.swim.self.id && m.state !== "LEFT")
      .map((m) => m.address);
    // join() sends a full table to at most joinSeedsMax addresses at a time.
    const step = Math.max(1, this.opts.swim.joinSeedsMax);
    for (let i = 0; i < addresses.length; i += step) {
      this.#sendAll(this.swim.join(addresses.slice(i, i + step)));
    }
  }

  #learnCluster(c: ClusterSettings): void {
    const mine = this.#cluster;
    if (mine !== undefined && (mine.source === "orchestrator" || c.source !== "orchestrator")) {
      return;
    }
    if (
      mine !== undefined && mine.replicationFactor === c.replicationFactor &&
      mine.partitions === c.partitions
    ) {
      this.#cluster = c;
      return;
    }
    this.#cluster = c;
    this.opts.log.info(
      `cluster settings: N=${c.replicationFactor}, ${c.partitions} partitions (from ${c.source})`,
    );
    this.#view = undefined; // force a new view
  }

  #schedule(): void {
    if (this.#stopped) return;
    const nowMs = this.opts.sched.now();
    const waitMs = Math.max(
      1,
      Math.min(this.swim.nextTickAtMs() - nowMs, this.opts.swim.probeIntervalMs),
    );
    this.#timer = this.opts.sched.setTimeout(() => {
      this.#tick();
      this.#schedule();
    }, waitMs);
  }

  /** When the last tick ran (the coordinator reads a long gap as a pause). */
  lastTickAtMs = 0;

  #tick(): void {
    const nowMs = this.opts.sched.now();
    this.lastTickAtMs = nowMs;
    this.#sendAll(this.swim.tick(nowMs));
    this.#dutyRound(nowMs);
    this.#refresh();
  }

  /**
   * Holder of the duty: take members DOWN past --dead-after out of the ring, but only while it
   * sees a strict majority of the ring alive. On the minority side of a partition the duty holder
   * (there is one on each side) sees the others DOWN too: were it to take them out, the two sides
   * would place partitions on different replicas and both acknowledge quorum writes.
   */
  #dutyRound(nowMs: number): void {
    const holder = this.swim.dutyHolder();
    if (holder !== this.#lastDutyHolder) {
      this.opts.log.info(
        `orchestrator duty: ${holder ?? "nobody"}${
          holder === this.swim.self.id ? " (this member)" : ""
        }`,
      );
      this.#lastDutyHolder = holder;
    }
    const ring = this.swim.members().filter((m) =>
      m.role === "node" && m.inRing && m.state !== "LEFT"
    );
    const alive = ring.filter((m) => m.state === "UP" || m.state === "SUSPECT").length;
    const majority = alive * 2 > ring.length;
    // Forgotten members leave the table without a last state change.
    for (const id of this.#downSince.keys()) {
      if (this.swim.member(id) === undefined) this.#downSince.delete(id);
    }
    for (const m of this.swim.members()) {
      if (m.state !== "DOWN") {
        this.#downSince.delete(m.id);
        continue;
      }
      if (!this.#downSince.has(m.id)) this.#downSince.set(m.id, nowMs);
      if (holder !== this.swim.self.id || !m.inRing || !majority) continue;
      if (nowMs - this.#downSince.get(m.id)! >= this.opts.config.timers.deadAfterMs) {
        if (this.swim.markOutOfRing(m.id, nowMs)) {
          this.opts.log.info(
            `member ${m.id} DOWN for ${this.opts.config.timers.deadAfterMs}ms: out of the ring`,
          );
        }
      }
    }
  }

  #sendAll(out: readonly { to: string; msg: SwimMsg }[]): void {
    const timeoutMs = Math.max(this.opts.swim.probeTimeoutMs * 4, 200);
    for (const o of out) {
      const at = this.opts.sched.now();
      const envelope: GossipOut = this.#cluster
        ? { msg: o.msg, cluster: this.#cluster, at }
        : { msg: o.msg, at };
      this.opts.peers.gossip(o.to, envelope, timeoutMs).catch((e) => this.#sendFailed(e));
    }
  }

  #tlsWarnedAtMs = -Infinity;

  /**
   * Gossip is best effort, so a failed send is usually silent (the protocol notices a silent
   * member). A failure that looks like a TLS disagreement (one member plain, another https, or a
   * certificate refused) never heals by itself: say so, at most once every 10 s.
   */
  #sendFailed(e: unknown): void {
    if (!(e instanceof PeerError) || !e.tlsSuspect) return;
    const nowMs = this.opts.sched.now();
    if (nowMs - this.#tlsWarnedAtMs < 10_000) return;
    this.#tlsWarnedAtMs = nowMs;
    this.opts.log.warn(`gossip to ${e.address} failed: ${e.message}`);
  }

  /** Rebuild the view if the table or the settings changed. */
  #refresh(): void {
    const changes = this.swim.drainChanges();
    const forgotten = this.swim.stats.membersForgotten;
    if (this.#cluster === undefined) return;
    if (changes.length === 0 && forgotten === this.#forgottenSeen && this.#view !== undefined) {
      return;
    }
    this.#forgottenSeen = forgotten;
    for (const c of changes) {
      if (c.id !== this.swim.self.id) {
        this.opts.log.debug(
          `member ${c.id}: ${c.state}${c.inRing ? "" : " (out of ring)"} inc ${c.incarnation}`,
        );
      }
    }
    this.#epoch++;
    this.#view = {
      instance: `gossip:${this.swim.self.id}`,
      epoch: this.#epoch,
      replicationFactor: this.#cluster.replicationFactor,
      partitions: this.#cluster.partitions,
      members: this.swim.members().map(viewMember),
    };
    this.opts.onView(this.#view);
  }
}

/** A table record as the rest of the code sees a member: LEFT members own nothing. */
export function viewMember(m: SwimMember): ViewMember {
  return {
    id: m.id,
    address: m.address,
    role: m.role,
    state: m.state,
    inRing: m.role === "node" && m.inRing && m.state !== "LEFT",
    incarnation: m.incarnation,
  };
}
