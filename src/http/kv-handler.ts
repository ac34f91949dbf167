/**
 * `GET`, `POST`, `PUT` and `DELETE /kv/{key}`, answered before the router (createApp puts this
 * in front of Hono): profiles showed routing and context building at about a fifth of a local
 * GET's JavaScript time. Errors still come out in the FAILED shape, with the same statuses as
 * the routed API. Everything else, `GET /kv/all-data` included, goes to the router.
 */
import { formatVersion } from "../core/hlc.ts";
import type { KvRecord } from "../core/record.ts";
import type { MemberContext } from "./context.ts";
import { asDkvError, DkvError, failedBody } from "./errors.ts";
import {
  KEY_BYTES_HARD_MAX,
  kvQuery,
  parseConsistency,
  parseKey,
  rawPath,
  READ_LIMIT,
  readValue,
} from "./validate.ts";

const JSON_HEADERS = { "content-type": "application/json" };

function jsonAnswer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

export function recordJson(r: KvRecord) {
  return { status: "SUCCESS", key: r.key, value: r.value, version: formatVersion(r.version) };
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
    const json = (status: number, body: unknown): Response => {
      observe?.(route, method, status, level, performance.now() - startMs);
      return jsonAnswer(status, body);
    };
    if (method !== "GET" && method !== "POST" && method !== "PUT" && method !== "DELETE") {
      // PATCH, OPTIONS, ...: the route exists, the method does not (405 with Allow).
      const allow = path === "/kv/all-data" ? ALL_DATA_ALLOW : KEY_ALLOW;
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
    return (async () => {
      try {
        // `/kv` and `/kv/` name the empty key: a 400, as any bad key.
        // Reads and deletes of keys another member stored are not held to this member's
        // --max-key-bytes, a limit for writes (issue 16, point 17).
        const encoded = path.slice("/kv/".length);
        const key = method === "GET" || method === "DELETE"
          ? parseKey(encoded, KEY_BYTES_HARD_MAX, READ_LIMIT)
          : parseKey(encoded, keyBytesMax);
        const consistency = parseConsistency(kvQuery(url));
        level = consistency;
        if (method === "GET") {
          const record = await ctx.coordinator.read(key, consistency);
          if (record === undefined) throw new DkvError("not_found", `key '${key}' not found`);
          return json(200, recordJson(record));
        }
        if (method === "DELETE") {
          const out = await ctx.coordinator.write(key, "", true, consistency);
          if (!out.hadLive) throw new DkvError("not_found", `key '${key}' not found`);
          return json(200, { status: "SUCCESS", key });
        }
        const value = await readValue(req, ctx.config.valueBytesMax);
        const out = await ctx.coordinator.write(key, value, false, consistency);
        return json(200, recordJson(out.record));
      } catch (caught) {
        const e = asDkvError(caught);
        if (e instanceof DkvError) return json(e.status, failedBody(e.message, e.status));
        ctx.log.error(`unhandled error on ${method} ${path}: ${(e as Error).stack ?? e}`);
        return json(500, failedBody("internal error", 500));
      }
    })();
  };
}
