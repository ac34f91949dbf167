/**
 * Logs (and the rebalance metrics) of real ./dkv processes: `--log-format json` writes one JSON object per line (time, level,
 * role, member, msg, fields), the start-up line names role, id, address and ring settings, and a
 * rebalance that runs longer than --progress-interval logs progress lines (partitions, keys,
 * bytes, rate, ETA) while it runs.
 */
import { afterAll, expect, test } from "bun:test";
import { http, launch, type Proc, spawnLogged, stopAll, waitFor } from "../support/cluster.ts";
import { DKV } from "../support/cluster.ts";

afterAll(async () => {
  await stopAll();
});

// deno-lint-ignore no-explicit-any
type Line = Record<string, any>;

/** The process's stderr/stdout lines that are JSON objects; throws on a log line that is not. */
function jsonLines(p: Proc): Line[] {
  const out: Line[] = [];
  for (const line of p.log().split("\n")) {
    if (line === "" || line.startsWith("dkv ")) continue; // the "listening on" line on stdout
    out.push(JSON.parse(line));
  }
  return out;
}

const node = (port: number, extra: string[]) =>
  spawnLogged(`logs-${port}`, [
    DKV,
    "--role",
    "node",
    "--port",
    String(port),
    "--preset",
    "local",
    "--log-format",
    "json",
    ...extra,
  ], port);

test(
  "--log-format json: every line an object; the start-up line; rebalance progress lines",
  async () => {
    // A 1-node ring (N=1) with keys, throttled so that handing half of them to a second node
    // takes several progress intervals.
    // The first node of a cluster without an orchestrator joins through its own address.
    const a = await launch((p) =>
      node(p, [
        "--join",
        `127.0.0.1:${p}`,
        "--replication-factor",
        "1",
        "--partitions",
        "32",
        "--rebalance-rate",
        "40000",
        "--rebalance-concurrency",
        "1",
        "--batch-keys",
        "20",
        "--progress-interval",
        "300ms",
      ])
    );
    const value = "v".repeat(200);
    for (let i = 0; i < 600; i++) {
      expect((await http("PUT", a.address, `/kv/log-key-${i}`, value)).status).toBe(200);
    }

    const start = jsonLines(a).find((l) => l.event === "start");
    expect(start).toBeDefined();
    expect(start).toMatchObject({
      level: "info",
      role: "node",
      member: a.address,
      id: a.address,
      address: a.address,
      partitions: 32,
      replicationFactor: 1,
      ringSettingsFrom: "this member",
    });
    expect(Number.isNaN(Date.parse(start!.time))).toBe(false);
    expect(typeof start!.msg).toBe("string");

    const b = await launch((p) => node(p, ["--join", a.address, "--progress-interval", "300ms"]));
    // While it runs, /metrics says so: running, and keys and bytes still to stream.
    const moving = await waitFor("/metrics to show the rebalance running", async () => {
      const text = await (await fetch(`http://${a.address}/metrics`)).text();
      const keys = Number(/^dkv_rebalance_remaining\{unit="keys"\} (\d+)$/m.exec(text)?.[1]);
      const running = /^dkv_rebalance_running 1$/m.test(text);
      return running && keys > 0 ? { keys, text } : undefined;
    }, 60_000);
    expect(moving.text).toMatch(/^dkv_rebalance_remaining\{unit="bytes"\} [1-9]\d*$/m);
    expect(moving.text).toMatch(/^dkv_rebalance_partitions_moving\{direction="out"\} [1-9]\d*$/m);
    const progress = await waitFor("a rebalance progress line on the sender", () => {
      return jsonLines(a).find((l) => l.job === "rebalance" && l.msg.includes("progress"));
    }, 60_000);
    expect(progress).toMatchObject({ level: "info", role: "node", member: a.address });
    expect(progress.partitions).toMatch(/^\d+\/\d+$/);
    expect(progress.keys).toMatch(/^\d+\/\d+$/);
    expect(progress.bytes).toMatch(/^\d+\/\d+$/);
    expect(typeof progress.keysPerSec).toBe("number");
    expect(typeof progress.bytesPerSec).toBe("number");
    expect("etaS" in progress).toBe(true);
    const [done, total] = (progress.keys as string).split("/").map(Number);
    expect(total!).toBeGreaterThan(0);
    expect(done!).toBeLessThanOrEqual(total!);

    // The round ends with its end line, and the new node's log is JSON from its first line too.
    await waitFor("the rebalance end line", () => {
      return jsonLines(a).find((l) => (l.msg as string).startsWith("rebalance end:"));
    }, 60_000);
    const bStart = jsonLines(b).find((l) => l.event === "start");
    expect(bStart).toMatchObject({ role: "node", member: b.address });
  },
  120_000,
);

test("--log-format other: a usage error naming the choices", async () => {
  const p = Bun.spawn([DKV, "--role", "node", "--join", "127.0.0.1:1", "--log-format", "xml"], {
    stderr: "pipe",
    stdout: "pipe",
  });
  const code = await p.exited;
  expect(code).toBe(2);
  expect(await new Response(p.stderr).text()).toContain("--log-format: must be text or json");
});
