/**
 * The membership view the orchestrator pushes to every node, and what a node derives from it.
 */
import type { MemberState, Role } from "./membership.ts";
import { buildPartitionTable, partitionOf } from "./placement.ts";

export interface ViewMember {
  readonly id: string;
  readonly address: string;
  readonly role: Role;
  readonly state: MemberState;
  readonly inRing: boolean;
  readonly incarnation: number;
}

export interface View {
  /** Random per orchestrator process: a new value means a restarted orchestrator. */
  readonly instance: string;
  /** Raised on every change within one instance. */
  readonly epoch: number;
  readonly replicationFactor: number;
  readonly partitions: number;
  readonly members: readonly ViewMember[];
}

/** Should a node holding `current` adopt `incoming`? Newer epoch, or a new orchestrator. */
export function isNewerView(current: View | undefined, incoming: View): boolean {
  if (current === undefined) return true;
  if (incoming.instance !== current.instance) return true;
  return incoming.epoch > current.epoch;
}

/** A view with its partition table precomputed once, for the request path. */
export class Ring {
  readonly table: string[][];
  readonly byId: Map<string, ViewMember>;

  constructor(readonly view: View) {
    const ringIds = view.members.filter((m) => m.inRing && m.role === "node").map((m) => m.id)
      .sort();
    this.table = buildPartitionTable(ringIds, view.partitions, view.replicationFactor);
    this.byId = new Map(view.members.map((m) => [m.id, m]));
  }

  partition(key: string): number {
    return partitionOf(key, this.view.partitions);
  }

  /** Replica members of a key in preference order. */
  replicas(key: string): ViewMember[] {
    const ids = this.table[this.partition(key)] ?? [];
    return ids.map((id) => this.byId.get(id)!);
  }

  /** Replication factor in effect (capped at ring size). */
  get n(): number {
    return this.table[0]?.length ?? 0;
  }
}
