/**
 * SWIM membership records and the one rule that merges news about a member (pure; no clock).
 *
 * A record is also the unit of gossip. Who wins, for news about member X:
 * 1. the higher incarnation (only X raises its own incarnation, so this is X's newest word);
 * 2. at equal incarnation, the stronger state: LEFT > DOWN > SUSPECT > UP;
 * 3. at equal incarnation and state, inRing=false beats inRing=true (the duty holder took a long
 *    DOWN member out of the ring; two duty holders doing it at once produce the same record).
 * This is a total order on (incarnation, state, !inRing), so merging is commutative,
 * associative and idempotent: every member that has seen the same news holds the same record.
 *
 * A record's address, role and peer link port are the member's own word: they change only with a
 * higher incarnation, which only the member itself issues. News at the same incarnation (a suspicion,
 * a verdict, taken out of the ring) changes the state and ring flag and keeps what we hold.
 *
 * News about ourselves that would win over our own record (SUSPECT or DOWN at our incarnation,
 * anything at a higher one) is never taken: we refute it with an incarnation above it. LEFT
 * about ourselves is only a no-op when we are leaving (then our own record already says LEFT).
 */
import type { MemberState, Role } from "./membership.ts";

export interface SwimMember {
  /** Stable identity (--node-id, default the address). */
  readonly id: string;
  /** host:port peers dial. Changes only with a new incarnation. */
  readonly address: string;
  readonly role: Role;
  /**
   * The port of its TCP peer link (--peer-port, src/http/peer-tcp-server.ts) on the address's
   * host; absent: none (peers call it over HTTP). Changes only with a new incarnation. Only in
   * gossip: a --data-dir's remembered ring keeps no port (the member's own record brings it).
   */
  readonly linkPort?: number;
  /** Raised only by the member itself: on restart, and to refute news about itself. */
  readonly incarnation: number;
  readonly state: MemberState;
  /** Owns partitions. */
  readonly inRing: boolean;
}

/** A piggybacked update: a record and the member that produced it (the accuser for SUSPECT). */
export interface Gossip extends SwimMember {
  /** Id of the member that made this claim; "" when unknown (learned from a full-table sync). */
  readonly by: string;
}

const PRECEDENCE: Readonly<Record<MemberState, number>> = { UP: 0, SUSPECT: 1, DOWN: 2, LEFT: 3 };

/** True when `a` is newer news about a member than `b` (rules 1–3 above). */
export function supersedes(a: SwimMember, b: SwimMember): boolean {
  if (a.incarnation !== b.incarnation) return a.incarnation > b.incarnation;
  const pa = PRECEDENCE[a.state];
  const pb = PRECEDENCE[b.state];
  if (pa !== pb) return pa > pb;
  return !a.inRing && b.inRing;
}

export type MergeResult =
  /** Unknown member: hold `next`. */
  | { readonly kind: "added"; readonly next: SwimMember }
  /** Newer news: hold `next` instead of `prev`. */
  | { readonly kind: "replaced"; readonly prev: SwimMember; readonly next: SwimMember }
  /** Old or equal news: nothing changes. */
  | { readonly kind: "stale" }
  /** News about ourselves that we deny: `next` is our own record with a higher incarnation. */
  | { readonly kind: "refute"; readonly prev: SwimMember; readonly next: SwimMember };

/** Copy only the record fields (drops `by` and anything a peer added). */
export function memberRecord(m: SwimMember): SwimMember {
  const r: SwimMember = {
    id: m.id,
    address: m.address,
    role: m.role,
    incarnation: m.incarnation,
    state: m.state,
    inRing: m.inRing,
  };
  return m.linkPort === undefined ? r : { ...r, linkPort: m.linkPort };
}

/** `next` with `from`'s address, role and link port (the member's own word at that incarnation). */
function ownWordOf(next: SwimMember, from: SwimMember): SwimMember {
  const { linkPort: _, ...rest } = next;
  const r = { ...rest, address: from.address, role: from.role };
  return from.linkPort === undefined ? r : { ...r, linkPort: from.linkPort };
}

/**
 * Merge `update` (news about `update.id`) into `local` (what we hold about it, undefined if
 * unknown). `selfId` is our own id: news about ourselves is refuted, never adopted, and `local`
 * must then be our own record.
 */
export function mergeMember(
  local: SwimMember | undefined,
  update: SwimMember,
  selfId: string,
): MergeResult {
  if (update.id === selfId) {
    if (local === undefined) throw new Error("mergeMember: our own record is missing");
    if (!supersedes(update, local)) return { kind: "stale" };
    // Keep our state (UP, or LEFT while leaving) and our ring flag; only the number moves.
    return { kind: "refute", prev: local, next: { ...local, incarnation: update.incarnation + 1 } };
  }
  if (local === undefined) return { kind: "added", next: memberRecord(update) };
  if (!supersedes(update, local)) return { kind: "stale" };
  const next = memberRecord(update);
  if (update.incarnation > local.incarnation) return { kind: "replaced", prev: local, next };
  return { kind: "replaced", prev: local, next: ownWordOf(next, local) };
}
