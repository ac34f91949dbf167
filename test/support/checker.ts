/**
 * The simulation's history checker: a pure function of the client history and the cluster's
 * final state (after every fault was healed and the cluster had time to quiesce).
 *
 * Rules (docs/testing.md):
 *  (i)   after quiescence every acknowledged quorum/all write, or a newer write of that key, is
 *        what a quorum read returns on every member, and exactly the key's replicas hold it;
 *  (ii)  a quorum/all read that starts after a quorum/all write of its key was acknowledged
 *        returns that write or a newer one (or nothing, if a delete may be newer);
 *  (iii) after a quorum/all delete is acknowledged, no quorum/all read returns a value written
 *        before the delete started (writes concurrent with it may win: last writer wins);
 *  (iv)  no read returns a value that was never written to its key;
 *  (v)   placement converges: every member has the same ring, no node holds a partition it
 *        does not own, no hint is left undelivered;
 *  (err) no member answers 500 and no member's callback throws.
 * Only acknowledged quorum/all operations order anything: a `one` write or an operation that
 * failed or timed out may still land at any later time, so it counts as concurrent with all
 * that follows its invocation.
 */
import { compareVersions, parseVersion, type Version } from "../../src/core/hlc.ts";

export type OpKind = "put" | "get" | "del";
export type Outcome = "ok" | "fail" | "timeout";

export interface Op {
  readonly id: number;
  readonly client: string;
  readonly kind: OpKind;
  readonly key: string;
  readonly level: string;
  /** The member the request was sent to. */
  readonly member: string;
  /** Simulated ms since the start. */
  readonly invokeMs: number;
  readonly completeMs: number;
  readonly outcome: Outcome;
  /** HTTP status, when there was an answer. */
  readonly status?: number;
  /** put: the value written; get: the value read (absent when not found). */
  readonly value?: string;
  /** The version answered (put, get). */
  readonly version?: string;
  /** A read after every fault healed and the cluster quiesced. */
  readonly final?: boolean;
}

export interface StoredRecord {
  readonly value: string;
  readonly version: string;
  readonly tombstone: boolean;
}

export interface NodeState {
  readonly id: string;
  /** The member's ring, as text (equal texts = equal rings). */
  readonly ring: string;
  /** Partitions it holds data for but does not own in its ring. */
  readonly heldNotOwned: readonly number[];
  readonly hintsPending: number;
  /** What its store holds for every key the clients used (null = nothing). */
  readonly records: Readonly<Record<string, StoredRecord | null>>;
}

export interface FinalState {
  /** Running data nodes in the ring. */
  readonly nodes: readonly NodeState[];
  /** Rings of the other running members (orchestrator, nodes out of the ring). */
  readonly otherRings: Readonly<Record<string, string>>;
  /** Replica ids of every key, by the first node's ring. */
  readonly replicas: Readonly<Record<string, readonly string[]>>;
  /** Exceptions thrown by members' callbacks. */
  readonly errors: readonly string[];
}

export interface Violation {
  readonly rule: "i" | "ii" | "iii" | "iv" | "v" | "err";
  readonly key?: string;
  readonly message: string;
}

const STRONG = new Set(["quorum", "all"]);

export function describe(op: Op): string {
  const what = op.kind === "put" ? ` '${op.value}'` : "";
  const got = op.kind === "get" && op.outcome === "ok"
    ? (op.value === undefined ? " → not found" : ` → '${op.value}'`)
    : "";
  const ver = op.version ? ` v=${op.version}` : "";
  const st = op.status !== undefined ? ` ${op.status}` : "";
  return `${op.final ? "final " : ""}${op.kind}#${op.id}${what} ${op.level} via ${op.member} ` +
    `by ${op.client} [${op.invokeMs}..${op.completeMs}ms] ${op.outcome}${st}${got}${ver}`;
}

function version(op: Op): Version | undefined {
  return op.version === undefined ? undefined : parseVersion(op.version);
}

const ackedStrong = (op: Op) => op.outcome === "ok" && STRONG.has(op.level);

/** Whether `a` certainly took effect before `b` started (and so orders before it). */
const before = (a: Op, b: Op) => ackedStrong(a) && a.completeMs < b.invokeMs;

export function check(history: readonly Op[], final: FinalState): Violation[] {
  const out: Violation[] = [];
  const byKey = new Map<string, Op[]>();
  for (const op of history) {
    let ops = byKey.get(op.key);
    if (ops === undefined) byKey.set(op.key, ops = []);
    ops.push(op);
  }
  for (const [key, ops] of byKey) checkKey(key, ops, final, out);
  checkPlacement(final, out);
  for (const op of history) {
    if (op.status !== undefined && op.status >= 500 && op.status !== 503) {
      out.push({ rule: "err", key: op.key, message: `server error: ${describe(op)}` });
    }
  }
  for (const e of final.errors) out.push({ rule: "err", message: `callback threw: ${e}` });
  return out;
}

function checkKey(key: string, ops: readonly Op[], final: FinalState, out: Violation[]): void {
  const puts = ops.filter((o) => o.kind === "put");
  const dels = ops.filter((o) => o.kind === "del");
  const reads = ops.filter((o) => o.kind === "get" && o.outcome === "ok");
  const putOf = new Map(puts.map((p) => [p.value!, p]));
  const v = (message: string, rule: Violation["rule"]) => out.push({ rule, key, message });

  for (const r of reads) {
    // (iv) only written values come back.
    if (r.value !== undefined) {
      const w = putOf.get(r.value);
      if (w === undefined || w.invokeMs > r.completeMs) {
        v(`read returned a value never written to '${key}': ${describe(r)}`, "iv");
      }
    }
    if (!STRONG.has(r.level)) continue;
    // (ii) a strong read sees every strong write acknowledged before it started.
    const rv = version(r);
    for (const w of puts) {
      if (!before(w, r)) continue;
      const wv = version(w);
      if (wv === undefined) continue;
      if (r.value !== undefined) {
        if (rv !== undefined && compareVersions(rv, wv) < 0) {
          v(`stale read of '${key}': ${describe(r)} is older than ${describe(w)}`, "ii");
        }
      } else if (!dels.some((d) => d.invokeMs < r.completeMs && !before(d, w))) {
        v(
          `lost write of '${key}': ${describe(r)} after ${describe(w)} (no delete may be newer)`,
          "ii",
        );
      }
    }
    // (iii) a strong delete hides every value written before it started.
    if (r.value !== undefined) {
      const w = putOf.get(r.value);
      if (w === undefined) continue;
      for (const d of dels) {
        if (before(d, r) && before(w, d)) {
          v(
            `deleted key '${key}' read live: ${describe(r)} after ${describe(d)}, ` +
              `value from ${describe(w)}`,
            "iii",
          );
        }
      }
    }
  }
  checkFinal(key, ops, final, out);
}

/** (i) after quiescence: every member reads the same, and exactly the replicas hold it. */
function checkFinal(key: string, ops: readonly Op[], final: FinalState, out: Violation[]): void {
  const v = (message: string) => out.push({ rule: "i", key, message });
  const finals = ops.filter((o) => o.final);
  const failed = finals.filter((o) => o.outcome !== "ok");
  for (const f of failed) v(`not readable at quorum after quiescence: ${describe(f)}`);
  const oks = finals.filter((o) => o.outcome === "ok");
  const answers = new Set(oks.map((o) => o.version ?? "none"));
  if (answers.size > 1) {
    v(`members disagree after quiescence: ${oks.map(describe).join("; ")}`);
    return;
  }
  if (oks.length === 0) return;
  const answer = oks[0]!;
  const replicas = final.replicas[key] ?? [];
  for (const n of final.nodes) {
    const rec = n.records[key] ?? null;
    const isReplica = replicas.includes(n.id);
    if (answer.version !== undefined) {
      if (isReplica && (rec === null || rec.tombstone || rec.version !== answer.version)) {
        v(
          `replica ${n.id} holds ${fmt(rec)} but quorum reads return v=${answer.version} ` +
            `after quiescence`,
        );
      }
      if (!isReplica && rec !== null) {
        v(`${n.id} is not a replica (${replicas.join(",")}) but holds ${fmt(rec)}`);
      }
    } else if (rec !== null && !rec.tombstone) {
      v(
        `${n.id}${isReplica ? "" : " (not a replica)"} holds live ${fmt(rec)} but quorum reads ` +
          `find nothing after quiescence`,
      );
    }
  }
}

function fmt(r: StoredRecord | null): string {
  if (r === null) return "nothing";
  return r.tombstone ? `a tombstone v=${r.version}` : `'${r.value}' v=${r.version}`;
}

/** (v) one ring everywhere, nothing held outside it, no hint left behind. */
function checkPlacement(final: FinalState, out: Violation[]): void {
  const rings = new Map<string, string[]>();
  const add = (id: string, ring: string) => {
    const ids = rings.get(ring) ?? [];
    ids.push(id);
    rings.set(ring, ids);
  };
  for (const n of final.nodes) add(n.id, n.ring);
  for (const [id, ring] of Object.entries(final.otherRings)) add(id, ring);
  if (rings.size > 1) {
    const groups = [...rings.values()].map((ids) => `{${ids.join(",")}}`).join(" vs ");
    out.push({ rule: "v", message: `members disagree on the ring after quiescence: ${groups}` });
  }
  for (const n of final.nodes) {
    if (n.heldNotOwned.length > 0) {
      out.push({
        rule: "v",
        message: `${n.id} holds partitions it does not own: ${n.heldNotOwned.join(",")}`,
      });
    }
    if (n.hintsPending > 0) {
      out.push({ rule: "v", message: `${n.id} still holds ${n.hintsPending} hints` });
    }
  }
}
