/**
 * One error class for everything a client can get wrong or the cluster can't do, mapped once
 * (in `onError`) to the FAILED JSON shape the original project used.
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export type DkvErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "precondition_failed"
  | "too_large"
  | "timeout"
  | "store_full"
  | "disk_error"
  | "unavailable"
  | "internal";

const STATUS: Record<DkvErrorCode, ContentfulStatusCode> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  /** An If-Match / If-None-Match condition did not hold (conditional writes). */
  precondition_failed: 412,
  too_large: 413,
  /** The request's body did not arrive within --body-read-timeout. */
  timeout: 408,
  /** A write would take the store past --max-store-bytes (507 Insufficient Storage). */
  store_full: 507,
  /** The member cannot write its --data-dir log (disk full, I/O error): 507 as well. */
  disk_error: 507,
  unavailable: 503,
  internal: 500,
};

export class DkvError extends Error {
  constructor(readonly code: DkvErrorCode, message: string) {
    super(message);
    this.name = "DkvError";
  }

  get status(): ContentfulStatusCode {
    return STATUS[this.code];
  }
}

/**
 * `e` as a DkvError when it is one, or an expected failure that is the client's doing: the
 * runtime aborts a request's body with an AbortError when the client's connection closes or its
 * chunked framing is broken (the runtime has answered 400 itself by then). Anything else is
 * returned as it is: a bug. Before, each such request logged an "unhandled error" line (found by
 * the fuzzer: an unsigned flood of broken chunked bodies filled the log at error level).
 */
export function asDkvError(e: unknown): unknown {
  if (e instanceof DkvError) return e;
  if (e instanceof DOMException && e.name === "AbortError") {
    return new DkvError("bad_request", `request body cut off: ${e.message}`);
  }
  return e;
}

export function failedBody(message: string, status: number) {
  return { status: "FAILED", error: { errorMessage: message, errorSystemCode: status } };
}

/** The root app's error handler: DkvError → its status; anything else is a bug → 500. */
export function onError(log: { error(msg: string): void }) {
  return function dkvOnError(caught: Error, c: Context) {
    const err = asDkvError(caught) as Error;
    if (err instanceof DkvError) return c.json(failedBody(err.message, err.status), err.status);
    log.error(`unhandled error on ${c.req.method} ${c.req.path}: ${err.stack ?? err.message}`);
    return c.json(failedBody("internal error", 500), 500);
  };
}

export function notFound(c: Context) {
  return c.json(failedBody(`no route for ${c.req.method} ${c.req.path}`, 404), 404);
}
