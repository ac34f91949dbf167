/**
 * `GET`, `POST`, `PUT` and `DELETE /kv/{key}`, answered before the router (createApp puts this
 * in front of Hono): profiles showed routing and context building at about a fifth of a local
 * GET's JavaScript time. Errors still come out in the FAILED shape, with the same statuses as
 * the routed API. Everything else, `GET /kv/all-data` included, goes to the router.
 */
import { formatVersion, parseVersion } from "../core/hlc.ts";
import type { Condition, Mutation } from "../core/paxos.ts";
import { type KvRecord, valueBytes } from "../core/record.ts";
import type { MemberContext } from "./context.ts";
import { asDkvError, DkvError, failedBody } from "./errors.ts";
import {
  KEY_BYTES_HARD_MAX,
  kvParams,
  kvQuery,
  parseConsistency,
  parseFlag,
  parseKey,
  parseTtl,
  rawPath,
  READ_LIMIT,
  readValue,
  type Ttl,
} from "./validate.ts";
import type { Consistency } from "../core/placement.ts";
import { parseSince, watchResponse } from "./watch.ts";
import { Buffer } from "node:buffer";

const JSON_HEADERS = { "content-type": "application/json" };

function jsonAnswer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

/** A record's answer, its version also in `ETag` (conditional writes send it back in If-Match). */
function recordAnswer(r: KvRecord): Response {
  const version = formatVersion(r.version);
  return new Response(JSON.stringify(recordJson(r, version)), {
    status: 200,
    headers: { "content-type": "application/json", etag: `"${version}"` },
  });
}

/**
 * A record as the API answers it: `value` as text when its bytes are valid UTF-8, else base64
 * with `"encoding":"base64"`; `expiresAt` (ISO time) when it has a ttl.
 */
export function recordJson(r: KvRecord, version = formatVersion(r.version)) {
  const v = r.value;
  const out: {
    status: string;
    key: string;
    value: string;
    encoding?: "base64";
    version: string;
    expiresAt?: string;
  } = typeof v === "string" ? { status: "SUCCESS", key: r.key, value: v, version } : {
    status: "SUCCESS",
    key: r.key,
    value: Buffer.from(v.buffer, v.byteOffset, v.length).toString("base64"),
    encoding: "base64",
    version,
  };
  if (r.expiresAt !== undefined) out.expiresAt = new Date(r.expiresAt).toISOString();
  return out;
}

/** The value's bytes themselves (`?raw`, or `Accept: application/octet-stream`), version in ETag. */
function rawAnswer(r: KvRecord): Response {
  const headers: Record<string, string> = {
    "content-type": "application/octet-stream",
    etag: `"${formatVersion(r.version)}"`,
  };
  if (r.expiresAt !== undefined) headers["x-dkv-expires-at"] = new Date(r.expiresAt).toISOString();
  return new Response(valueBytes(r.value) as Uint8Array<ArrayBuffer>, { status: 200, headers });
}

/** Does the request ask for the raw bytes (`?raw`, or only octet-stream in Accept)? */
function wantsRaw(req: Request, params: URLSearchParams | undefined): boolean {
  if (params?.has("raw")) return parseFlag(params, "raw");
  const accept = req.headers.get("accept");
  return accept !== null && accept.includes("application/octet-stream") &&
    !accept.includes("json");
}

/** `?consistency=` of a URL (kvQuery: any other parameter is a 400). */
export const consistencyParam = kvQuery;

/** The methods `/kv/{key}` and `/kv/all-data` answer (HEAD: the front door makes it a GET). */
const KEY_ALLOW = "GET, HEAD, PUT, POST, DELETE";
const ALL_DATA_ALLOW = "GET, HEAD";

/**
 * Told of every answer the key handler gives, with its time in ms (GET /metrics). Called inside
 * the handler, so counting costs no extra promise per request.
 */
export type KvObserver = (
  route: string,
  method: string,
  status: number,
  /** The request's consistency level once parsed; undefined when the request was refused first. */
  consistency: string | undefined,
  ms: number,
) => void;

/** The answer for a key request, or undefined to let the router handle the request. */
export function kvHandler(
  ctx: MemberContext,
  observe?: KvObserver,
): (req: Request, raw?: string) => Promise<Response> | undefined {
  const keyBytesMax = ctx.config.keyBytesMax;
  /** `raw`: the request's raw path when the caller (the front door) has cut it already. */
  return (req, raw) => {
    const method = req.method;
    const url = req.url;
    const path = raw ?? rawPath(url);
    if (path !== "/kv" && !path.startsWith("/kv/")) return undefined;
    if (method === "GET" && path === "/kv/all-data") return undefined;
    const startMs = observe === undefined ? 0 : performance.now();
    const route = path === "/kv/all-data" || path === "/kv" ? path : "/kv/{key}";
    let level: string | undefined;
    /** Every answer of this handler passes here once: the metrics observe it. */
    const done = (res: Response): Response => {
      observe?.(route, method, res.status, level, performance.now() - startMs);
      return res;
    };
    const json = (status: number, body: unknown): Response => done(jsonAnswer(status, body));
    // The batch and the listing are routed (public-routes.ts).
    if (path === "/kv/_batch" && method === "POST") return undefined;
    if (path === "/kv" && method === "GET") return undefined;
    if (method !== "GET" && method !== "POST" && method !== "PUT" && method !== "DELETE") {
      // PATCH, OPTIONS, ...: the route exists, the method does not (405 with Allow).
      const allow = path === "/kv/all-data"
        ? ALL_DATA_ALLOW
        : path === "/kv/_batch"
        ? "POST"
        : KEY_ALLOW;
      observe?.(route, method, 405, undefined, 0);
      return Promise.resolve(
        new Response(
          JSON.stringify(
            failedBody(`${method.slice(0, 20)} is not allowed here; use ${allow}`, 405),
          ),
          { status: 405, headers: { ...JSON_HEADERS, allow } },
        ),
      );
    }
    // A partition-aware client (src/client) says it routed this request to a replica of the key;
    // when this member is none in its own ring, the answer says the ring moved (ROUTE_HEADER).
    const routed = req.headers.get(ROUTE_HEADER) !== null;
    let moved = false;
    const answer = (async () => {
      try {
        // `/kv` and `/kv/` name the empty key: a 400, as any bad key.
        // Reads and deletes of keys another member stored are not held to this member's
        // --max-key-bytes, a limit for writes (issue 16, point 17).
        const encoded = path.slice("/kv/".length);
        const key = method === "GET" || method === "DELETE"
          ? parseKey(encoded, KEY_BYTES_HARD_MAX, READ_LIMIT)
          : parseKey(encoded, keyBytesMax);
        if (routed) moved = !isReplica(ctx, key);
        const params = kvParams(url);
        const consistency = parseConsistency(params?.get("consistency") ?? undefined);
        level = consistency;
        if (method === "GET") {
          if (params?.has("ttl")) throw new DkvError("bad_request", "ttl is for writes");
          if (parseFlag(params, "watch")) {
            return done(
              watchResponse(ctx, { prefix: key, key }, parseSince(req, params!.get("since"))),
            );
          }
          if (params?.has("since")) throw new DkvError("bad_request", "since is for watches");
          const raw = wantsRaw(req, params);
          const record = await ctx.coordinator.read(key, consistency);
          if (record === undefined) throw new DkvError("not_found", `key '${key}' not found`);
          return done(raw ? rawAnswer(record) : recordAnswer(record));
        }
        if (params !== undefined) {
          onlyFor(params, method, [
            "consistency",
            ...(method === "DELETE" ? [] : ["ttl"]),
            ...(method === "POST" ? ["op", "by"] : []),
          ]);
        }
        const condition = parseCondition(req);
        const op = params?.get("op") ?? undefined;
        if (params?.has("by") && op !== "incr") {
          throw new DkvError("bad_request", "by is for op=incr");
        }
        if (condition !== undefined || op !== undefined) {
          return done(
            await conditional(ctx, req, key, method, condition, op, params, consistency),
          );
        }
        if (method === "DELETE") {
          const out = await ctx.coordinator.write(key, "", true, consistency);
          if (!out.hadLive) throw new DkvError("not_found", `key '${key}' not found`);
          return json(200, { status: "SUCCESS", key });
        }
        const ttl = parseTtl(params?.get("ttl"), ctx.config.ttlMsMax);
        const value = await readValue(req, ctx.config.valueBytesMax);
        const expiresAt = ttl === undefined
          ? undefined
          : await expiryOf(ctx, key, ttl, consistency);
        const out = await ctx.coordinator.write(key, value, false, consistency, expiresAt);
        return json(200, recordJson(out.record));
      } catch (caught) {
        const e = asDkvError(caught);
        if (e instanceof DkvError) return json(e.status, failedBody(e.message, e.status));
        ctx.log.error(`unhandled error on ${method} ${path}: ${(e as Error).stack ?? e}`);
        return json(500, failedBody("internal error", 500));
      }
    })();
    if (!routed) return answer;
    return answer.then((res) => {
      if (moved) res.headers.set(RING_HEADER, "moved");
      return res;
    });
  };
}

/**
 * `x-dkv-route: replica` on a key request: the client sent it to a member it believes is a
 * replica of the key. `x-dkv-ring: moved` on the answer: this member is not one in its ring, so
 * the client's partition table is out of date (docs/protocol.md, "Public additions").
 */
export const ROUTE_HEADER = "x-dkv-route";
export const RING_HEADER = "x-dkv-ring";

function isReplica(ctx: MemberContext, key: string): boolean {
  const ring = ctx.ring();
  if (ring === undefined) return true; // no view: nothing to tell
  return ring.replicas(key).some((m) => m.id === ctx.selfId);
}

/**
 * `If-None-Match: *` (absent), `If-Match: *` (present) or `If-Match: "<version>"`; undefined
 * without either header. Anything else is a 400: one condition per request.
 */
function parseCondition(req: Request): Condition | undefined {
  const match = req.headers.get("if-match");
  const noneMatch = req.headers.get("if-none-match");
  if (match === null && noneMatch === null) return undefined;
  if (match !== null && noneMatch !== null) {
    throw new DkvError("bad_request", "give If-Match or If-None-Match, not both");
  }
  if (noneMatch !== null) {
    if (noneMatch.trim() !== "*") {
      throw new DkvError("bad_request", `If-None-Match takes only * (create if absent)`);
    }
    return { kind: "absent" };
  }
  const m = match!.trim();
  if (m === "*") return { kind: "present" };
  const version = m.length >= 2 && m.startsWith('"') && m.endsWith('"')
    ? parseVersion(m.slice(1, -1))
    : undefined;
  if (version === undefined) {
    throw new DkvError(
      "bad_request",
      `If-Match takes * or one version in double quotes, as ETag answers it ` +
        `(got '${m.slice(0, 80)}')`,
    );
  }
  return { kind: "version", version };
}

/** `?by=` of an incr: an integer, default 1. */
function parseBy(text: string | null | undefined): number {
  if (text === null || text === undefined) return 1;
  const n = /^-?[0-9]{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new DkvError("bad_request", `by must be an integer (got '${text.slice(0, 40)}')`);
  }
  return n;
}

/**
 * A conditional write (If-Match / If-None-Match) or an atomic operation (`?op=incr|append`):
 * linearizable per key through Paxos (Coordinator.cas). A failed condition is a 412 carrying the
 * current record (`current`, null when the key is absent).
 */
async function conditional(
  ctx: MemberContext,
  req: Request,
  key: string,
  method: string,
  condition: Condition | undefined,
  op: string | undefined,
  params: URLSearchParams | undefined,
  consistency: Consistency,
): Promise<Response> {
  if (op !== undefined && method !== "POST") {
    throw new DkvError("bad_request", `op is for POST /kv/{key}`);
  }
  let mutation: Mutation;
  if (method === "DELETE") mutation = { kind: "delete" };
  else if (op === "incr") {
    if (params?.has("ttl")) throw new DkvError("bad_request", "op=incr keeps the ttl; no ttl");
    mutation = { kind: "incr", by: parseBy(params?.get("by")) };
  } else if (op === "append") {
    if (params?.has("ttl")) throw new DkvError("bad_request", "op=append keeps the ttl; no ttl");
    const value = await readValue(req, ctx.config.valueBytesMax);
    mutation = { kind: "append", value, bytesMax: ctx.config.valueBytesMax };
  } else if (op !== undefined) {
    throw new DkvError("bad_request", `op must be incr or append (got '${op.slice(0, 40)}')`);
  } else {
    const ttl = parseTtl(params?.get("ttl"), ctx.config.ttlMsMax);
    if (ttl === "keep") {
      throw new DkvError("bad_request", "ttl=keep is not taken with If-Match / If-None-Match");
    }
    const value = await readValue(req, ctx.config.valueBytesMax);
    mutation = ttl === undefined
      ? { kind: "put", value }
      : { kind: "put", value, expiresAt: ctx.sched.now() + ttl.ms };
  }
  const out = await ctx.coordinator.cas(
    key,
    condition ?? { kind: "always" },
    mutation,
    consistency,
  );
  if (!out.ok) {
    const why = out.current === undefined
      ? `key '${key}' is absent`
      : `key '${key}' is at version ${formatVersion(out.current.version)}`;
    return jsonAnswer(412, {
      ...failedBody(`condition failed: ${why}`, 412),
      current: out.current === undefined ? null : recordJson(out.current),
    });
  }
  if (method === "DELETE") return jsonAnswer(200, { status: "SUCCESS", key });
  return recordAnswer(out.record);
}

/** Parameters a write or delete does not take are a 400 (`?raw` on a PUT is a mistake). */
function onlyFor(params: URLSearchParams, method: string, accepted: readonly string[]): void {
  for (const name of params.keys()) {
    if (!accepted.includes(name)) {
      throw new DkvError("bad_request", `${name} is not a parameter of ${method} /kv/{key}`);
    }
  }
}

/**
 * The expiry a write sets: none without `ttl`, now + ttl, or with `ttl=keep` the current
 * record's (read at the write's consistency; `any` reads as `one`).
 */
export async function expiryOf(
  ctx: MemberContext,
  key: string,
  ttl: Ttl,
  consistency: Consistency,
): Promise<number | undefined> {
  if (ttl === undefined) return undefined;
  // Whole milliseconds, as the wire and the log take them.
  if (ttl !== "keep") return Math.floor(ctx.sched.now()) + ttl.ms;
  const current = await ctx.coordinator.read(key, consistency === "any" ? "one" : consistency);
  return current?.expiresAt;
}
