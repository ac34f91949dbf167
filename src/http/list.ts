/**
 * `GET /kv?prefix=P&limit=N&cursor=C[&keysOnly=true][&count=true][&consistency=L]`: the live
 * keys of the whole cluster under a prefix, in key order (JavaScript string order), a page at a
 * time.
 *
 * Every data node serving in the ring is asked for its next `limit` records under the prefix
 * after the cursor, from the partitions it holds (kv/list; tombstones and expired records
 * included, so a newer delete on one replica hides an older value on another). A node that
 * stopped early (limit or bytes) has said nothing about keys past its last one, so the page ends
 * at the smallest such last key; within it each key's record is the newest any node answered.
 * Each partition must be held by as many answering nodes as the consistency asks of its replicas
 * (quorum by default), else 503. Expired records and tombstones are left out; if that leaves the
 * page short, the next nodes' records are asked for (a bounded number of rounds).
 *
 * Pages are not a snapshot: a key written or deleted between two pages may or may not show. The
 * cursor is the last key answered (base64url): the next page starts after it, so each key comes
 * at most once, in order, across pages even while nodes join or leave.
 */
import { z } from "zod";
import { Buffer } from "node:buffer";
import { type Consistency, requiredAcks } from "../core/placement.ts";
import { isPresent, type KvRecord, merge } from "../core/record.ts";
import type { ViewMember } from "../core/view.ts";
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
  const ring = ctx.ring();
  if (ring === undefined || ring.n === 0) {
    throw new DkvError("unavailable", "no membership view with data nodes yet");
  }
  const nodes = ring.view.members.filter((m) => m.role === "node" && ring.isServing(m.id));
  const items: KvRecord[] = [];
  let after = q.after;
  for (let round = 0; round < ROUNDS_MAX; round++) {
    const want = q.limit - items.length;
    const answers = await Promise.all(nodes.map((m) => ask(ctx, m, q, after, want)));
    checkCoverage(ctx, q.consistency, answers, nodes);
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
      if (items.length === q.limit) return { items, next: k };
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
  readonly held: ReadonlySet<number>;
}

async function ask(
  ctx: MemberContext,
  m: ViewMember,
  q: ListQuery,
  after: string | undefined,
  limit: number,
): Promise<Answer | undefined> {
  const unitsMax = ctx.config.valueBytesMax + ctx.config.batchBytesMax;
  try {
    if (m.id === ctx.selfId && ctx.store !== undefined && ctx.holds !== undefined) {
      const holds = ctx.holds;
      const out = ctx.store.list(q.prefix, after, limit, unitsMax, holds, q.keysOnly);
      const held = new Set<number>();
      for (let p = 0; p < ctx.store.partitionCount; p++) if (holds(p)) held.add(p);
      return { member: m, ...out, held };
    }
    const res = await ctx.peers.list(m.address, {
      prefix: q.prefix,
      limit,
      ...(after === undefined ? {} : { after }),
      ...(q.keysOnly ? { keysOnly: true } : {}),
    }, ctx.config.timers.requestTimeoutMs);
    return {
      member: m,
      records: res.records.map(fromWire),
      more: res.more,
      held: new Set(res.held),
    };
  } catch (e) {
    ctx.log.debug(`listing: ${m.id} did not answer: ${(e as Error).message}`);
    return undefined;
  }
}

/** Every partition held by enough answering nodes for the consistency asked, else a 503. */
function checkCoverage(
  ctx: MemberContext,
  consistency: Consistency,
  answers: readonly (Answer | undefined)[],
  nodes: readonly ViewMember[],
): void {
  const ring = ctx.ring()!;
  const partitions = ring.table.length;
  const holders = new Uint16Array(partitions);
  for (const a of answers) if (a !== undefined) { for (const p of a.held) holders[p]!++; }
  for (let p = 0; p < partitions; p++) {
    const n = ring.replicasOf(p).length;
    const need = requiredAcks(consistency === "any" ? "one" : consistency, n);
    if (holders[p]! < need) {
      const answered = answers.filter((a) => a !== undefined).length;
      throw new DkvError(
        "unavailable",
        `only ${holders[p]} member(s) holding partition ${p} answered; ${consistency} needs ` +
          `${need} of its ${n} replicas (${answered} of ${nodes.length} nodes answered)`,
      );
    }
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
