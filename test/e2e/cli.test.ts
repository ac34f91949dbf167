/** The binary's command line: bad flags, a taken port, env vars, starting before the orchestrator. */
import { afterAll, describe, expect, test } from "bun:test";
import {
  allUp,
  childEnv,
  DKV,
  freePort,
  http,
  launch,
  orchestratorCmd,
  PEER_TRANSPORT,
  runCaptured,
  spawnLogged,
  startAt,
  startNode,
  startOrchestrator,
  stopAll,
  waitFor,
} from "../support/cluster.ts";

afterAll(async () => {
  await stopAll();
});

/** ./dkv to its end (these all exit at once): killed after 20 s, and at exit of the runner. */
async function runDkv(args: string[], env: Record<string, string> = {}) {
  const r = await runCaptured([DKV, ...args], { env: childEnv(env), timeoutMs: 20_000 });
  expect(r.timedOut).toBe(false);
  return r;
}

describe("dkv command line", () => {
  test("--version and --help exit 0", async () => {
    const v = await runDkv(["--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^dkv \d+\.\d+\.\d+ \(bun /);
    const h = await runDkv(["--help"]);
    expect(h.code).toBe(0);
    for (
      const flag of [
        "--role",
        "--port",
        "--host",
        "--advertise",
        "--orchestrator",
        "--replication-factor",
        "--partitions",
        "--max-value-bytes",
        "--log-level",
        "--dead-after",
      ]
    ) {
      expect(h.stdout).toContain(flag);
    }
  });

  test("-h and -v are --help and --version (issue 16, point 13)", async () => {
    const h = await runDkv(["-h"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("-h, --help");
    const v = await runDkv(["-v"]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^dkv \d+\.\d+\.\d+ \(bun /);
  });

  test("plain ./dkv: what is missing, then the usage, on stderr with exit 2 (issue 16, point 13)", async () => {
    const r = await runDkv([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toStartWith("dkv: --role: required (orchestrator, node or gateway)\n");
    expect(r.stderr).toContain("Usage:");
    expect(r.stderr).toContain("--role orchestrator|node|gateway");
  });

  test("every flag in --help is in README's flag table, and the other way round (issue 16)", async () => {
    const h = await runDkv(["--help"]);
    const helpFlags = new Set(
      h.stdout.split("\n").filter((l) => /^ {2}-/.test(l)).flatMap((l) =>
        [...l.matchAll(/(?:^|[ ,])(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!)
      ),
    );
    const readme = await Bun.file(new URL("../../README.md", import.meta.url)).text();
    const start = readme.indexOf("| flag ");
    expect(start).toBeGreaterThan(0);
    const rows = readme.slice(start).split("\n").filter((l, i, all) =>
      l.startsWith("|") && all.slice(0, i).every((x) => x.startsWith("|"))
    );
    const tableFlags = new Set(
      rows.slice(2).flatMap((row) =>
        [...(row.split("|")[1] ?? "").matchAll(/`(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!)
      ),
    );
    expect(helpFlags.size).toBeGreaterThan(40);
    expect([...helpFlags].filter((f) => !tableFlags.has(f)).sort()).toEqual([]);
    expect([...tableFlags].filter((f) => !helpFlags.has(f)).sort()).toEqual([]);
  });

  const bad: [string[], Record<string, string>, RegExp][] = [
    [["--port", "7000"], {}, /--role: required/],
    [["--role", "leader"], {}, /--role: must be orchestrator, node or gateway/],
    [["--role", "node"], {}, /--orchestrator: a node needs --orchestrator or --join/],
    [["--role", "node", "--orchestrator", "localhost"], {}, /--orchestrator: must be host:port/],
    [["--role", "orchestrator", "--port", "70000"], {}, /--port: must be at most 65535/],
    [["--role", "orchestrator", "--port", "abc"], {}, /--port: must be a whole number/],
    [
      ["--role", "orchestrator", "--replication-factor", "0"],
      {},
      /--replication-factor: must be at least 1/,
    ],
    [["--role", "orchestrator", "--partitions", "-3"], {}, /--partitions/],
    [
      ["--role", "orchestrator", "--max-value-bytes", "1MB"],
      {},
      /--max-value-bytes: must be a whole number/,
    ],
    [
      ["--role", "orchestrator", "--log-level", "loud"],
      {},
      /--log-level: must be debug, info, warn or error/,
    ],
    [
      ["--role", "orchestrator", "--dead-after", "30"],
      {},
      /--dead-after: must be a positive duration with a unit/,
    ],
    [["--role", "orchestrator", "--frobnicate"], {}, /--frobnicate: unknown flag/],
    [["--role", "orchestrator", "extra"], {}, /unexpected argument/],
    [["--role", "orchestrator"], { DKV_PORT: "nope" }, /DKV_PORT: must be a whole number/],
    [
      ["--role", "orchestrator", "--cluster-secret-file", "/nonexistent/dkv.secret"],
      {},
      /--cluster-secret-file: \/nonexistent\/dkv.secret: no such file/,
    ],
    [
      ["--role", "orchestrator", "--cluster-secret-file", "package.json"],
      {},
      /--cluster-secret-file: package.json: line 1 is 1 bytes; a secret needs at least 32/,
    ],
  ];
  for (const [args, env, message] of bad) {
    test(`rejects ${JSON.stringify(args)} ${JSON.stringify(env)} with one line and exit 2`, async () => {
      const r = await runDkv(args, env);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split("\n").length).toBe(1);
      expect(r.stderr.startsWith("dkv: ")).toBe(true);
    });
  }

  test("a port already in use is one clear line and a non-zero exit", async () => {
    let port = 0;
    let holder: ReturnType<typeof Bun.serve> | undefined;
    while (holder === undefined) {
      port = freePort();
      try {
        holder = Bun.serve({ hostname: "127.0.0.1", port, fetch: () => new Response("taken") });
      } catch {
        // Taken since it was probed: another one.
      }
    }
    try {
      const r = await runDkv(["--role", "orchestrator", "--port", String(port)]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(`dkv: port ${port} on 127.0.0.1 is already in use`);
    } finally {
      holder.stop(true);
    }
  });

  test("environment variables set flags (DKV_ROLE, DKV_PORT)", async () => {
    const orch = await launch((port) =>
      spawnLogged(
        `env-orch-${port}`,
        [DKV],
        port,
        childEnv({ DKV_ROLE: "orchestrator", DKV_PORT: String(port) }),
      )
    );
    const r = await http("GET", orch.address, "/health");
    expect(r.body).toMatchObject({ status: "UP", role: "orchestrator" });
  }, 30_000);

  test("the test runner's own DKV_* variables do not reach the processes tests start", async () => {
    const saved = process.env["DKV_REPLICATION_FACTOR"];
    process.env["DKV_REPLICATION_FACTOR"] = "1";
    try {
      // None but the harness's own transport switch (DKV_PEER_TRANSPORT=http: DKV_PEER_PORT=off).
      const own = PEER_TRANSPORT === "http" ? ["DKV_PEER_PORT"] : [];
      expect(Object.keys(childEnv()).filter((k) => k.startsWith("DKV_"))).toEqual(own);
      const orch = await launch((port) => startOrchestrator(port));
      const r = await http("GET", orch.address, "/cluster/status");
      expect(r.body.replicationFactor).toBe(3);
    } finally {
      if (saved === undefined) delete process.env["DKV_REPLICATION_FACTOR"];
      else process.env["DKV_REPLICATION_FACTOR"] = saved;
    }
  }, 30_000);

  test("a node started before its orchestrator waits and registers once it is up", async () => {
    const orchPort = freePort();
    const node = await launch((port) => startNode(port, orchPort));
    // The node answers /health but has no cluster yet: data requests are 503, not a crash.
    const early = await http("GET", node.address, "/kv/anything");
    expect(early.status).toBe(503);
    expect(early.body.status).toBe("FAILED");
    expect(node.alive()).toBe(true);
    const orch = await startAt(`orch-${orchPort}`, orchestratorCmd(orchPort), orchPort);
    await waitFor(
      "the orchestrator to list the early node UP",
      () => allUp(orch.address, [node.address]),
      30_000,
    );
    expect((await http("POST", node.address, "/kv/k", "v")).status).toBe(200);
    expect((await http("GET", orch.address, "/kv/k")).body.value).toBe("v");
  }, 60_000);
});
