/**
 * The hottest requests, `GET`, `POST` and `PUT /kv/{key}` without a query string, answered
 * without going through the router: same parsing, same coordinator calls, same answers (the
 * FAILED shape on errors) as the routed handlers in public-routes.ts, which serve everything else. Profiles showed routing
 * and context building at about a fifth of a local GET's JavaScript time.
 */
import type { MemberContext } from "./context.ts";
import { DkvError, failedBody } from "./errors.ts";
import { rawPath, recordJson } from "./public-routes.ts";
import { parseKey, readValue } from "./validate.ts";

const JSON_HEADERS = { "content-type": "application/json" };

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_HEADERS });
}

/**
 * Returns the answer for a plain key GET, POST or PUT (no query string), or undefined to let
 * the router handle the request.
 */
export function kvFastPath(ctx: MemberContext): (req: Request) => Promise<Response> | undefined {
  const keyBytesMax = ctx.config.keyBytesMax;
  return (req) => {
    const method = req.method;
    const write = method === "POST" || method === "PUT";
    if (method !== "GET" && !write) return undefined;
    const url = req.url;
    if (url.includes("?")) return undefined;
    const path = rawPath(url);
    if (!path.startsWith("/kv/") || (path === "/kv/all-data" && !write)) return undefined;
    return (async () => {
      try {
        const key = parseKey(path.slice("/kv/".length), keyBytesMax);
        if (write) {
          const value = await readValue(req, ctx.config.valueBytesMax);
          const out = await ctx.coordinator.write(key, value, false, "quorum");
          return json(200, recordJson(out.record));
        }
        const record = await ctx.coordinator.read(key, "quorum");
        if (record === undefined) throw new DkvError("not_found", `key '${key}' not found`);
        return json(200, recordJson(record));
      } catch (e) {
        if (e instanceof DkvError) return json(e.status, failedBody(e.message, e.status));
        ctx.log.error(`unhandled error on ${method} ${path}: ${(e as Error).stack ?? e}`);
        return json(500, failedBody("internal error", 500));
      }
    })();
  };
}
