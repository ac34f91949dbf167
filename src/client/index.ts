/**
 * The TypeScript client of dkv, for Bun, Deno and Node (`import { DkvClient } from "dkv"`).
 *
 * Partition-aware routing: the client fetches the partition table (`GET /cluster/ring`) from any
 * server it was given, hashes each key to its partition exactly as the members do
 * (src/core/placement.ts), and sends the request straight to a live replica of the key, so the
 * member that coordinates it is one of its replicas and saves one replica call. Writes go to
 * the first live replica in preference order (one coordinator per key while the ring holds);
 * reads are spread over the live replicas. When a member cannot be reached the request goes to
 * the next candidate (reads: any failure; writes: only a refused connection, when nothing can
 * have been applied) and the table is fetched again; it is also fetched again after a 503, when
 * a member answers that the ring moved (it is not a replica of the key in its own ring: the
 * request carried `x-dkv-route: replica`, the answer `x-dkv-ring: moved`), and once it is older
 * than `ringMaxAgeMs`. A 503 is asked again (`retries`, with backoff). Without a table (no server answered it yet) requests go
 * to the servers given, in turn.
 *
 * Errors are typed: DkvHttpError (a member answered FAILED, with its status and message),
 * DkvTransportError (no member could be reached). A missing key is `undefined` from get, and
 * `false` from delete, not an error.
 */
import { partitionOf } from "../core/placement.ts";

export type Consistency = "one" | "quorum" | "all" | "any";

export interface DkvClientOptions {
  /** `host:port` (or `http(s)://host:port`) of one or more members; any member will do. */
  readonly servers: readonly string[];
  /** A client token (--auth-token-file on the members), sent as `Authorization: Bearer`. */
  readonly token?: string;
  /** Default consistency of every request (the members' default, quorum, when not given). */
  readonly consistency?: Consistency;
  /** Per request attempt, ms (default 5000). */
  readonly timeoutMs?: number;
  /**
   * A 503 (not enough replicas answered, or membership settling) is asked again this many times
   * (default 4), after 100 ms, then twice as long each time (1.5 s in all: longer than the second
   * a member refuses quorum while membership settles). A get, a plain put and a delete are
   * idempotent (the same value again), so asking again is safe; it may still reorder against
   * another client's write of the same key, as any retry does.
   */
  readonly retries?: number;
  /** Fetch the partition table again when it is older than this, ms (default 5000). */
  readonly ringMaxAgeMs?: number;
  /**
   * `partition` (default): straight to a replica of the key. `servers`: only to the servers
   * given, in turn (a gateway or a TCP load balancer in front of the cluster, or members whose
   * own addresses this client cannot reach).
   */
  readonly routing?: "partition" | "servers";
  /** `https` for members serving TLS (default: `http`, unless a server is given as a URL). */
  readonly scheme?: "http" | "https";
  /** The fetch to use (default: the runtime's). Tests and TLS options plug in here. */
  readonly fetch?: (url: string, init: RequestInit) => Promise<Response>;
}

export interface Entry {
  readonly key: string;
  /** The value as text: UTF-8 decoded, or base64 when the member said the bytes are not UTF-8. */
  readonly value: string;
  /** The value's bytes. */
  readonly bytes: Uint8Array;
  /** The record's version (also the ETag). */
  readonly version: string;
  /** ISO time the key expires at, when it has a TTL. */
  readonly expiresAt?: string;
  /** `base64` when the bytes are not UTF-8 (`value` is then their base64). */
  readonly encoding?: "base64";
}

export interface RequestOptions {
  readonly consistency?: Consistency;
}

/** Conditions of a write (linearizable per key, compare-and-set among the key's replicas). */
export interface Conditions {
  /** Write only if the key is at this version (an Entry's `version`), or `*`: only if present. */
  readonly ifMatch?: string;
  /** `*`: write only if the key is absent (create). */
  readonly ifNoneMatch?: "*";
}

export interface PutOptions extends RequestOptions, Conditions {
  /** Time to live: `30s`, `5m`, `1h`, ... or `keep`. */
  readonly ttl?: string;
}

export interface Member {
  readonly id: string;
  readonly address: string;
  readonly role: string;
  readonly state: string;
  readonly inRing: boolean;
}

export interface RingInfo {
  readonly epoch: number;
  readonly replicationFactor: number;
  readonly partitions: number;
  readonly members: readonly Member[];
  /** Per partition, its replicas' ids in preference order. */
  readonly replicas: readonly (readonly string[])[];
}

export type BatchOp =
  | { readonly op: "put"; readonly key: string; readonly value: string; readonly ttl?: string }
  | { readonly op: "get"; readonly key: string }
  | { readonly op: "delete"; readonly key: string };

export interface WatchEvent {
  readonly type: "put" | "delete";
  readonly key: string;
  readonly version: string;
  /** The record as the member sent it (value, encoding, expiresAt when present). */
  readonly record: Record<string, unknown>;
}

/** A member answered, with a FAILED body (or something that is not dkv's JSON). */
export class DkvHttpError extends Error {
  override readonly name: string = "DkvHttpError";
  constructor(
    readonly status: number,
    message: string,
    /** The member that answered. */
    readonly server: string,
  ) {
    super(message);
  }
}

/** A condition (ifMatch / ifNoneMatch) did not hold: nothing was written. */
export class DkvConditionFailed extends DkvHttpError {
  override readonly name = "DkvConditionFailed";
  constructor(
    message: string,
    server: string,
    /** The key's current entry, undefined when it is absent. */
    readonly current: Entry | undefined,
  ) {
    super(412, message, server);
  }
}

/** No member could be reached (each attempt's reason is in the message). */
export class DkvTransportError extends Error {
  override readonly name = "DkvTransportError";
}

const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_RING_MAX_AGE_MS = 5000;
const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

interface Route {
  readonly ring: RingInfo;
  readonly at: number;
  readonly byId: Map<string, Member>;
}

/** Why a fetch failed, in our words (refused, timed out, reset, TLS, ...). */
function transportWhy(e: unknown): string {
  const err = e as { name?: string; code?: string; message?: string };
  if (err?.name === "TimeoutError" || err?.name === "AbortError") return "timed out";
  const text = `${err?.code ?? ""} ${err?.message ?? String(e)}`;
  if (/ECONNREFUSED|ConnectionRefused|refused/i.test(text)) return "connection refused";
  if (/ECONNRESET|reset|closed/i.test(text)) return "connection reset";
  if (/certificate|TLS|SSL/i.test(text)) return "TLS failed";
  return (err?.message ?? String(e)).slice(0, 120);
}

function isRefused(e: unknown): boolean {
  return e instanceof AttemptError && e.why === "connection refused";
}

class AttemptError extends Error {
  constructor(readonly server: string, readonly why: string) {
    super(`${server}: ${why}`);
  }
}

function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function entryOf(body: Record<string, unknown>): Entry {
  const raw = String(body["value"] ?? "");
  const bytes = body["encoding"] === "base64" ? base64ToBytes(raw) : encoder.encode(raw);
  return {
    key: String(body["key"]),
    value: raw,
    bytes,
    version: String(body["version"]),
    ...(typeof body["expiresAt"] === "string" ? { expiresAt: body["expiresAt"] } : {}),
    ...(body["encoding"] === "base64" ? { encoding: "base64" as const } : {}),
  };
}

export class DkvClient {
  readonly #servers: readonly string[];
  readonly #opts: DkvClientOptions;
  readonly #fetch: (url: string, init: RequestInit) => Promise<Response>;
  readonly #scheme: string;
  #route: Route | undefined;
  #refreshing: Promise<void> | undefined;
  #next = 0;

  constructor(opts: DkvClientOptions) {
    if (opts.servers.length === 0) throw new Error("DkvClient: at least one server is needed");
    const https = opts.servers.some((s) => s.startsWith("https://"));
    this.#scheme = opts.scheme ?? (https ? "https" : "http");
    this.#servers = opts.servers.map((s) => s.replace(/^https?:\/\//, "").replace(/\/+$/, ""));
    this.#opts = opts;
    this.#fetch = opts.fetch ?? ((url, init) => fetch(url, init));
  }

  /** The key's entry, or undefined when it has none. */
  async get(key: string, opts: RequestOptions = {}): Promise<Entry | undefined> {
    const res = await this.#keyRequest("GET", key, opts, undefined, true);
    if (res.status === 404) return undefined;
    return entryOf(res.body);
  }

  /**
   * Set the key; the stored entry (with its new version) is returned. With `ifMatch` or
   * `ifNoneMatch` the write is a compare-and-set: DkvConditionFailed when the condition does not
   * hold (and it is never asked again after a 503: the first try may have been applied).
   */
  async put(key: string, value: string | Uint8Array, opts: PutOptions = {}): Promise<Entry> {
    const body = typeof value === "string" ? encoder.encode(value) : value;
    const extra: Record<string, string> = opts.ttl === undefined ? {} : { ttl: opts.ttl };
    const res = await this.#keyRequest(
      "PUT",
      key,
      opts,
      body,
      false,
      extra,
      conditionHeaders(opts),
    );
    const out = entryOf(res.body);
    // The answer echoes the value as the member stores it; keep the caller's bytes exactly.
    return { ...out, bytes: body };
  }

  /** Delete the key; false when it held no value. `ifMatch`: only at that version. */
  async delete(key: string, opts: RequestOptions & Conditions = {}): Promise<boolean> {
    const headers = conditionHeaders(opts);
    const res = await this.#keyRequest("DELETE", key, opts, undefined, true, {}, headers);
    return res.status !== 404;
  }

  /** Add `by` (default 1) to an integer counter, atomically (created at 0); the new entry. */
  async incr(key: string, by = 1, opts: RequestOptions = {}): Promise<Entry> {
    const extra = { op: "incr", by: String(by) };
    const res = await this.#keyRequest("POST", key, opts, undefined, false, extra, {}, false);
    return entryOf(res.body);
  }

  /** The members one member knows (`GET /all-nodes`). */
  async members(): Promise<Member[]> {
    const body = await this.#anyJson("GET", "/all-nodes");
    const list = (body["allNodes"] ?? []) as Record<string, unknown>[];
    return list.map((m) => ({
      id: String(m["id"]),
      address: `${m["ip"]}:${m["port"]}`,
      role: String(m["role"]),
      state: String(m["status"]),
      inRing: m["inRing"] === true,
    }));
  }

  /** `GET /cluster/status` of one member: every member's state and figures. */
  status(): Promise<Record<string, unknown>> {
    return this.#anyJson("GET", "/cluster/status");
  }

  /** The partition table, fetched now. */
  async ring(): Promise<RingInfo> {
    await this.refresh();
    return this.#route!.ring;
  }

  /** Fetch the partition table again (callers rarely need to: it is kept fresh). */
  refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        const body = await this.#anyJson("GET", "/cluster/ring");
        const ring = body as unknown as RingInfo;
        if (!Array.isArray(ring.replicas) || !Array.isArray(ring.members)) {
          throw new DkvTransportError("GET /cluster/ring: not a partition table");
        }
        this.#route = {
          ring,
          at: Date.now(),
          byId: new Map(ring.members.map((m) => [m.id, m])),
        };
      } finally {
        this.#refreshing = undefined;
      }
    })();
    return this.#refreshing;
  }

  /**
   * Every live key under `prefix` in key order, fetched a page at a time (`GET /kv?prefix=`).
   * Pages are not a snapshot: a key written meanwhile may or may not appear.
   */
  async *list(
    prefix: string,
    opts: RequestOptions & { pageSize?: number; keysOnly?: boolean } = {},
  ): AsyncGenerator<Entry | { key: string }> {
    let cursor: string | null = null;
    do {
      const q = new URLSearchParams({ prefix });
      if (opts.pageSize !== undefined) q.set("limit", String(opts.pageSize));
      if (opts.keysOnly) q.set("keysOnly", "true");
      if (cursor !== null) q.set("cursor", cursor);
      const c = opts.consistency ?? this.#opts.consistency;
      if (c !== undefined) q.set("consistency", c);
      const body = await this.#anyJson("GET", `/kv?${q}`);
      const items = (body["items"] ?? []) as Record<string, unknown>[];
      for (const item of items) {
        yield opts.keysOnly ? { key: String(item["key"]) } : entryOf(item);
      }
      cursor = typeof body["cursor"] === "string" ? body["cursor"] : null;
    } while (cursor !== null);
  }

  /** Several operations in one round trip (`POST /kv/_batch`); not atomic together. */
  async batch(ops: readonly BatchOp[]): Promise<Record<string, unknown>[]> {
    const body = await this.#anyJson("POST", "/kv/_batch", JSON.stringify({ ops }));
    return (body["results"] ?? []) as Record<string, unknown>[];
  }

  /**
   * Changes of a key, or of every key under a prefix (`{ prefix }`), as they happen (Server-Sent
   * Events). The stream resumes from the last event seen when the connection drops; stop it with
   * `signal` or by leaving the loop.
   */
  async *watch(
    target: string | { prefix: string },
    opts: { signal?: AbortSignal; since?: string } = {},
  ): AsyncGenerator<WatchEvent> {
    let lastId = opts.since;
    const path = typeof target === "string"
      ? `/kv/${encodeURIComponent(target)}?watch=true`
      : `/kv?prefix=${encodeURIComponent(target.prefix)}&watch=true`;
    let failures = 0;
    while (opts.signal?.aborted !== true) {
      const server = this.#servers[this.#next++ % this.#servers.length]!;
      const headers: Record<string, string> = { accept: "text/event-stream", ...this.#auth() };
      if (lastId !== undefined) headers["last-event-id"] = lastId;
      let res: Response;
      try {
        res = await this.#fetch(`${this.#scheme}://${server}${path}`, {
          headers,
          ...(opts.signal === undefined ? {} : { signal: opts.signal }),
        });
      } catch (e) {
        if (opts.signal?.aborted) return;
        if (++failures >= 3 * this.#servers.length) {
          throw new DkvTransportError(`watch: ${server}: ${transportWhy(e)}`);
        }
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * failures)));
        continue;
      }
      if (!res.ok || res.body === null) {
        const text = await res.text().catch(() => "");
        throw new DkvHttpError(res.status, failedMessage(text, res.status), server);
      }
      failures = 0;
      try {
        for await (const ev of sseEvents(res.body)) {
          if (ev.id !== undefined) lastId = ev.id;
          if (ev.event !== "put" && ev.event !== "delete") continue;
          const record = JSON.parse(ev.data) as Record<string, unknown>;
          yield {
            type: ev.event,
            key: String(record["key"]),
            version: String(record["version"] ?? ev.id ?? ""),
            record,
          };
        }
      } catch (e) {
        if (opts.signal?.aborted) return;
        if (e instanceof SyntaxError) throw e;
        // The connection dropped: resume from lastId on another member.
      }
    }
  }

  #auth(): Record<string, string> {
    return this.#opts.token === undefined ? {} : { authorization: `Bearer ${this.#opts.token}` };
  }

  /** Candidate members for a key: its live replicas (reads: shuffled), then the servers given. */
  #candidates(key: string, read: boolean): string[] {
    const route = this.#route;
    const out: string[] = [];
    if (route !== undefined && this.#opts.routing !== "servers") {
      const p = partitionOf(key, route.ring.partitions);
      const ids = route.ring.replicas[p] ?? [];
      const live = ids.map((id) => route.byId.get(id)).filter((m): m is Member =>
        m !== undefined && m.state === "UP"
      ).map((m) => m.address);
      if (read && live.length > 1) {
        const k = Math.floor(Math.random() * live.length);
        out.push(...live.slice(k), ...live.slice(0, k));
      } else out.push(...live);
    }
    const start = this.#next++;
    for (let i = 0; i < this.#servers.length; i++) {
      const s = this.#servers[(start + i) % this.#servers.length]!;
      if (!out.includes(s)) out.push(s);
    }
    return out;
  }

  #ringStale(): boolean {
    const age = this.#opts.ringMaxAgeMs ?? DEFAULT_RING_MAX_AGE_MS;
    return this.#route === undefined || Date.now() - this.#route.at > age;
  }

  async #keyRequest(
    method: "GET" | "PUT" | "POST" | "DELETE",
    key: string,
    opts: RequestOptions,
    body: Uint8Array | undefined,
    read: boolean,
    extra: Record<string, string> = {},
    headers: Record<string, string> = {},
    /** Whether a 503 may be asked again: not for conditions and atomic operations. */
    idempotent = Object.keys(headers).length === 0,
  ): Promise<{ status: number; body: Record<string, unknown>; text: string }> {
    if (key.length === 0) throw new DkvHttpError(400, "the key is empty", "(client)");
    if (this.#opts.routing !== "servers" && this.#ringStale()) {
      // First use: wait for the table. Later: refresh in the background, route by the old one.
      const r = this.refresh().catch(() => {});
      if (this.#route === undefined) await r;
    }
    const q = new URLSearchParams(extra);
    const c = opts.consistency ?? this.#opts.consistency;
    if (c !== undefined) q.set("consistency", c);
    const qs = q.size > 0 ? `?${q}` : "";
    const path = `/kv/${encodeURIComponent(key)}${qs}`;
    const retries = idempotent ? this.#opts.retries ?? 4 : 0;
    for (let attempt = 0;; attempt++) {
      const res = await this.#route1(method, key, path, body, read, headers);
      if (res.status === 200 || (res.status === 404 && method !== "PUT")) return res.ok;
      const message = failedMessage(res.ok.text, res.status);
      if (res.status === 412) {
        const cur = res.ok.body["current"];
        const current = cur !== null && typeof cur === "object"
          ? entryOf(cur as Record<string, unknown>)
          : undefined;
        throw new DkvConditionFailed(message, res.server, current);
      }
      const err = new DkvHttpError(res.status, message, res.server);
      if (res.status !== 503 || attempt >= retries) throw err;
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
  }

  /** One routed try: the first candidate that answers at all (any status). */
  async #route1(
    method: string,
    key: string,
    path: string,
    body: Uint8Array | undefined,
    read: boolean,
    headers: Record<string, string>,
  ): Promise<
    {
      status: number;
      server: string;
      ok: { status: number; body: Record<string, unknown>; text: string };
    }
  > {
    const errors: string[] = [];
    for (const server of this.#candidates(key, read)) {
      try {
        const routed = this.#route !== undefined && this.#opts.routing !== "servers";
        const res = await this.#attempt(
          server,
          method,
          path,
          body,
          routed ? { ...headers, "x-dkv-route": "replica" } : headers,
        );
        // 503, or a member that is not a replica of the key in its ring: fetch the table again.
        if (res.status === 503 || res.moved) void this.refresh().catch(() => {});
        return { status: res.status, server, ok: res };
      } catch (e) {
        if (!(e instanceof AttemptError)) throw e;
        errors.push(e.message);
        void this.refresh().catch(() => {});
        // A write that may have arrived is not sent again (it could apply twice, out of order).
        if (!read && !isRefused(e)) break;
      }
    }
    throw new DkvTransportError(`${method} ${key}: no member answered (${errors.join("; ")})`);
  }

  /** A non-key request to any member, in turn until one answers; its JSON on 2xx. */
  async #anyJson(method: string, path: string, body?: string): Promise<Record<string, unknown>> {
    const errors: string[] = [];
    const start = this.#next++;
    const servers = [...this.#servers];
    // Members from the table too: the servers given may all have gone.
    for (const m of this.#route?.ring.members ?? []) {
      if (m.state === "UP" && !servers.includes(m.address)) servers.push(m.address);
    }
    for (let i = 0; i < servers.length; i++) {
      const server = servers[(start + i) % servers.length]!;
      try {
        const res = await this.#attempt(server, method, path, body);
        if (res.status >= 200 && res.status < 300) return res.body;
        throw new DkvHttpError(res.status, failedMessage(res.text, res.status), server);
      } catch (e) {
        if (!(e instanceof AttemptError)) throw e;
        errors.push(e.message);
      }
    }
    throw new DkvTransportError(`${method} ${path}: no member answered (${errors.join("; ")})`);
  }

  async #attempt(
    server: string,
    method: string,
    path: string,
    body?: Uint8Array | string,
    extraHeaders: Record<string, string> = {},
  ): Promise<{ status: number; body: Record<string, unknown>; text: string; moved: boolean }> {
    const headers: Record<string, string> = { ...this.#auth(), ...extraHeaders };
    if (body !== undefined) {
      headers["content-type"] = typeof body === "string"
        ? "application/json"
        : "application/octet-stream";
    }
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(`${this.#scheme}://${server}${path}`, {
        method,
        headers,
        redirect: "manual",
        signal: AbortSignal.timeout(this.#opts.timeoutMs ?? DEFAULT_TIMEOUT_MS),
        ...(body === undefined ? {} : { body: body as BodyInit }),
      });
      text = await res.text();
    } catch (e) {
      throw new AttemptError(server, transportWhy(e));
    }
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON: the status says what happened (failedMessage shows the text)
    }
    const moved = res.headers.get("x-dkv-ring") === "moved";
    return { status: res.status, body: json, text, moved };
  }
}

/** If-Match / If-None-Match of a write's conditions (a version goes in double quotes). */
function conditionHeaders(c: Conditions): Record<string, string> {
  const h: Record<string, string> = {};
  if (c.ifMatch !== undefined) h["if-match"] = c.ifMatch === "*" ? "*" : `"${c.ifMatch}"`;
  if (c.ifNoneMatch !== undefined) h["if-none-match"] = "*";
  return h;
}

/** The message of a FAILED answer (dkv's shape), or the start of whatever came back. */
function failedMessage(text: string, status: number): string {
  try {
    const j = JSON.parse(text) as { error?: { errorMessage?: string }; message?: string };
    const m = j.error?.errorMessage ?? j.message;
    if (typeof m === "string") return m;
  } catch {
    // fall through
  }
  return `HTTP ${status}${text.length > 0 ? `: ${text.slice(0, 200)}` : ""}`;
}

/** Server-Sent Events of a response body: each event's `event`, `id` and joined `data`. */
async function* sseEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<{ event: string; id?: string; data: string }> {
  const text = new TextDecoder();
  let buf = "";
  let event = "message";
  let id: string | undefined;
  let data: string[] = [];
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += text.decode(chunk, { stream: true });
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl < 0) break;
      const line = buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
      if (line === "") {
        if (data.length > 0) {
          yield { event, ...(id === undefined ? {} : { id }), data: data.join("\n") };
        }
        event = "message";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
  }
}

/** UTF-8 text of bytes, or undefined when they are not valid UTF-8. */
export function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}
