/**
 * The history checker shared by the simulation (test/sim/cluster-sim.ts) and the end-to-end
 * tests (test/support/history.ts): a pure function of a client history and the cluster's final
 * state, taken after every fault was healed and the cluster had time to quiesce. The final state
 * is each node's own copy of every key, read without going through a coordinator (so read
 * repair cannot hide what a replica held), taken before the final reads.
 *
 * Rules (docs/testing.md):
 *  (i)   after quiescence no acknowledged quorum/all write is lost: the newest copy of its key
 *        that any node holds is that write or a newer one (or nothing, if a delete may be newer);
 *        no value deleted by an acknowledged quorum/all delete is the newest copy; every replica
 *        of the key holds that newest copy (a deleted key: no live value), no other node holds
 *        anything; and every final quorum read returns it;
 *  (ii)  a quorum/all read that starts after a quorum/all write of its key was acknowledged
 *        returns that write or a newer one (or nothing, if a delete may be newer): no stale read;
 *  (iii) after a quorum/all delete is acknowledged, no quorum/all read returns a value written
 *        before the delete started (writes concurrent with it may win: last writer wins);
 *  (iv)  no read returns, and no node holds, a value that was never written to its key;
 *  (v)   placement converges: every member has the same ring, no node holds a partition it
 *        does not own, no hint is left undelivered;
 *  (ttl) a write with a ttl may read as absent (it may have expired), and no read started more
 *        than ttl + TTL_SLACK_MS after such a write was acknowledged returns its value; in the
 *        final state every record with a ttl counts as expired (runs keep ttls short enough);
 *  (err) no member answers 500 and no member's callback throws.
 *  (list) a paged listing (`checkListings`) answers each key at most once, in order; at quorum
 *        or all, every page answered 200 covers, up to its cursor, every key with a quorum/all
 *        write acknowledged before the listing started (unless a delete or a ttl may have removed
 *        it since), each at that write's version or newer.
 * Only acknowledged quorum/all operations order anything: a `one` write or an operation that
 * failed or timed out may still land at any later time, so it counts as concurrent with all
 * that follows its invocation. Every acknowledged write is checked, not only the last of its key.
 */
import { Buffer } from "node:buffer";
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
  /** Ms since the start of the run (simulated or real, one clock for the whole history). */
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
  /** put: the ttl it set (ms), if any. */
  readonly ttlMs?: number;
}

/** What is known of an operation when its request is sent. */
export type Invoked = Omit<Op, "completeMs" | "outcome" | "status" | "value" | "version">;

/**
 * The operation an HTTP answer completes: a 200 is ok (a put keeps the value it wrote, a get the
 * value it read, both the version answered); a 404 to a get or delete is ok (not found / nobody
 * held a live value); anything else failed. `value` is the value the request sent, if any.
 */
export function answered(
  base: Invoked,
  value: string | undefined,
  status: number,
  body: { value?: string; version?: string },
  completeMs: number,
): Op {
  if (status === 200) {
    return {
      ...base,
      completeMs,
      outcome: "ok",
      status,
      ...(base.kind === "put" ? { value } : {}),
      ...(base.kind === "get" ? { value: body.value } : {}),
      ...(body.version ? { version: body.version } : {}),
    };
  }
  if (status === 404 && base.kind !== "put") return { ...base, completeMs, outcome: "ok", status };
  return { ...base, completeMs, outcome: "fail", status, ...(value ? { value } : {}) };
}

/** The operation a request that got no answer completes: timed out, or failed. */
export function unanswered(
  base: Invoked,
  value: string | undefined,
  error: unknown,
  completeMs: number,
): Op {
  const outcome = (error as Error).name === "TimeoutError" ? "timeout" : "fail";
  return { ...base, completeMs, outcome, ...(value ? { value } : {}) };
}

/** A value as the checker compares it: text as it is, other bytes as `base64:<base64>`. */
export function valueText(v: string | Uint8Array): string {
  return typeof v === "string" ? v : `base64:${Buffer.from(v).toString("base64")}`;
}

export interface StoredRecord {
  readonly value: string;
  readonly version: string;
  readonly tombstone: boolean;
  /** The record carries a ttl (by the final state, every ttl has run out: it reads as absent). */
  readonly expires?: boolean;
}

export interface NodeState {
  readonly id: string;
  /** The member's ring, as text (equal texts = equal rings). */
  readonly ring: string;
  /** How many partitions it holds data for but does not own in its ring. */
  readonly heldNotOwned: number;
  /** Which ones, when known (the simulation knows; a real process reports the count). */
  readonly heldNotOwnedList?: readonly number[];
  readonly hintsPending: number;
  /** Its own copy of every key the clients used (null = nothing). */
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
  /** `lin`: conditional writes and incrs not linearizable (test/support/linearizability.ts). */
  /** `list`: a paged listing out of order, repeating a key, skipping one, or stale (checkListings). */
  readonly rule: "i" | "ii" | "iii" | "iv" | "v" | "ttl" | "err" | "lin" | "list";
  readonly key?: string;
  readonly message: string;
}

const STRONG = new Set(["quorum", "all"]);

/**
 * How long after a ttl write's acknowledgement its value may still be read: the coordinator's
 * clock may be behind by the runs' skew (2 s), the reader's as well.
 */
export const TTL_SLACK_MS = 4_000;

/** A stored record that reads as absent in the final state: a tombstone, or one with a ttl. */
const dead = (r: StoredRecord) => r.tombstone || r.expires === true;

export function describe(op: Op): string {
  const what = op.kind === "put"
    ? ` '${op.value}'${op.ttlMs === undefined ? "" : ` ttl=${op.ttlMs}ms`}`
    : "";
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

/** Every rule: the history's and the final state's. */
export function check(history: readonly Op[], final: FinalState): Violation[] {
  return [...checkHistory(history), ...checkFinal(history, final)];
}

/** Rules (ii), (iii), (iv) on reads, and (err): what the clients saw while the faults ran. */
export function checkHistory(history: readonly Op[]): Violation[] {
  const out: Violation[] = [];
  for (const [key, ops] of byKey(history)) checkReads(key, ops, out);
  for (const op of history) {
    if (op.status !== undefined && op.status >= 500 && op.status !== 503) {
      out.push({ rule: "err", key: op.key, message: `server error: ${describe(op)}` });
    }
  }
  return out;
}

/**
 * Rules (i), (iv) on stored values, (v) and callback errors: what the cluster holds after
 * quiescence, and the final reads of the history (if any were made yet). Waiting until this
 * comes back empty is waiting for convergence.
 */
export function checkFinal(history: readonly Op[], final: FinalState): Violation[] {
  const out: Violation[] = [];
  const keys = byKey(history);
  for (const key of Object.keys(final.replicas)) if (!keys.has(key)) keys.set(key, []);
  for (const [key, ops] of keys) checkKeyFinal(key, ops, final, out);
  checkPlacement(final, out);
  for (const e of final.errors) out.push({ rule: "err", message: `callback threw: ${e}` });
  return out;
}

function byKey(history: readonly Op[]): Map<string, Op[]> {
  const out = new Map<string, Op[]>();
  for (const op of history) {
    let ops = out.get(op.key);
    if (ops === undefined) out.set(op.key, ops = []);
    ops.push(op);
  }
  return out;
}

function checkReads(key: string, ops: readonly Op[], out: Violation[]): void {
  const puts = ops.filter((o) => o.kind === "put");
  const dels = ops.filter((o) => o.kind === "del");
  const reads = ops.filter((o) => o.kind === "get" && o.outcome === "ok");
  // What may make a key read as absent: a delete, or a write with a ttl (it expires).
  const gone = ops.filter((o) => o.kind === "del" || o.ttlMs !== undefined);
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
    // (ttl) at any level, a value with a ttl is not read well after it ran out.
    const tw = r.value === undefined ? undefined : putOf.get(r.value);
    if (
      tw?.ttlMs !== undefined && tw.outcome === "ok" &&
      r.invokeMs > tw.completeMs + tw.ttlMs + TTL_SLACK_MS
    ) {
      v(`expired value read: ${describe(r)}, written by ${describe(tw)}`, "ttl");
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
      } else if (!gone.some((d) => d.invokeMs < r.completeMs && !before(d, w))) {
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
}

interface Copy {
  readonly id: string;
  readonly rec: StoredRecord | null;
  readonly replica: boolean;
}

/** (i) after quiescence: nothing acknowledged lost or undeleted, exactly the replicas hold it. */
function checkKeyFinal(key: string, ops: readonly Op[], final: FinalState, out: Violation[]) {
  const v = (message: string, rule: Violation["rule"] = "i") => out.push({ rule, key, message });
  const replicas = final.replicas[key] ?? [];
  const copies: Copy[] = final.nodes.map((n) => ({
    id: n.id,
    rec: n.records[key] ?? null,
    replica: replicas.includes(n.id),
  }));
  let newest: (Copy & { rec: StoredRecord; v: Version }) | undefined;
  for (const c of copies) {
    const cv = c.rec && parseVersion(c.rec.version);
    if (c.rec && cv && (newest === undefined || compareVersions(cv, newest.v) > 0)) {
      newest = { ...c, rec: c.rec, v: cv };
    }
  }
  const puts = ops.filter((o) => o.kind === "put");
  const dels = ops.filter((o) => o.kind === "del");
  const newestText = newest ? `${fmt(newest.rec)} on ${newest.id}` : "nothing on any node";

  // Every acknowledged write, or a newer record of its key, is still held somewhere.
  for (const w of puts) {
    const wv = version(w);
    if (!ackedStrong(w) || wv === undefined) continue;
    const lost = newest === undefined
      // tombstones and expired records may be collected: nothing = deleted or expired
      ? !ops.some((d) => (d.kind === "del" || d.ttlMs !== undefined) && !before(d, w))
      : compareVersions(newest.v, wv) < 0;
    if (lost) v(`lost write: ${describe(w)}; the newest copy after quiescence is ${newestText}`);
  }
  // The newest copy is a written value, and not one an acknowledged delete removed.
  if (newest !== undefined && !newest.rec.tombstone) {
    const w = puts.find((p) => p.value === newest.rec.value);
    if (w === undefined) v(`${newest.id} holds a value never written: ${fmt(newest.rec)}`, "iv");
    for (const d of dead(newest.rec) ? [] : dels) {
      if (w !== undefined && ackedStrong(d) && before(w, d)) {
        v(
          `deleted key live again after quiescence: ${newestText}, written by ${describe(w)}, ` +
            `deleted by ${describe(d)}`,
        );
      }
    }
  }
  // Exactly the replicas hold the newest copy.
  const live = newest !== undefined && !dead(newest.rec);
  for (const c of copies) {
    if (!c.replica) {
      if (c.rec !== null) {
        v(`${c.id} is not a replica (${replicas.join(",")}) but holds ${fmt(c.rec)}`);
      }
    } else if (live ? c.rec?.version !== newest!.rec.version : c.rec !== null && !dead(c.rec)) {
      v(`replica ${c.id} holds ${fmt(c.rec)} after quiescence, but the newest is ${newestText}`);
    }
  }
  // Final reads (made after the state was taken) return the newest copy.
  for (const f of ops.filter((o) => o.final)) {
    if (f.outcome !== "ok") v(`not readable after quiescence: ${describe(f)}`);
    else if (f.version !== (live ? newest!.rec.version : undefined)) {
      v(`final read ${describe(f)}, but the newest copy is ${newestText}`);
    }
  }
}

function fmt(r: StoredRecord | null): string {
  if (r === null) return "nothing";
  return r.tombstone
    ? `a tombstone v=${r.version}`
    : `'${r.value}'${r.expires ? " (ttl)" : ""} v=${r.version}`;
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
    if (n.heldNotOwned > 0) {
      const which = n.heldNotOwnedList ? `: ${n.heldNotOwnedList.join(",")}` : "";
      out.push({
        rule: "v",
        message: `${n.id} holds ${n.heldNotOwned} partitions it does not own${which}`,
      });
    }
    if (n.hintsPending > 0) {
      out.push({ rule: "v", message: `${n.id} still holds ${n.hintsPending} hints` });
    }
  }
}

/** One page of a listing: the member asked, when, what it answered. */
export interface ListPage {
  readonly member: string;
  readonly invokeMs: number;
  readonly completeMs: number;
  /** HTTP status, when there was an answer. */
  readonly status?: number;
  /** The items answered (a 200), in the order answered. */
  readonly items: readonly { readonly key: string; readonly version: string }[];
  /** The cursor answered, decoded (the key to continue after), or null at the end. */
  readonly next?: string | null;
}

/**
 * A paged listing (`GET /kv?prefix=P&limit=L&consistency=C`, then `&cursor=` each page's
 * cursor) from its first page to the page that answered cursor null, or to the first page
 * that did not answer 200 (a 503 is allowed: the listing just stops there).
 */
export interface Listing {
  readonly id: number;
  readonly client: string;
  readonly prefix: string;
  readonly level: string;
  readonly limit: number;
  readonly pages: readonly ListPage[];
}

export function describeListing(l: Listing): string {
  const first = l.pages[0];
  const last = l.pages.at(-1);
  const end = last?.status !== 200 ? ` stopped: ${last?.status ?? "no answer"}` : "";
  const pages = l.pages.map((p) =>
    `${p.member}@${p.invokeMs}ms:[${p.items.map((i) => i.key).join(",")}]` +
    `${p.status === 200 ? (p.next === null ? " end" : ` →${p.next}`) : ` ${p.status ?? "-"}`}`
  ).join(" ");
  return `listing#${l.id} prefix='${l.prefix}' limit=${l.limit} ${l.level} by ${l.client} ` +
    `[${first?.invokeMs}..${last?.completeMs}ms]${end}: ${pages}`;
}

/**
 * Rule (list): what a paged listing answered against the history of plain operations. Pages
 * are not a snapshot, so only what is certain is judged: a key with a quorum/all write
 * acknowledged before the listing's first page was sent, and no delete or ttl write that may be
 * newer invoked before the page that should have shown it answered, is listed by a quorum/all
 * listing, once, at that write's version or newer, if a page that answered 200 covers it (its
 * key is at most that page's cursor; every key, on the last page).
 */
export function checkListings(history: readonly Op[], listings: readonly Listing[]): Violation[] {
  const out: Violation[] = [];
  const keys = byKey(history);
  for (const l of listings) {
    const v = (key: string | undefined, message: string) =>
      out.push({ rule: "list", ...(key === undefined ? {} : { key }), message });
    // Order and uniqueness, at any level: each key after the cursor the page was asked after.
    let after: string | undefined;
    for (const p of l.pages) {
      if (p.status !== 200) break;
      for (const it of p.items) {
        if (!it.key.startsWith(l.prefix)) {
          v(it.key, `listed a key outside the prefix: ${describeListing(l)}`);
        }
        if (after !== undefined && it.key <= after) {
          v(
            it.key,
            `listed out of order or twice ('${it.key}' after '${after}'): ${describeListing(l)}`,
          );
        }
        after = it.key;
      }
      if (p.next !== null && p.next !== undefined) {
        if (after !== undefined && p.next < after) {
          v(undefined, `cursor '${p.next}' before the last key '${after}': ${describeListing(l)}`);
        }
        after = p.next;
      }
    }
    if (!STRONG.has(l.level) || l.pages.length === 0) continue;
    const startMs = l.pages[0]!.invokeMs;
    const listed = new Map<string, { version: string; page: ListPage }>();
    for (const p of l.pages) {
      if (p.status === 200) { for (const it of p.items) listed.set(it.key, { ...it, page: p }); }
    }
    // Which page covers a key: the first page answered 200 whose cursor is at or past it.
    const coveredBy = (key: string): ListPage | undefined => {
      for (const p of l.pages) {
        if (p.status !== 200) return undefined;
        if (p.next === null || (p.next !== undefined && key <= p.next)) return p;
      }
      return undefined;
    };
    for (const [key, ops] of keys) {
      if (!key.startsWith(l.prefix)) continue;
      const page = coveredBy(key);
      if (page === undefined) continue;
      const gone = ops.filter((o) => o.kind === "del" || o.ttlMs !== undefined);
      const got = listed.get(key);
      for (const w of ops) {
        if (w.kind !== "put" || !ackedStrong(w) || w.completeMs >= startMs) continue;
        const wv = version(w);
        if (wv === undefined) continue;
        if (got === undefined) {
          if (gone.some((d) => d.invokeMs < page.completeMs && !before(d, w))) continue;
          v(
            key,
            `listing skipped '${key}' (no delete or ttl may be newer than ${describe(w)}): ` +
              describeListing(l),
          );
          break;
        }
        const gv = parseVersion(got.version);
        if (gv === undefined || compareVersions(gv, wv) < 0) {
          v(
            key,
            `listing answered '${key}' v=${got.version}, older than ${describe(w)}: ` +
              describeListing(l),
          );
          break;
        }
      }
    }
  }
  return out;
}
