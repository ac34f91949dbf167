/**
 * `GET /kv?prefix=P&limit=N&cursor=C[&keysOnly=true][&count=true][&consistency=L]`: the live
 * keys of the whole cluster under a prefix, in key order (JavaScript string order), a page at a
 * time.
 *
 * Every data node serving in the ring is asked for its next `limit` records under the prefix
 * after the cursor, from every partition it has data of (kv/list; tombstones and expired records
 * included, so a newer delete on one replica hides an older value on another). A node that
 * stopped early (limit or bytes) has said nothing about keys past its last one, so the page ends
 * at the smallest such last key; within it each key's record is the newest any node answered.
 * Each partition must be covered as a read of one of its keys would be (`checkCoverage`): by as
 * many of its replicas in this member's ring as the consistency asks (quorum by default), each
 * holding it with the same replica list, where a replica still receiving it counts only together
 * with a non-replica that still holds it (a previous owner before its drop), else 503. Expired
 * records and tombstones are left out; if that leaves the page short, the next nodes' records
 * are asked for (a bounded number of rounds).
 *
 * Pages are not a snapshot: a key written or deleted between two pages may or may not show. The
 * cursor is the last key answered (base64url): the next page starts after it, so each key comes
 * at most once, in order, across pages even while nodes join or leave.
 */
import { z } from "zod";
import { Buffer } from "node:buffer";
import { type Consistency, requiredAcks } from "../core/placement.ts";
import { isPresent, type KvRecord, merge } from "../core/record.ts";
import { valueUnits } from "../core/batching.ts";
import type { Ring, ViewMember } from "../core/view.ts";
import { fromWire } from "../transport/messages.ts";
import type { MemberContext } from "./context.ts";
import { DkvError } from "./errors.ts";
import { recordJson } from "./kv-handler.ts";
import { KEY_BYTES_HARD_MAX, kvParams, parseConsistency, parseFlag } from "./validate.ts";

const LIST_PARAMS = [
  "prefix",
  "limit",
  "cursor",
  "keysOnly",
  "count",
  "consistency",
  "watch",
  "since",
];

/** Rounds of asking the nodes for one page, at most (a page of tombstones asks again). */
const ROUNDS_MAX = 8;

const Limit = z.string().regex(/^\d{1,9}$/).transform(Number);

export interface ListQuery {
  readonly prefix: string;
  readonly limit: number;
  readonly after: string | undefined;
  readonly keysOnly: boolean;
  readonly count: boolean;
  readonly watch: boolean;
  readonly consistency: Consistency;
  readonly params: URLSearchParams;
  /** Also tombstones and expired records (a watch catching up). */
  readonly withDead?: boolean;
}

/** The listing's parameters; anything unknown or malformed is a 400. */
export function parseListQuery(ctx: MemberContext, url: string): ListQuery {
  const params = kvParams(url, LIST_PARAMS, "GET /kv") ?? new URLSearchParams();
  const prefix = params.get("prefix");
  if (prefix === null) {
    throw new DkvError(
      "bad_request",
      "key must not be empty; to list keys use GET /kv?prefix=P (prefix= lists every key)",
    );
  }
  if (prefix.length > KEY_BYTES_HARD_MAX) throw new DkvError("bad_request", "prefix is too long");
  const max = ctx.config.listKeysMax;
  const limitText = params.get("limit");
  let limit = Math.min(100, max);
  if (limitText !== null) {
    const out = Limit.safeParse(limitText);
    if (!out.success || out.data < 1 || out.data > max) {
      throw new DkvError(
        "bad_request",
        `limit must be a whole number from 1 to ${max} (--max-list-keys); got '${
          limitText.slice(0, 20)
        }'`,
      );
    }
    limit = out.data;
  }
  const cursor = params.get("cursor");
  return {
    prefix,
    limit,
    after: cursor === null || cursor === "" ? undefined : decodeCursor(cursor),
    keysOnly: parseFlag(params, "keysOnly"),
    count: parseFlag(params, "count"),
    watch: parseFlag(params, "watch"),
    consistency: parseConsistency(params.get("consistency") ?? undefined),
    params,
  };
}

export function encodeCursor(key: string): string {
  return Buffer.from(key, "utf8").toString("base64url");
}

function decodeCursor(cursor: string): string {
  if (!/^[A-Za-z0-9_-]{1,200000}$/.test(cursor)) throw badCursor();
  const key = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
    Buffer.from(cursor, "base64url"),
  );
  if (encodeCursor(key) !== cursor) throw badCursor();
  return key;
}

function badCursor(): DkvError {
  return new DkvError("bad_request", "cursor is not one this API gave out");
}

export interface Page {
  readonly items: KvRecord[];
  /** The key to continue after, or undefined at the end. */
  readonly next: string | undefined;
}

/** One page of live records under `q.prefix` after `q.after`, cluster-wide. */
export async function listPage(ctx: MemberContext, q: ListQuery): Promise<Page> {
  // The checks a read at this consistency meets (a view, the restart gate, a majority, settling
  // after a pause or a partition), and one ring for the whole page.
  const ring = ctx.coordinator.ringFor(q.consistency === "any" ? "one" : q.consistency);
  if (ring.n === 0) throw new DkvError("unavailable", "no membership view with data nodes yet");
  const nodes = ring.view.members.filter((m) => m.role === "node" && ring.isServing(m.id));
  const sets = Array.from(ring.setHash);
  const items: KvRecord[] = [];
  // The page is bounded in bytes as each node's part is: past the budget it ends early.
  const unitsMax = ctx.config.valueBytesMax + ctx.config.batchBytesMax;
  let units = 0;
  let after = q.after;
  for (let round = 0; round < ROUNDS_MAX; round++) {
    const want = q.limit - items.length;
    const answers = await Promise.all(nodes.map((m) => ask(ctx, m, q, after, want, sets)));
    checkCoverage(ring, q.consistency, answers, nodes);
    // A node that stopped early covers keys up to its last one only.
    let bound: string | undefined;
    for (const a of answers) {
      if (a === undefined || !a.more) continue;
      const last = a.records[a.records.length - 1]?.key;
      if (last !== undefined && (bound === undefined || last < bound)) bound = last;
    }
    const byKey = new Map<string, KvRecord>();
    for (const a of answers) {
      for (const r of a?.records ?? []) {
        if (bound !== undefined && r.key > bound) continue;
        byKey.set(r.key, merge(byKey.get(r.key), r));
      }
    }
    const nowMs = ctx.sched.now();
    const keys = [...byKey.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const k of keys) {
      const r = byKey.get(k)!;
      if (q.withDead !== true && !isPresent(r, nowMs)) continue;
      items.push(r);
      units += k.length + (q.keysOnly ? 0 : valueUnits(r.value));
      if (items.length === q.limit || units >= unitsMax) return { items, next: k };
    }
    if (bound === undefined) return { items, next: undefined };
    after = bound;
  }
  // Many tombstones in a row: a short page, and the cursor goes on after them.
  return { items, next: after };
}

interface Answer {
  readonly member: ViewMember;
  readonly records: KvRecord[];
  readonly more: boolean;
  /** Partitions it holds: its records of them are whole. */
  readonly held: ReadonlySet<number>;
  /** Partitions of `held` whose replica list differs from this member's. */
  readonly stale: ReadonlySet<number>;
}

const NONE: ReadonlySet<number> = new Set();

async function ask(
  ctx: MemberContext,
  m: ViewMember,
  q: ListQuery,
  after: string | undefined,
  limit: number,
  sets: number[],
): Promise<Answer | undefined> {
  const unitsMax = ctx.config.valueBytesMax + ctx.config.batchBytesMax;
  try {
    if (m.id === ctx.selfId && ctx.store !== undefined && ctx.holds !== undefined) {
      const out = ctx.store.list(q.prefix, after, limit, unitsMax, q.keysOnly);
      const held = new Set<number>();
      for (let p = 0; p < ctx.store.partitionCount; p++) if (ctx.holds(p)) held.add(p);
      // Its own ring is the one the page is served from: no replica list differs.
      return { member: m, ...out, held, stale: NONE };
    }
    const res = await ctx.peers.list(m.address, {
      prefix: q.prefix,
      limit,
      ...(after === undefined ? {} : { after }),
      ...(q.keysOnly ? { keysOnly: true } : {}),
      sets,
    }, ctx.config.timers.requestTimeoutMs);
    return {
      member: m,
      records: res.records.map(fromWire),
      more: res.more,
      held: new Set(res.held),
      stale: res.stale === undefined ? NONE : new Set(res.stale),
    };
  } catch (e) {
    ctx.log.debug(`listing: ${m.id} did not answer: ${(e as Error).message}`);
    return undefined;
  }
}

/**
 * Every partition covered as a read of one of its keys is (Coordinator.read), else a 503. Per
 * partition p of `ring`: its replicas there that answered and hold p with the same replica list
 * count in full; a replica that answered without holding p (still receiving it, or on another
 * ring) has what was written to it since, and counts together with one answering non-replica
 * that holds p (a previous owner before its drop: what was written before), each such pair as
 * one replica. Any other node's records are merged in but vouch for nothing: a node holding p
 * outside its replica set may have missed every write since p moved (simulator seeds 163, 166).
 */
function checkCoverage(
  ring: Ring,
  consistency: Consistency,
  answers: readonly (Answer | undefined)[],
  nodes: readonly ViewMember[],
): void {
  const answered = answers.filter((a): a is Answer => a !== undefined);
  const byId = new Map(answered.map((a) => [a.member.id, a]));
  for (let p = 0; p < ring.table.length; p++) {
    const replicas = ring.table[p]!;
    const need = requiredAcks(consistency === "any" ? "one" : consistency, replicas.length);
    let full = 0, partial = 0, previous = 0;
    for (const id of replicas) {
      const a = byId.get(id);
      if (a === undefined) continue;
      if (a.held.has(p) && !a.stale.has(p)) full++;
      else partial++;
    }
    if (full >= need) continue;
    for (const a of answered) if (!replicas.includes(a.member.id) && a.held.has(p)) previous++;
    if (full + Math.min(partial, previous) >= need) continue;
    throw new DkvError(
      "unavailable",
      `partition ${p}: ${full} of its ${replicas.length} replicas answered holding it` +
        (partial > 0 ? ` (${partial} more still receiving it or on another ring)` : "") +
        `; ${consistency} needs ${need} (${answered.length} of ${nodes.length} nodes answered)`,
    );
  }
}

/** The listing answer: items (no values with keysOnly) and the next cursor (null at the end). */
export function pageJson(page: Page, keysOnly: boolean) {
  return {
    status: "SUCCESS",
    items: page.items.map((r) => {
      const j = recordJson(r);
      const item: Record<string, unknown> = keysOnly
        ? { key: j.key, version: j.version }
        : { key: j.key, value: j.value, version: j.version };
      if (!keysOnly && j.encoding !== undefined) item.encoding = j.encoding;
      if (j.expiresAt !== undefined) item.expiresAt = j.expiresAt;
      return item;
    }),
    cursor: page.next === undefined ? null : encodeCursor(page.next),
  };
}

/** `count=true`: the live keys under the prefix, paging through them all (keys only). */
export async function countKeys(ctx: MemberContext, q: ListQuery): Promise<number> {
  let n = 0;
  let after = q.after;
  for (;;) {
    const page = await listPage(ctx, {
      ...q,
      after,
      keysOnly: true,
      limit: ctx.config.listKeysMax,
    });
    n += page.items.length;
    if (page.next === undefined) return n;
    after = page.next;
  }
}
