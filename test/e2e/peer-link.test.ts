/**
 * The TCP peer link with real processes: an orchestrator and three nodes, each node with its own
 * --peer-port and all with a cluster secret. Replica calls go over the links (the nodes' link
 * metrics count them); a hello without the secret's signature, or under another secret, is
 * refused before any call and counted. Then a cluster with mutual TLS and links: replica calls go
 * over the TLS links. Everything started is killed in afterAll.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  encodeTextFrame,
  FrameKind,
  helloText,
  PEER_LINK_AUTH_BODY,
  PEER_LINK_AUTH_METHOD,
  PEER_LINK_AUTH_TARGET,
  PEER_LINK_MAGIC,
} from "../../src/core/peer-frame.ts";
import { CertDir } from "../support/certs.ts";
import { authFor, exchange } from "../support/peer-link.ts";
import {
  type Cluster,
  freePorts,
  http,
  nodeCmd,
  orchestratorCmd,
  spawnLogged,
  startCluster,
  stopAll,
  waitFor,
} from "../support/cluster.ts";

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

const certs = new CertDir().ca("cluster");
for (const m of ["orch", "node0", "node1", "node2", "client"]) certs.cert(m, "cluster");

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
  certs.remove();
});

/** The sum of the series of metric `name` in `text` whose labels contain every one of `labels`. */
function sumSeries(text: string, name: string, ...labels: string[]): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!labels.every((l) => line.includes(l))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** The same, from a member's /metrics. */
const metric = async (address: string, name: string, ...labels: string[]) =>
  sumSeries(await (await fetch(`http://${address}/metrics`)).text(), name, ...labels);

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
    const other = authFor("stranger", "another secret", { windowMs: 60_000 });
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
        1000,
      );
      expect(out.closed).toBe(true);
      expect(out.got.map((f) => f.kind)).toEqual([FrameKind.error]);
      expect(JSON.parse(out.got[0]!.text).status).toBe(401);
    }
    expect(await metric(node, "dkv_peer_link_connections_total", `outcome="refused_hello"`))
      .toBe(2);
    // The right secret: served.
    const mine = authFor("test", secret, { windowMs: 60_000 });
    const signed = mine.signRequest(
      node,
      PEER_LINK_AUTH_METHOD,
      PEER_LINK_AUTH_TARGET,
      PEER_LINK_AUTH_BODY,
    ).header;
    const ok = await exchange(
      port,
      new Uint8Array([...encodeTextFrame(0, FrameKind.hello, helloText(signed)), ...call]),
      1000,
    );
    expect(ok.closed).toBe(false);
    expect(ok.got.map((f) => f.kind)).toEqual([FrameKind.hello, FrameKind.ok]);
  });
});

describe("TCP peer link (real processes, mutual TLS)", () => {
  const tlsClient = {
    ca: certs.pem("cluster-ca.crt"),
    cert: certs.pem("client.crt"),
    key: certs.pem("client.key"),
  };
  const https = async (method: string, address: string, path: string, body?: string) => {
    const res = await fetch(`https://${address}${path}`, {
      method,
      ...(body === undefined ? {} : { body }),
      signal: AbortSignal.timeout(3000),
      tls: tlsClient,
    } as RequestInit);
    return { status: res.status, text: await res.text() };
  };
  const tlsArgs = (member: string) => [
    ...["--tls-cert", certs.file(`${member}.crt`), "--tls-key", certs.file(`${member}.key`)],
    ...["--tls-ca", certs.file("cluster-ca.crt"), "--tls-client-auth"],
  ];

  test("replica calls go over the TLS links; writes and reads work", async () => {
    const [o, ...ports] = freePorts(4);
    const links = freePorts(3);
    spawnLogged(`link-tls-orch-${o}`, orchestratorCmd(o!, tlsArgs("orch")), o!);
    const nodes = ports.map((p, i) =>
      spawnLogged(
        `link-tls-node-${p}`,
        nodeCmd(p, o!, [...tlsArgs(`node${i}`), "--peer-port", String(links[i])]),
        p,
      )
    );
    for (const n of nodes) {
      await waitFor(`${n.name} to list 3 nodes UP`, async () => {
        if (!n.alive()) throw new Error(`${n.name} exited:\n${n.log().slice(-2000)}`);
        const r = await https("GET", n.address, "/all-nodes").catch(() => undefined);
        if (r === undefined || r.status !== 200) return false;
        const all = JSON.parse(r.text).allNodes as { role: string; status: string }[];
        return all.filter((m) => m.role === "node" && m.status === "UP").length === 3;
      }, 30_000);
    }
    const count = async () => {
      let sum = 0;
      for (const n of nodes) {
        const text = (await https("GET", n.address, "/metrics")).text;
        sum += sumSeries(text, "dkv_peer_link_requests_total", `status="200"`);
      }
      return sum;
    };
    const before = await count();
    await waitFor("a quorum write over TLS", async () => {
      return (await https("PUT", nodes[0]!.address, "/kv/tls-link", "over tls")).status === 200;
    }, 20_000);
    const got = await https("GET", nodes[1]!.address, "/kv/tls-link");
    expect(got.status).toBe(200);
    expect(got.text).toContain("over tls");
    expect(await count() - before).toBeGreaterThanOrEqual(2);
  }, 60_000);
});
