/**
 * One contract, three transports: the same peer-client cases run over real HTTP on loopback, over
 * the TCP peer link (every call but the public /health) and over the in-memory network, so tests
 * that use the in-memory one exercise what production does;
 * each without and with a cluster secret (every call then signed and checked, both ways).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { encodeMoveFrame, encodeWriteFrame } from "../../src/core/move-frame.ts";
import { DkvError } from "../../src/http/errors.ts";
import { silentLogger } from "../../src/log.ts";
import { DataNode } from "../../src/node/data-node.ts";
import { realScheduler } from "../../src/platform/scheduler.ts";
import { ClusterAuth } from "../../src/security/cluster-auth.ts";
import {
  createPeerClient,
  fromWire,
  MemoryNetwork,
  type PeerClient,
  PeerError,
} from "../../src/transport/index.ts";
import { freePort } from "../support/cluster.ts";
import { listenPeerTcp } from "../../src/http/peer-tcp-server.ts";
import { connectTcp, type TcpServer } from "../../src/platform/tcp.ts";
import { tcpPeerClient } from "../../src/transport/peer-tcp.ts";
import { testConfig } from "./memory-cluster.ts";

interface Harness {
  peers: PeerClient;
  address: string;
  /** An address where nothing listens. */
  dead: string;
  node: DataNode;
  /** Resolves once calls can be made (the TCP link up). */
  ready?(): Promise<void>;
  close(): void;
}

const SECRET = new TextEncoder().encode("the transport contract's cluster secret");

/** A signer for member `id` (the client speaks as "x:1", the sender of the gossip case). */
const authFor = (id: string) =>
  new ClusterAuth([SECRET], {
    selfId: id,
    windowMs: 60_000,
    now: Date.now,
    random: Math.random,
    warn: () => {},
  });

function makeNode(address: string, secret: boolean): DataNode {
  const [host, port] = address.split(":");
  const node = new DataNode(
    testConfig([
      "--role",
      "node",
      "--host",
      host!,
      "--port",
      port!,
      "--orchestrator",
      "127.0.0.1:1",
    ]),
    createPeerClient(() => Promise.reject(new Error("unused"))),
    silentLogger,
    realScheduler,
    secret ? authFor(address) : undefined,
  );
  node.useView({
    instance: "contract",
    epoch: 1,
    replicationFactor: 1,
    partitions: 8,
    members: [{ id: address, address, role: "node", state: "UP", inRing: true, incarnation: 1 }],
  });
  return node;
}

const clientOpts = (secret: boolean) => (secret ? { auth: authFor("x:1") } : {});

const harnesses: Record<string, (secret: boolean) => Harness> = {
  http: (secret) => {
    // A port this run never hands out again, so nothing of ours listens there.
    const deadPort = freePort();
    // Listen on a fresh port; if another process took it since it was probed, take another.
    for (let attempt = 1;; attempt++) {
      const port = freePort();
      const address = `127.0.0.1:${port}`;
      const node = makeNode(address, secret);
      let server: ReturnType<typeof Bun.serve>;
      try {
        server = Bun.serve({ hostname: "127.0.0.1", port, fetch: (r) => node.app.fetch(r) });
      } catch (e) {
        if (attempt >= 5) throw e;
        continue;
      }
      return {
        peers: createPeerClient((url, init) => fetch(url, init), undefined, clientOpts(secret)),
        address,
        dead: `127.0.0.1:${deadPort}`,
        node,
        close: () => server.stop(true),
      };
    }
  },
  /**
   * The TCP peer link: every call but /health over the link; with a cluster secret the hellos
   * are signed both ways. None falls back to HTTP here (it would fail), so every case that
   * passes went over the link.
   */
  tcp: (secret) => {
    const http = harnesses.http!(secret);
    for (let attempt = 1;; attempt++) {
      const linkPort = freePort();
      let link: TcpServer;
      try {
        link = listenPeerTcp(() => http.node.peerCalls, {
          host: "127.0.0.1",
          port: linkPort,
          maxFrameBytes: 1024 * 1024,
          log: silentLogger,
          ...(secret ? { auth: authFor(http.address) } : {}),
        });
      } catch (e) {
        if (attempt >= 5) throw e;
        continue;
      }
      const notOverHttp = () => Promise.reject(new Error("went over HTTP, not the link"));
      const only = Object.fromEntries(
        Object.keys(http.peers).map((k) => [k, k === "health" ? http.peers.health : notOverHttp]),
      ) as unknown as PeerClient;
      const peers = tcpPeerClient(
        only,
        {
          linkPort: (a) => (a === http.address ? linkPort : undefined),
          maxFrameBytes: 1024 * 1024,
          dial: connectTcp,
          ...clientOpts(secret),
        },
      );
      return {
        ...http,
        peers,
        ready: async () => {
          if (!(await peers.connect(http.address))) throw new Error("the link did not come up");
        },
        close: () => {
          peers.close();
          link.stop();
          http.close();
        },
      };
    }
  },
  memory: (secret) => {
    const net = new MemoryNetwork();
    const node = makeNode("mem:1", secret);
    net.servers.set("mem:1", node.app);
    return {
      peers: createPeerClient(net.fetch, undefined, clientOpts(secret)),
      address: "mem:1",
      dead: "mem:2",
      node,
      close() {},
    };
  },
};

for (const [name, make] of Object.entries(harnesses)) {
  for (const secret of [false, true]) {
    describe(`peer transport contract: ${name}${secret ? ", with a cluster secret" : ""}`, () => {
      const h = make(secret);
      beforeAll(async () => await h.ready?.());
      afterAll(() => h.close());

      test("write then read returns the record; reading a missing key gives null", async () => {
        const rec = { k: "key", v: "value", t: 1000, c: 2, n: "x" };
        expect(await h.peers.write(h.address, { to: h.node.config.nodeId, records: [rec] }, 1000))
          .toEqual({
            hadLive: [false],
          });
        expect(await h.peers.write(h.address, { to: h.node.config.nodeId, records: [rec] }, 1000))
          .toEqual({ hadLive: [true] });
        const candidates = Array.from({ length: 100 }, (_, i) => `other-${i}`);
        const sameP = candidates.find((k) =>
          h.node.store.partitionOf(k) === h.node.store.partitionOf("key")
        )!;
        const otherP = candidates.find((k) =>
          h.node.store.partitionOf(k) !== h.node.store.partitionOf("key")
        )!;
        // `held` says whether the member holds the key's partition: here it owns every partition.
        expect(
          await h.peers.read(
            h.address,
            { to: h.node.config.nodeId, keys: ["key", sameP, otherP] },
            1000,
          ),
        ).toEqual({
          records: [rec, null, null],
          held: [true, true, true],
        });
      });

      test("records written as the store holds them read back; a differing replica list is stale", async () => {
        const to = h.node.config.nodeId;
        const v = (wallMs: number) => ({ wallMs, counter: 0, nodeId: "x" });
        const records = [
          { key: "wr-text", value: "héllo", version: v(1000), tombstone: false },
          {
            key: "wr-bin",
            value: new Uint8Array([0xff, 0, 1]),
            version: v(1000),
            tombstone: false,
          },
          { key: "wr-ttl", value: "t", version: v(1000), tombstone: false, expiresAt: 9e12 },
        ];
        expect(await h.peers.writeRecords(h.address, to, records, undefined, 1000)).toEqual({
          hadLive: [false, false, false],
        });
        const got = await h.peers.read(
          h.address,
          { to, keys: ["wr-text", "wr-bin", "wr-ttl"] },
          1000,
        );
        expect(got.records.map((r) => r && fromWire(r))).toEqual(records);
        // A fingerprint that is not this member's list for the key: not applied, said stale.
        const p = h.node.store.partitionOf("wr-text");
        const set = h.node.ctx.ring()!.setHash[p]!;
        const newer = { ...records[0]!, value: "newer", version: v(2000) };
        expect(await h.peers.writeRecords(h.address, to, [newer], [(set + 1) % 0xffff_ffff], 1000))
          .toEqual({ hadLive: [false], stale: [true] });
        expect(await h.peers.writeRecords(h.address, to, [newer], [set], 1000)).toEqual({
          hadLive: [true],
        });
        // Another member's frame is refused, as a JSON write is.
        const err = await h.peers.writeRecords(h.address, "someone:1", [newer], undefined, 1000)
          .catch((e) => e);
        expect(err).toBeInstanceOf(PeerError);
        expect(err.status).toBe(409);
      });

      test("a tombstone travels with its flag", async () => {
        const live = { k: "tomb-key", v: "value", t: 1000, c: 0, n: "x" };
        const tomb = { k: "tomb-key", v: "", t: 2000, c: 0, n: "x", d: true };
        const to = h.node.config.nodeId;
        expect(await h.peers.write(h.address, { to, records: [live] }, 1000)).toEqual({
          hadLive: [false],
        });
        expect(await h.peers.write(h.address, { to, records: [tomb] }, 1000)).toEqual({
          hadLive: [true],
        });
        expect((await h.peers.read(h.address, { to, keys: ["tomb-key"] }, 1000)).records[0])
          .toEqual(tomb);
      });

      test("health names the member", async () => {
        expect(await h.peers.health(h.address, 1000)).toMatchObject({
          status: "UP",
          id: h.address,
          role: "node",
        });
      });

      test("a gossip message is taken in: a full table adds its members", async () => {
        const stranger = {
          id: "x:1",
          address: "x:1",
          role: "node" as const,
          incarnation: 7,
          state: "UP" as const,
          inRing: true,
        };
        await h.peers.gossip(h.address, {
          msg: {
            type: "push-pull",
            from: "x:1",
            fromAddress: "x:1",
            reply: true,
            members: [stranger],
          },
        }, 1000);
        expect(h.node.agent.swim.member("x:1")).toEqual(stranger);
      });

      test("a malformed gossip message is a 400", async () => {
        const err = await h.peers.gossip(h.address, { msg: { type: "ping" } as never }, 1000).catch(
          (
            e,
          ) => e,
        );
        expect(err).toBeInstanceOf(PeerError);
        expect(err.status).toBe(400);
      });

      test("hints are stored for their target", async () => {
        const rec = { k: "hinted", v: "v", t: 1000, c: 0, n: "x" };
        expect(await h.peers.hint(h.address, { target: "y:1", records: [rec] }, 1000)).toEqual({
          stored: 1,
        });
        expect(h.node.hints.count).toBeGreaterThanOrEqual(1);
      });

      test("anti-entropy: digests, buckets and versions describe what is stored", async () => {
        const to = h.node.config.nodeId;
        const rec = { k: "ae-key", v: "value", t: 1000, c: 0, n: "x" };
        await h.peers.write(h.address, { to, records: [rec] }, 1000);
        const p = h.node.store.partitionOf("ae-key");
        const d = await h.peers.digests(h.address, { partitions: [p] }, 1000);
        expect(d.digests[0]!.count).toBeGreaterThanOrEqual(1);
        expect(d.held).toEqual([true]);
        const b = await h.peers.buckets(h.address, p, 1000);
        const bucket = b.buckets.findIndex((x) => x.count > 0);
        expect(bucket).not.toBe(-1);
        const all = b.buckets.map((_, i) => i);
        const v = await h.peers.versions(
          h.address,
          { partition: p, buckets: all, limit: 1000 },
          1000,
        );
        expect(v.entries.find((e) => e.k === "ae-key")).toEqual({
          k: "ae-key",
          t: 1000,
          c: 0,
          n: "x",
          s: 5,
        });
        // A partition the ring does not have is refused, as over HTTP.
        const err = await h.peers.buckets(h.address, 1_000_000, 1000).catch((e) => e);
        expect(err).toBeInstanceOf(PeerError);
        expect(err.status).toBe(400);
      });

      test("listing and a watch poll see a write", async () => {
        const to = h.node.config.nodeId;
        await h.peers.write(h.address, {
          to,
          records: [{ k: "ls/a", v: "1", t: 1000, c: 0, n: "x" }],
        }, 1000);
        const l = await h.peers.list(h.address, { prefix: "ls/", limit: 10 }, 1000);
        expect(l.records.map((r) => r.k)).toEqual(["ls/a"]);
        expect(l.more).toBe(false);
        const w = await h.peers.watchPoll(h.address, {
          prefix: "",
          after: -1,
          limit: 10,
          waitMs: 0,
        }, 1000);
        expect(w.gap).toBe(false);
        expect(typeof w.epoch).toBe("string");
      });

      test("a move frame's records are applied; the move's end is taken", async () => {
        const to = h.node.config.nodeId;
        const frame = encodeMoveFrame(to, [{
          key: "moved",
          value: "bytes",
          version: { wallMs: 1000, counter: 0, nodeId: "x" },
          tombstone: false,
        } as never]);
        expect(await h.peers.moveRecords(h.address, frame, 1000)).toEqual({ applied: 1 });
        expect((await h.peers.read(h.address, { to, keys: ["moved"] }, 1000)).records[0]?.v)
          .toBe("bytes");
        await h.peers.moveDone(h.address, { partition: 0, from: "x:1" }, 1000);
        // A frame meant for another member is refused (409), nothing applied.
        const other = encodeMoveFrame("someone-else:1", []);
        const err = await h.peers.moveRecords(h.address, other, 1000).catch((e) => e);
        expect(err).toBeInstanceOf(PeerError);
        expect(err.status).toBe(409);
      });

      test("status names the member; a paxos prepare is answered", async () => {
        expect(await h.peers.status(h.address, 1000)).toMatchObject({ id: h.address });
        const to = h.node.config.nodeId;
        const answer = await h.peers.paxos(h.address, {
          to,
          ops: [{
            p: "prepare",
            key: "px",
            ballot: { t: 5000, c: 0, n: "x:1" },
            set: h.node.ctx.ring()!.setHash[h.node.store.partitionOf("px")]!,
          }],
        }, 1000);
        expect(answer.answers).toHaveLength(1);
        expect(answer.answers[0]!.error).toBeUndefined();
        expect(answer.answers[0]!.held).toBe(true);
      });

      test("an unreachable peer is a PeerError, not a hang", async () => {
        const err = await h.peers.health(h.dead, 1000).catch((e) => e);
        expect(err).toBeInstanceOf(PeerError);
      });

      test("a rejected request is a PeerError carrying the status", async () => {
        const err = await h.peers.write(h.address, {
          to: h.node.config.nodeId,
          records: [{ k: "", v: "", t: -1, c: 0, n: "" }],
        }, 1000).catch((e) => e);
        expect(err).toBeInstanceOf(PeerError);
        expect(err.status).toBe(400);
      });
    });
  }
}

test("a malformed write frame is a 400 naming what is wrong, and nothing is stored", () => {
  const node = makeNode(`127.0.0.1:${freePort()}`, false);
  const to = node.config.nodeId;
  const good = encodeWriteFrame(to, [{
    key: "wf",
    value: "v",
    version: { wallMs: 1000, counter: 0, nodeId: "x" },
    tombstone: false,
  }], [0]);
  const cases: [Uint8Array, string][] = [
    [good.subarray(0, 3), "invalid write frame: truncated before the set count"],
    [good.subarray(0, good.length - 1), "invalid write frame: record 0: truncated value"],
    [new Uint8Array([0, 0, 0, 0, ...new TextEncoder().encode("nope")]), "not a move frame"],
  ];
  for (const [bytes, why] of cases) {
    let err: unknown;
    try {
      void node.peerCalls.writeFrame(bytes);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DkvError);
    expect((err as DkvError).status).toBe(400);
    expect((err as DkvError).message).toContain(why);
  }
  expect(node.store.get("wf")).toBeUndefined();
});
