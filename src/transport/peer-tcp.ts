/**
 * Every peer call but the public /health (issue 17 part 1, docs/PERFORMANCE.md) over one
 * persistent raw TCP connection per peer, as frames (src/core/peer-frame.ts) carrying the same
 * bodies as the HTTP routes (JSON; a move frame's bytes as they are), many calls in flight,
 * answers matched by request id. A call to a peer that advertises no link port, or whose link is
 * not up (refused, not yet open, failed lately), goes over HTTP as before: a call never waits for
 * a link to open; it starts the dial and goes over HTTP, and the calls after it take the link
 * once it is up.
 *
 * A peer's link port is the one its gossip record advertises (--peer-port; `linkPort` below),
 * on its address's host. With a cluster secret (`auth`) the hello is signed and the peer's hello
 * must be signed in answer (src/core/peer-frame.ts): a link that fails either way is not used,
 * and its calls go over HTTP, signed there as always.
 *
 * A call sent on a link fails like an HTTP call (PeerError): on its timeout, on a refusal
 * (the receiver's status and message, as over HTTP), or when the connection closes under it
 * (every call in flight fails; the next call dials again).
 */
import type { z } from "zod";
import {
  encodeFrame,
  encodeTextFrame,
  type Frame,
  FRAME_HEADER_BYTES,
  FrameCork,
  FrameKind,
  FrameReader,
  helloText,
  PEER_LINK_AUTH_BODY,
  PEER_LINK_AUTH_METHOD,
  PEER_LINK_AUTH_TARGET,
  readHello,
} from "../core/peer-frame.ts";
import type { ClusterAuth } from "../security/cluster-auth.ts";
import type { Scheduler, Timer } from "../core/scheduler.ts";
import { realScheduler } from "../platform/scheduler.ts";
import { encodeWriteFrame } from "../core/move-frame.ts";
import type { TcpConn, TcpHandlers } from "../platform/tcp.ts";
import { z as zod } from "zod";
import {
  BucketsResponse,
  DigestsResponse,
  HintResponse,
  ListResponse,
  MoveRecordsResponse,
  NodeStatus,
  PaxosResponse,
  ReadResponse,
  VersionsResponse,
  WatchPollResponse,
  type WriteRequest,
  WriteResponse,
} from "./messages.ts";
import { type PeerClient, PeerError, readPaged } from "./peer-client.ts";

export type Dial = (host: string, port: number, h: TcpHandlers) => Promise<TcpConn>;

export interface TcpPeerOptions {
  /**
   * The link port `address` advertises (its gossip record's), or undefined: no link, HTTP.
   * Asked on every call: keep it cheap.
   */
  readonly linkPort: (address: string) => number | undefined;
  /** Largest frame payload sent or read (the internal body limit). */
  readonly maxFrameBytes: number;
  readonly dial: Dial;
  /**
   * After a failed dial, that peer is not dialled again for this long, doubled after each further
   * failure in a row (at most RETRY_MS_MAX); its calls go over HTTP meanwhile, as they do while a
   * dial is under way (no call waits for one).
   */
  readonly retryMs?: number;
  /**
   * Back-pressure: while this many bytes of calls wait to be sent on a link (the peer reads
   * slower than we call: it is slow, or pauses reading while busy), further calls to that peer go
   * over HTTP instead of queueing more (default UNSENT_BYTES_MAX).
   */
  readonly unsentBytesMax?: number;
  readonly now?: () => number;
  /** The cluster secret: hellos are signed both ways. */
  readonly auth?: ClusterAuth;
  /** Timers (the simulator's, on its clock; default the runtime's). Give `now` with them. */
  readonly timers?: LinkTimers;
  /** A link that did not come up, and why (the caller logs it; its calls went over HTTP). */
  readonly onRefused?: (address: string, why: string) => void;
  /** Every call sent on a link, as it ends (the same figures as HTTP calls: Metrics.observePeer). */
  readonly observe?: (peer: string, outcome: string, ms: number) => void;
}

/** A failed call's outcome in the words of the peer-call metrics. */
function outcomeOf(e: unknown): string {
  const status = e instanceof PeerError ? e.status : undefined;
  if (status !== undefined) return status < 500 ? "http_4xx" : "http_5xx";
  return e instanceof PeerError && e.message.startsWith("timed out") ? "timeout" : "failed";
}

const decoder = new TextDecoder();

/** The timers a link uses: its calls' timeout sweep and the wait for the peer's hello. */
export type LinkTimers = Pick<Scheduler, "setTimeout" | "setInterval" | "clear">;

/** Bytes of calls waiting to be sent on one link before further calls go over HTTP. */
const UNSENT_BYTES_MAX = 16 * 1024 * 1024;
/** The longest wait between tries of a link that keeps failing. */
const RETRY_MS_MAX = 60_000;

interface Waiter {
  readonly path: string;
  readonly schema: z.ZodType<unknown>;
  readonly deadline: number;
  readonly timeoutMs: number;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/**
 * A call's frame: a binary message (a move frame) goes as it is, as over HTTP; the rest JSON. A
 * body made only for the link (a write frame) comes as a function, called here: not made at all
 * when the call goes over HTTP instead.
 */
export function encodeCall(id: number, kind: number, body: unknown): Uint8Array {
  if (typeof body === "function") body = (body as () => unknown)();
  return body instanceof Uint8Array
    ? encodeFrame(id, kind, body)
    : encodeTextFrame(id, kind, JSON.stringify(body));
}

/**
 * The answer frame (`ok` or `error`) to a call on `path`: its body checked with `schema`, or the
 * PeerError an HTTP call would have thrown (the refusal's status and message; a malformed answer).
 */
export function answerOf<T>(
  address: string,
  f: { readonly kind: number; readonly payload: Uint8Array },
  path: string,
  schema: z.ZodType<T>,
): T {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(f.payload));
  } catch {
    throw new PeerError(address, `${path}: answer is not JSON (tcp)`);
  }
  if (f.kind === FrameKind.error) {
    const e = json as { status?: number; message?: string };
    const status = typeof e.status === "number" ? e.status : 500;
    throw new PeerError(address, `${path}: HTTP ${status} ${e.message ?? ""}`.trim(), status);
  }
  if (f.kind !== FrameKind.ok) throw new PeerError(address, `${path}: frame kind ${f.kind}`);
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new PeerError(address, `${path}: malformed answer: ${parsed.error.issues[0]?.message}`);
  }
  return parsed.data;
}

/** The link to one peer. */
class Link {
  conn: TcpConn | undefined;
  /** Calls made in one task leave in one write. */
  out: FrameCork | undefined;
  up = false;
  /** The peer's hello came once (a link that never came up is not dialled again for a while). */
  wasUp = false;
  /** Resolves true once the peer's hello came, false if the link failed first. */
  ready: Promise<boolean>;
  #settle: (up: boolean) => void = () => {};
  readonly reader: FrameReader;
  readonly waiting = new Map<number, Waiter>();
  #nextId = 1;
  #sweep: Timer | undefined;
  /** The sweep's interval (ms). */
  #every = Infinity;
  closed = false;
  /** The nonce of our signed hello: the peer's hello must answer it. */
  #helloNonce = "";

  constructor(
    readonly address: string,
    readonly port: number,
    maxFrameBytes: number,
    private readonly now: () => number,
    private readonly onGone: (l: Link, why: string) => void,
    private readonly auth: ClusterAuth | undefined,
    private readonly timers: LinkTimers,
  ) {
    this.reader = new FrameReader(maxFrameBytes);
    this.ready = new Promise((r) => (this.#settle = r));
  }

  handlers(): TcpHandlers {
    return {
      open: (c) => {
        this.conn = c;
        this.out = new FrameCork((bytes) => c.write(bytes));
        let signature: string | undefined;
        if (this.auth !== undefined) {
          const signed = this.auth.signRequest(
            this.address,
            PEER_LINK_AUTH_METHOD,
            PEER_LINK_AUTH_TARGET,
            PEER_LINK_AUTH_BODY,
          );
          signature = signed.header;
          this.#helloNonce = signed.nonce;
        }
        c.write(encodeTextFrame(0, FrameKind.hello, helloText(signature)));
      },
      data: (_c, bytes) => {
        const frames = this.reader.push(bytes);
        if (typeof frames === "string") return this.fail(`bad frame: ${frames}`);
        for (const f of frames) this.#answer(f);
      },
      close: () => this.fail("connection closed"),
    };
  }

  #answer(f: Frame): void {
    if (!this.up) {
      if (f.kind === FrameKind.error) {
        let why = "refused";
        try {
          why = `refused: ${
            (JSON.parse(decoder.decode(f.payload)) as { message?: string }).message
          }`;
        } catch {
          // Not JSON: "refused" it is.
        }
        return this.fail(why);
      }
      const hello = f.kind === FrameKind.hello ? readHello(f.payload) : undefined;
      if (hello === undefined) return this.fail("not a dkv peer link");
      if (this.auth !== undefined) {
        const why = this.auth.verifyAnswer(
          200,
          PEER_LINK_AUTH_METHOD,
          PEER_LINK_AUTH_TARGET,
          this.#helloNonce,
          hello.signature,
          PEER_LINK_AUTH_BODY,
        );
        if (why !== undefined) {
          this.auth.noteRefused(`peer link to ${this.address}: ${why}`);
          return this.fail(`hello: ${why}`);
        }
      }
      this.up = true;
      this.wasUp = true;
      this.#settle(true);
      return;
    }
    // Checked first: fail() rejects every call still waiting, this one included.
    if (f.kind !== FrameKind.ok && f.kind !== FrameKind.error) {
      return this.fail(`unexpected frame kind ${f.kind}`);
    }
    const w = this.waiting.get(f.id);
    if (w === undefined) return; // timed out meanwhile
    this.waiting.delete(f.id);
    try {
      w.resolve(answerOf(this.address, f, w.path, w.schema));
    } catch (e) {
      w.reject(e);
    }
  }

  send<T>(
    kind: number,
    path: string,
    body: unknown,
    timeoutMs: number,
    schema: z.ZodType<T>,
  ): Promise<T> {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffff_fffe ? 1 : this.#nextId + 1;
    const frame = encodeCall(id, kind, body);
    if (frame.length - FRAME_HEADER_BYTES > this.reader.maxFrameBytes) {
      // The receiver would refuse it as HTTP does an oversized body (and close the link).
      return Promise.reject(
        new PeerError(this.address, `${path}: HTTP 413 request over the internal body limit`, 413),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, {
        path,
        schema: schema as z.ZodType<unknown>,
        deadline: this.now() + timeoutMs,
        timeoutMs,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
      this.#watch(timeoutMs);
      this.out!.push(frame);
    });
  }

  /** One interval timer per link, while calls are in flight (a timer per call costs more). */
  #watch(timeoutMs: number): void {
    const every = Math.max(10, Math.floor(timeoutMs / 10));
    // A call with a shorter timeout than the sweep was set for (a gossip ping beside a watch's
    // long poll) gets a finer sweep, so it fails on time.
    if (this.#sweep !== undefined) {
      if (every >= this.#every) return;
      this.timers.clear(this.#sweep);
    }
    this.#every = every;
    this.#sweep = this.timers.setInterval(() => {
      const now = this.now();
      for (const [id, w] of this.waiting) {
        if (now < w.deadline) continue;
        this.waiting.delete(id);
        w.reject(new PeerError(this.address, `timed out after ${w.timeoutMs} ms (tcp)`));
      }
      if (this.waiting.size === 0) {
        this.timers.clear(this.#sweep);
        this.#sweep = undefined;
      }
    }, every);
  }

  fail(why: string): void {
    if (this.closed) return;
    this.closed = true;
    this.up = false;
    this.#settle(false);
    if (this.#sweep !== undefined) this.timers.clear(this.#sweep);
    this.#sweep = undefined;
    const err = `${why} (tcp peer link)`;
    for (const w of this.waiting.values()) {
      w.reject(new PeerError(this.address, `${w.path}: ${err}`));
    }
    this.waiting.clear();
    try {
      this.conn?.close();
    } catch {
      // Already closed.
    }
    this.onGone(this, why);
  }
}

/**
 * `http` with every call but health sent over TCP peer links when they are up. `close()` shuts
 * every link.
 */
export function tcpPeerClient(
  http: PeerClient,
  o: TcpPeerOptions,
): PeerClient & {
  /** Open the link to `address` now: true once it is up, false if it did not come up. */
  connect(address: string): Promise<boolean>;
  close(): void;
} {
  const now = o.now ?? (() => performance.now());
  const timers = o.timers ?? realScheduler;
  const retryMs = o.retryMs ?? 1000;
  const unsentBytesMax = o.unsentBytesMax ?? UNSENT_BYTES_MAX;
  const links = new Map<string, Link>();
  /**
   * Peers whose dials failed in a row (forgotten once a link comes up): on which port, how many
   * times, and until when their calls go over HTTP without a dial. A peer that advertises another
   * port (restarted) starts afresh.
   */
  const backoff = new Map<string, { port: number; failures: number; until: number }>();

  const gone = (l: Link, why: string) => {
    if (links.get(l.address) === l) links.delete(l.address);
    // A link that never came up: not again for a while (no dial per call to a peer without
    // one). One that closed after it was up is dialled again by the next call.
    if (!l.wasUp && why !== "closed") {
      const b = backoff.get(l.address);
      const n = (b?.port === l.port ? b.failures : 0) + 1;
      const wait = Math.min(retryMs * 2 ** Math.min(n - 1, 20), RETRY_MS_MAX);
      backoff.set(l.address, { port: l.port, failures: n, until: now() + wait });
      o.onRefused?.(l.address, why);
    }
  };

  const dial = (address: string, port: number): Link => {
    const l = new Link(address, port, o.maxFrameBytes, now, gone, o.auth, timers);
    links.set(address, l);
    const host = address.slice(0, address.lastIndexOf(":"));
    o.dial(host.replace(/^\[|\]$/g, ""), port, l.handlers()).catch(() => l.fail("refused"));
    // No hello within a second: not a link.
    timers.setTimeout(() => {
      if (!l.up) l.fail("no hello");
    }, 1000);
    return l;
  };

  /**
   * The link to `address` (a new one dialled when there is none and the peer is not in its
   * wait after failed dials), up or on its way.
   */
  const linkTo = (address: string, port: number): Link | undefined => {
    let l = links.get(address);
    if (l !== undefined && l.port !== port) {
      // The member came back advertising another port: that link is to a process gone.
      l.fail("the member advertises another link port");
      l = undefined;
    }
    if (l === undefined) {
      const b = backoff.get(address);
      if (b !== undefined && b.port === port && now() < b.until) return undefined;
      l = dial(address, port);
      void l.ready.then((up) => {
        if (up) backoff.delete(address);
      });
    }
    return l;
  };

  const over: LinkSend = (address, kind, path, body, timeoutMs, schema, viaHttp) => {
    const port = o.linkPort(address);
    if (port === undefined) return viaHttp();
    let link = links.get(address);
    if (link === undefined || !link.up || link.port !== port) {
      // Not up: this call over HTTP, the link dialled (or still opening) for the next ones.
      link = linkTo(address, port);
      if (link === undefined || !link.up) return viaHttp();
    }
    // Full: the peer is not taking what was sent; this call goes another way.
    if (link.conn!.unsentBytes > unsentBytesMax) return viaHttp();
    const observe = o.observe;
    if (observe === undefined) return link.send(kind, path, body, timeoutMs, schema);
    const start = now();
    return link.send(kind, path, body, timeoutMs, schema).then(
      (v) => {
        observe(address, "ok", now() - start);
        return v;
      },
      (e) => {
        observe(address, outcomeOf(e), now() - start);
        throw e;
      },
    );
  };

  return {
    ...http,
    ...linkMethods(http, over),
    connect: async (a) => {
      const port = o.linkPort(a);
      const l = port === undefined ? undefined : linkTo(a, port);
      return l !== undefined && (await l.ready);
    },
    close: () => {
      for (const l of [...links.values()]) l.fail("closed");
    },
  };
}

const OkSchema = zod.object({ ok: zod.literal(true) });

/**
 * How a call is carried as a frame: the call's kind, route (for errors and metrics), body (JSON,
 * or a move frame's bytes), timeout, answer schema, and the HTTP call to make instead.
 */
export type LinkSend = <T>(
  address: string,
  kind: number,
  path: string,
  body: unknown,
  timeoutMs: number,
  schema: z.ZodType<T>,
  viaHttp: () => Promise<T>,
) => Promise<T>;

const I = "/internal/v1";

/** Every call of `http` but health, made through `send` (frame kind, route, body, schema). */
export function linkMethods(http: PeerClient, send: LinkSend): Omit<PeerClient, "health"> {
  /** A call whose body is its request as it is, and whose HTTP twin takes the same arguments. */
  const call = <Req, Res>(
    kind: number,
    route: string,
    answer: z.ZodType<Res>,
    viaHttp: (a: string, req: Req, t: number) => Promise<Res>,
  ) =>
  (a: string, req: Req, t: number): Promise<Res> =>
    send(a, kind, `${I}/${route}`, req, t, answer, () => viaHttp(a, req, t));
  return {
    read: (a, req, t) =>
      readPaged(
        a,
        req,
        (r) =>
          send(a, FrameKind.read, `${I}/kv/read`, r, t, ReadResponse, () => http.read(a, r, t)),
      ),
    write: (a, req: WriteRequest, t) =>
      send(a, FrameKind.write, `${I}/kv/write`, req, t, WriteResponse, () => http.write(a, req, t)),
    writeRecords: (a, to, records, sets, t) =>
      send(
        a,
        FrameKind.writeRecords,
        `${I}/kv/write`,
        () => encodeWriteFrame(to, records, sets),
        t,
        WriteResponse,
        () => http.writeRecords(a, to, records, sets, t),
      ),
    paxos: (a, req, t) =>
      send(a, FrameKind.paxos, `${I}/paxos`, req, t, PaxosResponse, () => http.paxos(a, req, t)),
    hint: call(FrameKind.hints, "hints", HintResponse, http.hint),
    digests: call(FrameKind.digests, "ae/digests", DigestsResponse, http.digests),
    buckets: (a, partition, t) =>
      send(
        a,
        FrameKind.buckets,
        `${I}/ae/buckets`,
        { partition },
        t,
        BucketsResponse,
        () => http.buckets(a, partition, t),
      ),
    versions: call(FrameKind.versions, "ae/versions", VersionsResponse, http.versions),
    list: call(FrameKind.list, "kv/list", ListResponse, http.list),
    watchPoll: call(FrameKind.watchPoll, "watch/poll", WatchPollResponse, http.watchPoll),
    moveRecords: call(
      FrameKind.moveRecords,
      "rebalance/records",
      MoveRecordsResponse,
      http.moveRecords,
    ),
    moveDone: async (a, req, t) => {
      await send(a, FrameKind.moveDone, `${I}/rebalance/done`, req, t, OkSchema, async () => {
        await http.moveDone(a, req, t);
        return { ok: true as const };
      });
    },
    status: (a, t) =>
      send(a, FrameKind.status, `${I}/status`, null, t, NodeStatus, () => http.status(a, t)),
    gossip: async (a, envelope, t) => {
      await send(a, FrameKind.gossip, `${I}/gossip`, envelope, t, OkSchema, async () => {
        await http.gossip(a, envelope, t);
        return { ok: true as const };
      });
    },
  };
}
