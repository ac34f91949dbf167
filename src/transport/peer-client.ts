/**
 * The one transport for peer calls. Every call is a request with a timeout that either returns
 * a validated answer or throws (PeerError): callers treat a throw as "this peer did not answer".
 * Two implementations of the underlying fetch: the runtime's own (keep-alive HTTP) and an
 * in-memory one that hands the Request to another app in the same process (tests).
 *
 * With a cluster secret (`auth`) every request is signed and every successful answer must carry
 * a valid signature for that very request, or the call fails like any other (docs/security.md).
 * Redirects are never followed, and an answer is read up to `answerBytesMax` bytes, no further.
 * Member addresses are host:port; the scheme (`http`, or `https` with TLS) comes from this
 * member's configuration, the same for every peer: a cluster is all TLS or all plain.
 */
import { z } from "zod";
import { type Scheduler, timeoutSignal } from "../core/scheduler.ts";
import { concatBytes } from "../core/bytes.ts";
import { AUTH_HEADER, type ClusterAuth } from "../security/cluster-auth.ts";
import {
  BucketsResponse,
  type DigestsRequest,
  DigestsResponse,
  type GossipOut,
  HealthResponse,
  type HintRequest,
  HintResponse,
  type ListRequest,
  ListResponse,
  type MoveDone,
  MoveRecordsResponse,
  NodeStatus,
  type PaxosRequest,
  PaxosResponse,
  type ReadRequest,
  ReadResponse,
  toWire,
  type VersionsRequest,
  VersionsResponse,
  type WatchPollRequest,
  WatchPollResponse,
  type WriteRequest,
  WriteResponse,
} from "./messages.ts";
import type { KvRecord } from "../core/record.ts";
import { transportWords } from "./transport-words.ts";

const OkSchema = z.object({ ok: z.literal(true) });

export type FetchFn = (url: string, init: RequestInit) => Promise<Response>;

export class PeerError extends Error {
  /** The connection failed in a way that looks like members disagreeing on TLS (see tlsHint). */
  tlsSuspect = false;
  constructor(readonly address: string, message: string, readonly status?: number) {
    super(message);
    this.name = "PeerError";
  }
}

export interface PeerClient {
  write(address: string, req: WriteRequest, timeoutMs: number): Promise<WriteResponse>;
  /**
   * A kv/write of records as the store holds them (`sets` as WriteRequest's): over HTTP the same
   * request as `write`; over the TCP peer link a write frame (binary, src/core/move-frame.ts).
   */
  writeRecords(
    address: string,
    to: string,
    records: readonly KvRecord[],
    sets: readonly number[] | undefined,
    timeoutMs: number,
  ): Promise<WriteResponse>;
  read(address: string, req: ReadRequest, timeoutMs: number): Promise<ReadResponse>;
  health(address: string, timeoutMs: number): Promise<HealthResponse>;
  hint(address: string, req: HintRequest, timeoutMs: number): Promise<HintResponse>;
  digests(address: string, req: DigestsRequest, timeoutMs: number): Promise<DigestsResponse>;
  buckets(address: string, partition: number, timeoutMs: number): Promise<BucketsResponse>;
  versions(address: string, req: VersionsRequest, timeoutMs: number): Promise<VersionsResponse>;
  list(address: string, req: ListRequest, timeoutMs: number): Promise<ListResponse>;
  watchPoll(address: string, req: WatchPollRequest, timeoutMs: number): Promise<WatchPollResponse>;
  /**
   * One batch of a moving partition's records, as a move frame (src/core/move-frame.ts: the
   * frame names the member it is meant for).
   */
  moveRecords(address: string, frame: Uint8Array, timeoutMs: number): Promise<MoveRecordsResponse>;
  moveDone(address: string, req: MoveDone, timeoutMs: number): Promise<void>;
  /** Paxos messages for one replica (conditional writes), each answered on its own. */
  paxos(address: string, req: PaxosRequest, timeoutMs: number): Promise<PaxosResponse>;
  status(address: string, timeoutMs: number): Promise<NodeStatus>;
  /** One gossip message, best effort: the answer carries nothing. */
  gossip(address: string, envelope: GossipOut, timeoutMs: number): Promise<void>;
}

export interface PeerClientOptions {
  /** Sign requests and check answers with the cluster secret. */
  readonly auth?: ClusterAuth;
  /** Largest answer read, in bytes; a larger one fails the call (default 64 MiB). */
  readonly answerBytesMax?: number;
  /** `https` when this member runs with TLS (default `http`). */
  readonly scheme?: "http" | "https";
}

const DEFAULT_ANSWER_BYTES_MAX = 64 * 1024 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * `sched` is given only by the simulator: calls then time out on its clock. Without it the
 * runtime's own AbortSignal.timeout is used (the hot path: no extra timer bookkeeping).
 */
export function createPeerClient(
  fetchFn: FetchFn,
  sched?: Scheduler,
  opts: PeerClientOptions = {},
): PeerClient {
  const auth = opts.auth;
  const answerBytesMax = opts.answerBytesMax ?? DEFAULT_ANSWER_BYTES_MAX;
  const scheme = opts.scheme ?? "http";
  async function call<T>(
    address: string,
    method: "GET" | "POST",
    path: string,
    body: unknown,
    timeoutMs: number,
    schema: z.ZodType<T>,
  ): Promise<T> {
    let res: Response;
    let nonce = "";
    // Only internal routes are signed (GET /health is public, for anyone to ask).
    const signer = path.startsWith("/internal/") ? auth : undefined;
    const timer = sched ? timeoutSignal(sched, timeoutMs) : undefined;
    try {
      const signal = timer ? timer.signal : AbortSignal.timeout(timeoutMs);
      // Never follow a redirect: an answer of 3xx is a failed call, not a pointer elsewhere.
      const init: RequestInit = { method, signal, redirect: "manual" };
      const headers: Record<string, string> = {};
      let bytes: Uint8Array | undefined;
      if (body instanceof Uint8Array) {
        // A binary message (a move frame) goes as it is.
        bytes = body;
        init.body = bytes as Uint8Array<ArrayBuffer>;
        headers["content-type"] = "application/octet-stream";
      } else if (body !== undefined) {
        bytes = encoder.encode(JSON.stringify(body));
        init.body = bytes as Uint8Array<ArrayBuffer>;
        headers["content-type"] = "application/json";
      }
      if (signer !== undefined) {
        const signed = signer.signRequest(address, method, path, bytes);
        headers[AUTH_HEADER] = signed.header;
        nonce = signed.nonce;
      }
      init.headers = headers;
      res = await fetchFn(`${scheme}://${address}${path}`, init);
    } catch (e) {
      const why = transportWords(e, timeoutMs);
      const hint = tlsHint(e, scheme, address);
      const err = new PeerError(address, why + hint);
      err.tlsSuspect = hint !== "";
      throw err;
    } finally {
      timer?.done();
    }
    let answer: Uint8Array;
    try {
      answer = await readAnswer(res, answerBytesMax);
    } catch (e) {
      // Our own limit's message, or the runtime's failure in our words.
      const why = e instanceof AnswerTooLarge ? e.message : transportWords(e, timeoutMs);
      throw new PeerError(address, `${path}: ${why}`, res.status);
    }
    if (res.ok && signer !== undefined) {
      const why = signer.verifyAnswer(
        res.status,
        method,
        path,
        nonce,
        res.headers.get(AUTH_HEADER),
        answer,
      );
      if (why !== undefined) {
        signer.noteRefused(`answer from ${address} to ${method} ${path}: ${why}`);
        throw new PeerError(address, `${path}: answer not authenticated: ${why}`, res.status);
      }
    }
    let json: unknown;
    try {
      json = JSON.parse(decoder.decode(answer));
    } catch {
      throw new PeerError(address, `${path}: answer is not JSON (HTTP ${res.status})`, res.status);
    }
    if (!res.ok) {
      const msg = (json as { error?: { errorMessage?: string } })?.error?.errorMessage ?? "";
      throw new PeerError(address, `${path}: HTTP ${res.status} ${msg}`.trim(), res.status);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new PeerError(address, `${path}: malformed answer: ${parsed.error.issues[0]?.message}`);
    }
    return parsed.data;
  }

  const write = (a: string, req: WriteRequest, t: number) =>
    call(a, "POST", "/internal/v1/kv/write", req, t, WriteResponse);
  return {
    write,
    writeRecords: (a, to, records, sets, t) =>
      write(a, {
        to,
        records: records.map(toWire),
        ...(sets === undefined ? {} : { sets: [...sets] }),
      }, t),
    read: (a, req, t) =>
      readPaged(a, req, (r) => call(a, "POST", "/internal/v1/kv/read", r, t, ReadResponse)),
    health: (a, t) => call(a, "GET", "/health", undefined, t, HealthResponse),
    hint: (a, req, t) => call(a, "POST", "/internal/v1/hints", req, t, HintResponse),
    digests: (a, req, t) => call(a, "POST", "/internal/v1/ae/digests", req, t, DigestsResponse),
    buckets: (a, partition, t) =>
      call(a, "POST", "/internal/v1/ae/buckets", { partition }, t, BucketsResponse),
    versions: (a, req, t) => call(a, "POST", "/internal/v1/ae/versions", req, t, VersionsResponse),
    list: (a, req, t) => call(a, "POST", "/internal/v1/kv/list", req, t, ListResponse),
    watchPoll: (a, req, t) => call(a, "POST", "/internal/v1/watch/poll", req, t, WatchPollResponse),
    moveRecords: (a, frame, t) =>
      call(a, "POST", "/internal/v1/rebalance/records", frame, t, MoveRecordsResponse),
    moveDone: async (a, req, t) => {
      await call(a, "POST", "/internal/v1/rebalance/done", req, t, OkSchema);
    },
    paxos: (a, req, t) => call(a, "POST", "/internal/v1/paxos", req, t, PaxosResponse),
    status: (a, t) => call(a, "GET", "/internal/v1/status", undefined, t, NodeStatus),
    gossip: async (a, envelope, t) => {
      await call(a, "POST", "/internal/v1/gossip", envelope, t, OkSchema);
    },
  };
}

/**
 * A kv/read through `ask`, whatever carries it (HTTP, or the TCP peer link). A receiver stops
 * early to bound its answer in bytes (`partial`): ask again for the rest. Each answer carries at
 * least one record, so this ends within keys.length calls.
 */
export async function readPaged(
  address: string,
  req: ReadRequest,
  ask: (req: ReadRequest) => Promise<ReadResponse>,
): Promise<ReadResponse> {
  const first = await ask(req);
  if (first.partial !== true) return first;
  const records = [...first.records];
  const held = [...first.held];
  while (records.length < req.keys.length) {
    const from = records.length;
    const rest: ReadRequest = { to: req.to, keys: req.keys.slice(from) };
    if (req.sets !== undefined) rest.sets = req.sets.slice(from);
    const more = await ask(rest);
    if (more.records.length === 0 || more.records.length !== more.held.length) {
      throw new PeerError(
        address,
        "/internal/v1/kv/read: malformed answer: an empty partial answer",
      );
    }
    records.push(...more.records);
    held.push(...more.held);
    if (more.partial !== true) break;
  }
  return { records, held };
}

/**
 * A hint for a failed connection that looks like a TLS problem (a handshake that failed, a
 * certificate refused, a connection closed at once as a TLS server does to plain HTTP): the
 * usual cause is members that disagree on TLS, or certificates from another CA.
 */
/**
 * Bun: EPROTO "TLS handshake failed", certificate codes, ECONNRESET (a TLS server given plain
 * HTTP). Deno: "invalid peer certificate" in the cause, "invalid HTTP version" (plain HTTP
 * answered with a TLS record).
 */
const TLS_LIKE =
  /tls|ssl|cert|handshake|EPROTO|ECONNRESET|closed unexpectedly|invalid HTTP version/i;

function tlsHint(e: unknown, scheme: "http" | "https", address: string): string {
  const err = e as { code?: unknown; message?: unknown; cause?: unknown } | undefined;
  const text = [err?.code, err?.message, String(err?.cause ?? "")].join(" ");
  if (!TLS_LIKE.test(text)) return "";
  return scheme === "https"
    ? ` (TLS: does ${address} serve https with a certificate --tls-ca trusts, and accept ours?)`
    : ` (if ${address} serves https, every member needs --tls-cert and --tls-key)`;
}

/** A peer's answer over answerBytesMax. */
class AnswerTooLarge extends Error {}

/** An answer's body, at most `max` bytes (checked from Content-Length, else while reading). */
async function readAnswer(res: Response, max: number): Promise<Uint8Array> {
  const tooLarge = (n: number) =>
    new AnswerTooLarge(`answer is ${n} bytes or more; the limit is ${max}`);
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared)) {
    if (declared > max) {
      await res.body?.cancel().catch(() => {});
      throw tooLarge(declared);
    }
    return new Uint8Array(await res.arrayBuffer());
  }
  if (res.body === null) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge(total);
    }
    chunks.push(value);
  }
  return concatBytes(chunks, total);
}

/** Something that answers Requests in process, like a Hono app. */
export interface InProcessServer {
  fetch(req: Request): Response | Promise<Response>;
}

/**
 * An in-memory network: addresses map to in-process servers. An address with no server, or one
 * marked down, fails like a refused connection.
 */
export class MemoryNetwork {
  readonly servers = new Map<string, InProcessServer>();
  readonly down = new Set<string>();
  /** Drop single calls: return true to fail a call to `address` for `path`. */
  drop: (address: string, path: string) => boolean = () => false;
  /** Slow answers: ms by which the answer of a call to `address` for `path` comes late. */
  delayMs: (address: string, path: string) => number = () => 0;

  readonly fetch: FetchFn = async (url, init) => {
    const u = new URL(url);
    const address = u.host;
    const server = this.servers.get(address);
    if (server === undefined || this.down.has(address) || this.drop(address, u.pathname)) {
      throw new Error(`connection refused (${address})`);
    }
    const res = await server.fetch(new Request(url, init));
    const late = this.delayMs(address, u.pathname);
    if (late > 0) await new Promise((r) => setTimeout(r, late));
    return res;
  };
}
