/**
 * The RESP front (issue 13), measured against baselines in the same run, printed (never
 * asserted; the figures go into docs/PERFORMANCE.md by hand):
 *
 *   single    one dkv node (N=1) with --resp-port against redis-server: redis-benchmark SET and
 *             GET, 64 connections, 100-byte values, 10,000 keys, without pipelining and -P 16;
 *   cluster3  3 nodes, N=3, quorum: SET and GET through RESP (one redis-benchmark per node, 64
 *             connections in all; without pipelining and -P 16) against the same cluster's HTTP
 *             API (wrk, 64 connections over every node: scripts/bench/put.lua and get.lua);
 *   memory    RSS per idle connection: 1,000 connections (each answered one PING) to one dkv
 *             node and to redis-server.
 *
 * Runs interleave dkv and its baseline (dkv run, baseline run, ...), so load from other
 * processes on the machine falls on both alike; the medians and their ratio are printed.
 *
 *   npm run bench:resp -- [single] [cluster3] [memory] [--runs 3] [--requests 100000]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  foreignCpu,
  freePort,
  killAllOnExit,
  type Proc,
  procStatusBytes,
  runCapture,
  sleep,
  spawnLogged,
  waitFor,
} from "./bench/procs.ts";
import { fmtInt, mdTable, spread } from "./bench/report.ts";
import { DKV, redisCli, startRedis as startRedisSystem } from "./bench/systems.ts";
import { runWrk } from "./bench/wrk.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runs: { type: "string", default: "3" },
    requests: { type: "string", default: "100000" },
    connections: { type: "string", default: "1000" },
    seconds: { type: "string", default: "5" },
  },
  allowPositionals: true,
  strict: true,
});
const RUNS = Number(values.runs);
const REQUESTS = Number(values.requests);
const IDLE_CONNECTIONS = Number(values.connections);
const SECONDS = Number(values.seconds);
const SCENARIOS = positionals.length > 0 ? positionals : ["single", "cluster3", "memory"];
const CONNECTIONS = 64;
const VALUE_BYTES = 100;
const KEYSPACE = 10_000;

const dir = mkdtempSync(join(tmpdir(), "dkv-bench-resp-"));
killAllOnExit(() => rmSync(dir, { recursive: true, force: true }));
const say = (m: string) => console.error(`[bench:resp] ${m}`);

/** redis-server without persistence (scripts/bench/systems.ts), as its port and process. */
async function startRedis(): Promise<{ port: number; proc: Proc }> {
  const sys = await startRedisSystem(join(dir, "redis"));
  return { port: Number(sys.addresses[0]!.split(":")[1]), proc: sys.procs[0]! };
}

interface Cluster {
  procs: Proc[];
  http: string[];
  resp: number[];
}

/** An orchestrator and `nodes` nodes, replication factor `n`, each node with --resp-port. */
async function startDkv(label: string, nodes: number, n: number): Promise<Cluster> {
  const orchPort = freePort();
  const procs = [
    spawnLogged(`${label}-orch`, [
      DKV,
      "--role",
      "orchestrator",
      "--port",
      String(orchPort),
      "--replication-factor",
      String(n),
      "--log-level",
      "warn",
    ]),
  ];
  const http: string[] = [];
  const resp: number[] = [];
  for (let i = 0; i < nodes; i++) {
    const port = freePort();
    const rp = freePort();
    http.push(`127.0.0.1:${port}`);
    resp.push(rp);
    procs.push(spawnLogged(`${label}-node${i + 1}`, [
      DKV,
      "--role",
      "node",
      `--orchestrator=127.0.0.1:${orchPort}`,
      "--port",
      String(port),
      "--resp-port",
      String(rp),
      "--log-level",
      "warn",
    ]));
  }
  for (const a of http) {
    await waitFor(`${a} to see ${nodes} nodes UP`, async () => {
      const res = await fetch(`http://${a}/all-nodes`, { signal: AbortSignal.timeout(2000) });
      const body = await res.json() as { allNodes: { role: string; status: string }[] };
      return body.allNodes.filter((m) => m.role === "node" && m.status === "UP").length === nodes;
    }, 30_000);
  }
  for (const p of resp) {
    await waitFor(
      `RESP ${p}`,
      async () => (await redisCli(p, ["SET", "bench:probe", "1"])).trim() === "OK",
      30_000,
    );
  }
  return { procs, http, resp };
}

interface Run {
  rps: number;
  p50Ms: number;
  foreignCores: number;
}

/** redis-benchmark -t test against each port at once (connections split), rps summed. */
async function redisBenchmark(
  ports: readonly number[],
  test: "set" | "get",
  pipeline: number,
  requests: number,
): Promise<Run> {
  const foreign = foreignCpu();
  const outs = await Promise.all(ports.map((port, i) => {
    const c = Math.floor(CONNECTIONS / ports.length) + (i < CONNECTIONS % ports.length ? 1 : 0);
    return runCapture([
      "redis-benchmark",
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-c",
      String(c),
      "-n",
      String(Math.round(requests / ports.length)),
      "-d",
      String(VALUE_BYTES),
      "-r",
      String(KEYSPACE),
      "-P",
      String(pipeline),
      "-t",
      test,
      "--csv",
    ], { timeoutMs: 300_000 });
  }));
  let rps = 0;
  const p50s: number[] = [];
  for (const out of outs) {
    const row = out.stdout.split("\n").find((l) => l.startsWith(`"${test.toUpperCase()}"`));
    if (out.code !== 0 || row === undefined) {
      throw new Error(`redis-benchmark failed: ${out.stderr.trim()} ${out.stdout.trim()}`);
    }
    const f = row.split(",").map((c) => Number(c.replaceAll('"', "")));
    rps += f[1]!;
    p50s.push(f[4]!);
  }
  return { rps, p50Ms: Math.max(...p50s), foreignCores: foreign() };
}

interface Row {
  workload: string;
  dkv: Run[];
  base: Run[];
  baseName: string;
}
const rows: Row[] = [];

function report(): string {
  const med = (rs: Run[]) => spread(rs.map((r) => r.rps)).median;
  const busy = (rs: Run[]) => Math.max(...rs.map((r) => r.foreignCores));
  return mdTable(
    ["workload", "dkv req/s", "baseline", "baseline req/s", "ratio", "p50 ms dkv / base", "busy"],
    rows.map((r) => [
      r.workload,
      fmtInt(med(r.dkv)),
      r.baseName,
      fmtInt(med(r.base)),
      `${(med(r.dkv) / med(r.base)).toFixed(2)}×`,
      `${spread(r.dkv.map((x) => x.p50Ms)).median.toFixed(2)} / ${
        spread(r.base.map((x) => x.p50Ms)).median.toFixed(2)
      }`,
      `${busy([...r.dkv, ...r.base]).toFixed(1)} cores`,
    ]),
  );
}

async function single(): Promise<void> {
  const d = await startDkv("resp-single", 1, 1);
  const r = await startRedis();
  try {
    for (const pipeline of [1, 16]) {
      for (const test of ["set", "get"] as const) {
        const n = pipeline === 1 ? REQUESTS : REQUESTS * 4;
        // Warm-up (SET fills the key space on both).
        await redisBenchmark(d.resp, test, pipeline, n / 4);
        await redisBenchmark([r.port], test, pipeline, n / 4);
        const row: Row = {
          workload: `1 node N=1, ${test.toUpperCase()}, -c64 -P${pipeline}`,
          dkv: [],
          base: [],
          baseName: "redis-server",
        };
        for (let i = 0; i < RUNS; i++) {
          row.dkv.push(await redisBenchmark(d.resp, test, pipeline, n));
          row.base.push(await redisBenchmark([r.port], test, pipeline, n));
          say(
            `${row.workload} run ${i + 1}: dkv ${fmtInt(row.dkv[i]!.rps)}, redis ${
              fmtInt(row.base[i]!.rps)
            }`,
          );
        }
        rows.push(row);
      }
    }
  } finally {
    for (const p of [...d.procs, r.proc]) await p.stop();
  }
}

async function cluster3(): Promise<void> {
  const d = await startDkv("resp-cluster3", 3, 3);
  try {
    // The HTTP key space (scripts/bench/load.lua) and the RESP one (redis-benchmark's keys).
    await runWrk({
      script: "load.lua",
      targets: d.http,
      threads: 3,
      connections: 48,
      durationS: 240,
      untilDone: true,
      env: {
        BENCH_API: "dkv",
        BENCH_KEYS: String(KEYSPACE),
        BENCH_PREFIX: "bench-",
        BENCH_VALUE_BYTES: String(VALUE_BYTES),
      },
    });
    await redisBenchmark(d.resp, "set", 1, KEYSPACE * 3);
    for (
      const [test, script, pipeline] of [
        ["set", "put.lua", 1],
        ["get", "get.lua", 1],
        ["set", "put.lua", 16],
        ["get", "get.lua", 16],
      ] as const
    ) {
      const row: Row = {
        workload: `3 nodes N=3 quorum, ${test.toUpperCase()}, -c64 -P${pipeline} over every node`,
        dkv: [],
        base: [],
        baseName: "same cluster, HTTP (wrk -c64)",
      };
      for (let i = 0; i < RUNS; i++) {
        row.dkv.push(await redisBenchmark(d.resp, test, pipeline, REQUESTS / 2));
        const w = await runWrk({
          script,
          targets: d.http,
          threads: 3,
          connections: CONNECTIONS,
          durationS: SECONDS,
          env: { BENCH_KEYS: String(KEYSPACE), BENCH_VALUE_BYTES: String(VALUE_BYTES) },
        });
        row.base.push({ rps: w.rps, p50Ms: w.p50Ms, foreignCores: w.foreignCores });
        say(
          `${row.workload} run ${i + 1}: RESP ${fmtInt(row.dkv[i]!.rps)}, HTTP ${fmtInt(w.rps)}${
            w.errors > 0 ? ` (${w.errors} HTTP errors)` : ""
          }`,
        );
      }
      rows.push(row);
    }
  } finally {
    for (const p of d.procs) await p.stop();
  }
}

/** Open `count` connections to port, each answered one PING; the sockets stay open. */
async function idleConnections(port: number, count: number): Promise<Socket[]> {
  const socks: Socket[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(50, count - i) },
        () =>
          new Promise<Socket>((resolve, reject) => {
            const s = connect({ host: "127.0.0.1", port });
            s.once("error", reject);
            s.once("connect", () => s.write("*1\r\n$4\r\nPING\r\n"));
            s.once("data", () => resolve(s));
          }),
      ),
    );
    socks.push(...batch);
  }
  return socks;
}

const memory: string[][] = [];

async function memoryPerConnection(): Promise<void> {
  const d = await startDkv("resp-memory", 1, 1);
  const r = await startRedis();
  try {
    for (
      const [name, port, pid] of [
        ["dkv node", d.resp[0]!, d.procs[1]!.pid],
        ["redis-server", r.port, r.proc.pid],
      ] as const
    ) {
      // Warm the server first (its first connections allocate pools), then measure the step.
      const warm = await idleConnections(port, 50);
      await sleep(500);
      const before = procStatusBytes(pid);
      const socks = await idleConnections(port, IDLE_CONNECTIONS);
      await sleep(1000);
      const after = procStatusBytes(pid);
      for (const s of [...warm, ...socks]) s.destroy();
      const per = (after - before) / IDLE_CONNECTIONS;
      memory.push([
        name,
        fmtInt(IDLE_CONNECTIONS),
        fmtInt(before / 1024),
        fmtInt(after / 1024),
        fmtInt(per),
      ]);
      say(`${name}: ${fmtInt(per)} B RSS per idle connection`);
    }
  } finally {
    for (const p of [...d.procs, r.proc]) await p.stop();
  }
}

if (SCENARIOS.includes("single")) await single();
if (SCENARIOS.includes("cluster3")) await cluster3();
if (SCENARIOS.includes("memory")) await memoryPerConnection();

console.log("\n### Throughput (redis-benchmark: 64 connections, 100-byte values, 10,000 keys)\n");
console.log(report());
if (memory.length > 0) {
  console.log("\n### Memory per idle RESP connection\n");
  console.log(
    mdTable(
      ["server", "connections", "RSS before KiB", "RSS after KiB", "bytes per connection"],
      memory,
    ),
  );
}
rmSync(dir, { recursive: true, force: true });
process.exit(0);
