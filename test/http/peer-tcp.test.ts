/**
 * The TCP peer link (src/transport/peer-tcp.ts, src/http/peer-tcp-server.ts) over real
 * loopback sockets: calls go over the link when it is up, answers matched by id in any order; a
 * refusal carries the status; a peer that advertises no link port, or that has something else on the link port, is
 * called over HTTP; a call with no answer times out; a closed link fails the calls in flight; a
 * malformed stream closes that connection only.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import {
  encodeFrame,
  encodeTextFrame,
  FrameKind,
  helloText,
  PEER_LINK_AUTH_BODY,
  PEER_LINK_AUTH_METHOD,
  PEER_LINK_AUTH_TARGET,
  PEER_LINK_MAGIC,
} from "../../src/core/peer-frame.ts";
import { DkvError } from "../../src/http/errors.ts";
import {
  type LinkCalls,
  listenPeerTcp,
  type PeerTcpServerOptions,
} from "../../src/http/peer-tcp-server.ts";
import { silentLogger } from "../../src/log.ts";
import {
  connectTcp,
  type TcpConn,
  type TcpHandlers,
  type TcpServer,
} from "../../src/platform/tcp.ts";
import {
  type PeerClient,
  PeerError,
  type WriteRequest,
  type WriteResponse,
} from "../../src/transport/index.ts";
import { tcpPeerClient } from "../../src/transport/peer-tcp.ts";
import { ClusterAuth } from "../../src/security/cluster-auth.ts";
import { freePort } from "../support/cluster.ts";
import { authFor, exchange } from "../support/peer-link.ts";
import { CertDir } from "../support/certs.ts";
import type { TlsMaterial } from "../../src/platform/index.ts";

const TO = "127.0.0.1:1";
const rec = (k: string) => ({ k, v: "v", t: 1000, c: 0, n: "x" });

/** HTTP stand-in: counts the calls that fell back to it. */
function fakeHttp() {
  const calls: string[] = [];
  const peers = {
    read: (a: string) => {
      calls.push(`read ${a}`);
      return Promise.resolve({ records: [null], held: [false] });
    },
    write: (a: string) => {
      calls.push(`write ${a}`);
      return Promise.resolve({ hadLive: [false] });
    },
    paxos: (a: string) => {
      calls.push(`paxos ${a}`);
      return Promise.resolve({ answers: [] });
    },
  } as unknown as PeerClient;
  return { peers, calls };
}

const stops: (() => void)[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s();
});

/** What each peer's gossip record advertises: its link port, by address. */
const advertised = new Map<string, number>();
afterEach(() => advertised.clear());

/**
 * A link server on a fresh port answering with `replica`, advertised for a made-up peer address
 * (port - 1: nothing there, so any call that did not go over the link reaches the fake HTTP).
 */
function serve(
  replica: Partial<LinkCalls>,
  auth?: ClusterAuth,
  tls?: TlsMaterial,
  extra: Partial<PeerTcpServerOptions> = {},
): { address: string; server: TcpServer } {
  for (let attempt = 1;; attempt++) {
    const port = freePort();
    try {
      const server = listenPeerTcp(() => replica as LinkCalls, {
        host: "127.0.0.1",
        port,
        maxFrameBytes: 64 * 1024,
        log: silentLogger,
        ...(auth === undefined ? {} : { auth }),
        ...(tls === undefined ? {} : { tls }),
        ...extra,
      });
      stops.push(() => server.stop());
      const address = `127.0.0.1:${port - 1}`;
      advertised.set(address, port);
      return { address, server };
    } catch (e) {
      if (attempt >= 5) throw e;
    }
  }
}

/** Was a connection sent `bytes` closed by the server? */
const closedAfter = async (linkPort: number, bytes: Uint8Array) =>
  (await exchange(linkPort, bytes)).closed;

/** A replica that holds every key asked for (value "v"). */
const reader = () => ({
  read: (req: { keys: string[] }) => ({
    records: req.keys.map(rec),
    held: req.keys.map(() => true),
  }),
});

/** A read of key "a" through `peers`. */
const read = (peers: PeerClient, address: string) =>
  peers.read(address, { to: TO, keys: ["a"] }, 1000);

function client(http: PeerClient, auth?: ClusterAuth, refused?: string[], tls?: TlsMaterial) {
  const peers = tcpPeerClient(http, {
    ...(auth === undefined ? {} : { auth }),
    ...(refused === undefined ? {} : { onRefused: (_a: string, why: string) => refused.push(why) }),
    linkPort: (a) => advertised.get(a),
    maxFrameBytes: 64 * 1024,
    dial: (host, port, h) => connectTcp(host, port, h, tls),
  });
  stops.push(() => peers.close());
  return peers;
}

describe("TCP peer link", () => {
  test("calls go over the link, many in flight, each answered by its own id", async () => {
    const pending: (() => void)[] = [];
    const { address } = serve({
      read: (req) => ({ records: req.keys.map(rec), held: req.keys.map(() => true) }),
      write: (req: WriteRequest) =>
        new Promise<WriteResponse>((resolve) =>
          pending.push(() => resolve({ hadLive: req.records.map((r) => r.k === "live") }))
        ),
    });
    const http = fakeHttp();
    const peers = client(http.peers);
    expect(await peers.connect(address)).toBe(true);
    expect(await peers.read(address, { to: TO, keys: ["a", "b"] }, 1000)).toEqual({
      records: [rec("a"), rec("b")],
      held: [true, true],
    });
    const writes = ["live", "dead", "live"].map((k) =>
      peers.write(address, { to: TO, records: [rec(k)] }, 1000)
    );
    while (pending.length < 3) await Bun.sleep(1);
    // Answered last to first.
    for (const answer of pending.reverse()) answer();
    expect(await Promise.all(writes)).toEqual([
      { hadLive: [true] },
      { hadLive: [false] },
      { hadLive: [true] },
    ]);
    expect(http.calls).toEqual([]);
  });

  test("a call never waits for a link to open: it goes over HTTP, the next ones over the link", async () => {
    const { address } = serve(reader());
    const http = fakeHttp();
    const peers = client(http.peers);
    // The first call starts the dial and goes over HTTP at once.
    await read(peers, address);
    expect(http.calls).toEqual([`read ${address}`]);
    // Once the hello came back, calls take the link.
    for (let i = 0; i < 100 && (await read(peers, address)).held[0] !== true; i++) {
      await Bun.sleep(5);
    }
    expect(await read(peers, address)).toEqual({ records: [rec("a")], held: [true] });
    const overHttp = http.calls.length;
    await read(peers, address);
    expect(http.calls).toHaveLength(overHttp);
  });

  test("a refusal is a PeerError with the route's status; a malformed request is a 400", async () => {
    const { address } = serve({
      read: () => {
        throw new DkvError("conflict", "this is member y, not x");
      },
      write: () => Promise.reject(new DkvError("store_full", "full")),
    });
    const peers = client(fakeHttp().peers);
    expect(await peers.connect(address)).toBe(true);
    const err = await peers.read(address, { to: TO, keys: ["a"] }, 1000).catch((e) => e);
    expect(err).toBeInstanceOf(PeerError);
    expect(err.status).toBe(409);
    expect(err.message).toContain("this is member y, not x");
    const full = await peers.write(address, { to: TO, records: [rec("a")] }, 1000).catch((e) => e);
    expect(full.status).toBe(507);
    // Checked by the receiver's zod schema, as over HTTP (a version below 0).
    const bad = { ...rec("a"), t: -1 };
    const invalid = await peers.write(address, { to: TO, records: [bad] }, 1000).catch((e) => e);
    expect(invalid).toBeInstanceOf(PeerError);
    expect(invalid.status).toBe(400);
  });

  test("a peer that advertises no link port is called over HTTP, even with a link listening", async () => {
    const { address } = serve({
      read: (req) => ({ records: req.keys.map(rec), held: req.keys.map(() => true) }),
    });
    advertised.delete(address);
    const http = fakeHttp();
    const peers = client(http.peers);
    await peers.read(address, { to: TO, keys: ["a"] }, 1000);
    expect(http.calls).toEqual([`read ${address}`]);
    // Once its record advertises the port, the link is used.
    advertised.set(address, Number(address.split(":")[1]) + 1);
    expect(await peers.connect(address)).toBe(true);
    expect(await peers.read(address, { to: TO, keys: ["a"] }, 1000)).toEqual({
      records: [rec("a")],
      held: [true],
    });
    expect(http.calls).toHaveLength(1);
  });

  test("a peer whose advertised port is closed, or something else, is called over HTTP", async () => {
    const http = fakeHttp();
    const peers = client(http.peers);
    const port = freePort();
    const nothing = `127.0.0.1:${port - 1}`;
    advertised.set(nothing, port);
    expect(await peers.write(nothing, { to: TO, records: [rec("a")] }, 1000)).toEqual({
      hadLive: [false],
    });
    // Not dialled again at once: straight to HTTP.
    await peers.read(nothing, { to: TO, keys: ["a"] }, 1000);
    expect(http.calls).toEqual([`write ${nothing}`, `read ${nothing}`]);

    // An HTTP server where the link should be: no hello, so HTTP.
    const other = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("hi") });
    stops.push(() => other.stop(true));
    const notLink = `127.0.0.1:${other.port! - 1}`;
    advertised.set(notLink, other.port!);
    await peers.paxos(notLink, { to: TO, ops: [] } as never, 1000);
    expect(http.calls.at(-1)).toBe(`paxos ${notLink}`);
  });

  test("a link that keeps failing is tried ever more rarely (doubling, from retryMs)", async () => {
    let t = 0;
    let dials = 0;
    const http = fakeHttp();
    const peers = tcpPeerClient(http.peers, {
      linkPort: () => 9,
      maxFrameBytes: 64 * 1024,
      dial: () => {
        dials++;
        return Promise.reject(new Error("refused"));
      },
      retryMs: 100,
      now: () => t,
    });
    stops.push(() => peers.close());
    const dialsAt: number[] = [];
    for (t = 0; t <= 1000; t += 10) {
      const before = dials;
      await peers.read("127.0.0.1:8", { to: TO, keys: ["a"] }, 1000);
      if (dials > before) dialsAt.push(t);
    }
    // Tries at 0, then 100, 200, 400 and 800 ms after each failure.
    expect(dialsAt).toEqual([0, 100, 300, 700]);
    expect(http.calls).toHaveLength(101);
  });

  /** A link over a fake connection: `answer` delivers frames as if the peer sent them. */
  async function fakeLink(unsent: () => number = () => 0, unsentBytesMax?: number) {
    let handlers: TcpHandlers | undefined;
    const sent: Uint8Array[] = [];
    const conn: TcpConn = {
      write: (b) => void sent.push(b.slice()),
      get unsentBytes() {
        return unsent();
      },
      pause() {},
      resume() {},
      close() {},
      remote: "127.0.0.1:9",
    };
    const http = fakeHttp();
    const peers = tcpPeerClient(http.peers, {
      linkPort: () => 9,
      maxFrameBytes: 64 * 1024,
      ...(unsentBytesMax === undefined ? {} : { unsentBytesMax }),
      dial: (_host, _port, h) => {
        handlers = h;
        h.open(conn);
        return Promise.resolve(conn);
      },
    });
    stops.push(() => peers.close());
    const peer = "127.0.0.1:8";
    const connecting = peers.connect(peer);
    const answer = (f: Uint8Array) => handlers!.data(conn, f);
    answer(encodeTextFrame(0, FrameKind.hello, helloText(undefined)));
    expect(await connecting).toBe(true);
    return { peers, peer, answer, sent, http };
  }

  test("back-pressure: while a link's unsent bytes pass the limit, calls go over HTTP", async () => {
    let unsent = 0;
    const { peers, peer, http } = await fakeLink(() => unsent, 1000);
    // Room on the link: the call goes there (nothing answers it, so it times out).
    const late = await peers.read(peer, { to: TO, keys: ["a"] }, 30).catch((e) => e);
    expect(late).toBeInstanceOf(PeerError);
    expect(http.calls).toEqual([]);
    // Over the limit: straight to HTTP; room again: the link.
    unsent = 1001;
    await peers.read(peer, { to: TO, keys: ["a"] }, 30);
    expect(http.calls).toEqual([`read ${peer}`]);
    unsent = 1000;
    expect(await peers.read(peer, { to: TO, keys: ["a"] }, 30).catch((e) => e)).toBeInstanceOf(
      PeerError,
    );
    expect(http.calls).toHaveLength(1);
  });

  test("an answer of an unknown kind fails the link and the call it answers, at once", async () => {
    const { peers, peer, answer } = await fakeLink();
    const call = peers.read(peer, { to: TO, keys: ["a"] }, 60_000).catch((e) => e);
    await Bun.sleep(1);
    answer(encodeTextFrame(1, FrameKind.read, "{}"));
    const err = await call;
    expect(err).toBeInstanceOf(PeerError);
    expect(err.message).toContain("unexpected frame kind 1");
  });

  test("a call with a short timeout fails on time beside a long one in flight", async () => {
    const { peers, peer } = await fakeLink();
    const long = peers.read(peer, { to: TO, keys: ["a"] }, 10_000).catch((e) => e);
    const started = performance.now();
    const short = await peers.read(peer, { to: TO, keys: ["b"] }, 50).catch((e) => e);
    expect(short).toBeInstanceOf(PeerError);
    expect(short.message).toContain("timed out after 50 ms");
    // The sweep set for the 10 s call (every 1 s) would have failed it a second late.
    expect(performance.now() - started).toBeLessThan(900);
    peers.close();
    expect(await long).toBeInstanceOf(PeerError);
  });

  test("a peer that advertises another port (restarted) is dialled at once, not after the backoff", async () => {
    let port = 9;
    const dialled: number[] = [];
    const http = fakeHttp();
    const peers = tcpPeerClient(http.peers, {
      linkPort: () => port,
      maxFrameBytes: 64 * 1024,
      dial: (_host, p) => {
        dialled.push(p);
        return Promise.reject(new Error("refused"));
      },
      retryMs: 10_000,
      now: () => 0,
    });
    stops.push(() => peers.close());
    const peer = "127.0.0.1:8";
    expect(await peers.connect(peer)).toBe(false);
    // The same port: inside its backoff, not dialled again.
    expect(await peers.connect(peer)).toBe(false);
    expect(dialled).toEqual([9]);
    port = 10;
    expect(await peers.connect(peer)).toBe(false);
    expect(dialled).toEqual([9, 10]);
  });

  test("a call with no answer times out; a closed link fails the calls in flight", async () => {
    const { address, server } = serve({
      write: () => new Promise<WriteResponse>(() => {}),
    });
    const peers = client(fakeHttp().peers);
    expect(await peers.connect(address)).toBe(true);
    const started = performance.now();
    const late = await peers.write(address, { to: TO, records: [rec("a")] }, 200).catch((e) => e);
    expect(late).toBeInstanceOf(PeerError);
    expect(late.message).toContain("timed out after 200 ms");
    expect(performance.now() - started).toBeLessThan(1000);

    const inFlight = peers.write(address, { to: TO, records: [rec("a")] }, 5000).catch((e) => e);
    await Bun.sleep(20);
    server.stop();
    const closed = await inFlight;
    expect(closed).toBeInstanceOf(PeerError);
    expect(closed.message).toContain("tcp peer link");
  });

  test("a malformed stream closes that connection only", async () => {
    const { address } = serve({
      read: (req) => ({ records: req.keys.map(() => null), held: req.keys.map(() => false) }),
    });
    const linkPort = Number(address.split(":")[1]) + 1;
    const hello = encodeTextFrame(0, FrameKind.hello, PEER_LINK_MAGIC);
    const withHello = (b: Uint8Array) => new Uint8Array([...hello, ...b]);
    // No hello first.
    expect(await closedAfter(linkPort, encodeTextFrame(1, FrameKind.read, "{}"))).toBe(true);
    // A length below 5, an oversize frame, an unknown kind.
    expect(await closedAfter(linkPort, withHello(new Uint8Array([0, 0, 0, 2, 0, 0])))).toBe(true);
    expect(await closedAfter(linkPort, withHello(new Uint8Array([0, 2, 0, 0, 0, 0, 0, 1, 1]))))
      .toBe(true);
    expect(await closedAfter(linkPort, withHello(encodeFrame(1, 0x42, new Uint8Array(1))))).toBe(
      true,
    );
    // A bad request body is answered (a 400), not a reason to close.
    expect(await closedAfter(linkPort, withHello(encodeTextFrame(1, FrameKind.read, "not json"))))
      .toBe(
        false,
      );
    // The server still serves a proper link.
    const peers = client(fakeHttp().peers);
    expect(await peers.connect(address)).toBe(true);
    expect(await peers.read(address, { to: TO, keys: ["a"] }, 1000)).toEqual({
      records: [null],
      held: [false],
    });
  });

  describe("with a cluster secret", () => {
    test("the same secret: the hellos are signed both ways and calls go over the link", async () => {
      const { address } = serve(reader(), authFor("server", "s3cret"));
      const http = fakeHttp();
      const refused: string[] = [];
      const peers = client(http.peers, authFor("client", "s3cret"), refused);
      expect(await peers.connect(address)).toBe(true);
      expect(await read(peers, address)).toEqual({ records: [rec("a")], held: [true] });
      expect(http.calls).toEqual([]);
      expect(refused).toEqual([]);
    });

    test("a wrong secret, or none, is refused: the call goes over HTTP", async () => {
      const serverAuth = authFor("server", "s3cret");
      const { address } = serve(reader(), serverAuth);
      for (const auth of [authFor("client", "another secret"), undefined]) {
        const http = fakeHttp();
        const refused: string[] = [];
        const peers = client(http.peers, auth, refused);
        expect(await peers.connect(address)).toBe(false);
        await read(peers, address);
        expect(http.calls).toEqual([`read ${address}`]);
        expect(refused).toHaveLength(1);
        expect(refused[0]).toContain(
          auth === undefined ? "no x-dkv-auth header" : "bad signature",
        );
      }
      expect(serverAuth.refused).toBe(2);
    });

    test("a server without the secret (an unsigned hello back) is not used", async () => {
      const { address } = serve(reader());
      const http = fakeHttp();
      const auth = authFor("client", "s3cret");
      const refused: string[] = [];
      const peers = client(http.peers, auth, refused);
      expect(await peers.connect(address)).toBe(false);
      await read(peers, address);
      expect(http.calls).toEqual([`read ${address}`]);
      expect(refused[0]).toContain("answer without x-dkv-auth");
      // A server with another secret: its hello's signature does not check out either (it
      // refuses ours first, so here the client's own check is driven with a forged answer).
      expect(auth.refused).toBe(1);
    });

    test("a hello signed outside the time window, or replayed, is refused before any call", async () => {
      const { address } = serve(reader(), authFor("server", "s3cret"));
      const linkPort = advertised.get(address)!;
      const signed = (auth: ClusterAuth) => {
        const { header } = auth.signRequest(
          address,
          PEER_LINK_AUTH_METHOD,
          PEER_LINK_AUTH_TARGET,
          PEER_LINK_AUTH_BODY,
        );
        return encodeTextFrame(0, FrameKind.hello, helloText(header));
      };
      const call = encodeTextFrame(1, FrameKind.read, JSON.stringify({ to: TO, keys: ["a"] }));
      const withCall = (hello: Uint8Array) => new Uint8Array([...hello, ...call]);

      // A good hello, then a call in the same write: both answered, the connection kept.
      const good = signed(authFor("client", "s3cret"));
      const ok = await exchange(linkPort, withCall(good));
      expect(ok.closed).toBe(false);
      expect(ok.got.map((f) => f.kind)).toEqual([FrameKind.hello, FrameKind.ok]);
      // The same hello again (replayed): refused, the call behind it not served.
      const again = await exchange(linkPort, withCall(good));
      expect(again.closed).toBe(true);
      expect(again.got.map((f) => f.kind)).toEqual([FrameKind.error]);
      expect(again.got[0]!.text).toContain("replayed");
      // Signed a minute ago (the window is 5 s).
      const old = await exchange(
        linkPort,
        withCall(signed(authFor("c2", "s3cret", { now: () => Date.now() - 60_000 }))),
      );
      expect(old.closed).toBe(true);
      expect(old.got[0]!.text).toContain("behind this member's clock");
      // Unsigned, and a call without any hello.
      const bare = await exchange(
        linkPort,
        withCall(encodeTextFrame(0, FrameKind.hello, PEER_LINK_MAGIC)),
      );
      expect(bare.got.map((f) => f.kind)).toEqual([FrameKind.error]);
      const none = await exchange(linkPort, call);
      expect(none).toEqual({ got: [], closed: true });
    });
  });

  describe("over TLS", () => {
    const certs = new CertDir().ca("cluster").ca("other");
    certs.cert("a", "cluster").cert("b", "cluster").cert("stranger", "other");
    afterAll(() => certs.remove());
    const material = (name: string, ca: string, clientAuth = false): TlsMaterial => ({
      cert: certs.pem(`${name}.crt`),
      key: certs.pem(`${name}.key`),
      ca: certs.pem(`${ca}-ca.crt`),
      clientAuth,
    });

    test("the cluster's certificates: calls go over the TLS link", async () => {
      const { address } = serve(reader(), undefined, material("a", "cluster", true));
      const http = fakeHttp();
      const refused: string[] = [];
      const peers = client(http.peers, undefined, refused, material("b", "cluster"));
      expect(await peers.connect(address)).toBe(true);
      expect(await read(peers, address)).toEqual({ records: [rec("a")], held: [true] });
      expect(http.calls).toEqual([]);
      expect(refused).toEqual([]);
    });

    test("a server whose certificate is not from our CA, a plain one, or a client without TLS: HTTP", async () => {
      const { address } = serve(reader(), undefined, material("stranger", "other"));
      const http = fakeHttp();
      const peers = client(http.peers, undefined, [], material("b", "cluster"));
      expect(await peers.connect(address)).toBe(false);
      await read(peers, address);
      expect(http.calls).toEqual([`read ${address}`]);
      // A plain link server, dialled with TLS.
      const plain = serve(reader()).address;
      expect(await peers.connect(plain)).toBe(false);
      await read(peers, plain);
      expect(http.calls.at(-1)).toBe(`read ${plain}`);
      // A TLS link server, dialled in clear: the hello never comes back.
      const secured = serve(reader(), undefined, material("a", "cluster")).address;
      const clear = client(http.peers);
      expect(await clear.connect(secured)).toBe(false);
      await read(clear, secured);
      expect(http.calls.at(-1)).toBe(`read ${secured}`);
    });

    test("mutual TLS: a client certificate from another CA is refused (HTTP)", async () => {
      const { address } = serve(reader(), undefined, material("a", "cluster", true));
      const http = fakeHttp();
      const peers = client(http.peers, undefined, [], material("stranger", "cluster"));
      expect(await peers.connect(address)).toBe(false);
      await read(peers, address);
      expect(http.calls).toEqual([`read ${address}`]);
    });
  });

  describe("limits and metrics", () => {
    /** A raw connection to `port`: whether the server closed it within `ms`. */
    const closedWithin = async (port: number, ms: number, bytes?: Uint8Array) => {
      let closed = false;
      const conn = await connectTcp("127.0.0.1", port, {
        open() {},
        data() {},
        close() {
          closed = true;
        },
      });
      if (bytes !== undefined) conn.write(bytes);
      for (let i = 0; i < ms / 10 && !closed; i++) await Bun.sleep(10);
      const byServer = closed;
      return { byServer, conn };
    };
    const hello = encodeTextFrame(0, FrameKind.hello, PEER_LINK_MAGIC);

    test("past maxConnections a new connection is closed at once; counted", async () => {
      const outcomes: string[] = [];
      const { address } = serve({}, undefined, undefined, {
        maxConnections: 2,
        onConnection: (o) => outcomes.push(o),
      });
      const port = advertised.get(address)!;
      const first = await closedWithin(port, 100, hello);
      const second = await closedWithin(port, 100, hello);
      const third = await closedWithin(port, 300, hello);
      expect([first.byServer, second.byServer, third.byServer]).toEqual([false, false, true]);
      expect(outcomes).toEqual(["accepted", "accepted", "refused_limit"]);
      // One closes: there is room again.
      first.conn.close();
      await Bun.sleep(50);
      expect((await closedWithin(port, 100, hello)).byServer).toBe(false);
      second.conn.close();
    });

    test("a connection silent past the idle timeout is closed, not one with a call in flight", async () => {
      const outcomes: string[] = [];
      const { address } = serve(
        { write: () => new Promise<WriteResponse>(() => {}) },
        undefined,
        undefined,
        { idleTimeoutMs: 200, onConnection: (o) => outcomes.push(o) },
      );
      const port = advertised.get(address)!;
      const idle = await closedWithin(port, 1500, hello);
      expect(idle.byServer).toBe(true);
      const call = encodeTextFrame(
        1,
        FrameKind.write,
        JSON.stringify({ to: TO, records: [rec("a")] }),
      );
      const busy = await closedWithin(port, 1000, new Uint8Array([...hello, ...call]));
      expect(busy.byServer).toBe(false);
      busy.conn.close();
      expect(outcomes).toEqual(["accepted", "idle_closed", "accepted"]);
    });

    test("each call answered is counted by route and status", async () => {
      const seen: string[] = [];
      const { address } = serve(
        {
          read: (req) => ({ records: req.keys.map(rec), held: req.keys.map(() => true) }),
          write: () => Promise.reject(new DkvError("store_full", "full")),
        },
        undefined,
        undefined,
        { observe: (route, status) => seen.push(`${route} ${status}`) },
      );
      const peers = client(fakeHttp().peers);
      expect(await peers.connect(address)).toBe(true);
      await peers.read(address, { to: TO, keys: ["a"] }, 1000);
      await peers.write(address, { to: TO, records: [rec("a")] }, 1000).catch(() => {});
      expect(seen).toEqual(["/internal/v1/kv/read 200", "/internal/v1/kv/write 507"]);
    });
  });
});
