/**
 * A member's membership view (built from its gossip table), and the ring derived from it.
 */
import type { MemberState, Role } from "./membership.ts";
import { murmur3 } from "./hash.ts";
import { partitionOf, preferenceOrder } from "./placement.ts";

export interface ViewMember {
  readonly id: string;
  readonly address: string;
  readonly role: Role;
  /** Its TCP peer link's port (--peer-port) on the address's host; absent: HTTP only. */
  readonly linkPort?: number;
  readonly state: MemberState;
  readonly inRing: boolean;
  readonly incarnation: number;
}

export interface View {
  /** Who built the view (`gossip:<member id>`; tests use their own). */
  readonly instance: string;
  /** Raised on every change by that builder (per member: epochs are not cluster-wide). */
  readonly epoch: number;
  readonly replicationFactor: number;
  readonly partitions: number;
  readonly members: readonly ViewMember[];
}

/** A view with its partition table precomputed once, for the request path. */
export class Ring {
  /** Every ring member per partition, in preference order (replicas first, then fallbacks). */
  readonly order: string[][];
  /** The replicas per partition: the first N of `order`. */
  readonly table: string[][];
  /**
   * Per partition, a 32-bit fingerprint of its replica list. A coordinator sends it with every
   * replica call it counts toward a quorum; a replica whose own list differs refuses, so every
   * acknowledgement of a quorum comes from members that agree on who the replicas are.
   */
  readonly setHash: Uint32Array;
  /** The ids of the ring's members (nodes in the ring), sorted. */
  readonly ids: readonly string[];
  /** Ring members UP in this view. */
  readonly aliveInRing: number;
  readonly byId: Map<string, ViewMember>;
  /** replicasOf's arrays, per partition, made on first use. */
  readonly #replicas: (readonly ViewMember[] | undefined)[] = [];

  constructor(readonly view: View) {
    const ringIds = view.members.filter((m) => m.inRing && m.role === "node").map((m) => m.id)
      .sort();
    this.ids = ringIds;
    const n = Math.min(view.replicationFactor, ringIds.length);
    this.aliveInRing =
      view.members.filter((m) => m.inRing && m.role === "node" && m.state === "UP").length;
    this.order = [];
    this.table = [];
    for (let p = 0; p < view.partitions; p++) {
      const order = preferenceOrder(p, ringIds);
      this.order.push(order);
      this.table.push(order.slice(0, n));
    }
    this.byId = new Map(view.members.map((m) => [m.id, m]));
    this.setHash = new Uint32Array(this.table.length);
    for (let p = 0; p < this.table.length; p++) {
      this.setHash[p] = murmur3(this.table[p]!.join("\n"));
    }
  }

  /**
   * Does this view show a strict majority of the ring's members UP (a SUSPECT one may be gone
   * already: it does not count)? A member that does not is on the minority side of a partition,
   * where the ring it sees may differ from the majority's (a member re-added or taken out on one
   * side only): it serves no `quorum` or `all` request, so two sides never both acknowledge them.
   */
  get majorityAlive(): boolean {
    return this.aliveInRing * 2 > this.ids.length;
  }

  /**
   * The ring as it was before `id` joined it (the same view with `id` out of the ring), or
   * undefined when `id` is not in the ring or no other member is.
   */
  without(id: string): Ring | undefined {
    if (!this.ids.includes(id) || this.ids.length === 1) return undefined;
    const members = this.view.members.map((m) => m.id === id ? { ...m, inRing: false } : m);
    return new Ring({ ...this.view, members });
  }

  partition(key: string): number {
    return partitionOf(key, this.view.partitions);
  }

  /** Replica members of a key in preference order. */
  replicas(key: string): readonly ViewMember[] {
    return this.replicasOf(this.partition(key));
  }

  /** The replicas of a partition (the same array on every call: made once, on the first). */
  replicasOf(partition: number): readonly ViewMember[] {
    let r = this.#replicas[partition];
    if (r === undefined) {
      r = (this.table[partition] ?? []).map((id) => this.byId.get(id)!);
      if (partition >= 0 && partition < this.table.length) this.#replicas[partition] = r;
    }
    return r;
  }

  /** Ring members after the replicas, in preference order: where hints go. */
  fallbacksOf(partition: number): ViewMember[] {
    return (this.order[partition] ?? []).slice(this.n).map((id) => this.byId.get(id)!);
  }

  /** Partitions a member is a replica of. */
  partitionsOf(id: string): number[] {
    const out: number[] = [];
    for (let p = 0; p < this.table.length; p++) if (this.table[p]!.includes(id)) out.push(p);
    return out;
  }

  isAlive(id: string): boolean {
    const m = this.byId.get(id);
    return m !== undefined && (m.state === "UP" || m.state === "SUSPECT");
  }

  /** Alive, or LEFT: a leaving member still answers for its data until it has handed it off. */
  isServing(id: string): boolean {
    return this.isAlive(id) || this.byId.get(id)?.state === "LEFT";
  }

  /** Replication factor in effect (capped at ring size). */
  get n(): number {
    return this.table[0]?.length ?? 0;
  }
}

/**
 * The nodes of a member table (or a view's members) held as LEFT (gone gracefully), each at the
 * incarnation it left at: what a member keeps of them in its data dir, so a stale memory of them
 * in the ring does not outlive their leave (Swim.rememberLeft).
 */
export function leftMembers(
  members: readonly Omit<ViewMember, "inRing">[],
): { id: string; address: string; incarnation: number }[] {
  return members
    .filter((m) => m.role === "node" && m.state === "LEFT")
    .map((m) => ({ id: m.id, address: m.address, incarnation: m.incarnation }));
}

/** A ring member as a data dir keeps it: whom to look for after a restart, and at what incarnation. */
export function ringMember(
  ring: Ring,
  id: string,
): { id: string; address: string; incarnation: number } {
  const m = ring.byId.get(id);
  return { id, address: m?.address ?? id, incarnation: m?.incarnation ?? 0 };
}
