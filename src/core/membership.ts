/**
 * The orchestrator's membership rules, with time injected (no clock, no I/O).
 *
 * States: UP → (one failed probe) SUSPECT → (no good probe for downAfterMs) DOWN →
 * (DOWN for deadAfterMs) out of the ring. Any good probe or a registration brings a member back
 * UP and into the ring. LEFT: the member asked to leave (graceful); it is out of the ring and
 * stays LEFT whatever probes say (it answers them while it hands its data off) until it
 * registers again. The ring changes only on join, leave or death, never on a blip, so one
 * missed probe never moves data.
 */

export type MemberState = "UP" | "SUSPECT" | "DOWN" | "LEFT";
export type Role = "orchestrator" | "node";

export interface Member {
  /** Stable identity; defaults to the advertised address. */
  readonly id: string;
  /** host:port that peers dial. */
  address: string;
  state: MemberState;
  /** In the ring = owns partitions. */
  inRing: boolean;
  /** Raised by the member itself on every restart; lets it refute stale news about itself. */
  incarnation: number;
  /** When the member entered its current state. */
  stateSinceMs: number;
  /** Last good probe or registration. */
  lastSeenMs: number;
}

export interface MembershipTimers {
  /** A member with no good probe for this long is DOWN (its replicas are skipped). */
  readonly downAfterMs: number;
  /** A DOWN member leaves the ring after this long (its partitions move). */
  readonly deadAfterMs: number;
}

export interface MemberSummary {
  readonly id: string;
  readonly address: string;
  readonly inRing: boolean;
  readonly incarnation: number;
}

/** Members keyed by id. Every mutator returns true when the pushed view changed. */
export class MemberTable {
  readonly #members = new Map<string, Member>();

  constructor(private readonly timers: MembershipTimers, private readonly membersMax: number) {}

  get size(): number {
    return this.#members.size;
  }

  list(): Member[] {
    return [...this.#members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: string): Member | undefined {
    return this.#members.get(id);
  }

  /** Ids of members that own partitions, sorted. */
  ringIds(): string[] {
    return this.list().filter((m) => m.inRing).map((m) => m.id);
  }

  /**
   * A node registered (at start, or again after it stopped hearing views). It is UP and in the
   * ring. `known` are the members it knew before: after an orchestrator restart they rebuild
   * the view at once, so the ring does not shrink to one node. Returns "full" if the table is at
   * its bound and the member is new.
   */
  register(
    self: MemberSummary,
    known: readonly MemberSummary[],
    nowMs: number,
  ): boolean | "full" {
    let changed = this.#upsert(self, nowMs, true);
    if (changed === "full") return "full";
    for (const k of known) {
      if (k.id === self.id || this.#members.has(k.id) || !k.inRing) continue;
      if (this.#members.size >= this.membersMax) break;
      // Learned second-hand: trust it as UP until our own probes say otherwise.
      this.#members.set(k.id, {
        id: k.id,
        address: k.address,
        state: "UP",
        inRing: true,
        incarnation: k.incarnation,
        stateSinceMs: nowMs,
        lastSeenMs: nowMs,
      });
      changed = true;
    }
    return changed;
  }

  #upsert(s: MemberSummary, nowMs: number, inRing: boolean): boolean | "full" {
    const m = this.#members.get(s.id);
    if (m === undefined) {
      if (this.#members.size >= this.membersMax) return "full";
      this.#members.set(s.id, {
        id: s.id,
        address: s.address,
        state: "UP",
        inRing,
        incarnation: s.incarnation,
        stateSinceMs: nowMs,
        lastSeenMs: nowMs,
      });
      return true;
    }
    const changed = m.address !== s.address || m.state !== "UP" || m.inRing !== inRing ||
      s.incarnation > m.incarnation;
    if (m.state !== "UP") m.stateSinceMs = nowMs;
    m.address = s.address;
    m.state = "UP";
    m.inRing = inRing;
    m.incarnation = Math.max(m.incarnation, s.incarnation);
    m.lastSeenMs = nowMs;
    return changed;
  }

  /** Result of one health probe. A good probe revives a member; a failed one only suspects it. */
  probeResult(id: string, ok: boolean, nowMs: number, incarnation?: number): boolean {
    const m = this.#members.get(id);
    if (m === undefined) return false;
    if (ok) {
      m.lastSeenMs = nowMs;
      let changed = false;
      if (incarnation !== undefined && incarnation > m.incarnation) {
        m.incarnation = incarnation;
        changed = true;
      }
      if (m.state === "LEFT" || (m.state === "UP" && m.inRing)) return changed;
      m.state = "UP";
      m.inRing = true;
      m.stateSinceMs = nowMs;
      return true;
    }
    if (m.state === "LEFT") return false;
    if (m.state === "UP") {
      m.state = "SUSPECT";
      m.stateSinceMs = nowMs;
      return true;
    }
    return this.tickMember(m, nowMs);
  }

  /** Advance time-based transitions for every member. */
  tick(nowMs: number): boolean {
    let changed = false;
    for (const m of this.#members.values()) changed = this.tickMember(m, nowMs) || changed;
    return changed;
  }

  private tickMember(m: Member, nowMs: number): boolean {
    if (m.state === "SUSPECT" && nowMs - m.lastSeenMs >= this.timers.downAfterMs) {
      m.state = "DOWN";
      m.stateSinceMs = nowMs;
      return true;
    }
    if (m.state === "DOWN" && m.inRing && nowMs - m.stateSinceMs >= this.timers.deadAfterMs) {
      m.inRing = false;
      return true;
    }
    return false;
  }

  /** A member asked to leave (graceful): out of the ring at once, listed as LEFT. */
  leave(id: string, nowMs: number): boolean {
    const m = this.#members.get(id);
    if (m === undefined) return false;
    const changed = m.inRing || m.state !== "LEFT";
    m.inRing = false;
    m.state = "LEFT";
    m.stateSinceMs = nowMs;
    return changed;
  }
}
