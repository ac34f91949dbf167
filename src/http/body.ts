/**
 * Reading request bodies within a limit (an oversized body is a FAILED JSON 413, however it was
 * sent), and parsing JSON bodies with a zod schema (anything wrong is a 400).
 */
import type { z } from "zod";
import type { Config } from "../config.ts";
import type { Scheduler, Timer } from "../core/scheduler.ts";
import { concatBytes } from "../core/bytes.ts";
import { DkvError } from "./errors.ts";

/** How long a request's body may take to arrive, on which clock (set by the front door). */
export interface BodyDeadline {
  readonly sched: Scheduler;
  readonly ms: number;
}

/** Requests whose body reads are bounded in time; dropped with the request. */
export const bodyDeadlines = new WeakMap<Request, BodyDeadline>();

/** A body read in flight under a deadline: when it started, and how to end it. */
interface Watched {
  readonly startMs: number;
  readonly expire: () => void;
}

/**
 * The body reads in flight under one deadline, checked by one interval timer (every tenth of
 * the deadline, at least 10 ms) that runs only while some are in flight: a timer per request
 * cost about a fifth of a replicated PUT's throughput.
 */
class DeadlineWatch {
  readonly #pending = new Set<Watched>();
  #timer: Timer | undefined;
  constructor(readonly d: BodyDeadline) {}

  add(w: Watched): void {
    this.#pending.add(w);
    if (this.#timer !== undefined) return;
    const every = Math.max(10, Math.floor(this.d.ms / 10));
    this.#timer = this.d.sched.setInterval(() => this.#check(), every);
  }

  delete(w: Watched): void {
    this.#pending.delete(w);
  }

  #check(): void {
    const now = this.d.sched.now();
    for (const w of this.#pending) {
      if (now - w.startMs < this.d.ms) continue;
      this.#pending.delete(w);
      w.expire();
    }
    if (this.#pending.size === 0) {
      this.d.sched.clear(this.#timer);
      this.#timer = undefined;
    }
  }
}

const watches = new WeakMap<BodyDeadline, DeadlineWatch>();

/** `read` raced against the request's deadline (none: `read` as it is). */
function withinDeadline<T>(
  read: Promise<T>,
  deadline: BodyDeadline | undefined,
  what: string,
  onExpire: () => void,
): Promise<T> {
  if (deadline === undefined) return read;
  let watch = watches.get(deadline);
  if (watch === undefined) watches.set(deadline, watch = new DeadlineWatch(deadline));
  const on = watch;
  // One promise settled by whichever comes first (cheaper than a Promise.race per request).
  return new Promise<T>((resolve, reject) => {
    const w: Watched = {
      startMs: deadline.sched.now(),
      expire: () => {
        onExpire();
        reject(
          new DkvError(
            "timeout",
            `${what} did not arrive within ${deadline.ms}ms (--body-read-timeout)`,
          ),
        );
      },
    };
    on.add(w);
    read.then((v) => {
      on.delete(w);
      resolve(v);
    }, (e) => {
      on.delete(w);
      reject(e);
    });
  });
}

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
  if (Number.isFinite(declared)) {
    // The length is known and within the limit: one read (the common case, kept cheap).
    return new Uint8Array(await withinDeadline(req.arrayBuffer(), deadline, what, () => {}));
  }
  // Chunked: read until the limit (and the deadline), then stop.
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const readAll = async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) throw tooLarge(total, max, what, flag);
      chunks.push(value);
    }
  };
  try {
    await withinDeadline(readAll(), deadline, what, () => reader.cancel().catch(() => {}));
  } catch (e) {
    reader.cancel().catch(() => {});
    throw e;
  }
  return concatBytes(chunks, total);
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
 * The body's bytes, at most `maxBytes` (a 413 beyond). A signed request's body was already read
 * by the auth middleware: those very bytes.
 */
export async function bodyBytes(req: Request, maxBytes: number): Promise<Uint8Array> {
  return authenticated.get(req)?.body ?? await readBytes(req, maxBytes, "body");
}

/**
 * The body as JSON matching `schema`, or a 400. A signed request's body was already read by the
 * auth middleware, and is parsed from those very bytes.
 */
export async function parseBody<T>(
  req: Request,
  schema: z.ZodType<T>,
  maxBytes: number,
): Promise<T> {
  return parseJsonBytes(await bodyBytes(req, maxBytes), schema);
}

/** JSON bytes parsed with a zod schema: anything wrong is a 400 (also the TCP peer link's). */
export function parseJsonBytes<T>(bytes: Uint8Array, schema: z.ZodType<T>): T {
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
