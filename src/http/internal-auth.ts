/**
 * Middleware for everything under /internal/v1 when a cluster secret is set: the request's
 * signature is checked before anything of its body is parsed (docs/security.md), and the answer
 * is signed. A refused request is a 401 in the FAILED shape, counted (`authRefused` in
 * /cluster/status) and logged at most once a second; nothing else happens.
 */
import type { MiddlewareHandler } from "hono";
import type { ClusterAuth } from "../security/cluster-auth.ts";
import { AUTH_HEADER } from "../security/cluster-auth.ts";
import { authenticated, readBytes } from "./body.ts";
import { DkvError } from "./errors.ts";

/** Path and query as the client sent them (what the signature covers). */
export function requestTarget(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const hash = url.indexOf("#", start);
  return hash < 0 ? url.slice(start) : url.slice(start, hash);
}

export function clusterAuth(auth: ClusterAuth, bodyBytesMax: number): MiddlewareHandler {
  return async function checkClusterAuth(c, next) {
    const req = c.req.raw;
    const method = req.method;
    const target = requestTarget(req.url);
    const refuse = (why: string, sender?: string): never => {
      const who = sender === undefined ? "" : ` from ${JSON.stringify(sender.slice(0, 64))}`;
      auth.noteRefused(`${method} ${target.slice(0, 100)}${who}: ${why}`);
      throw new DkvError("unauthorized", `not authenticated: ${why}`);
    };
    const claim = auth.readClaim(req.headers.get(AUTH_HEADER));
    if (typeof claim === "string") return refuse(claim);
    // Read within the internal limit (413 beyond it) only once the header itself passed.
    const body = await readBytes(req, bodyBytesMax, "body");
    const why = auth.verifyRequest(claim, method, target, body);
    if (why !== undefined) return refuse(why, claim.sender);
    authenticated.set(req, { sender: claim.sender, body });
    // Answers (errors from onError included: it gets this same context) are JSON made by
    // c.json: sign the text as it is made, and make the answer once with its headers, instead
    // of reading the finished answer back. (Internal handlers set no headers of their own.)
    c.json = ((object: unknown, arg?: number | ResponseInit, extra?: HeadersInit) => {
      const text = JSON.stringify(object);
      const status = typeof arg === "number" ? arg : arg?.status ?? 200;
      const signature = auth.signAnswer(status, method, target, claim.nonce, text);
      const given = extra ?? (typeof arg === "object" ? arg.headers : undefined);
      if (given === undefined) {
        // The common case: a plain object is the cheapest headers to hand to Response.
        return new Response(text, {
          status,
          headers: { "content-type": "application/json", [AUTH_HEADER]: signature },
        });
      }
      const headers = new Headers(given);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      headers.set(AUTH_HEADER, signature);
      return new Response(text, { status, headers });
    }) as typeof c.json;
    await next();
    const res = c.res;
    if (res.headers.has(AUTH_HEADER)) return;
    // Anything else: read it back and sign the bytes.
    const bytes = new Uint8Array(await res.arrayBuffer());
    const headers = new Headers(res.headers);
    headers.set(AUTH_HEADER, auth.signAnswer(res.status, method, target, claim.nonce, bytes));
    c.res = new Response(bytes, { status: res.status, headers });
  };
}
