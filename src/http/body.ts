/**
 * Reading request bodies within a limit (an oversized body is a FAILED JSON 413, however it was
 * sent), and parsing JSON bodies with a zod schema (anything wrong is a 400).
 */
import type { z } from "zod";
import type { Config } from "../config.ts";
import type { Scheduler, Timer } from "../core/scheduler.ts";
import { DkvError } from "./errors.ts";

/** How long a request's body may take to arrive, on which clock (set by the front door). */
export interface BodyDeadline {
  readonly sched: Scheduler;
  readonly ms: number;
}

/** Requests whose body reads are bounded in time; dropped with the request. */
export const bodyDeadlines = new WeakMap<Request, BodyDeadline>();

/**
 * The body's bytes, at most `max`; `what` names the body and `flag` the limit in the error. With a deadline
 * registered for the request (bodyDeadlines), the whole body must arrive within it, counted from
 * the first read: past it the read is cancelled and the request refused with a 408.
 */
export async function readBytes(
  req: Request,
  max: number,
  what: string,
  flag?: string,
): Promise<Uint8Array> {
  const declared = Number(req.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > max) throw tooLarge(declared, max, what, flag);
  const deadline = bodyDeadlines.get(req);
  if (deadline === undefined && Number.isFinite(declared)) {
    return new Uint8Array(await req.arrayBuffer());
  }
  // Chunked, or bounded in time: read until the limit (and the deadline), then stop.
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  let timer: Timer | undefined;
  let expired: Promise<never> | undefined;
  if (deadline !== undefined) {
    expired = new Promise<never>((_, reject) => {
      timer = deadline.sched.setTimeout(() => {
        reject(
          new DkvError(
            "timeout",
            `${what} did not arrive within ${deadline.ms}ms (--body-read-timeout)`,
          ),
        );
      }, deadline.ms);
    });
    expired.catch(() => {}); // raced below; never an unhandled rejection between reads
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = expired === undefined
        ? await reader.read()
        : await Promise.race([reader.read(), expired]);
      if (done) break;
      total += value.length;
      if (total > max) throw tooLarge(total, max, what, flag);
      chunks.push(value);
    }
  } catch (e) {
    reader.cancel().catch(() => {});
    throw e;
  } finally {
    deadline?.sched.clear(timer);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The 413; `flag` names the setting behind the limit, as the key's 400 names --max-key-bytes. */
function tooLarge(size: number, max: number, what: string, flag?: string): DkvError {
  return new DkvError(
    "too_large",
    `${what} is ${size}${size > max ? "" : "+"} bytes; the limit is ${max}` +
      (flag === undefined ? "" : ` (${flag})`),
  );
}

/** Largest internal message: a batch of JSON-escaped records (up to 6 bytes per byte) or one value. */
export function internalBodyBytesMax(config: Config): number {
  return 7 * (config.valueBytesMax + config.batchBytesMax) + 1024 * 1024;
}

const decoder = new TextDecoder();

/** What the cluster-auth middleware learnt of a request it accepted (see internal-auth.ts). */
export interface Authenticated {
  /** The signer's member id, as verified. */
  readonly sender: string;
  /** The body, already read (within the limit) to check its signature. */
  readonly body: Uint8Array;
}

/** Requests accepted by the cluster-auth middleware; dropped with the request. */
export const authenticated = new WeakMap<Request, Authenticated>();

/**
 * The body as JSON matching `schema`, or a 400. A signed request's body was already read by the
 * auth middleware, and is parsed from those very bytes.
 */
export async function parseBody<T>(
  req: Request,
  schema: z.ZodType<T>,
  maxBytes: number,
): Promise<T> {
  const bytes = authenticated.get(req)?.body ?? await readBytes(req, maxBytes, "body");
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new DkvError("bad_request", "body is not valid JSON");
  }
  const out = schema.safeParse(json);
  if (!out.success) {
    const issue = out.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join(".")}` : "";
    throw new DkvError("bad_request", `invalid body${where}: ${issue?.message ?? "invalid"}`);
  }
  return out.data;
}
