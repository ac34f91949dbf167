/**
 * The replica's side of Paxos per key: the acceptor (src/core/paxos.ts) wrapped with the checks a
 * replica call gets (the coordinator's ring must place the key here, as for kv/write) and with
 * the store: a promise carries the stored record (the quorum read), a commit is a normal
 * versioned write. Used by the internal routes and, for this member's own replica, directly by
 * the coordinator.
 */
import type { ChangeLog } from "../core/change-log.ts";
import {
  Acceptor,
  type Ballot,
  type Commit,
  MemoryPaxosState,
  type PaxosState,
  type Proposal,
} from "../core/paxos.ts";
import type { KvRecord } from "../core/record.ts";
import type { Ring } from "../core/view.ts";
import { DkvError } from "../http/errors.ts";
import type { ClockGuard } from "./clock-guard.ts";
import type { Store } from "./store.ts";

export interface PromiseResult {
  readonly ok: boolean;
  readonly higher?: Ballot;
  readonly busy?: boolean;
  readonly stale?: boolean;
  readonly held: boolean;
  readonly accepted?: Proposal;
  readonly committed?: Ballot;
  readonly recent?: readonly Commit[];
  readonly forgotten?: Ballot;
  readonly record?: KvRecord;
}

export interface AcceptResult {
  readonly ok: boolean;
  readonly higher?: Ballot;
  readonly stale?: boolean;
}

export interface PaxosReplicaDeps {
  readonly store: Store;
  ring(): Ring | undefined;
  holds(partition: number): boolean;
  readonly clock: ClockGuard;
  readonly changes: ChangeLog;
  now(): number;
  /** Most keys with Paxos state at once (--paxos-keys). */
  readonly keysMax: number;
  /** Where promises and accepts are kept; memory unless a durable store is given. */
  readonly state?: PaxosState;
}

export class PaxosReplica {
  readonly acceptor: Acceptor;
  constructor(private readonly deps: PaxosReplicaDeps) {
    // Without durable state a restart forgets every promise: the floor at the start time bars
    // the ballots issued before it (from coordinators whose clocks are not ahead of ours).
    const state = deps.state ??
      new MemoryPaxosState({ wallMs: deps.now(), counter: 0, nodeId: "" });
    this.acceptor = new Acceptor(state, deps.keysMax);
  }

  /** Does this member's ring give the key the same replica list (fingerprint `set`)? */
  #stale(p: number, set: number): boolean {
    const ring = this.deps.ring();
    if (ring === undefined) throw new DkvError("unavailable", "no membership view yet");
    return ring.setHash[p] !== set;
  }

  #checkBallot(key: string, b: Ballot): void {
    if (!this.deps.clock.admitsVersion(key, b, "paxos ballot")) {
      throw new DkvError("bad_request", "ballot too far ahead of this member's clock");
    }
  }

  prepare(key: string, ballot: Ballot, set: number, since?: Ballot): PromiseResult {
    const store = this.deps.store;
    const p = store.partitionOf(key);
    if (this.#stale(p, set)) return { ok: false, stale: true, held: false };
    this.#checkBallot(key, ballot);
    const a = this.acceptor.prepare(key, ballot, since);
    const held = this.deps.holds(p);
    if (!a.ok) {
      return {
        ok: false,
        higher: a.higher,
        held,
        ...(a.busy ? { busy: true } : {}),
        ...(a.committed ? { committed: a.committed } : {}),
        ...(a.recent ? { recent: a.recent } : {}),
        ...(a.forgotten ? { forgotten: a.forgotten } : {}),
      };
    }
    const record = store.get(key, p);
    return {
      ok: true,
      held,
      ...(a.accepted ? { accepted: a.accepted } : {}),
      ...(a.committed ? { committed: a.committed } : {}),
      ...(a.recent ? { recent: a.recent } : {}),
      ...(a.forgotten ? { forgotten: a.forgotten } : {}),
      ...(record ? { record } : {}),
    };
  }

  propose(ballot: Ballot, record: KvRecord, set: number): AcceptResult {
    const p = this.deps.store.partitionOf(record.key);
    if (this.#stale(p, set)) return { ok: false, stale: true };
    // A replica that does not hold the partition (restarted empty, or still receiving it) takes
    // no part in choosing: its Paxos state may be gone with its data.
    if (!this.deps.holds(p)) return { ok: false, stale: true };
    this.#checkBallot(record.key, ballot);
    this.deps.clock.refuseAhead([record], "paxos/propose");
    const a = this.acceptor.propose(record.key, ballot, record);
    return a.ok ? { ok: true } : { ok: false, higher: a.higher };
  }

  /** Store the chosen record (merge: newest wins) and forget the proposal. */
  commit(ballot: Ballot, record: KvRecord, set: number): AcceptResult {
    const store = this.deps.store;
    const p = store.partitionOf(record.key);
    if (this.#stale(p, set)) return { ok: false, stale: true };
    this.deps.clock.refuseAhead([record], "paxos/commit");
    store.admit([record]);
    store.apply(record, p);
    const kept = store.get(record.key, p);
    if (
      kept !== undefined && kept.version.wallMs === record.version.wallMs &&
      kept.version.counter === record.version.counter &&
      kept.version.nodeId === record.version.nodeId
    ) {
      this.deps.changes.append(record, this.deps.now());
    }
    this.acceptor.commit(record.key, ballot, record.version);
    return { ok: true };
  }
}
