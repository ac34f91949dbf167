/**
 * SWIM membership with Lifeguard's local health, as a pure state machine (etcd-raft style): the
 * caller passes in messages and the time, and sends what comes back. No I/O, no timers, no clock;
 * randomness is the injected `rng`.
 *
 * Messages (each carries `from` (id) and `fromAddress`; all but push-pull piggyback `updates`):
 *
 *   ping      A → B    A probes B (once per probe period), or tells B news at once (a fresh
 *                      suspect about B, A's refutation or leave). B answers `ack` if `target`
 *                      is its own id.
 *   ack       B → A    answer to a ping, echoing its `seq`; a helper relays it with A's `seq`.
 *   ping-req  A → H    A's direct probe of T timed out: H pings T for A and relays the ack, or
 *                      sends `nack` if T stays silent for `timeoutMs` (Lifeguard: a nack proves
 *                      A's network path to H works, so A is not the sick one); a late ack is
 *                      still relayed until 2 · timeoutMs.
 *   nack      H → A    see ping-req.
 *   push-pull A → B    A's full table (periodically to one random UP member, and on join to
 *                      seeds); B merges it and, unless `reply`, answers with its own full table.
 *
 * Every message is idempotent: updates merge by (incarnation, state, ring flag), and an ack or
 * nack whose seq is no longer awaited is ignored. Everything is best-effort: any message may be
 * lost, late or duplicated.
 *
 * Piggyback, at most piggybackMax records per message, in this order: the recipient's own
 * record if we hold it as not UP (so it can refute at once; Lifeguard's "buddy system"); on an
 * ack, corrections: our newer-incarnation records for stale ones the ping carried; the
 * least-sent queued updates (each sent retransmitMult · ceil(log10(n + 1)) times); and, while
 * we suspect anyone, one of those suspicions in turn, so that a member that already heard the
 * refutation corrects us before our timer runs out.
 *
 * Probe cycle: every probe period pick the next member of a shuffled round-robin order (UP and
 * SUSPECT members, re-shuffled each pass), ping it; at the probe timeout ask `indirectChecks`
 * random UP members to ping-req it; when the period ends with no ack, suspect it (and tell it, so
 * a live one refutes at once). A suspicion becomes DOWN when its timer (shrinking with
 * independent confirmations) runs out. Local health stretches the period and the timeout; a tick
 * that comes far too late means we were paused: the probe in flight is dropped, not judged.
 *
 * Bounds on news (every update and push-pull record): an incarnation more than
 * incarnationAheadMsMax ahead of our clock is dropped (incarnations are start times in ms, so it
 * is forged or from a broken clock, and nobody could ever beat it); a member out of the ring
 * (LEFT, or DOWN and taken out) for forgetAfterMs is forgotten, and news of it at or below the
 * incarnation it had is ignored for as long again, so the copies still travelling do not bring
 * it back; a higher incarnation (it restarted) does.
 */
import type { MemberState } from "./membership.ts";
import { BroadcastQueue } from "./swim-broadcast.ts";
import {
  pushPullPeriodMs,
  retransmitLimit,
  suspicionBoundsMs,
  type SwimConfig,
  validateSwimConfig,
} from "./swim-config.ts";
import { type Gossip, memberRecord, mergeMember, type SwimMember } from "./swim-merge.ts";
import { Suspicion } from "./swim-suspicion.ts";

export * from "./swim-broadcast.ts";
export * from "./swim-config.ts";
export * from "./swim-merge.ts";
export * from "./swim-suspicion.ts";

interface Envelope {
  /** Sender's member id. */
  readonly from: string;
  /** Sender's address, to answer even a sender we do not know yet. */
  readonly fromAddress: string;
}

export interface PingMsg extends Envelope {
  readonly type: "ping";
  readonly seq: number;
  /** The member id the sender means to reach; another member at that address stays silent. */
  readonly target: string;
  readonly updates: readonly Gossip[];
}

export interface AckMsg extends Envelope {
  readonly type: "ack";
  readonly seq: number;
  readonly updates: readonly Gossip[];
}

export interface PingReqMsg extends Envelope {
  readonly type: "ping-req";
  readonly seq: number;
  readonly target: string;
  readonly targetAddress: string;
  /** The helper sends a nack if the target has not acked within this long. */
  readonly timeoutMs: number;
  readonly updates: readonly Gossip[];
}

export interface NackMsg extends Envelope {
  readonly type: "nack";
  readonly seq: number;
  readonly updates: readonly Gossip[];
}

export interface PushPullMsg extends Envelope {
  readonly type: "push-pull";
  /** True on the answer: the receiver merges and does not answer again. */
  readonly reply: boolean;
  readonly members: readonly SwimMember[];
}

export type SwimMsg = PingMsg | AckMsg | PingReqMsg | NackMsg | PushPullMsg;
export type SwimMsgType = SwimMsg["type"];

/** A message to send, best effort, to an address. */
export interface Outbound {
  readonly to: string;
  readonly msg: SwimMsg;
}

export interface SwimStats {
  messagesSent: number;
  /** Estimated as the JSON length of each message sent. */
  bytesSent: number;
  readonly byType: Record<SwimMsgType, { messages: number; bytes: number }>;
  probes: number;
  probesFailed: number;
  /** Suspicions we raised from our own failed probes. */
  suspicionsRaised: number;
  /** Members we declared DOWN when our suspicion timer ran out. */
  declaredDown: number;
  /** Times we raised our incarnation to deny news about ourselves. */
  refutations: number;
  /**
   * Of those, times the news had us out of the ring while we were in it: some members placed our
   * partitions elsewhere meanwhile, so what we hold may miss writes (the shell re-checks it).
   */
  takenOutOfRing: number;
  /** Ticks that came so late that the probe in flight was dropped. */
  pausesDetected: number;
  /** News about unknown members dropped because the table was full. */
  membersDropped: number;
  /** Ping-reqs ignored because too many indirect probes were running. */
  relaysDropped: number;
  /** News dropped because its incarnation was too far ahead of our clock. */
  futureRefused: number;
  /** Members forgotten after being out of the ring for forgetAfterMs. */
  membersForgotten: number;
}

interface Probe {
  readonly target: string;
  readonly seq: number;
  readonly timeoutAtMs: number;
  /** When the probe is judged; moved later if the indirect round starts late. */
  endAtMs: number;
  /** Length of the indirect round: period minus timeout. */
  readonly indirectWindowMs: number;
  indirectSent: boolean;
  nacks: number;
}

interface Relay {
  readonly requesterAddress: string;
  readonly requester: string;
  /** The requester's seq, echoed in the relayed ack or the nack. */
  readonly seq: number;
  /** Send a nack at this time if the target is still silent (once). */
  readonly nackAtMs: number;
  nacked: boolean;
  /** Forget the relay (a later ack is no longer relayed). */
  readonly dropAtMs: number;
}

/**
 * The requester asks its helpers to nack within this fraction of the time left in its probe:
 * the helper's ping needs one round trip, the nack needs half of one more to come back before
 * the requester judges the probe. The helper still relays a late ack until the window is over.
 */
const NACK_FRACTION = 0.5;

const isLive = (s: MemberState): boolean => s === "UP" || s === "SUSPECT";

/** Out of the ring for good unless it comes back with a new incarnation: may be forgotten. */
const isGone = (m: SwimMember): boolean => m.state === "LEFT" || (m.state === "DOWN" && !m.inRing);

/** How often members out of the ring are checked for forgetting, at most. */
const FORGET_CHECK_MS = 1000;

const newStats = (): SwimStats => {
  const t = () => ({ messages: 0, bytes: 0 });
  return {
    messagesSent: 0,
    bytesSent: 0,
    byType: { ping: t(), ack: t(), "ping-req": t(), nack: t(), "push-pull": t() },
    probes: 0,
    probesFailed: 0,
    suspicionsRaised: 0,
    declaredDown: 0,
    refutations: 0,
    takenOutOfRing: 0,
    pausesDetected: 0,
    membersDropped: 0,
    relaysDropped: 0,
    futureRefused: 0,
    membersForgotten: 0,
  };
};

export class Swim {
  readonly config: SwimConfig;
  readonly stats: SwimStats = newStats();
  #self: SwimMember;
  readonly #members = new Map<string, SwimMember>();
  /** Members UP or SUSPECT, ourselves included: the n of every formula. */
  #liveCount = 0;
  readonly #suspicions = new Map<string, Suspicion>();
  readonly #queue: BroadcastQueue;
  readonly #relays = new Map<number, Relay>();
  /** Records changed since the last drainChanges(), newest per member. */
  readonly #changes = new Map<string, SwimMember>();
  #probe: Probe | undefined;
  #order: string[] = [];
  #orderAt = 0;
  #seq = 0;
  #health = 0;
  #lastTickMs: number | undefined;
  #nextProbeAtMs: number | undefined;
  #nextPushPullAtMs: number | undefined;
  /** Seed addresses of the last join; retried each probe period while we know nobody alive. */
  #seeds: readonly string[] = [];
  /** Rotates through our suspicions, see #suspicionToCheck. */
  #checkTurn = 0;
  /** We refuted something: announce it at the end of this call (see #announce). */
  #refuted = false;
  /** When we first saw each member gone (out of the ring for good), for forgetAfterMs. */
  readonly #goneSince = new Map<string, number>();
  /** Forgotten members: news at or below `incarnation` is ignored until `untilMs`. */
  readonly #forgotten = new Map<string, { incarnation: number; untilMs: number }>();
  #nextForgetCheckAtMs: number | undefined;

  constructor(self: SwimMember, config: SwimConfig, private readonly rng: () => number) {
    validateSwimConfig(config);
    if (!isLive(self.state)) throw new Error(`Swim: starts UP, not ${self.state}`);
    this.config = config;
    this.#self = memberRecord(self);
    this.#queue = new BroadcastQueue(config.membersMax);
    this.#store(this.#self);
    this.#changes.clear();
  }

  get self(): SwimMember {
    return this.#self;
  }

  /** Lifeguard local health: 0 (healthy) … localHealthMax. */
  get health(): number {
    return this.#health;
  }

  /** Members in the table, ourselves included. */
  get size(): number {
    return this.#members.size;
  }

  /** The table, ourselves included, sorted by id. */
  members(): SwimMember[] {
    return [...this.#members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  member(id: string): SwimMember | undefined {
    return this.#members.get(id);
  }

  /** Records that changed since the last call (newest per member); the caller updates its view. */
  drainChanges(): SwimMember[] {
    const out = [...this.#changes.values()];
    this.#changes.clear();
    return out;
  }

  /**
   * The member that holds the orchestrator's duties: the orchestrator while it is alive, else the
   * lowest id among live nodes (never a gateway). "Alive" is UP or SUSPECT: a suspicion is not a verdict, and the
   * duty must not bounce on every missed probe. Undefined only if nobody qualifies.
   */
  dutyHolder(): string | undefined {
    let orchestrator: string | undefined;
    let node: string | undefined;
    for (const m of this.#members.values()) {
      if (!isLive(m.state)) continue;
      if (m.role === "orchestrator") {
        if (orchestrator === undefined || m.id < orchestrator) orchestrator = m.id;
      } else if (m.role === "node" && (node === undefined || m.id < node)) node = m.id;
    }
    return orchestrator ?? node;
  }

  /** The latest time the caller should call tick() next. */
  nextTickAtMs(): number {
    // Ticks at least once per base period, so a longer gap really is a pause.
    let t = (this.#lastTickMs ?? 0) + this.config.probeIntervalMs;
    const consider = (x: number | undefined) => {
      if (x !== undefined && x < t) t = x;
    };
    consider(this.#nextProbeAtMs);
    consider(this.#nextPushPullAtMs);
    const p = this.#probe;
    if (p !== undefined) consider(p.indirectSent ? p.endAtMs : p.timeoutAtMs);
    for (const r of this.#relays.values()) consider(r.nacked ? r.dropAtMs : r.nackAtMs);
    for (const s of this.#suspicions.values()) consider(s.deadlineMs());
    return t;
  }

  /** Advance timers: probes, indirect probes, suspicions, push-pull. */
  tick(nowMs: number): Outbound[] {
    const out: Outbound[] = [];
    this.#detectPause(nowMs);
    this.#lastTickMs = nowMs;
    // Random first deadlines, so members started together do not probe in lockstep.
    this.#nextProbeAtMs ??= nowMs + Math.floor(this.rng() * this.config.probeIntervalMs);
    this.#nextPushPullAtMs ??= nowMs + Math.floor(this.rng() * this.#pushPullPeriodMs());
    this.#expireRelays(nowMs, out);
    this.#advanceProbe(nowMs, out);
    this.#expireSuspicions(nowMs);
    this.#nextForgetCheckAtMs ??= nowMs;
    if (nowMs >= this.#nextForgetCheckAtMs) {
      this.#nextForgetCheckAtMs = nowMs + Math.min(FORGET_CHECK_MS, this.config.forgetAfterMs);
      this.#forgetGone(nowMs);
    }
    if (this.#probe === undefined && nowMs >= this.#nextProbeAtMs) this.#startProbe(nowMs, out);
    if (nowMs >= this.#nextPushPullAtMs) {
      this.#nextPushPullAtMs = nowMs + this.#pushPullPeriodMs();
      const [peer] = this.#pickRandom((m) => m.state === "UP", 1);
      if (peer !== undefined) this.#send(out, peer.address, this.#pushPull(false));
    }
    return out;
  }

  /** Take one incoming message; returns the answers and relays to send. */
  handle(msg: SwimMsg, nowMs: number): Outbound[] {
    if (msg.from === this.#self.id) return [];
    const out: Outbound[] = [];
    switch (msg.type) {
      case "ping": {
        const fixes = this.#applyAll(msg.updates, nowMs);
        // A ping meant for another id (a member that used to live at this address) gets no ack.
        if (msg.target === this.#self.id) {
          this.#send(out, msg.fromAddress, this.#envelope("ack", msg.seq, msg.from, fixes));
        }
        break;
      }
      case "ping-req":
        this.#applyAll(msg.updates, nowMs);
        this.#startRelay(msg, nowMs, out);
        break;
      case "ack":
        this.#applyAll(msg.updates, nowMs);
        this.#onAck(msg, out);
        break;
      case "nack":
        this.#applyAll(msg.updates, nowMs);
        if (this.#probe !== undefined && this.#probe.seq === msg.seq) this.#probe.nacks++;
        break;
      case "push-pull":
        for (const m of msg.members) this.#apply({ ...memberRecord(m), by: "" }, nowMs);
        if (!msg.reply) this.#send(out, msg.fromAddress, this.#pushPull(true));
        break;
    }
    this.#announce(out);
    return out;
  }

  /**
   * After a refutation, tell a few random members at once instead of waiting for our next
   * probe: members that hold us DOWN no longer ping us, and our own probes are slow now (the
   * refutation raised our health score). One burst per refutation.
   */
  #announce(out: Outbound[]): void {
    if (!this.#refuted) return;
    this.#refuted = false;
    for (const m of this.#pickRandom((m) => m.state === "UP", this.config.indirectChecks)) {
      this.#send(out, m.address, this.#ping(m));
    }
  }

  /**
   * Join: a full-table exchange with each seed address; their answers bring the whole table.
   * While we know no other live member, tick() repeats it every probe period (a lost message
   * or a seed that starts later does not leave us alone for good).
   */
  join(seedAddresses: readonly string[]): Outbound[] {
    this.#seeds = [...new Set(seedAddresses)]
      .filter((a) => a !== this.#self.address)
      .slice(0, this.config.joinSeedsMax);
    // Announce ourselves on every message we send from now on, not only through the seeds.
    this.#queue.push({ ...this.#self, by: this.#self.id });
    const out: Outbound[] = [];
    this.#sendJoin(out);
    return out;
  }

  #sendJoin(out: Outbound[]): void {
    for (const a of this.#seeds) this.#send(out, a, this.#pushPull(false));
  }

  /**
   * Graceful leave: we are LEFT (out of the ring) at our incarnation, which beats any other
   * news at that incarnation. Returns pings that carry it to a few members at once; the caller
   * keeps ticking a little while so piggybacking spreads it further.
   */
  leave(): Outbound[] {
    if (this.#self.state === "LEFT") return [];
    const next: SwimMember = { ...this.#self, state: "LEFT", inRing: false };
    this.#self = next;
    this.#store(next);
    this.#queue.push({ ...next, by: next.id });
    this.#probe = undefined;
    const out: Outbound[] = [];
    for (const m of this.#pickRandom((m) => m.state === "UP", this.config.indirectChecks)) {
      this.#send(out, m.address, this.#ping(m));
    }
    return out;
  }

  /**
   * After a restart from a data dir: hold each member of the ring we had before (other than
   * ourselves, and any member we already hold) as a node DOWN and in the ring, one incarnation
   * below the one we last knew it at (0 when not known). Without this, the ring after a
   * whole-cluster power cut is only the members back so far (an orchestrator that restarted
   * knows nobody; a node that joins meanwhile is in it), and it gives the keys of the members
   * still away to members without them: they answer 404 for acknowledged writes (simulator seeds
   * 1213, 9579). Held DOWN, such a member keeps its place (its replicas do not answer, so quorum
   * requests for its keys get 503), the duty holder takes it out only after --dead-after with a
   * majority of the ring alive, and anything it says itself wins: it was at that incarnation or
   * above. One below, so that any news of it at the incarnation we knew or later wins too (it
   * left then: rememberLeft), and older news loses (a LEFT kept by a member that missed its
   * rejoin). The records spread by gossip like any news. Returns how many members were added.
   */
  rememberRing(
    ring: readonly { id: string; address: string; incarnation?: number }[],
    nowMs: number,
  ): number {
    return this.#remember(ring, nowMs, (m) => {
      const known = m.incarnation ?? 0;
      return {
        // Never ahead of what #apply takes from our clock (a peer's clock may have been ahead).
        incarnation: known - 1 > nowMs + this.config.incarnationAheadMsMax
          ? 0
          : Math.max(0, known - 1),
        state: "DOWN",
        inRing: true,
      };
    });
  }

  /**
   * After a restart from a data dir: hold each member our table held as LEFT before (other than
   * ourselves, and any member we already hold) as LEFT again, at the incarnation it left at.
   * Call it before rememberRing. A member that left exits once its data is handed off, so nobody
   * hears from it again; without this, a member that had not heard of the leave before a power
   * cut (paused, cut off) remembers it in its ring, holds it DOWN at incarnation 0 after the
   * restart, and the others, who forgot it, take that in: its partitions wait for it, and after
   * --dead-after their new owners wait for a hand-off from it that never comes (simulator seed
   * 1514). LEFT at its own incarnation beats that record everywhere; anything it says itself
   * (it rejoined: a later start time) wins over this. The records spread by gossip like any
   * news, and are forgotten like any LEFT member (--forget-after from now). Returns how many
   * members were added.
   */
  rememberLeft(
    left: readonly { id: string; address: string; incarnation: number }[],
    nowMs: number,
  ): number {
    return this.#remember(left, nowMs, (m) => ({
      incarnation: m.incarnation,
      state: "LEFT",
      inRing: false,
    }));
  }

  /**
   * Take in a node record for each of `members` we do not hold yet (ourselves never), as our own
   * news; how it is held comes from `how`. Returns how many were added.
   */
  #remember<M extends { id: string; address: string }>(
    members: readonly M[],
    nowMs: number,
    how: (m: M) => { incarnation: number; state: "DOWN" | "LEFT"; inRing: boolean },
  ): number {
    let added = 0;
    for (const m of members) {
      if (m.id === this.#self.id || this.#members.has(m.id)) continue;
      const before = this.#members.size;
      this.#apply(
        { id: m.id, address: m.address, role: "node", ...how(m), by: this.#self.id },
        nowMs,
      );
      if (this.#members.size > before) added++;
    }
    return added;
  }

  /**
   * Duty holder only: take a member that has been DOWN too long out of the ring (same
   * incarnation, so it can still come back by refuting). Idempotent: false if there was nothing
   * to do (unknown, not DOWN, or already out).
   */
  markOutOfRing(id: string, nowMs: number): boolean {
    const m = this.#members.get(id);
    if (m === undefined || m.state !== "DOWN" || !m.inRing) return false;
    this.#apply({ ...m, inRing: false, by: this.#self.id }, nowMs);
    return true;
  }

  // ---- probing ----

  #scaled(ms: number): number {
    return ms * (this.#health + 1);
  }

  #adjustHealth(delta: number): void {
    this.#health = Math.min(this.config.localHealthMax, Math.max(0, this.#health + delta));
  }

  /** A tick far later than expected: we were paused or starved, so our silence is our fault. */
  #detectPause(nowMs: number): void {
    if (this.#lastTickMs === undefined) return;
    const gapMs = nowMs - this.#lastTickMs;
    if (gapMs <= this.config.tickGapMult * this.#scaled(this.config.probeIntervalMs)) return;
    this.stats.pausesDetected++;
    this.#probe = undefined;
    this.#relays.clear();
    // We could not hear refutations while paused: give every suspect that time back.
    for (const s of this.#suspicions.values()) s.postpone(gapMs);
    this.#adjustHealth(+1);
  }

  #startProbe(nowMs: number, out: Outbound[]): void {
    const periodMs = this.#scaled(this.config.probeIntervalMs);
    this.#nextProbeAtMs = nowMs + periodMs;
    const target = this.#nextTarget();
    if (target === undefined) {
      this.#sendJoin(out); // alone: try the seeds again
      return;
    }
    const timeoutMs = this.#scaled(this.config.probeTimeoutMs);
    const seq = ++this.#seq;
    this.#probe = {
      target: target.id,
      seq,
      timeoutAtMs: nowMs + timeoutMs,
      endAtMs: nowMs + periodMs,
      indirectWindowMs: periodMs - timeoutMs,
      indirectSent: false,
      nacks: 0,
    };
    this.stats.probes++;
    this.#send(out, target.address, this.#ping(target, seq));
  }

  #advanceProbe(nowMs: number, out: Outbound[]): void {
    const p = this.#probe;
    if (p === undefined) return;
    const target = this.#members.get(p.target);
    if (target === undefined || !isLive(target.state)) {
      this.#probe = undefined; // somebody else already judged it
      return;
    }
    if (!p.indirectSent) {
      if (nowMs < p.timeoutAtMs) return;
      // If this tick is late the indirect round still gets its full length.
      p.indirectSent = true;
      p.endAtMs = Math.max(p.endAtMs, nowMs + p.indirectWindowMs);
      const timeoutMs = Math.max(1, Math.floor((p.endAtMs - nowMs) * NACK_FRACTION));
      const helpers = this.#pickRandom(
        (m) => m.state === "UP" && m.id !== target.id,
        this.config.indirectChecks,
      );
      for (const h of helpers) {
        this.#send(out, h.address, {
          type: "ping-req",
          from: this.#self.id,
          fromAddress: this.#self.address,
          seq: p.seq,
          target: target.id,
          targetAddress: target.address,
          timeoutMs,
          updates: this.#piggyback(h.id),
        });
      }
      return;
    }
    if (nowMs < p.endAtMs) return;
    this.#probe = undefined;
    this.stats.probesFailed++;
    if (this.#self.state === "LEFT") return; // a leaving member accuses nobody
    // Nobody, not even a helper, answered: maybe we are the slow one.
    if (p.nacks === 0) this.#adjustHealth(+1);
    this.#suspect(target, nowMs, out);
  }

  #suspect(target: SwimMember, nowMs: number, out: Outbound[]): void {
    this.stats.suspicionsRaised++;
    this.#apply({ ...target, state: "SUSPECT", by: this.#self.id }, nowMs);
    // Lifeguard's buddy system: tell the suspect now; a live one refutes in one round trip.
    const now = this.#members.get(target.id);
    if (now !== undefined && now.state === "SUSPECT") this.#send(out, now.address, this.#ping(now));
  }

  #onAck(msg: AckMsg, out: Outbound[]): void {
    const p = this.#probe;
    if (p !== undefined && p.seq === msg.seq) {
      this.#probe = undefined;
      this.#adjustHealth(-1);
      return;
    }
    const r = this.#relays.get(msg.seq);
    if (r === undefined) return; // late or unasked: ignored
    this.#relays.delete(msg.seq);
    this.#send(out, r.requesterAddress, this.#envelope("ack", r.seq, r.requester));
  }

  #startRelay(msg: PingReqMsg, nowMs: number, out: Outbound[]): void {
    if (msg.target === this.#self.id) {
      // Asked to probe ourselves (the requester's table is odd): we are alive, say so.
      this.#send(out, msg.fromAddress, this.#envelope("ack", msg.seq, msg.from));
      return;
    }
    if (this.#relays.size >= this.config.relaysMax) {
      this.stats.relaysDropped++;
      return;
    }
    // Bounded in time too: never longer than the longest probe period we could have.
    const capMs = this.config.probeIntervalMs * (this.config.localHealthMax + 1);
    const waitMs = Math.min(capMs, Math.max(0, msg.timeoutMs));
    const seq = ++this.#seq;
    this.#relays.set(seq, {
      requester: msg.from,
      requesterAddress: msg.fromAddress,
      seq: msg.seq,
      nackAtMs: nowMs + waitMs,
      nacked: false,
      dropAtMs: nowMs + 2 * waitMs,
    });
    const target = { id: msg.target, address: msg.targetAddress };
    this.#send(out, target.address, this.#ping(target, seq));
  }

  #expireRelays(nowMs: number, out: Outbound[]): void {
    for (const [seq, r] of this.#relays) {
      if (nowMs >= r.dropAtMs) this.#relays.delete(seq);
      if (nowMs < r.nackAtMs || r.nacked) continue;
      r.nacked = true;
      this.#send(out, r.requesterAddress, this.#envelope("nack", r.seq, r.requester));
    }
  }

  #expireSuspicions(nowMs: number): void {
    for (const [id, s] of this.#suspicions) {
      if (nowMs < s.deadlineMs()) continue;
      this.#suspicions.delete(id);
      const m = this.#members.get(id);
      if (m === undefined || m.state !== "SUSPECT" || m.incarnation !== s.incarnation) continue;
      this.stats.declaredDown++;
      this.#apply({ ...m, state: "DOWN", by: this.#self.id }, nowMs);
    }
  }

  /** Forget members gone for forgetAfterMs; expire old forgotten marks. */
  #forgetGone(nowMs: number): void {
    for (const [id, f] of this.#forgotten) if (nowMs >= f.untilMs) this.#forgotten.delete(id);
    for (const m of this.#members.values()) {
      if (m.id === this.#self.id || !isGone(m)) {
        this.#goneSince.delete(m.id);
        continue;
      }
      const since = this.#goneSince.get(m.id);
      if (since === undefined) this.#goneSince.set(m.id, nowMs);
      else if (nowMs - since >= this.config.forgetAfterMs) this.#forget(m, nowMs);
    }
  }

  #forget(m: SwimMember, nowMs: number): void {
    this.#members.delete(m.id); // not live: #liveCount is unchanged
    this.#goneSince.delete(m.id);
    this.#suspicions.delete(m.id);
    this.#queue.remove(m.id);
    this.#changes.delete(m.id);
    // Bounded like the table: the oldest mark goes first.
    if (this.#forgotten.size >= this.config.membersMax) {
      const oldest = this.#forgotten.keys().next();
      if (!oldest.done) this.#forgotten.delete(oldest.value);
    }
    this.#forgotten.set(m.id, {
      incarnation: m.incarnation,
      untilMs: nowMs + this.config.forgetAfterMs,
    });
    this.stats.membersForgotten++;
  }

  /** Next member of the shuffled round-robin order; re-shuffled at the end of each pass. */
  #nextTarget(): SwimMember | undefined {
    for (let pass = 0; pass < 2; pass++) {
      while (this.#orderAt < this.#order.length) {
        const m = this.#members.get(this.#order[this.#orderAt++]!);
        if (m !== undefined && m.id !== this.#self.id && isLive(m.state)) return m;
      }
      this.#order = this.#pickRandom((m) => isLive(m.state), Infinity).map((m) => m.id);
      this.#orderAt = 0;
    }
    return undefined;
  }

  /** A member that became probe-able joins the current pass at a random place. */
  #addToOrder(id: string): void {
    if (id === this.#self.id || this.#order.indexOf(id, this.#orderAt) !== -1) return;
    const at = this.#orderAt + Math.floor(this.rng() * (this.#order.length - this.#orderAt + 1));
    this.#order.splice(at, 0, id);
  }

  /** Up to k distinct random members other than ourselves matching `pred`. */
  #pickRandom(pred: (m: SwimMember) => boolean, k: number): SwimMember[] {
    const all: SwimMember[] = [];
    for (const m of this.#members.values()) if (m.id !== this.#self.id && pred(m)) all.push(m);
    const n = Math.min(k, all.length);
    for (let i = 0; i < n; i++) {
      const j = i + Math.floor(this.rng() * (all.length - i));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    return all.slice(0, n);
  }

  #pushPullPeriodMs(): number {
    return pushPullPeriodMs(this.config, this.#liveCount);
  }

  // ---- merging ----

  /**
   * Merge piggybacked news. Returns corrections for the sender: our records that are a newer
   * incarnation than what it sent (it missed a refutation or a restart).
   */
  #applyAll(updates: readonly Gossip[], nowMs: number): Gossip[] {
    const fixes: Gossip[] = [];
    // At most one record per member makes sense; anything longer is cut (a bound, not a rule).
    for (const g of updates.slice(0, this.config.membersMax)) {
      const fix = this.#apply(g, nowMs);
      if (fix !== undefined) fixes.push(fix);
    }
    return fixes;
  }

  /** Merge one piece of news; every change is queued for piggybacking. */
  #apply(g: Gossip, nowMs: number): Gossip | undefined {
    if (g.incarnation > nowMs + this.config.incarnationAheadMsMax) {
      this.stats.futureRefused++;
      return;
    }
    const local = this.#members.get(g.id);
    if (local === undefined) {
      const f = this.#forgotten.get(g.id);
      if (f !== undefined) {
        if (g.incarnation <= f.incarnation) return; // old news of a member we forgot
        this.#forgotten.delete(g.id);
      }
    }
    const r = mergeMember(local, g, this.#self.id);
    switch (r.kind) {
      case "stale":
        if (local !== undefined && local.incarnation > g.incarnation) return this.#correct(local);
        this.#confirm(g, local);
        return;
      case "refute":
        this.stats.refutations++;
        if (!g.inRing && this.#self.inRing && this.#self.state !== "LEFT") {
          this.stats.takenOutOfRing++;
        }
        if (g.state === "SUSPECT" || g.state === "DOWN") this.#adjustHealth(+1);
        this.#self = r.next;
        this.#store(r.next);
        this.#queue.push({ ...r.next, by: r.next.id });
        this.#refuted = true;
        return;
      case "added":
        if (this.#members.size >= this.config.membersMax) {
          this.stats.membersDropped++;
          return;
        }
        this.#adopt(undefined, r.next, g.by, nowMs);
        return;
      case "replaced":
        this.#adopt(r.prev, r.next, g.by, nowMs);
        return;
    }
  }

  #adopt(prev: SwimMember | undefined, next: SwimMember, by: string, nowMs: number): void {
    this.#store(next);
    this.#queue.push({ ...next, by });
    if (next.state === "SUSPECT") {
      const { minMs, maxMs } = suspicionBoundsMs(this.config, this.#liveCount);
      const k = this.config.suspicionConfirmations;
      this.#suspicions.set(next.id, new Suspicion(next.incarnation, nowMs, minMs, maxMs, k, by));
    } else {
      this.#suspicions.delete(next.id);
    }
    if (isLive(next.state) && (prev === undefined || !isLive(prev.state))) {
      this.#addToOrder(next.id);
    }
  }

  /**
   * Old news still travels (somebody missed a refutation or a restart): gossip our newer record
   * again, and hand it back to the sender. Bounded: the old copies die out after their own
   * retransmissions, and so do these.
   */
  #correct(local: SwimMember): Gossip {
    const g = { ...local, by: this.#authorOf(local) };
    this.#queue.push(g);
    return g;
  }

  /** Another member suspects the same member at the same incarnation: the timer shrinks. */
  #confirm(g: Gossip, local: SwimMember | undefined): void {
    if (g.state !== "SUSPECT" || g.by === "" || local === undefined) return;
    if (local.state !== "SUSPECT" || local.incarnation !== g.incarnation) return;
    // Re-gossip a new confirmation so the others count it too.
    if (this.#suspicions.get(g.id)?.confirm(g.by) === true) this.#queue.push(g);
  }

  #store(next: SwimMember): void {
    const prev = this.#members.get(next.id);
    if (prev !== undefined && isLive(prev.state)) this.#liveCount--;
    if (isLive(next.state)) this.#liveCount++;
    this.#members.set(next.id, next);
    this.#changes.set(next.id, next);
  }

  // ---- messages ----

  /**
   * Updates for a message to `toId`: if we hold it as SUSPECT, DOWN or LEFT, that record goes
   * first (it refutes at once if wrong), then the least-sent queued updates.
   */
  #piggyback(toId: string, fixes: readonly Gossip[] = []): Gossip[] {
    const out: Gossip[] = [];
    const add = (g: Gossip) => {
      if (out.length < this.config.piggybackMax && !out.some((x) => x.id === g.id)) out.push(g);
    };
    const to = this.#members.get(toId);
    if (to !== undefined && to.state !== "UP" && to.id !== this.#self.id) {
      add({ ...to, by: this.#self.id });
    }
    for (const f of fixes) add(f);
    // Queued news (a confirmation, say) goes before the suspicion check, which takes one
    // reserved slot and only if that member is not in the message already.
    const check = this.#suspicionToCheck();
    const room = this.config.piggybackMax - out.length - (check === undefined ? 0 : 1);
    const limit = retransmitLimit(this.config, this.#liveCount);
    for (const g of this.#queue.take(room, limit, new Set(out.map((x) => x.id)))) out.push(g);
    if (check !== undefined) add(check);
    return out;
  }

  /**
   * One of our current suspicions, in turn: carried on every message while we suspect anyone,
   * so that a member that has already seen the refutation corrects us (see #correct) before our
   * timer runs out, even after the refutation's own retransmissions are spent.
   */
  #suspicionToCheck(): Gossip | undefined {
    if (this.#suspicions.size === 0) return undefined;
    const ids = [...this.#suspicions.keys()];
    const m = this.#members.get(ids[this.#checkTurn++ % ids.length]!);
    return m === undefined ? undefined : { ...m, by: this.#authorOf(m) };
  }

  /**
   * Author to name when we pass on a record we hold: relaying is not accusing, so a suspicion
   * keeps its original accuser (a confirmation only when it is new to the receiver), our own
   * record is ours, anything else is "" (unknown; `by` only matters for SUSPECT).
   */
  #authorOf(m: SwimMember): string {
    if (m.id === this.#self.id) return m.id;
    const s = this.#suspicions.get(m.id);
    return m.state === "SUSPECT" && s !== undefined && s.incarnation === m.incarnation
      ? s.accuser
      : "";
  }

  /** A ping; without `seq` it is a notice whose ack nobody waits for (only its piggyback). */
  #ping(to: { id: string; address: string }, seq = ++this.#seq): PingMsg {
    return {
      type: "ping",
      from: this.#self.id,
      fromAddress: this.#self.address,
      seq,
      target: to.id,
      updates: this.#piggyback(to.id),
    };
  }

  #envelope(
    type: "ack" | "nack",
    seq: number,
    toId: string,
    fixes: readonly Gossip[] = [],
  ): AckMsg | NackMsg {
    const base = { from: this.#self.id, fromAddress: this.#self.address, seq };
    return { type, ...base, updates: this.#piggyback(toId, fixes) };
  }

  #pushPull(reply: boolean): PushPullMsg {
    return {
      type: "push-pull",
      from: this.#self.id,
      fromAddress: this.#self.address,
      reply,
      members: this.members(),
    };
  }

  #send(out: Outbound[], to: string, msg: SwimMsg): void {
    const bytes = JSON.stringify(msg).length;
    this.stats.messagesSent++;
    this.stats.bytesSent += bytes;
    const t = this.stats.byType[msg.type];
    t.messages++;
    t.bytes += bytes;
    out.push({ to, msg });
  }
}
