/**
 * TLS with real processes (issue 9, part 5): an orchestrator and three nodes serving HTTPS with
 * certificates from a CA made here with openssl at run time (nothing private is committed), first
 * with --tls-ca (peers verify each other), then with --tls-client-auth too (mutual TLS). Each
 * passes the curl tour with `curl --cacert` (and `--cert/--key` for mutual TLS); plain http to a
 * TLS member fails; a plain member cannot join a TLS cluster and says why; with mutual TLS a
 * client without a certificate is refused, and a member whose certificate comes from another CA
 * never appears UP anywhere. Everything started is killed in afterAll.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CertDir } from "../support/certs.ts";
import {
  freePort,
  freePorts,
  nodeCmd,
  orchestratorCmd,
  type Proc,
  runCaptured,
  spawnLogged,
  stopAll,
  waitFor,
} from "../support/cluster.ts";

const certs = new CertDir().ca("cluster").ca("other");
for (const m of ["orch", "node0", "node1", "node2", "client"]) certs.cert(m, "cluster");
certs.cert("stranger", "other").cert("other-client", "other");
const file = (name: string) => certs.file(name);

afterAll(async () => {
  await stopAll();
  certs.remove();
});

const pem = (name: string) => certs.pem(name);
const CA = file("cluster-ca.crt");

/** Client credentials for https calls from the test: the CA to trust, a certificate to show. */
interface Client {
  ca: string;
  cert?: string;
  key?: string;
}
const client: Client = {
  ca: pem("cluster-ca.crt"),
  cert: pem("client.crt"),
  key: pem("client.key"),
};

// deno-lint-ignore no-explicit-any
async function https(address: string, path: string, init: RequestInit = {}): Promise<any> {
  const res = await fetch(`https://${address}${path}`, {
    ...init,
    signal: AbortSignal.timeout(3000),
    tls: client,
  } as RequestInit);
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

async function nodeStates(address: string): Promise<Map<string, string>> {
  const r = await https(address, "/all-nodes");
  const out = new Map<string, string>();
  for (const m of r.body.allNodes as { id: string; role: string; status: string }[]) {
    if (m.role === "node") out.set(m.id, m.status);
  }
  return out;
}

/** Wait until `p` answers /health over https as itself (not a process it replaced). */
async function readyTls(p: Proc): Promise<void> {
  await waitFor(`${p.name} to answer /health over https`, async () => {
    if (!p.alive()) throw new Error(`${p.name} exited:\n${p.log().slice(-2000)}`);
    const r = await https(p.address, "/health");
    return r.status === 200 && Number(r.body.incarnation) >= p.spawnedAtMs;
  });
}

const tlsArgs = (member: string, ca = "cluster", clientAuth = false) => [
  "--tls-cert",
  file(`${member}.crt`),
  "--tls-key",
  file(`${member}.key`),
  "--tls-ca",
  file(`${ca}-ca.crt`),
  ...(clientAuth ? ["--tls-client-auth"] : []),
];

interface TlsCluster {
  orchestrator: Proc;
  nodes: Proc[];
}

/** Orchestrator + 3 nodes with TLS, each with its own certificate, all UP everywhere. */
async function startTlsCluster(clientAuth: boolean, tag: string): Promise<TlsCluster> {
  const [o, ...ports] = freePorts(4);
  const orchestrator = spawnLogged(
    `tls-${tag}-orch-${o}`,
    orchestratorCmd(o!, tlsArgs("orch", "cluster", clientAuth)),
    o!,
  );
  const nodes = ports.map((p, i) =>
    spawnLogged(
      `tls-${tag}-node-${p}`,
      nodeCmd(p, o!, tlsArgs(`node${i}`, "cluster", clientAuth)),
      p,
    )
  );
  const all = [orchestrator, ...nodes];
  for (const m of all) await readyTls(m);
  const ids = nodes.map((n) => n.address);
  for (const m of all) {
    await waitFor(`${m.name} to list 3 nodes UP`, async () => {
      const s = await nodeStates(m.address);
      return s.size === 3 && ids.every((id) => s.get(id) === "UP");
    }, 30_000);
  }
  for (const m of all) {
    await waitFor(
      `${m.name} to serve quorum reads`,
      async () => (await https(m.address, "/kv/never-written-startup-probe")).status === 404,
      30_000,
    );
  }
  return { orchestrator, nodes };
}

/** curl, with the CA and (when given) a client certificate; stdout, stderr and exit code. */
async function curl(
  args: string[],
  auth: { ca?: string; cert?: string } = { ca: CA },
): Promise<{ out: string; err: string; code: number }> {
  const cmd = ["curl", "-sS", "--max-time", "5"];
  if (auth.ca !== undefined) cmd.push("--cacert", auth.ca);
  if (auth.cert !== undefined) {
    cmd.push("--cert", file(`${auth.cert}.crt`), "--key", file(`${auth.cert}.key`));
  }
  const r = await runCaptured([...cmd, ...args]);
  return { out: r.stdout, err: r.stderr, code: r.code };
}

/** The README's curl tour over https: set on one node, read on another and via the orchestrator. */
/**
 * A member that just came back after a pause (this machine under load) refuses quorum for a second
 * while membership settles (503): a client asks again, and so does the tour (for up to 5 s).
 */
async function asking(run: () => Promise<{ out: string; err: string }>) {
  let r = await run();
  for (let i = 0; i < 25 && /"errorSystemCode":503/.test(r.out); i++) {
    await Bun.sleep(200);
    r = await run();
  }
  return r;
}

async function curlTour(c: TlsCluster, auth: { ca?: string; cert?: string }, key: string) {
  const url = (m: Proc, path: string) => `https://${m.address}${path}`;
  const put = await asking(() =>
    curl([
      "--request",
      "PUT",
      url(c.nodes[0]!, `/kv/${key}`),
      "--header",
      "Content-Type: text/plain",
      "--data-raw",
      "Lord of the rings",
    ], auth)
  );
  expect(put.err).toBe("");
  expect(JSON.parse(put.out)).toMatchObject({ status: "SUCCESS", key, value: "Lord of the rings" });
  for (const m of [c.nodes[2]!, c.orchestrator]) {
    const get = await asking(() => curl([url(m, `/kv/${key}`)], auth));
    expect(JSON.parse(get.out)).toMatchObject({ key, value: "Lord of the rings" });
  }
  const nodes = JSON.parse((await curl([url(c.nodes[1]!, "/all-nodes")], auth)).out);
  const up = nodes.allNodes.filter((m: { role: string; status: string }) =>
    m.role === "node" && m.status === "UP"
  );
  expect(up.length).toBe(3);
  const health = JSON.parse((await curl([url(c.nodes[1]!, "/health")], auth)).out);
  expect(health.status).toBe("UP");
  // N = 3 on 3 nodes: every node holds a copy.
  const data = JSON.parse((await curl([url(c.nodes[1]!, "/kv/all-data")], auth)).out);
  expect(data[key]).toBe("Lord of the rings");
}

test("bad TLS files or flags: one line naming the flag, exit 2", async () => {
  const cases: [string[], string][] = [
    [
      ["--tls-cert", file("orch.crt")],
      "dkv: --tls-cert: needs --tls-key too (the certificate's private key)",
    ],
    [
      ["--tls-cert", file("orch.crt"), "--tls-key", file("missing.key")],
      `dkv: --tls-key: ${file("missing.key")}: no such file`,
    ],
    [
      ["--tls-cert", file("orch.crt"), "--tls-key", file("node0.key")],
      `dkv: --tls-key: ${file("node0.key")}: does not belong to the certificate in --tls-cert`,
    ],
    [
      ["--tls-cert", file("orch.key"), "--tls-key", file("orch.key")],
      `dkv: --tls-cert: ${file("orch.key")}: not a PEM certificate`,
    ],
  ];
  for (const [args, line] of cases) {
    const r = await runCaptured(orchestratorCmd(freePort(), args));
    expect([r.code, r.stderr]).toEqual([2, `${line}\n`]);
  }
});

describe("TLS: HTTPS on every member, peers verify each other against --tls-ca", () => {
  let c: TlsCluster;
  beforeAll(async () => {
    c = await startTlsCluster(false, "server");
  }, 90_000);
  afterAll(stopAll);

  test("the curl tour over https with --cacert", async () => {
    await curlTour(c, { ca: CA }, "tls_movie");
  });

  test("plain http to a TLS member fails; https without the CA is refused by curl", async () => {
    const plain = await curl([`http://${c.nodes[0]!.address}/health`], {});
    expect(plain.code).not.toBe(0);
    expect(plain.out).toBe("");
    const untrusted = await curl([`https://${c.nodes[0]!.address}/health`], {});
    expect(untrusted.code).toBe(60); // curl: peer certificate cannot be authenticated
  });

  test("a plain member cannot join a TLS cluster and logs why", async () => {
    const port = freePort();
    const plain = spawnLogged(
      `tls-plain-${port}`,
      nodeCmd(port, c.orchestrator.port, ["--join", c.nodes[0]!.address]),
      port,
    );
    await waitFor(
      "the plain member's warning",
      () => plain.log().includes("every member needs --tls-cert and --tls-key"),
    );
    for (const m of [c.orchestrator, ...c.nodes]) {
      expect((await nodeStates(m.address)).get(plain.address)).toBeUndefined();
    }
    plain.kill(9);
    await plain.exited;
  });
  test(
    "a member with another CA's certificate can announce itself, but nobody can reach it: DOWN everywhere",
    async () => {
      const port = freePort();
      // It trusts the cluster's CA, so it can reach the members (no client certificates here).
      const stranger = spawnLogged(
        `tls-server-stranger-${port}`,
        nodeCmd(port, c.orchestrator.port, ["--join", c.nodes[1]!.address, ...tlsArgs("stranger")]),
        port,
      );
      await waitFor("the stranger to listen", () => stranger.log().includes("listening on https"));
      await waitFor("some member to list the stranger", async () => {
        for (const m of [c.orchestrator, ...c.nodes]) {
          if ((await nodeStates(m.address)).has(stranger.address)) return true;
        }
        return false;
      });
      // Every member's probes of it fail in the handshake (its certificate is not the cluster CA's).
      await waitFor("every member to see the stranger DOWN", async () => {
        for (const m of [c.orchestrator, ...c.nodes]) {
          const state = (await nodeStates(m.address)).get(stranger.address);
          if (state !== undefined && state !== "DOWN") return false;
        }
        return true;
      }, 20_000);
      stranger.kill(9);
      await stranger.exited;
    },
    40_000,
  );
});

describe("mutual TLS: --tls-client-auth", () => {
  let c: TlsCluster;
  beforeAll(async () => {
    c = await startTlsCluster(true, "mutual");
  }, 90_000);
  afterAll(stopAll);

  test("the curl tour with --cacert, --cert and --key", async () => {
    await curlTour(c, { ca: CA, cert: "client" }, "mtls_movie");
  });

  test("a client without a certificate, or with one from another CA, is refused", async () => {
    for (const auth of [{ ca: CA }, { ca: CA, cert: "other-client" }]) {
      const r = await curl([`https://${c.nodes[0]!.address}/health`], auth);
      expect([auth.cert, r.code]).not.toEqual([auth.cert, 0]);
      expect(r.out).toBe("");
    }
  });

  test(
    "a member with a certificate from another CA never appears UP in anyone's /all-nodes",
    async () => {
      const port = freePort();
      // It trusts the cluster's CA, so it can check the members; they cannot check it.
      const stranger = spawnLogged(
        `tls-stranger-${port}`,
        nodeCmd(port, c.orchestrator.port, [
          "--join",
          c.nodes[1]!.address,
          ...tlsArgs("stranger", "cluster", true),
        ]),
        port,
      );
      // (Its own certificate is from the other CA, so the test's client cannot ask its /health.)
      await waitFor("the stranger to listen", () => stranger.log().includes("listening on https"));
      // Watch for 3 s: its join attempts (every probe period) all fail in the TLS handshake.
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline) {
        for (const m of [c.orchestrator, ...c.nodes]) {
          expect([m.name, (await nodeStates(m.address)).get(stranger.address)]).toEqual([
            m.name,
            undefined,
          ]);
        }
        await Bun.sleep(200);
      }
      // ... and it says why.
      expect(stranger.log()).toMatch(/gossip to \S+ failed: .*\(TLS: /);
      stranger.kill(9);
      await stranger.exited;
    },
    20_000,
  );
});
