/**
 * Single-decree Paxos per key among the key's replicas (Cassandra's lightweight transactions),
 * pure: no clock, timers or I/O. Ballots are HLC versions (src/core/hlc.ts): unique (the
 * proposer's id is in them) and ordered by (wallMs, counter, nodeId).
 *
 * Message catalog (proposer = the coordinating member, acceptor = each replica of the key; the
 * routes are under /internal/v1/paxos, see docs/protocol.md):
 *   prepare(key, b)        → promise: b is above every ballot promised for the key (and the
 *                            floor); the acceptor promises b and answers its accepted proposal,
 *                            its latest committed ballot and its stored record (the quorum read).
 *                            Else a refusal naming the higher ballot. Idempotent for the same b.
 *   propose(key, b, rec)   → accepted when b is at least the promised ballot (and above the
 *                            floor); the acceptor keeps (b, rec) as its accepted proposal. Else a
 *                            refusal naming the higher ballot. Idempotent.
 *   commit(key, b, rec)    → the shell stores rec as a normal versioned write; the acceptor
 *                            notes b as committed and forgets an accepted proposal at or below
 *                            it. Idempotent.
 *
 * Bounded: at most `keysMax` keys have state. A key's state can be collected once nothing is in
 * progress for it (no accepted proposal above its last commit): after its commit, or after a
 * prepare that proposed nothing (a failed condition). Collection happens when a new key needs
 * the room, oldest-touched first. Forgetting a key's promise would
 * let an older ballot through, so collection first raises the acceptor's **floor** to the
 * collected ballots: no ballot at or below the floor is promised or accepted for any key (a
 * proposer refused for it simply retries with a fresh, higher ballot). When every slot is taken
 * by a proposal in progress, a prepare for a new key is refused (`busy`).
 *
 * The state lives behind `PaxosState`. Under --data-dir it is `LoggedPaxosState`: every change is
 * logged (`PaxosChange`) and durable before the promise or accept is answered, and replayed at a
 * restart (`replayChange`): promises and accepted proposals must survive a power cut for Paxos to
 * be safe.
 */
import { compareVersions, type Version } from "./hlc.ts";
import { mutations } from "./mutations.ts";
import { isPresent, type KvRecord, type Value, valueOf, valueSize } from "./record.ts";
import { applyRedis, holdsRedis, type RedisCondition, type RedisMutation } from "./redis-ops.ts";

export type Ballot = Version;

export interface Proposal {
  readonly ballot: Ballot;
  readonly record: KvRecord;
}

/** A commit this acceptor took: its ballot and the version of the record it stored. */
export interface Commit {
  readonly ballot: Ballot;
  readonly version: Version;
}

/**
 * How many recent commits an acceptor remembers per key (by ballot, the lowest forgotten first).
 * A proposer whose proposal was refused by a quorum after some acceptor may have taken it cannot
 * tell alone whether another proposer finished it later; these answer that (see `settledBy`).
 */
export const RECENT_COMMITS = 256;

/**
 * The commits of `recent` a proposer asked for: those under ballots at or above `since` (the
 * oldest ballot of its proposals whose fate it does not know yet; a proposal is only ever
 * committed under its own ballot or a higher one), all of them without `since`.
 */
function recentSince(
  recent: readonly Commit[] | undefined,
  since: Ballot | undefined,
): readonly Commit[] | undefined {
  if (recent === undefined || since === undefined) return recent;
  let i = recent.length;
  // By ballot ascending: the ones asked for are a tail.
  while (i > 0 && compareVersions(recent[i - 1]!.ballot, since) >= 0) i--;
  return i === 0 ? recent : i === recent.length ? undefined : recent.slice(i);
}

/** One key's acceptor state. */
export interface PaxosEntry {
  readonly promised: Ballot;
  readonly accepted?: Proposal;
  readonly committed?: Ballot;
  /** The last RECENT_COMMITS commits, by ballot ascending. */
  readonly recent?: readonly Commit[];
  /** The highest ballot of a commit dropped from `recent` (or of state collected: the floor). */
  readonly forgotten?: Ballot;
}

/**
 * Where an acceptor keeps its state: the memory store below, or a durable one. `put` must be
 * durable before it returns when the store is (the promise or accept is answered after it).
 * `keys()` iterates oldest-touched first (collection takes from the front).
 */
export interface PaxosState {
  get(key: string): PaxosEntry | undefined;
  put(key: string, entry: PaxosEntry): void;
  drop(key: string): void;
  readonly size: number;
  keys(): IterableIterator<string>;
  floor(): Ballot;
  raiseFloor(b: Ballot): void;
}

export class MemoryPaxosState implements PaxosState {
  readonly #map = new Map<string, PaxosEntry>();
  #floor: Ballot;
  constructor(floor: Ballot) {
    this.#floor = floor;
  }
  get(key: string): PaxosEntry | undefined {
    return this.#map.get(key);
  }
  put(key: string, entry: PaxosEntry): void {
    this.#map.delete(key); // re-inserted: iteration order is oldest-touched first
    this.#map.set(key, entry);
  }
  drop(key: string): void {
    this.#map.delete(key);
  }
  get size(): number {
    return this.#map.size;
  }
  keys(): IterableIterator<string> {
    return this.#map.keys();
  }
  floor(): Ballot {
    return this.#floor;
  }
  raiseFloor(b: Ballot): void {
    if (compareVersions(b, this.#floor) > 0) this.#floor = b;
  }
}

/** A change to an acceptor's state, as a durable store logs it (--data-dir: src/core/wal-format.ts). */
export type PaxosChange =
  | { readonly kind: "put"; readonly key: string; readonly entry: PaxosEntry }
  | { readonly kind: "drop"; readonly key: string }
  | { readonly kind: "floor"; readonly ballot: Ballot };

/**
 * A state kept in memory whose every change is also handed to `log` (the data dir's append). The
 * caller makes the log durable before it answers the promise or accept that made the change (as
 * kv/write does for records), so an answered promise survives a power cut.
 */
export class LoggedPaxosState implements PaxosState {
  constructor(
    readonly inner: MemoryPaxosState,
    readonly log: (c: PaxosChange) => void,
  ) {}
  get(key: string): PaxosEntry | undefined {
    return this.inner.get(key);
  }
  put(key: string, entry: PaxosEntry): void {
    this.inner.put(key, entry);
    this.log({ kind: "put", key, entry: loggedEntry(entry) });
  }
  drop(key: string): void {
    this.inner.drop(key);
    this.log({ kind: "drop", key });
  }
  get size(): number {
    return this.inner.size;
  }
  keys(): IterableIterator<string> {
    return this.inner.keys();
  }
  floor(): Ballot {
    return this.inner.floor();
  }
  raiseFloor(b: Ballot): void {
    const before = this.inner.floor();
    this.inner.raiseFloor(b);
    if (this.inner.floor() !== before) this.log({ kind: "floor", ballot: this.inner.floor() });
  }
  /** Every change that rebuilds this state (a snapshot's part): the floor, then each key. */
  *capture(): Generator<PaxosChange> {
    yield { kind: "floor", ballot: this.inner.floor() };
    for (const key of [...this.inner.keys()]) {
      const entry = this.inner.get(key);
      if (entry !== undefined) yield { kind: "put", key, entry: loggedEntry(entry) };
    }
  }
}

/**
 * What is logged of a key's state: all of it but its recent commits (up to RECENT_COMMITS records'
 * ballots and versions, logged on every change they would multiply the log). A restored entry
 * therefore says it forgot every commit up to the last one it had: a proposer asking about a
 * proposal below that ballot gets "unknown" (a 503 saying so), never a wrong "dead".
 */
export function loggedEntry(e: PaxosEntry): PaxosEntry {
  const last = e.recent?.at(-1)?.ballot;
  const forgotten = last === undefined ? e.forgotten : max(last, e.forgotten);
  return {
    promised: e.promised,
    ...(e.accepted !== undefined ? { accepted: e.accepted } : {}),
    ...(e.committed !== undefined ? { committed: e.committed } : {}),
    ...(forgotten !== undefined ? { forgotten } : {}),
  };
}

/** Apply one logged change to a state being rebuilt (replay of --data-dir). */
export function replayChange(state: MemoryPaxosState, c: PaxosChange): void {
  switch (c.kind) {
    case "put":
      state.put(c.key, c.entry);
      return;
    case "drop":
      state.drop(c.key);
      return;
    case "floor":
      state.raiseFloor(c.ballot);
      return;
  }
}

export type PromiseAnswer =
  | {
    readonly ok: true;
    readonly accepted?: Proposal;
    readonly committed?: Ballot;
    readonly recent?: readonly Commit[];
    readonly forgotten?: Ballot;
  }
  | {
    readonly ok: false;
    readonly higher: Ballot;
    readonly busy?: true;
    /** The key's commits as in a promise: a refusal tells a proposer's fate as well. */
    readonly committed?: Ballot;
    readonly recent?: readonly Commit[];
    readonly forgotten?: Ballot;
  };

export type AcceptAnswer = { readonly ok: true } | { readonly ok: false; readonly higher: Ballot };

function max(a: Ballot, b: Ballot | undefined): Ballot {
  return b !== undefined && compareVersions(b, a) > 0 ? b : a;
}

/** Nothing in progress: no accepted proposal above the last commit. */
function settled(e: PaxosEntry): boolean {
  return e.accepted === undefined ||
    (e.committed !== undefined && compareVersions(e.accepted.ballot, e.committed) <= 0);
}

export class Acceptor {
  /** Proposals refused because every slot held one in progress. */
  busyRefusals = 0;
  constructor(readonly state: PaxosState, readonly keysMax: number) {
    if (!(keysMax >= 1)) throw new Error("Acceptor: keysMax must be at least 1");
  }

  /** The highest ballot this key must stay above: its promise, or the floor. */
  #bar(e: PaxosEntry | undefined): Ballot {
    return max(this.state.floor(), e?.promised);
  }

  /**
   * Promise `ballot` for `key`. `since`: the proposer needs only the recent commits under ballots
   * at or above it (see recentSince); `forgotten` is answered whole either way.
   */
  prepare(key: string, ballot: Ballot, since?: Ballot): PromiseAnswer {
    const e = this.state.get(key);
    const bar = this.#bar(e);
    const recent = recentSince(e?.recent, since);
    if (compareVersions(ballot, bar) <= 0 && !mutations.paxosNoBallots) {
      return {
        ok: false,
        higher: bar,
        forgotten: e?.forgotten ?? this.state.floor(),
        ...(e?.committed ? { committed: e.committed } : {}),
        ...(recent ? { recent } : {}),
      };
    }
    if (e === undefined && this.state.size >= this.keysMax) {
      this.collect(this.state.size - this.keysMax + 1);
      if (this.state.size >= this.keysMax) {
        this.busyRefusals++;
        return { ok: false, higher: bar, busy: true };
      }
    }
    // A key with no state here may have had some, collected: its commits are forgotten up to
    // the floor.
    const next: PaxosEntry = e === undefined
      ? { promised: ballot, forgotten: this.state.floor() }
      : { ...e, promised: ballot };
    this.state.put(key, next);
    const out: {
      ok: true;
      accepted?: Proposal;
      committed?: Ballot;
      recent?: readonly Commit[];
      forgotten?: Ballot;
    } = { ok: true };
    if (e?.accepted !== undefined) out.accepted = e.accepted;
    if (e?.committed !== undefined) out.committed = e.committed;
    if (recent !== undefined) out.recent = recent;
    if (next.forgotten !== undefined) out.forgotten = next.forgotten;
    return out;
  }

  propose(key: string, ballot: Ballot, record: KvRecord): AcceptAnswer {
    const e = this.state.get(key);
    const floor = this.state.floor();
    const any = mutations.paxosNoBallots;
    if (!any && compareVersions(ballot, floor) <= 0) return { ok: false, higher: this.#bar(e) };
    if (!any && e !== undefined && compareVersions(ballot, e.promised) < 0) {
      return { ok: false, higher: e.promised };
    }
    if (e === undefined && this.state.size >= this.keysMax) {
      this.collect(this.state.size - this.keysMax + 1);
      if (this.state.size >= this.keysMax) {
        this.busyRefusals++;
        return { ok: false, higher: floor };
      }
    }
    this.state.put(key, { ...e, promised: ballot, accepted: { ballot, record } });
    return { ok: true };
  }

  /** The record of version `version` was committed under `ballot`. Idempotent. */
  commit(key: string, ballot: Ballot, version: Version): void {
    const e = this.state.get(key);
    if (e === undefined) {
      // Collected already, or never seen here: nothing in progress to forget.
      return;
    }
    const committed = max(ballot, e.committed);
    let recent = [...(e.recent ?? [])];
    let forgotten = e.forgotten;
    // One entry per record: a proposal finished again by others (same record, higher ballot)
    // keeps the ballot it was first committed under.
    if (!recent.some((c) => compareVersions(c.version, version) === 0)) {
      // Kept by ballot ascending: put in place from the end (commits mostly come in order).
      let at = recent.length;
      while (at > 0 && compareVersions(recent[at - 1]!.ballot, ballot) > 0) at--;
      recent.splice(at, 0, { ballot, version });
      if (recent.length > RECENT_COMMITS) {
        forgotten = max(recent[0]!.ballot, forgotten);
        recent = recent.slice(1);
      }
    }
    const keepAccepted = e.accepted !== undefined &&
      compareVersions(e.accepted.ballot, committed) > 0;
    const next: PaxosEntry = {
      promised: e.promised,
      committed,
      recent,
      ...(keepAccepted ? { accepted: e.accepted } : {}),
      ...(forgotten !== undefined ? { forgotten } : {}),
    };
    this.state.put(key, next);
  }

  /**
   * Forget up to `count` keys with nothing in progress, oldest-touched first, raising the floor
   * above their ballots. Returns how many were collected.
   */
  collect(count: number): number {
    const victims: string[] = [];
    for (const k of this.state.keys()) {
      if (victims.length >= count) break;
      const e = this.state.get(k)!;
      if (settled(e)) victims.push(k);
    }
    for (const k of victims) {
      const e = this.state.get(k)!;
      this.state.raiseFloor(max(e.promised, e.committed));
      this.state.drop(k);
    }
    return victims.length;
  }
}

/** What a conditional write requires of the key's current record. */
export type Condition =
  | { readonly kind: "always" }
  /** If-None-Match: * : the key is absent. */
  | { readonly kind: "absent" }
  /** If-Match: * : the key is present. */
  | { readonly kind: "present" }
  /** If-Match: "<version>": the key is present with exactly this version. */
  | { readonly kind: "version"; readonly version: Version }
  /** The Redis commands' own conditions (src/core/redis-ops.ts). */
  | RedisCondition;

/** What a conditional write does to the key. */
export type Mutation =
  | { readonly kind: "put"; readonly value: Value; readonly expiresAt?: number }
  | { readonly kind: "delete" }
  | { readonly kind: "incr"; readonly by: number }
  /** `bytesMax`: the largest value the result may be (--max-value-bytes). */
  | { readonly kind: "append"; readonly value: Value; readonly bytesMax: number }
  /** The Redis commands' own mutations (src/core/redis-ops.ts). */
  | RedisMutation;

export function holds(c: Condition, current: KvRecord | undefined, nowMs: number): boolean {
  const present = isPresent(current, nowMs);
  switch (c.kind) {
    case "always":
      return true;
    case "absent":
      return !present;
    case "present":
      return present;
    case "version":
      return present && compareVersions(current!.version, c.version) === 0;
    default:
      return holdsRedis(c, current, nowMs);
  }
}

/** The outcome of a mutation on the current record: the new content, or why it cannot apply. */
export type Applied =
  | { readonly ok: true; readonly value: Value; readonly tombstone: boolean; expiresAt?: number }
  | { readonly ok: false; readonly why: string; readonly tooLarge?: true };

const INTEGER = /^-?(0|[1-9][0-9]*)$/;

/** Concatenate two values (text stays text; anything with bytes is bytes, then canonical). */
function concat(a: Value, b: Value): Value {
  if (typeof a === "string" && typeof b === "string") return a + b;
  const enc = new TextEncoder();
  const x = typeof a === "string" ? enc.encode(a) : a;
  const y = typeof b === "string" ? enc.encode(b) : b;
  const out = new Uint8Array(x.length + y.length);
  out.set(x, 0);
  out.set(y, x.length);
  return valueOf(out);
}

/**
 * Apply `m` to the key's current record (absent, expired or a tombstone: no value). incr and
 * append keep the current expiry; incr needs an integer value (a counter starts at 0) and a
 * result that is a safe integer.
 */
export function applyMutation(m: Mutation, current: KvRecord | undefined, nowMs: number): Applied {
  const live = isPresent(current, nowMs) ? current : undefined;
  const keep = live?.expiresAt;
  switch (m.kind) {
    case "put":
      return m.expiresAt === undefined
        ? { ok: true, value: m.value, tombstone: false }
        : { ok: true, value: m.value, tombstone: false, expiresAt: m.expiresAt };
    case "delete":
      return { ok: true, value: "", tombstone: true };
    case "incr": {
      let n = 0;
      if (live !== undefined) {
        const v = live.value;
        if (typeof v !== "string" || !INTEGER.test(v) || !Number.isSafeInteger(Number(v))) {
          return { ok: false, why: `the value of '${live.key}' is not an integer` };
        }
        n = Number(v);
      }
      const next = n + m.by;
      if (!Number.isSafeInteger(next)) {
        return { ok: false, why: `the counter would leave the safe integer range (±2^53-1)` };
      }
      return withExpiry({ ok: true, value: String(next), tombstone: false }, keep);
    }
    case "append": {
      const size = (live === undefined ? 0 : valueSize(live.value)) + valueSize(m.value);
      if (size > m.bytesMax) {
        return {
          ok: false,
          why: `the value would be ${size} bytes; the limit is ${m.bytesMax}`,
          tooLarge: true,
        };
      }
      const value = live === undefined ? m.value : concat(live.value, m.value);
      return withExpiry({ ok: true, value, tombstone: false }, keep);
    }
    default:
      return applyRedis(m, live, nowMs);
  }
}

function withExpiry(a: Applied & { ok: true }, expiresAt: number | undefined): Applied {
  return expiresAt === undefined ? a : { ...a, expiresAt };
}

/**
 * Among a quorum of promises, the accepted proposal a new proposer must finish before its own:
 * the one with the highest ballot, when that ballot is above every commit the quorum reported.
 */
export function inProgress(
  promises: readonly { accepted?: Proposal; committed?: Ballot }[],
): Proposal | undefined {
  let best: Proposal | undefined;
  let committed: Ballot | undefined;
  for (const p of promises) {
    if (p.committed !== undefined) committed = max(p.committed, committed);
    if (
      p.accepted !== undefined &&
      (best === undefined || compareVersions(p.accepted.ballot, best.ballot) > 0)
    ) {
      best = p.accepted;
    }
  }
  if (best === undefined) return undefined;
  if (committed !== undefined && compareVersions(best.ballot, committed) <= 0) return undefined;
  return best;
}

/**
 * What a quorum of promises says of a proposal of ours, `p` under `ballot`, that some acceptors
 * may have taken while a quorum refused it:
 * - `chosen`: a commit of its record is remembered by one of them;
 * - `dead`: a later commit (ballot above `ballot`, another record) is, and none of `p`: once a
 *   commit above `p`'s ballot completes at a quorum, no proposer finishes `p` any more (every
 *   promise quorum then shows that commit, which outranks `p`'s acceptance);
 * - `unknown`: one of them forgot commits above `ballot` (one of those may have been it);
 * - `open`: nothing committed since: `p` may still be finished, by anyone.
 * Every commit quorum meets every promise quorum, so a completed commit of `p` would show. (A
 * commit that reached fewer than a quorum, its coordinator gone, can escape this: docs/
 * architecture.md, "Conditional writes".)
 */
export function settledBy(
  promises: readonly { recent?: readonly Commit[]; forgotten?: Ballot; committed?: Ballot }[],
  p: Proposal,
): "chosen" | "dead" | "unknown" | "open" {
  let later = false;
  for (const pr of promises) {
    if (pr.recent?.some((c) => compareVersions(c.version, p.record.version) === 0)) {
      return "chosen";
    }
    if (pr.committed !== undefined && compareVersions(pr.committed, p.ballot) > 0) later = true;
  }
  for (const pr of promises) {
    if (pr.forgotten !== undefined && compareVersions(pr.forgotten, p.ballot) > 0) {
      return "unknown";
    }
  }
  return later ? "dead" : "open";
}

/**
 * How long to wait before try `attempt` (1-based) after contention: exponential from `firstMs`,
 * capped at `capMs`, with full jitter (`random` in [0, 1)) so racing proposers spread out.
 */
export function backoffMs(attempt: number, random: number, firstMs = 2, capMs = 50): number {
  const ceiling = Math.min(capMs, firstMs * 2 ** Math.min(attempt - 1, 20));
  return Math.floor(random * ceiling) + 1;
}
