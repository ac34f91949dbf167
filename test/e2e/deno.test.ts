/**
 * The same source runs under Deno: an orchestrator and two nodes via `deno run`, a set and a
 * get. They run with a cluster secret, so signing (node:crypto) and reading the secret file
 * (node:fs) are exercised under Deno too.
 */
import { afterAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  allUp,
  DENO,
  http,
  launch,
  runCaptured,
  spawnLogged,
  stopAll,
  waitFor,
} from "../support/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "dkv-deno-"));
const secretFile = join(dir, "cluster.secret");
writeFileSync(secretFile, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
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
    const put = await http("POST", ids[0]!, "/kv/deno-key", "from deno");
    // Right after the join the second node may not have the new ring yet: the write waits for it.
    expect(put).toMatchObject({ status: 200, body: { status: "SUCCESS" } });
    const get = await http("GET", ids[1]!, "/kv/deno-key");
    expect(get).toMatchObject({ status: 200, body: { key: "deno-key", value: "from deno" } });
    const unsigned = await http("GET", ids[0]!, "/internal/v1/status");
    expect(unsigned.status).toBe(401);
    const v = await runCaptured([...denoRun, "--version"], { timeoutMs: 60_000 });
    expect(v.stdout).toMatch(/^dkv \S+ \(deno /);
  },
  90_000,
);
