/**
 * The TCP peer link with real processes: an orchestrator and three nodes, each node with its own
 * --peer-port and all with a cluster secret. Replica calls go over the links (the nodes' link
 * metrics count them); a hello without the secret's signature, or under another secret, is
 * refused before any call and counted. Everything started is killed in afterAll.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  encodeTextFrame,
  FrameKind,
  FrameReader,
  helloText,
  PEER_LINK_AUTH_BODY,
  PEER_LINK_AUTH_METHOD,
  PEER_LINK_AUTH_TARGET,
  PEER_LINK_MAGIC,
} from "../../src/core/peer-frame.ts";
import { connectTcp } from "../../src/platform/tcp.ts";
import { ClusterAuth } from "../../src/security/cluster-auth.ts";
import { type Cluster, freePorts, http, startCluster, stopAll } from "../support/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "dkv-peer-link-"));
const secret = randomBytes(32).toString("hex");
const secretFile = join(dir, "cluster.secret");
writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
const linkPorts = freePorts(3);

let c: Cluster;

beforeAll(async () => {
  const args = ["--cluster-secret-file", secretFile];
  c = await startCluster(3, {
    nodeArgs: args,
    orchArgs: args,
    nodeArgsFor: (i) => ["--peer-port", String(linkPorts[i])],
  });
}, 60_000);

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

/** The sum of a metric's series whose labels contain every one of `labels`. */
async function metric(address: string, name: string, ...labels: string[]): Promise<number> {
  const text = await (await fetch(`http://${address}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!labels.every((l) => line.includes(l))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

const linkCalls = async (route: string) => {
  let n = 0;
  for (const m of c.nodes) {
    n += await metric(
      m.address,
      "dkv_peer_link_requests_total",
      `route="${route}"`,
      `status="200"`,
    );
  }
  return n;
};

/** Open a raw connection to a link port, send `bytes`: the frames answered, and if it closed. */
async function exchange(port: number, bytes: Uint8Array) {
  const got: { kind: number; text: string }[] = [];
  let closed = false;
  const r = new FrameReader(1024 * 1024);
  const conn = await connectTcp("127.0.0.1", port, {
    open() {},
    data(_c, b) {
      const frames = r.push(b);
      if (typeof frames === "string") return;
      for (const f of frames) got.push({ kind: f.kind, text: new TextDecoder().decode(f.payload) });
    },
    close() {
      closed = true;
    },
  });
  conn.write(bytes);
  for (let i = 0; i < 100 && !closed; i++) await Bun.sleep(10);
  const byServer = closed;
  if (!byServer) conn.close();
  return { got, closed: byServer };
}

describe("TCP peer link (real processes, with a cluster secret)", () => {
  test("replica calls go over the links: writes and reads work, and the links count them", async () => {
    const writesBefore = await linkCalls("/internal/v1/kv/write");
    const readsBefore = await linkCalls("/internal/v1/kv/read");
    for (let i = 0; i < 10; i++) {
      const put = await http("POST", c.nodes[i % 3]!.address, `/kv/link-${i}`, `v${i}`);
      expect(put.status).toBe(200);
    }
    for (let i = 0; i < 10; i++) {
      const got = await http("GET", c.nodes[(i + 1) % 3]!.address, `/kv/link-${i}`);
      expect(got.body.value).toBe(`v${i}`);
    }
    // Each quorum write reaches at least one other replica, each quorum read too.
    expect(await linkCalls("/internal/v1/kv/write") - writesBefore).toBeGreaterThanOrEqual(10);
    expect(await linkCalls("/internal/v1/kv/read") - readsBefore).toBeGreaterThanOrEqual(10);
    // No link was refused between members.
    for (const m of c.nodes) {
      expect(await metric(m.address, "dkv_peer_link_connections_total", "refused")).toBe(0);
    }
  });

  test("a hello unsigned, or under another secret, is refused before any call is served", async () => {
    const port = linkPorts[0]!;
    const node = c.nodes[0]!.address;
    const call = encodeTextFrame(
      1,
      FrameKind.read,
      JSON.stringify({ to: node, keys: ["link-0"] }),
    );
    const other = new ClusterAuth([new TextEncoder().encode("another secret")], {
      selfId: "stranger",
      windowMs: 60_000,
      now: Date.now,
      random: Math.random,
      warn: () => {},
    });
    const forged = other.signRequest(
      node,
      PEER_LINK_AUTH_METHOD,
      PEER_LINK_AUTH_TARGET,
      PEER_LINK_AUTH_BODY,
    ).header;
    for (const hello of [PEER_LINK_MAGIC, helloText(forged)]) {
      const out = await exchange(
        port,
        new Uint8Array([...encodeTextFrame(0, FrameKind.hello, hello), ...call]),
      );
      expect(out.closed).toBe(true);
      expect(out.got.map((f) => f.kind)).toEqual([FrameKind.error]);
      expect(JSON.parse(out.got[0]!.text).status).toBe(401);
    }
    expect(await metric(node, "dkv_peer_link_connections_total", `outcome="refused_hello"`))
      .toBe(2);
    // The right secret: served.
    const mine = new ClusterAuth([new TextEncoder().encode(secret)], {
      selfId: "test",
      windowMs: 60_000,
      now: Date.now,
      random: Math.random,
      warn: () => {},
    });
    const signed = mine.signRequest(
      node,
      PEER_LINK_AUTH_METHOD,
      PEER_LINK_AUTH_TARGET,
      PEER_LINK_AUTH_BODY,
    ).header;
    const ok = await exchange(
      port,
      new Uint8Array([...encodeTextFrame(0, FrameKind.hello, helloText(signed)), ...call]),
    );
    expect(ok.closed).toBe(false);
    expect(ok.got.map((f) => f.kind)).toEqual([FrameKind.hello, FrameKind.ok]);
  });
});
