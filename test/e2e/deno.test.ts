/**
 * The same source runs under Deno: an orchestrator and two nodes via `deno run`, a set and a
 * get. They run with a cluster secret, so signing (node:crypto) and reading the secret file
 * (node:fs) are exercised under Deno too. Then mutual TLS under Deno (served through node:https,
 * peers through Deno.createHttpClient), with a compiled ./dkv node in the same cluster.
 */
import { afterAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertDir } from "../support/certs.ts";
import {
  allUp,
  DENO,
  DKV,
  freePorts,
  http,
  launch,
  runCaptured,
  spawnLogged,
  stopAll,
  waitFor,
} from "../support/cluster.ts";
import { frame, transcript } from "../support/resp.ts";

const dir = mkdtempSync(join(tmpdir(), "dkv-deno-"));
const secretFile = join(dir, "cluster.secret");
writeFileSync(secretFile, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });

const certs = new CertDir().ca("cluster").cert("member", "cluster").cert("client", "cluster");

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
  certs.remove();
});

const denoRun = [
  DENO,
  "run",
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-sys",
  "src/main.ts",
];

test(
  "orchestrator + 2 nodes under deno run, with a cluster secret: set on one node, get from the other",
  async () => {
    const orch = await launch((o) =>
      spawnLogged(`deno-orch-${o}`, [
        ...denoRun,
        "--role",
        "orchestrator",
        "--port",
        String(o),
        "--preset",
        "local",
        "--cluster-secret-file",
        secretFile,
      ], o), 60_000);
    const nodes = [];
    // The second node also speaks RESP (Deno.listen under Deno: src/platform/tcp.ts).
    const [respPort] = freePorts(1);
    for (let i = 0; i < 2; i++) {
      nodes.push(
        await launch((p) =>
          spawnLogged(`deno-node-${p}`, [
            ...denoRun,
            "--role",
            "node",
            "--port",
            String(p),
            `--orchestrator=${orch.address}`,
            "--preset",
            "local",
            "--cluster-secret-file",
            secretFile,
            ...(i === 1 ? ["--resp-port", String(respPort)] : []),
          ], p), 60_000),
      );
    }
    const ids = nodes.map((n) => n.address);
    await waitFor(
      "deno members to list both nodes UP",
      async () => (await allUp(orch.address, ids)) && (await allUp(ids[0]!, ids)),
      60_000,
    );
    const health = await http("GET", ids[0]!, "/health");
    expect(health.body.status).toBe("UP");
    // A member that has just seen the ring change refuses quorum for a moment (503, "membership
    // settles"; README), and under deno run's start-up the second node's arrival can land right
    // here: ask again (the same write: idempotent) until it is taken, as a client would.
    const put = await waitFor("the write to be taken", async () => {
      const r = await http("POST", ids[0]!, "/kv/deno-key", "from deno");
      return r.status === 503 ? undefined : r;
    }, 30_000);
    expect(put).toMatchObject({ status: 200, body: { status: "SUCCESS" } });
    const get = await waitFor("the read to be served", async () => {
      const r = await http("GET", ids[1]!, "/kv/deno-key");
      return r.status === 503 ? undefined : r;
    }, 30_000);
    expect(get).toMatchObject({ status: 200, body: { key: "deno-key", value: "from deno" } });
    const resp = await transcript(
      respPort!,
      Buffer.concat([frame("GET", "deno-key"), frame("SET", "deno-resp", "v"), frame("QUIT")]),
    );
    expect(resp.reply.toString()).toBe("$9\r\nfrom deno\r\n+OK\r\n+OK\r\n");
    const viaHttp = await waitFor("the RESP write to read back over HTTP", async () => {
      const r = await http("GET", ids[0]!, "/kv/deno-resp");
      return r.status === 503 ? undefined : r; // membership settling: asked again, as above
    }, 30_000);
    expect(viaHttp.body.value).toBe("v");
    const bad = await transcript(respPort!, Buffer.from("*1\r\n$x\r\n"));
    expect([bad.reply.toString(), bad.closedByServer]).toEqual([
      "-ERR Protocol error: invalid bulk length\r\n",
      true,
    ]);
    const unsigned = await http("GET", ids[0]!, "/internal/v1/status");
    expect(unsigned.status).toBe(401);
    // /metrics (prom-client) and the dashboard page work under Deno too (issue 14).
    const metrics = await fetch(`http://${ids[0]}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(
      /^dkv_http_requests_total\{route="\/kv\/\{key\}",method="POST",status="200"\} 1$/m,
    );
    const ui = await fetch(`http://${ids[0]}/ui`);
    expect(ui.status).toBe(200);
    const html = await ui.text();
    // The browser code is the function's own source text: plain JavaScript once Deno ran it.
    const script = html.slice(html.indexOf("<script>") + 8, html.indexOf("</script>"));
    expect(() => new Function(script)).not.toThrow();
    const v = await runCaptured([...denoRun, "--version"], { timeoutMs: 60_000 });
    expect(v.stdout).toMatch(/^dkv \S+ \(deno /);
  },
  90_000,
);

test(
  "mutual TLS under deno run: a deno orchestrator and node and a ./dkv node, https with client certificates",
  async () => {
    const tls = [
      "--tls-cert",
      certs.file("member.crt"),
      "--tls-key",
      certs.file("member.key"),
      "--tls-ca",
      certs.file("cluster-ca.crt"),
      "--tls-client-auth",
    ];
    const client = {
      ca: certs.pem("cluster-ca.crt"),
      cert: certs.pem("client.crt"),
      key: certs.pem("client.key"),
    };
    // deno-lint-ignore no-explicit-any
    const get = async (address: string, path: string, init: RequestInit = {}): Promise<any> => {
      const res = await fetch(`https://${address}${path}`, {
        ...init,
        tls: client,
        signal: AbortSignal.timeout(3000),
      } as RequestInit);
      return { status: res.status, body: await res.json() };
    };
    const [o, p1, p2] = freePorts(3);
    const orch = spawnLogged(`deno-mtls-orch-${o}`, [
      ...denoRun,
      ...["--role", "orchestrator", "--port", String(o), "--preset", "local", ...tls],
    ], o!);
    const denoNode = spawnLogged(`deno-mtls-node-${p1}`, [
      ...denoRun,
      ...["--role", "node", "--port", String(p1), `--orchestrator=${orch.address}`],
      ...["--preset", "local", ...tls],
    ], p1!);
    const bunNode = spawnLogged(
      `deno-mtls-dkv-${p2}`,
      [DKV, "--role", "node", "--port", String(p2), `--orchestrator=${orch.address}`, ...tls],
      p2!,
    );
    const ids = [denoNode.address, bunNode.address];
    await waitFor("every member to list both nodes UP over mutual TLS", async () => {
      for (const m of [orch, denoNode, bunNode]) {
        if (!m.alive()) throw new Error(`${m.name} exited:\n${m.log()}`);
        const r = await get(m.address, "/all-nodes");
        const up = r.body.allNodes.filter((x: { role: string; status: string }) =>
          x.role === "node" && x.status === "UP"
        ).map((x: { id: string }) => x.id);
        if (!ids.every((id) => up.includes(id))) return false;
      }
      return true;
    }, 60_000);
    for (const m of [orch, denoNode, bunNode]) {
      await waitFor(
        `${m.name} to serve quorum reads`,
        async () => (await get(m.address, "/kv/never-written-startup-probe")).status === 404,
        30_000,
      );
    }
    // A member that lost sight of a peer for a moment (a runtime starting under load) refuses
    // quorum until membership settles: a 503 by design (README), so one is asked again.
    // deno-lint-ignore no-explicit-any
    const settled = async (f: () => Promise<any>): Promise<any> => {
      // deno-lint-ignore no-explicit-any
      let r: any;
      await waitFor("an answer other than 503 (membership settling)", async () => {
        r = await f();
        return r.status !== 503;
      }, 15_000);
      return r;
    };
    const put = await settled(() =>
      get(denoNode.address, "/kv/deno-mtls", { method: "PUT", body: "both" })
    );
    expect(put).toMatchObject({ status: 200, body: { status: "SUCCESS" } });
    for (const m of [bunNode, orch]) {
      expect(await settled(() => get(m.address, "/kv/deno-mtls"))).toMatchObject({
        status: 200,
        body: { value: "both" },
      });
    }
    // No client certificate: the deno member refuses the handshake.
    const noCert = await fetch(`https://${denoNode.address}/health`, {
      tls: { ca: client.ca },
      signal: AbortSignal.timeout(3000),
    } as RequestInit).then(() => "answered", (e) => `refused: ${(e as Error).message}`);
    expect(noCert).toStartWith("refused");
  },
  120_000,
);

test(
  "--data-dir under deno run: a node killed -9 comes back with its data (node:fs under Deno)",
  async () => {
    const data = join(dir, "deno-data");
    const start = (port: number, name: string) =>
      spawnLogged(name, [
        ...denoRun.slice(0, -1),
        "--allow-write",
        "src/main.ts",
        ...["--role", "node", "--port", String(port), `--join=127.0.0.1:${port}`],
        ...["--node-id", "deno-solo", "--preset", "local", "--data-dir", data, "--fsync", "always"],
      ], port);
    const first = await launch((p) => start(p, `deno-durable-${p}`), 60_000);
    for (let i = 0; i < 20; i++) {
      const r = await http("PUT", first.address, `/kv/deno-k${i}`, `v${i}`);
      expect(r.status).toBe(200);
    }
    first.kill(9);
    await first.exited;
    const again = start(first.port, `deno-durable-again-${first.port}`);
    await waitFor("the deno node back", async () => {
      return (await http("GET", again.address, "/kv/deno-k19")).status === 200;
    }, 60_000);
    expect(again.log()).toContain("--data-dir: recovered 20 keys");
    for (let i = 0; i < 20; i++) {
      expect((await http("GET", again.address, `/kv/deno-k${i}`)).body.value).toBe(`v${i}`);
    }
  },
  120_000,
);
