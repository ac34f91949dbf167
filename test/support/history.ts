/**
 * The end-to-end history: clients drive real `dkv` processes over HTTP and record every
 * operation (invocation and completion time, ok/fail/timeout, status, value, the version the
 * cluster answered, the member asked) as an `Op` of the checker shared with the simulation
 * (test/support/checker.ts). Writers each own their keys and mix reads, writes and deletes, so
 * every key's operations are sequential and a read checks every write acknowledged before it.
 *
 * After the faults, `verify` waits until the final-state rules hold on a snapshot of each
 * node's own copy of every key (POST /internal/v1/kv/read names one replica and returns its
 * stored record, tombstones and versions included: no coordinator, so no read repair), then
 * reads every key at quorum through every member and judges the whole history against that
 * snapshot. A snapshot that cannot be taken (a member answers an error) is retried until the
 * deadline and then thrown: the checker's own failures fail the test.
 */
import {
  answered,
  check,
  checkFinal,
  type FinalState,
  type NodeState,
  type Op,
  type OpKind,
  type StoredRecord,
  unanswered,
  valueText,
  type Violation,
} from "./checker.ts";
import { formatVersion } from "../../src/core/hlc.ts";
import { fromWire, type WireRecord } from "../../src/transport/messages.ts";
import { http } from "./cluster.ts";

/** A client gives up on a request after this (a member's own bound is --request-timeout). */
const CLIENT_TIMEOUT_MS = 5000;

export class History {
  readonly ops: Op[] = [];
  readonly #t0 = performance.now();
  #nextId = 1;
  okWrites = 0;
  okReads = 0;
  okDeletes = 0;
  failed = 0;

  /** Ms since this history began, to 0.01 ms. */
  now(): number {
    return Math.round((performance.now() - this.#t0) * 100) / 100;
  }

  nextId(): number {
    return this.#nextId++;
  }

  add(op: Op): Op {
    this.ops.push(op);
    if (op.outcome !== "ok") this.failed++;
    else if (op.kind === "put") this.okWrites++;
    else if (op.kind === "get") this.okReads++;
    else this.okDeletes++;
    return op;
  }

  /** Every key an operation used, sorted. */
  keys(): string[] {
    return [...new Set(this.ops.map((o) => o.key))].sort();
  }

  /** The acknowledged operations of `kind`. */
  acked(kind: OpKind): Op[] {
    return this.ops.filter((o) => o.kind === kind && o.outcome === "ok");
  }
}

export interface RequestOptions {
  readonly value?: string;
  readonly level?: string;
  readonly final?: boolean;
}

/** One client request through `member`, recorded in `h`. Never throws. */
export async function request(
  h: History,
  client: string,
  kind: OpKind,
  key: string,
  member: string,
  opts: RequestOptions = {},
): Promise<Op> {
  const level = opts.level ?? "quorum";
  const value = opts.value;
  const base = {
    id: h.nextId(),
    client,
    kind,
    key,
    level,
    member,
    invokeMs: h.now(),
    ...(opts.final ? { final: true } : {}),
  };
  const method = kind === "get" ? "GET" : kind === "put" ? "PUT" : "DELETE";
  try {
    const res = await fetch(`http://${member}/kv/${key}?consistency=${level}`, {
      method,
      ...(value !== undefined ? { body: value } : {}),
      signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
    });
    const text = await res.text();
    const completeMs = h.now();
    const body = res.status === 200 ? JSON.parse(text) as { value?: string; version?: string } : {};
    return h.add(answered(base, value, res.status, body, completeMs));
  } catch (e) {
    return h.add(unanswered(base, value, e, h.now()));
  }
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

export interface WriterOptions {
  /** Members to send requests to (called before every request, so it can change). */
  targets: () => readonly string[];
  writers: number;
  keysPerWriter: number;
  /** Key prefix, so scenarios never share keys. */
  prefix: string;
  /** Fraction of operations that are reads, and that are deletes; the rest are writes. */
  readFraction?: number;
  deleteFraction?: number;
}

/**
 * Start writers: each owns `keysPerWriter` keys and visits them in turn, reading (any key, a
 * deleted one or one never written included), deleting or writing a unique value. Call the
 * returned stop() to end them and wait for requests in flight.
 */
export function startWriters(h: History, opts: WriterOptions): { stop: () => Promise<void> } {
  let running = true;
  const reads = opts.readFraction ?? 0.3;
  const deletes = opts.deleteFraction ?? 0.05;
  const loops = Array.from({ length: opts.writers }, (_, w) =>
    (async () => {
      let seq = 0;
      while (running) {
        for (let k = 0; k < opts.keysPerWriter && running; k++) {
          const key = `${opts.prefix}-w${w}-k${k}`;
          const at = pick(opts.targets());
          const x = Math.random();
          const client = `w${w}`;
          if (x < reads) await request(h, client, "get", key, at);
          else if (x < reads + deletes) await request(h, client, "del", key, at);
          else await request(h, client, "put", key, at, { value: `${key}-s${++seq}` });
        }
      }
    })());
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Run `fn` on every item, at most `limit` at once. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/**
 * Write each key once through random members, with value `valueOf(key)` (default
 * `${key}-once`); the acknowledged writes. With `retryMs`, a failed write is tried again (a
 * new value, through another random member) until acknowledged or that long has passed.
 */
export async function writeKeys(
  h: History,
  keys: readonly string[],
  targets: readonly string[],
  opts: { value?: (key: string) => string; retryMs?: number } = {},
): Promise<Op[]> {
  const valueOf = opts.value ?? ((key: string) => `${key}-once`);
  const deadline = Date.now() + (opts.retryMs ?? 0);
  const out: Op[] = [];
  await eachLimited(keys, 16, async (key) => {
    for (let attempt = 0;; attempt++) {
      const value = attempt === 0 ? valueOf(key) : `${valueOf(key)}-retry${attempt}`;
      const op = await request(h, "once", "put", key, pick(targets), { value });
      if (op.outcome === "ok") out.push(op);
      if (op.outcome === "ok" || Date.now() >= deadline) return;
      await Bun.sleep(100);
    }
  });
  return out;
}

/**
 * Delete keys through random members; the keys whose delete was acknowledged. With `retryMs`, a
 * failed delete is tried again (through another random member) until acknowledged or that long
 * has passed: every try is in the history.
 */
export async function deleteKeys(
  h: History,
  keys: readonly string[],
  targets: readonly string[],
  retryMs = 0,
): Promise<string[]> {
  const deadline = Date.now() + retryMs;
  const deleted: string[] = [];
  await eachLimited(keys, 16, async (key) => {
    for (;;) {
      const op = await request(h, "deleter", "del", key, pick(targets));
      if (op.outcome === "ok") deleted.push(key);
      if (op.outcome === "ok" || Date.now() >= deadline) return;
      await Bun.sleep(100);
    }
  });
  return deleted;
}

/**
 * Read keys through random members of `targets`; the reads. With `retryMs`, a failed read is
 * tried again until it answers or that long has passed (every try is in the history).
 */
export async function readKeys(
  h: History,
  keys: readonly string[],
  targets: readonly string[],
  opts: { level?: string; retryMs?: number } = {},
): Promise<Op[]> {
  const deadline = Date.now() + (opts.retryMs ?? 0);
  const out: Op[] = [];
  await eachLimited(keys, 16, async (key) => {
    for (;;) {
      const op = await request(h, "reader", "get", key, pick(targets), { level: opts.level });
      if (op.outcome === "ok" || Date.now() >= deadline) return void out.push(op);
      await Bun.sleep(100);
    }
  });
  return out;
}

async function ok(method: string, address: string, path: string, body?: unknown) {
  const r = await http(
    method,
    address,
    path,
    body === undefined ? undefined : JSON.stringify(body),
    body === undefined ? undefined : { "content-type": "application/json" },
  );
  if (r.status !== 200) {
    throw new Error(`${method} ${address}${path} answered ${r.status} ${JSON.stringify(r.body)}`);
  }
  return r.body;
}

/** A member's ring, as text: the ids it has in the ring, sorted. */
async function ringOf(member: string): Promise<string> {
  const r = await ok("GET", member, "/all-nodes");
  return (r.allNodes as { id: string; inRing: boolean }[]).filter((m) => m.inRing)
    .map((m) => m.id).sort().join(",");
}

/**
 * Each node's own copy of `keys`, by node address: its stored records, tombstones and versions
 * included, read from the node itself (no coordinator in between, so no read repair). Throws if
 * a node does not answer.
 */
export async function ownCopies(
  nodes: readonly string[],
  keys: readonly string[],
): Promise<Map<string, Record<string, StoredRecord | null>>> {
  const out = new Map<string, Record<string, StoredRecord | null>>();
  await Promise.all(nodes.map(async (n) => {
    const id = (await ok("GET", n, "/health")).id as string;
    const records: Record<string, StoredRecord | null> = {};
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const r = await ok("POST", n, "/internal/v1/kv/read", { to: id, keys: batch });
      batch.forEach((k, j) => {
        const w = r.records[j] as WireRecord | null;
        const rec = w && fromWire(w);
        records[k] = rec &&
          {
            value: valueText(rec.value),
            version: formatVersion(rec.version),
            tombstone: rec.tombstone,
            ...(rec.expiresAt === undefined ? {} : { expires: true }),
          };
      });
    }
    out.set(n, records);
  }));
  return out;
}

/**
 * The final state of `nodes` (data nodes in the ring) and `others` (other running members):
 * each node's own copy of every key of the history, its ring, hints and partitions held outside
 * its ring; the others' rings; each key's replicas by the first node's ring. Throws if any
 * member does not answer.
 */
export async function snapshot(
  h: History,
  nodes: readonly string[],
  others: readonly string[],
): Promise<FinalState> {
  const keys = h.keys();
  const copies = await ownCopies(nodes, keys);
  const states: NodeState[] = await Promise.all(nodes.map(async (n) => {
    const [status, ring] = await Promise.all([
      ok("GET", n, "/internal/v1/status"),
      ringOf(n),
    ]);
    return {
      id: status.id as string,
      ring,
      heldNotOwned: status.partitionsHeldNotOwned as number,
      hintsPending: status.hintsPending as number,
      records: copies.get(n)!,
    };
  }));
  const otherRings: Record<string, string> = {};
  for (const m of others) otherRings[m] = await ringOf(m);
  const replicas: Record<string, string[]> = {};
  await eachLimited(keys, 16, async (k) => {
    const r = await ok("GET", nodes[0]!, `/all-nodes/${k}`);
    replicas[k] = (r.allNodes as { id: string }[]).map((m) => m.id);
  });
  return { nodes: states, otherRings, replicas, errors: [] };
}

export interface Verdict {
  readonly final: FinalState;
  readonly violations: Violation[];
}

/**
 * Wait (up to `timeoutMs`) until the final-state rules hold on a snapshot and every member is quiet: no acknowledged
 * write lost, no deleted value back, every replica holding the newest copy, one ring, no hint
 * left. Returns the last snapshot and what it still breaks. If the last attempt could not take
 * a snapshot, its error is thrown.
 */
export async function converge(
  h: History,
  nodes: () => readonly string[],
  others: () => readonly string[],
  timeoutMs = 30_000,
): Promise<Verdict> {
  const deadline = Date.now() + timeoutMs;
  let last: Verdict | undefined;
  let error: unknown;
  for (;;) {
    try {
      const final = await snapshot(h, nodes(), others());
      last = { final, violations: checkFinal(h.ops, final) };
      error = undefined;
      if (last.violations.length === 0 && await quiet(nodes(), others())) return last;
    } catch (e) {
      error = e;
    }
    if (Date.now() >= deadline) break;
    await Bun.sleep(250);
  }
  if (error !== undefined || last === undefined) throw error;
  return last;
}

/**
 * Nothing still in flight: every member answers GET /ready with 200 (joined, not settling after a
 * pause or a partition, not leaving) and no node is still receiving a partition (`movingIn` 0 in
 * its status). Copies that are already exact do not make a member that is still settling or
 * re-checking its partitions answer quorum reads; the final reads come after this, or after the
 * deadline, whichever is first (then they are judged as they are).
 */
async function quiet(nodes: readonly string[], others: readonly string[]): Promise<boolean> {
  const members = [...nodes, ...others];
  const ready = await Promise.all(
    members.map(async (m) => (await http("GET", m, "/ready")).status),
  );
  if (ready.some((s) => s !== 200)) return false;
  const moving = await Promise.all(
    nodes.map(async (n) => (await ok("GET", n, "/internal/v1/status")).movingIn as number),
  );
  return moving.every((x) => x === 0);
}

/**
 * The whole verdict: `converge`, then every member reads every key at quorum (the final reads),
 * then every rule on the whole history against the converged snapshot. Returns the violations,
 * formatted (empty = pass).
 */
export async function verify(
  h: History,
  nodes: () => readonly string[],
  others: () => readonly string[],
  timeoutMs = 30_000,
): Promise<string[]> {
  const { final } = await converge(h, nodes, others, timeoutMs);
  const keys = h.keys();
  await Promise.all([...nodes(), ...others()].map(async (m) => {
    for (const key of keys) await request(h, "final", "get", key, m, { final: true });
  }));
  return check(h.ops, final).map(formatViolation);
}

export function formatViolation(v: Violation): string {
  return `(${v.rule}) ${v.message}`;
}
