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
import { parseConsistency, parseKey, rawPath, readValue } from "./validate.ts";

const JSON_HEADERS = { "content-type": "application/json" };

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

export function recordJson(r: KvRecord) {
  return { status: "SUCCESS", key: r.key, value: r.value, version: formatVersion(r.version) };
}

/**
 * `?consistency=` of a URL, from its query alone: parsing the whole URL would throw on a
 * malformed Host header, which the runtime copies into it (a 500; found by the fuzzer).
 */
export function consistencyParam(url: string): string | undefined {
  const q = url.indexOf("?");
  if (q < 0) return undefined;
  const h = url.indexOf("#", q);
  return new URLSearchParams(url.slice(q + 1, h < 0 ? undefined : h)).get("consistency") ??
    undefined;
}

/** The answer for a key request, or undefined to let the router handle the request. */
export function kvHandler(ctx: MemberContext): (req: Request) => Promise<Response> | undefined {
  const keyBytesMax = ctx.config.keyBytesMax;
  return (req) => {
    const method = req.method;
    if (method !== "GET" && method !== "POST" && method !== "PUT" && method !== "DELETE") {
      return undefined;
    }
    const url = req.url;
    const path = rawPath(url);
    if (!path.startsWith("/kv/") || (method === "GET" && path === "/kv/all-data")) return undefined;
    return (async () => {
      try {
        const key = parseKey(path.slice("/kv/".length), keyBytesMax);
        const consistency = parseConsistency(consistencyParam(url));
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
