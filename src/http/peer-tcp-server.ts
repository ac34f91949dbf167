/**
 * The receiving end of the TCP peer link (src/transport/peer-tcp.ts; issue 17 part 1, see
 * docs/PERFORMANCE.md), on a node's --peer-port, which its gossip record advertises. Every
 * peer call's frame (ROUTES below: each internal route but /health) is answered by the very
 * function behind its HTTP route (LinkCalls: PeerCalls and gossip), on a body parsed with the
 * same zod schema and limit (a move or write frame: decoded with the move frame's checks); a
 * refusal is an `error` frame with the status and message the HTTP route would have answered. No
 * Request, router or middleware in between.
 *
 * A connection that does not open with the hello, sends a frame over the internal body limit, a
 * malformed length or an unknown kind is closed. Limits: at most `maxConnections` at once (a
 * connection past it is closed at once), and one with no call in flight that sends nothing for
 * `idleTimeoutMs` is closed (its client dials again on its next call). With a cluster secret the hello must be signed
 * (src/core/peer-frame.ts: the same HMAC, time window and replay rules as internal HTTP calls);
 * one that is not, or fails the checks, gets an `error` frame (401, why) and the connection is
 * closed before any call on it is served; an accepted one is answered by our own signed hello.
 * With TLS (`tls`: the member's --tls-cert/--tls-key/--tls-ca, as its HTTPS) the link listens
 * over TLS, requiring a client certificate from the CA under --tls-client-auth. Back-pressure: a connection stops being read
 * while its answers wait to be sent (over 1 MiB) or it has 1024 calls in flight (watch polls,
 * held open by design, not counted).
 */
import type { ZodType } from "zod";
import type { Logger } from "../log.ts";
import {
  encodeTextFrame,
  type Frame,
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
import type { TlsMaterial } from "../platform/index.ts";
import { listenTcp, type TcpConn, type TcpHandlers, type TcpServer } from "../platform/tcp.ts";
import {
  BucketsRequest,
  DigestsRequest,
  GossipEnvelope,
  HintRequest,
  ListRequest,
  MoveDone,
  PaxosRequest,
  ReadRequest,
  VersionsRequest,
  WatchPollRequest,
  WriteRequest,
} from "../transport/index.ts";
import { parseJsonBytes } from "./body.ts";
import { asDkvError, DkvError } from "./errors.ts";
import type { GossipCall } from "./gossip-routes.ts";
import type { PeerCalls } from "./internal-routes.ts";

/** Every call a node answers on its link: its internal routes' functions, and gossip. */
export interface LinkCalls extends PeerCalls {
  readonly gossip: GossipCall;
}

/**
 * A frame's call: its route (the HTTP route's path, the metrics' label) and how it is answered,
 * from its payload (a view valid only during the call: parsed at once) and the member id that
 * signed the connection's hello (undefined without a cluster secret).
 */
interface LinkRoute {
  readonly path: string;
  serve(calls: LinkCalls, payload: Uint8Array, sender: string | undefined): unknown;
}

const json = <T>(
  path: string,
  schema: ZodType<T>,
  serve: (calls: LinkCalls, req: T, sender: string | undefined) => unknown,
): LinkRoute => ({ path, serve: (c, p, s) => serve(c, parseJsonBytes(p, schema), s) });

const I = "/internal/v1";
/** The calls by frame kind (src/core/peer-frame.ts); any other kind closes the connection. */
const ROUTES: ReadonlyMap<number, LinkRoute> = new Map<number, LinkRoute>([
  [FrameKind.read, json(`${I}/kv/read`, ReadRequest, (c, r) => c.read(r))],
  [FrameKind.write, json(`${I}/kv/write`, WriteRequest, (c, r) => c.write(r))],
  // The frames below are decoded before their call's first await (PeerCalls): no copy needed.
  [FrameKind.writeRecords, { path: `${I}/kv/write`, serve: (c, p) => c.writeFrame(p) }],
  [FrameKind.paxos, json(`${I}/paxos`, PaxosRequest, (c, r) => c.paxos(r))],
  [FrameKind.hints, json(`${I}/hints`, HintRequest, (c, r) => c.hints(r))],
  [FrameKind.digests, json(`${I}/ae/digests`, DigestsRequest, (c, r) => c.digests(r))],
  [FrameKind.buckets, json(`${I}/ae/buckets`, BucketsRequest, (c, r) => c.buckets(r))],
  [FrameKind.versions, json(`${I}/ae/versions`, VersionsRequest, (c, r) => c.versions(r))],
  [FrameKind.list, json(`${I}/kv/list`, ListRequest, (c, r) => c.list(r))],
  [FrameKind.watchPoll, json(`${I}/watch/poll`, WatchPollRequest, (c, r) => c.watchPoll(r))],
  [FrameKind.moveRecords, { path: `${I}/rebalance/records`, serve: (c, p) => c.moveRecords(p) }],
  [FrameKind.moveDone, json(`${I}/rebalance/done`, MoveDone, (c, r) => c.moveDone(r))],
  [FrameKind.status, { path: `${I}/status`, serve: (c) => c.status() }],
  [FrameKind.gossip, json(`${I}/gossip`, GossipEnvelope, (c, r, s) => c.gossip(r, s))],
]);

const UNSENT_BYTES_MAX = 1024 * 1024;
const IN_FLIGHT_MAX = 1024;

interface Session {
  readonly reader: FrameReader;
  /** When it last sent anything (ms, performance.now). */
  lastDataMs: number;
  readonly out: FrameCork;
  hello: boolean;
  /** The member id that signed the hello (with a cluster secret). */
  sender: string | undefined;
  inFlight: number;
  /**
   * Of those, watch polls: held open up to their wait by design (one per watch of the calling
   * member, up to its --max-watchers), so not counted toward IN_FLIGHT_MAX, which would
   * otherwise stop the connection's gossip and writes behind them.
   */
  polls: number;
  paused: boolean;
  closed: boolean;
}

export interface PeerTcpServerOptions {
  readonly host: string;
  readonly port: number;
  /** The internal body limit (internalBodyBytesMax). */
  readonly maxFrameBytes: number;
  readonly log: Logger;
  /** The cluster secret: every connection must open with a signed hello. */
  readonly auth?: ClusterAuth;
  /** TLS, with the member's HTTPS certificates (and client certificates under mutual TLS). */
  readonly tls?: TlsMaterial;
  /** Connections served at once (--max-connections); past it a new one is closed at once. */
  readonly maxConnections?: number;
  /** A connection with no call in flight that sends nothing this long is closed (--idle-timeout). */
  readonly idleTimeoutMs?: number;
  /** Each call answered: its route (as the HTTP route's label) and status (Metrics.observeLink). */
  readonly observe?: (route: string, status: number) => void;
  /**
   * How the port is listened on (the simulator's own connections; default the runtime's TCP,
   * over TLS with `tls`), and the clock of the idle timeout (default performance.now).
   */
  readonly listen?: (host: string, port: number, h: TcpHandlers) => TcpServer;
  readonly now?: () => number;
  /** Each connection's fate: accepted, refused_limit, refused_hello, idle_closed. */
  readonly onConnection?: (outcome: string) => void;
}

/** What a refused call's `error` frame says: the status and message its HTTP route would answer. */
function refusal(e: unknown, log: Logger): { status: number; message: string } {
  const err = asDkvError(e);
  if (!(err instanceof DkvError)) log.error(`peer link: unhandled error: ${String(e)}`);
  return err instanceof DkvError
    ? { status: err.status, message: err.message }
    : { status: 500, message: "internal error" };
}

/**
 * One call frame answered outside any connection (the simulator carries frames as messages of
 * its network, src/transport/peer-tcp.ts linkMethods on the other side): the answer frame, as a
 * link connection would send it. An unknown kind is answered as a 400 refusal here (a
 * connection is closed instead).
 */
export async function answerFrame(
  calls: LinkCalls,
  frame: { readonly id: number; readonly kind: number; readonly payload: Uint8Array },
  sender: string | undefined,
  log: Logger,
): Promise<Uint8Array> {
  const route = ROUTES.get(frame.kind);
  try {
    if (route === undefined) throw new DkvError("bad_request", `unknown frame kind ${frame.kind}`);
    const out = await route.serve(calls, frame.payload, sender);
    return encodeTextFrame(frame.id, FrameKind.ok, JSON.stringify(out));
  } catch (e) {
    return encodeTextFrame(frame.id, FrameKind.error, JSON.stringify(refusal(e, log)));
  }
}

/**
 * Listens on `o.port` (0: a port the OS picks; `port` says which). `calls` is asked on each
 * call: undefined (the member not built yet) refuses it as unavailable (503).
 */
export function listenPeerTcp(
  calls: () => LinkCalls | undefined,
  o: PeerTcpServerOptions,
): TcpServer {
  const sessions = new Map<TcpConn, Session>();

  const close = (c: TcpConn, s: Session, why: string) => {
    if (s.closed) return;
    s.closed = true;
    o.log.debug(`peer link from ${c.remote} closed: ${why}`);
    c.close();
  };

  const backPressure = (c: TcpConn, s: Session) => {
    const full = c.unsentBytes > UNSENT_BYTES_MAX || s.inFlight - s.polls >= IN_FLIGHT_MAX;
    if (full && !s.paused) {
      s.paused = true;
      c.pause();
    } else if (!full && s.paused) {
      s.paused = false;
      c.resume();
    }
  };

  const answer = (s: Session, f: { id: number; kind: number }, out: unknown) => {
    s.inFlight--;
    if (f.kind === FrameKind.watchPoll) s.polls--;
    o.observe?.(ROUTES.get(f.kind)?.path ?? "other", 200);
    const id = f.id;
    if (s.closed) return;
    s.out.push(encodeTextFrame(id, FrameKind.ok, JSON.stringify(out)));
  };
  const refuse = (s: Session, f: { id: number; kind: number }, e: unknown) => {
    s.inFlight--;
    if (f.kind === FrameKind.watchPoll) s.polls--;
    const id = f.id;
    const body = refusal(e, o.log);
    o.observe?.(ROUTES.get(f.kind)?.path ?? "other", body.status);
    if (s.closed) return;
    s.out.push(encodeTextFrame(id, FrameKind.error, JSON.stringify(body)));
  };

  /** Our hello in answer to `f` (and who signed it), or why the connection is refused. */
  const greet = (f: Frame): string | { answer: string; sender?: string } => {
    const hello = f.kind === FrameKind.hello ? readHello(f.payload) : undefined;
    if (hello === undefined) return "no hello";
    const auth = o.auth;
    if (auth === undefined) return { answer: helloText(undefined) };
    const claim = auth.readClaim(hello.signature);
    const why = typeof claim === "string" ? claim : auth.verifyRequest(
      claim,
      PEER_LINK_AUTH_METHOD,
      PEER_LINK_AUTH_TARGET,
      PEER_LINK_AUTH_BODY,
    );
    if (why !== undefined || typeof claim === "string") return why ?? "unsigned";
    return {
      sender: claim.sender,
      answer: helloText(
        auth.signAnswer(
          200,
          PEER_LINK_AUTH_METHOD,
          PEER_LINK_AUTH_TARGET,
          claim.nonce,
          PEER_LINK_AUTH_BODY,
        ),
      ),
    };
  };

  const serve = (s: Session, frame: Frame, route: LinkRoute) => {
    s.inFlight++;
    if (frame.kind === FrameKind.watchPoll) s.polls++;
    // The payload is a view of the reader's bytes: only the id and kind outlive this call.
    const f = { id: frame.id, kind: frame.kind };
    try {
      const member = calls();
      if (member === undefined) throw new DkvError("unavailable", "this member is starting");
      const out = route.serve(member, frame.payload, s.sender);
      if (out instanceof Promise) {
        return void out.then((v) => answer(s, f, v), (e) => refuse(s, f, e));
      }
      return answer(s, f, out);
    } catch (e) {
      return refuse(s, f, e);
    }
  };

  const maxConnections = o.maxConnections ?? Infinity;
  const clock = o.now ?? (() => performance.now());
  const idleMs = o.idleTimeoutMs ?? 0;
  let sweep: ReturnType<typeof setInterval> | undefined;
  if (idleMs > 0) {
    sweep = setInterval(() => {
      const now = clock();
      for (const [c, s] of sessions) {
        if (s.closed || s.inFlight > 0 || now - s.lastDataMs < idleMs) continue;
        o.onConnection?.("idle_closed");
        close(c, s, `idle for ${idleMs} ms`);
      }
    }, Math.max(100, Math.min(5000, Math.floor(idleMs / 4))));
    (sweep as { unref?: () => void }).unref?.();
  }

  const listen = o.listen ?? ((host, port, h) => listenTcp(host, port, h, o.tls));
  const server = listen(o.host, o.port, {
    open(c) {
      if (sessions.size >= maxConnections) {
        o.onConnection?.("refused_limit");
        o.log.debug(`peer link from ${c.remote} refused: ${maxConnections} connections already`);
        c.close();
        return;
      }
      o.onConnection?.("accepted");
      sessions.set(c, {
        lastDataMs: clock(),
        reader: new FrameReader(o.maxFrameBytes),
        // Answers leave in one write per task; the connection's back-pressure is checked then.
        out: new FrameCork((bytes) => {
          c.write(bytes);
          const s = sessions.get(c);
          if (s !== undefined && !s.closed) backPressure(c, s);
        }),
        hello: false,
        sender: undefined,
        inFlight: 0,
        polls: 0,
        paused: false,
        closed: false,
      });
    },
    data(c, bytes) {
      const s = sessions.get(c);
      if (s === undefined || s.closed) return;
      s.lastDataMs = clock();
      const frames = s.reader.push(bytes);
      if (typeof frames === "string") return close(c, s, frames);
      for (const f of frames) {
        if (!s.hello) {
          const greeting = greet(f);
          if (typeof greeting === "string") {
            o.onConnection?.("refused_hello");
            if (o.auth !== undefined && f.kind === FrameKind.hello) {
              o.auth.noteRefused(`peer link from ${c.remote}: ${greeting}`);
              // Why, for the caller's log (it then calls over HTTP); nothing else is answered.
              c.write(
                encodeTextFrame(
                  0,
                  FrameKind.error,
                  JSON.stringify({ status: 401, message: greeting }),
                ),
              );
            }
            return close(c, s, greeting);
          }
          s.hello = true;
          s.sender = greeting.sender;
          c.write(encodeTextFrame(0, FrameKind.hello, greeting.answer));
          continue;
        }
        const route = ROUTES.get(f.kind);
        if (route === undefined) return close(c, s, `unknown frame kind ${f.kind}`);
        serve(s, f, route);
        if (s.closed) return;
      }
      backPressure(c, s);
    },
    drained(c) {
      const s = sessions.get(c);
      if (s !== undefined && !s.closed) backPressure(c, s);
    },
    close(c) {
      const s = sessions.get(c);
      if (s !== undefined) s.closed = true;
      sessions.delete(c);
    },
  });
  return {
    stop: () => {
      if (sweep !== undefined) clearInterval(sweep);
      server.stop();
    },
    port: server.port,
  };
}
