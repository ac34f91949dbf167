/** The binary's command line: bad flags, a taken port, env vars, starting before the orchestrator. */
import { afterAll, describe, expect, test } from "bun:test";
import {
  allUp,
  DKV,
  freePorts,
  http,
  spawnLogged,
  startNode,
  startOrchestrator,
  stopAll,
  waitFor,
} from "../support/cluster.ts";

afterAll(async () => {
  await stopAll();
});

async function runDkv(args: string[], env: Record<string, string> = {}) {
  const p = Bun.spawn([DKV, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "", ...env },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { stdout, stderr, code };
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

  const bad: [string[], Record<string, string>, RegExp][] = [
    [[], {}, /--role: required/],
    [["--role", "leader"], {}, /--role: must be orchestrator or node/],
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
    const [port] = freePorts(1);
    const holder = Bun.serve({ hostname: "127.0.0.1", port, fetch: () => new Response("taken") });
    try {
      const r = await runDkv(["--role", "orchestrator", "--port", String(port)]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(`dkv: port ${port} on 127.0.0.1 is already in use`);
    } finally {
      holder.stop(true);
    }
  });

  test("environment variables set flags (DKV_ROLE, DKV_PORT)", async () => {
    const [port] = freePorts(1);
    spawnLogged(
      `env-orch-${port}`,
      ["env", `DKV_ROLE=orchestrator`, `DKV_PORT=${port}`, DKV],
      port!,
    );
    const r = await waitFor(
      "the orchestrator started from env vars",
      () => http("GET", `127.0.0.1:${port}`, "/health"),
    );
    expect(r.body).toMatchObject({ status: "UP", role: "orchestrator" });
  });

  test("a node started before its orchestrator waits and registers once it is up", async () => {
    const [orchPort, nodePort] = freePorts(2);
    const node = startNode(nodePort!, orchPort!);
    // The node answers /health but has no cluster yet: data requests are 503, not a crash.
    await waitFor("the early node to listen", () => http("GET", node.address, "/health"));
    const early = await http("GET", node.address, "/kv/anything");
    expect(early.status).toBe(503);
    expect(early.body.status).toBe("FAILED");
    expect(node.proc.exitCode).toBeNull();
    const orch = startOrchestrator(orchPort!);
    await waitFor(
      "the orchestrator to list the early node UP",
      () => allUp(orch.address, [node.address]),
      15_000,
    );
    expect((await http("POST", node.address, "/kv/k", "v")).status).toBe(200);
    expect((await http("GET", orch.address, "/kv/k")).body.value).toBe("v");
  });
});
