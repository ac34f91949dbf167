/**
 * The checks every request passes before anything serves it (createApp puts this in front of
 * both the key fast path and the router), in this order:
 *
 * 1. The URL is parsed here, inside a try: a malformed one is a 400 FAILED JSON, never a crash.
 * 2. A route name (the path's first segment) must be literal: `/%69nternal/...` or `/%6Bv/...`
 *    is a 400, so the router (which decodes) and anything filtering on the raw path (a proxy)
 *    never disagree on what a request is. Keys after `/kv/` may be encoded as before.
 * 3. Request headers over HEADER_BYTES_MAX are a 431 FAILED JSON. The runtime refuses larger
 *    ones itself, before any handler, with a bare 431 (no body): Bun's limit is process-wide,
 *    `--max-http-header-size`, with no Bun.serve option; the build raises it to
 *    RUNTIME_HEADER_BYTES_MAX so that everything up to there gets our answer (issue 16, point 3).
 * 4. A request with an `Origin` header that is not this member's own (`http://` + its
 *    advertised address, or the host it was reached at) nor one of --allow-origin is a 403: a
 *    web page cannot drive a member through the visitor's browser.
 * 5. With client tokens (--auth-token-file), the route's role (requiredAccess, decided on the
 *    decoded path the router sees) against the bearer token's: none or unknown 401, too low 403.
 *    Internal routes are left to the cluster secret; /health and /ready are open.
 * 6. The body's read deadline (--body-read-timeout) is registered for readBytes; a 408 closes
 *    the connection (the rest of the body may still be coming).
 * 7. HEAD is answered here: for /kv/all-data and /cluster/status with headers only (the dump
 *    and the fan-out are never made), for anything else as the GET, without its body.
 */
import { getPath } from "hono/utils/url";
import type { Scheduler } from "../core/scheduler.ts";
import type { ClientTokens } from "../security/client-tokens.ts";
import { requiredAccess, ROLE_RANK } from "../security/client-tokens.ts";
import { bodyDeadlines } from "./body.ts";
import { failedBody } from "./errors.ts";
import { rawPath } from "./validate.ts";

export interface FrontDoorOptions {
  /** host:port peers dial: `http://` + this is the member's own origin. */
  readonly advertise: string;
  /** More origins to serve (normalized, as URL.origin). */
  readonly allowOrigins: readonly string[];
  readonly tokens?: ClientTokens;
  readonly sched: Scheduler;
  readonly bodyReadTimeoutMs: number;
}

/** Counters for /cluster/status. */
export interface FrontDoorCounts {
  /** Requests refused for a missing or unknown token (401) or too low a role (403). */
  tokenRefused: number;
  /** Requests refused for a foreign Origin. */
  originRefused: number;
}

type Serve = (req: Request) => Response | Promise<Response>;
/** What the front door serves: the request, and its raw path (rawPath), already cut. */
type Inner = (req: Request, raw: string) => Response | Promise<Response>;

const JSON_TYPE = "application/json";

/**
 * Request headers (names and values) above this many bytes are a 431 FAILED JSON: the runtime's
 * old default, many times what any client sends. The URL is not counted: a long key is a 400
 * naming --max-key-bytes.
 */
export const HEADER_BYTES_MAX = 16 * 1024;

/**
 * The runtime's own limit on the request line and headers together, set at build time
 * (package.json: `--compile-exec-argv=--max-http-header-size=262144`): room for a URL with the
 * largest key any member may store (65536 bytes, up to three times that percent-encoded) and
 * HEADER_BYTES_MAX of headers. Past it Bun answers a bare 431 before any handler runs.
 */
export const RUNTIME_HEADER_BYTES_MAX = 256 * 1024;

/** The bytes of the request's headers, names and values, about as sent. */
function headerBytes(headers: Headers): number {
  // forEach, not the iterator: no [name, value] array per header on every request.
  let n = 0;
  headers.forEach((value, name) => {
    n += name.length + value.length + 4;
  });
  return n;
}

function failed(status: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(failedBody(message, status)), {
    status,
    headers: { "content-type": JSON_TYPE, ...headers },
  });
}

/** The origin of `http://host`, or undefined when `host` is no valid authority. */
function httpOrigin(host: string): string | undefined {
  try {
    return new URL(`http://${host}`).origin;
  } catch {
    return undefined;
  }
}

/** Wrap `serve` (the fast path, then the router) in the checks above. */
export function frontDoor(
  opts: FrontDoorOptions,
  serve: Inner,
): { fetch: Serve; counts: FrontDoorCounts } {
  const allowed = new Set(opts.allowOrigins);
  const own = httpOrigin(opts.advertise);
  if (own !== undefined) allowed.add(own);
  const counts: FrontDoorCounts = { tokenRefused: 0, originRefused: 0 };
  const deadline = { sched: opts.sched, ms: opts.bodyReadTimeoutMs };
  const tokens = opts.tokens;

  const originAllowed = (origin: string, req: Request): boolean => {
    if (allowed.has(origin)) return true;
    const host = req.headers.get("host");
    return host !== null && httpOrigin(host) === origin;
  };

  const fetch: Serve = (req) => {
    const method = req.method;
    let raw: string;
    try {
      raw = rawPath(req.url); // parses the URL when the path has dot segments
    } catch {
      return failed(400, "malformed request URL");
    }
    const end = raw.indexOf("/", 1);
    if (raw.slice(0, end < 0 ? raw.length : end).includes("%")) {
      return failed(400, "a route name must not be percent-encoded");
    }
    const headerSize = headerBytes(req.headers);
    if (headerSize > HEADER_BYTES_MAX) {
      return failed(
        431,
        `request headers are ${headerSize} bytes; the limit is ${HEADER_BYTES_MAX}`,
        { connection: "close" },
      );
    }
    const origin = req.headers.get("origin");
    if (origin !== null && !originAllowed(origin, req)) {
      counts.originRefused++;
      return failed(
        403,
        `origin '${origin.slice(0, 100)}' is not allowed: this member serves its own origin ` +
          `and --allow-origin`,
      );
    }
    if (tokens !== undefined) {
      const path = getPath(req); // decoded, as the router sees it
      const need = requiredAccess(method, path);
      if (need !== "open" && need !== "internal") {
        const got = tokens.check(req.headers.get("authorization"));
        if (!got.ok) {
          counts.tokenRefused++;
          return got.why === "missing"
            ? failed(401, "authentication required: send Authorization: Bearer TOKEN", {
              "www-authenticate": 'Bearer realm="dkv"',
            })
            : failed(401, "invalid token", {
              "www-authenticate": 'Bearer realm="dkv", error="invalid_token"',
            });
        }
        if (ROLE_RANK[got.role] < ROLE_RANK[need]) {
          counts.tokenRefused++;
          return failed(
            403,
            `a ${got.role} token may not ${method} ${path.slice(0, 100)}: it needs ${need}`,
          );
        }
      }
    }
    if (method === "HEAD") return head(req, raw);
    if (req.body === null) return serve(req, raw);
    bodyDeadlines.set(req, deadline);
    return closeAfterTimeout(serve(req, raw));
  };

  /** After a 408 the rest of the body may still be on its way: close the connection. */
  const close408 = (res: Response): Response => {
    if (res.status === 408) res.headers.set("connection", "close");
    return res;
  };
  const closeAfterTimeout = (answer: Response | Promise<Response>): Response | Promise<Response> =>
    answer instanceof Promise ? answer.then(close408) : close408(answer);

  /** HEAD: headers only; the expensive answers are never built. */
  const head = async (req: Request, raw: string): Promise<Response> => {
    const path = getPath(req);
    if (path === "/kv/all-data" || path === "/cluster/status") {
      return new Response(null, { status: 200, headers: { "content-type": JSON_TYPE } });
    }
    const res = await serve(new Request(req.url, { method: "GET", headers: req.headers }), raw);
    await res.body?.cancel();
    return new Response(null, { status: res.status, headers: res.headers });
  };

  return { fetch, counts };
}
