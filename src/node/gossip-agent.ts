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
import { type MemberLimits, settingsDiffer } from "../core/agreed-settings.ts";
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
/** Members whose settings differ from ours, remembered at most (forged senders again). */
const MISMATCHES_MAX = 1024;

/** A member whose settings differ from this member's (GET /cluster/status lists them). */
export interface SettingsMismatch {
  readonly member: string;
  readonly address: string;
  /** One phrase per setting: "--max-members 1024 here, 2 there". */
  readonly differences: readonly string[];
}

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
  /** Seed addresses given at start (other than our own): none means we found the cluster. */
  #seeds: readonly string[] = [];
  /**
   * A full member table from another member (a push-pull: the answer to our join, or one of the
   * periodic exchanges) has been merged at least once. A ping, an ack or a ping-req carries only
   * a few records, so a table built from them alone may hold this member and hardly anyone else.
   */
  #tableFromPeer = false;
  /** Each member's state and ring place as last logged (membership events at info). */
  readonly #logged = new Map<string, { state: SwimMember["state"]; inRing: boolean }>();
  /** Members whose settings differ from ours, by id. */
  readonly #mismatches = new Map<string, SettingsMismatch>();
  readonly #limits: MemberLimits;

  constructor(private readonly opts: GossipAgentOptions) {
    const c = opts.config;
    this.#cluster = opts.cluster;
    this.#limits = {
      keyBytesMax: c.keyBytesMax,
      valueBytesMax: c.valueBytesMax,
      membersMax: c.membersMax,
    };
    this.swim = new Swim(
      {
        id: c.nodeId,
        address: c.advertise,
        role: opts.role,
        // Only a node answers peer calls, so only a node has a link to advertise; 0 is a port
        // not listened on yet (main.ts puts the bound one in; a member built in process has none).
        ...(c.peerPort !== undefined && c.peerPort > 0 && opts.role === "node"
          ? { linkPort: c.peerPort }
          : {}),
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

  /**
   * Whether this member has reached a cluster: it was given no seed other than itself (it is the
   * first member), or some other member's full table has arrived. Until then it builds no view,
   * so a mistyped --join never makes a silent cluster of one (the node warns and keeps trying),
   * and a member restarted empty whose first news is a peer's probe (its address was still
   * probed) does not take the few members that probe named for the ring: a node whose first
   * ring held only itself owned every partition "before", so nothing it owned in the real ring
   * counted as moving in, and it answered for partitions it held nothing of (simulator seed 140
   * with --faults crash,join,partition).
   */
  get joined(): boolean {
    return this.#seeds.length === 0 || this.#tableFromPeer;
  }

  /** The seed addresses it joins through (other than its own). */
  get seeds(): readonly string[] {
    return this.#seeds;
  }

  /** Members whose settings differ from this member's, as last heard. */
  settingsMismatches(): SettingsMismatch[] {
    return [...this.#mismatches.values()];
  }

  start(seeds: readonly string[]): void {
    this.#seeds = seeds.filter((s) => s !== this.opts.config.advertise);
    this.#startedAtMs = this.opts.sched.now();
    // The first warning comes after one --view-stale: a seed that is up answers well before.
    this.#notJoinedWarnedAtMs = this.#startedAtMs;
    this.#sendAll(this.swim.join(this.#seeds));
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
    if (envelope.msg.type === "push-pull" && envelope.msg.from !== this.swim.self.id) {
      this.#tableFromPeer = true;
    }
    // Heard from the orchestrator itself (not news about it relayed by others).
    const fromOrchestrator = envelope.msg.from !== this.swim.self.id &&
      this.swim.member(envelope.msg.from)?.role === "orchestrator";
    if (fromOrchestrator) this.#orchestratorHeardAtMs = nowMs;
    if (envelope.cluster && (this.opts.authenticated || fromOrchestrator)) {
      this.#learnCluster(envelope.cluster);
    }
    if (envelope.msg.type === "push-pull" && envelope.msg.from !== this.swim.self.id) {
      this.#compareSettings(envelope);
    }
    this.#refresh();
  }

  /**
   * Members meet in full-table exchanges, which carry the sender's limits and placement: compare
   * them with ours. A new or changed difference is an error in the log (the other side logs it
   * too, from our exchange); a difference that went away is an info line.
   */
  #compareSettings(envelope: GossipEnvelope): void {
    const msg = envelope.msg;
    const differences = settingsDiffer(
      { limits: this.#limits, placement: this.#cluster },
      {
        ...(envelope.limits === undefined ? {} : { limits: envelope.limits }),
        ...(envelope.cluster === undefined ? {} : { placement: envelope.cluster }),
      },
    );
    const before = this.#mismatches.get(msg.from);
    if (differences.length === 0) {
      if (before !== undefined) {
        this.#mismatches.delete(msg.from);
        this.opts.log.info(`settings of member ${msg.from} now agree with this member's`);
      }
      return;
    }
    if (before?.differences.join() === differences.join()) return;
    if (before === undefined && this.#mismatches.size >= MISMATCHES_MAX) return;
    this.#mismatches.set(msg.from, { member: msg.from, address: msg.fromAddress, differences });
    this.opts.log.error(
      `settings differ from member ${msg.from} (${msg.fromAddress}): ${differences.join("; ")}. ` +
        `Every member needs the same values for these (README: settings that must agree); ` +
        `until they do, members place or accept keys differently`,
    );
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
    // Live peers only: a DOWN one says nothing (after a restart from a data dir the members of
    // the old ring are held DOWN until they speak, and counting them kept a node a day ahead at 0
    // long enough to issue versions its peers refuse: simulator seed 31).
    const peers =
      this.swim.members().filter((m) =>
        m.id !== this.swim.self.id && (m.state === "UP" || m.state === "SUSPECT")
      ).length;
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

  #startedAtMs = 0;
  #notJoinedWarnedAtMs = 0;

  /**
   * Why this member has not joined (GET /ready and 503s say it), or undefined once it has.
   */
  notJoined(): string | undefined {
    if (this.joined) return undefined;
    const s = Math.round((this.opts.sched.now() - this.#startedAtMs) / 1000);
    return `not joined: no member has answered through ${this.#seeds.join(", ")} for ${s} s ` +
      `(a mistyped --join or --orchestrator address, or none of them is up yet); ` +
      `still trying`;
  }

  /** Loud while not joined: a warning every --view-stale, until some member answers. */
  #warnNotJoined(nowMs: number): void {
    if (this.joined || nowMs - this.#notJoinedWarnedAtMs < this.opts.config.timers.viewStaleMs) {
      return;
    }
    this.#notJoinedWarnedAtMs = nowMs;
    this.opts.log.warn(
      `${this.notJoined()}; this member serves no requests and GET /ready answers 503 until one ` +
        `does`,
    );
  }

  #tick(): void {
    const nowMs = this.opts.sched.now();
    this.lastTickAtMs = nowMs;
    this.#warnNotJoined(nowMs);
    this.#sendAll(this.swim.tick(nowMs));
    // Not joined: no cluster to do the duty for (and "duty: this member" would mislead).
    if (this.joined) this.#dutyRound(nowMs);
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
      const base: GossipOut = this.#cluster
        ? { msg: o.msg, cluster: this.#cluster, at }
        : { msg: o.msg, at };
      // Limits travel with full-table exchanges only: that is where members meet.
      const envelope = o.msg.type === "push-pull" ? { ...base, limits: this.#limits } : base;
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

  /**
   * Membership events at info on every member (not only the orchestrator): a member seen, DOWN,
   * back UP, out of or back in the ring, LEFT, forgotten. Routine suspicion stays at debug.
   */
  #logChanges(changes: readonly SwimMember[], forgotten: boolean): void {
    for (const c of changes) {
      if (c.id === this.swim.self.id) continue;
      const before = this.#logged.get(c.id);
      const event = membershipEvent(before, c);
      if (event !== undefined) this.opts.log.info(event);
      else {
        this.opts.log.debug(
          `member ${c.id}: ${c.state}${c.inRing ? "" : " (out of ring)"} inc ${c.incarnation}`,
        );
      }
      // DOWN, then SUSPECT on the way back: still DOWN as announced, so UP says "back UP".
      const state = c.state === "SUSPECT" && before?.state === "DOWN" ? "DOWN" : c.state;
      this.#logged.set(c.id, { state, inRing: c.inRing });
    }
    if (!forgotten) return;
    for (const id of this.#logged.keys()) {
      if (this.swim.member(id) !== undefined) continue;
      this.#logged.delete(id);
      this.#mismatches.delete(id);
      this.opts.log.info(`member ${id} forgotten (out of the ring past --forget-after)`);
    }
  }

  /** Rebuild the view if the table or the settings changed. */
  #refresh(): void {
    const changes = this.swim.drainChanges();
    const forgotten = this.swim.stats.membersForgotten;
    this.#logChanges(changes, forgotten !== this.#forgottenSeen);
    if (this.#cluster === undefined || !this.joined) return;
    if (changes.length === 0 && forgotten === this.#forgottenSeen && this.#view !== undefined) {
      return;
    }
    this.#forgottenSeen = forgotten;
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

/**
 * What a member's state change means to an operator, or undefined when it is no event (a first
 * sighting already SUSPECT or DOWN is reported as such; SUSPECT itself is routine and refuted
 * within a few probe periods, so it is debug only).
 */
export function membershipEvent(
  before: { state: SwimMember["state"]; inRing: boolean } | undefined,
  now: SwimMember,
): string | undefined {
  const where = now.role === "node" ? (now.inRing ? ", in the ring" : ", out of the ring") : "";
  if (before === undefined) {
    return now.state === "LEFT" ? undefined : `member ${now.id} (${now.address}, ${now.role}) ` +
      `seen: ${now.state}${where}`;
  }
  if (now.state === "LEFT" && before.state !== "LEFT") {
    return `member ${now.id} left the cluster (out of the ring)`;
  }
  if (now.state === "DOWN" && before.state !== "DOWN") return `member ${now.id} is DOWN${where}`;
  if (now.state === "UP" && (before.state === "DOWN" || before.state === "LEFT")) {
    return `member ${now.id} is back UP${where}`;
  }
  if (now.state !== "LEFT" && now.role === "node" && before.inRing !== now.inRing) {
    return `member ${now.id} is ${now.inRing ? "back in" : "out of"} the ring (${now.state})`;
  }
  return undefined;
}

/** A table record as the rest of the code sees a member: LEFT members own nothing. */
export function viewMember(m: SwimMember): ViewMember {
  const v: ViewMember = {
    id: m.id,
    address: m.address,
    role: m.role,
    state: m.state,
    inRing: m.role === "node" && m.inRing && m.state !== "LEFT",
    incarnation: m.incarnation,
  };
  return m.linkPort === undefined ? v : { ...v, linkPort: m.linkPort };
}
