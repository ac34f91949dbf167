/**
 * What /metrics costs the request path (issue 14, part 4), printed, never asserted:
 *
 *   1. in process: what counting a request costs (µs): a key request's two clock readings and
 *      Metrics.observe (route label, counter, histogram), and the wrapper routed requests get;
 *   2. over HTTP: a 1-node dkv built from a base commit (before /metrics) against ./dkv as it
 *      is, GET and PUT with wrk (64 connections), in alternating pairs of runs (base, new, base,
 *      new, ...) so a machine that drifts moves both sides alike; the ratio new / base per pair
 *      and the median of the ratios.
 *
 *   npm run bench:metrics -- [--base REF | --base-binary PATH] [--new-binary PATH] [--runs N]
 *     [--duration S]
 *
 * --base defaults to the merge base of HEAD and main; --base-binary and --new-binary compare two
 * builds at hand instead (e.g. a variant with one part of the metrics switched off). Both servers run at once (the idle one
 * costs nothing); each gets the same keys preloaded.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { median5, timeSync } from "./bench/micro.ts";
import { buildDkvAt, killAllOnExit, procsCpuMs, ROOT, sh } from "./bench/procs.ts";
import { settle, startDkv, type System, useDkvBinary } from "./bench/systems.ts";
import { runWrk } from "./bench/wrk.ts";
import { Metrics } from "../src/http/metrics.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    base: { type: "string" },
    "base-binary": { type: "string" },
    "new-binary": { type: "string" },
    runs: { type: "string", default: "5" },
    duration: { type: "string", default: "3" },
  },
  strict: true,
});
const RUNS = Number(values.runs);
const DURATION_S = Number(values.duration);
if (!(RUNS >= 1) || !(DURATION_S > 0)) {
  console.error("bench-metrics: --runs must be >= 1 and --duration > 0");
  process.exit(2);
}
const KEYS = 10_000;
const VALUE_BYTES = 100;

console.log(`runtime: bun ${Bun.version}`);
console.log("\n1. in process: what counting costs (µs per request)");
{
  const metrics = new Metrics();
  const health = new Request("http://127.0.0.1:8080/health");
  const time = (f: () => void) => median5([1, 2, 3, 4, 5].map(() => timeSync(f, 300, 500)));
  const now = () => performance.now();
  // What the key handler adds to a key request: two clock readings and observeKey().
  const kv = (method: string, consistency: string) => () => {
    const start = now();
    metrics.observeKey("/kv/{key}", method, 200, consistency, now() - start);
  };
  console.log(`   GET /kv/{key}, observeKey        ${time(kv("GET", "quorum")).toFixed(3)}`);
  console.log(`   PUT /kv/{key}, consistency=all   ${time(kv("PUT", "all")).toFixed(3)}`);
  // A routed request through the wrapper (its answer here is synchronous).
  const ok = new Response("");
  const metered = metrics.meter(() => ok);
  const bare = time(() => void ok.status);
  console.log(
    `   GET /health, meter() wrapper     ${(time(() => void metered(health)) - bare).toFixed(3)}`,
  );
}

const dir = mkdtempSync(join(tmpdir(), "dkv-bench-metrics-"));
killAllOnExit(() => rmSync(dir, { recursive: true, force: true }));
let baseBin: string;
if (values["base-binary"] !== undefined) {
  baseBin = values["base-binary"];
  console.log(`\n2. over HTTP: ${baseBin} against ${values["new-binary"] ?? "./dkv"}`);
} else {
  const base = values.base ?? sh(["git", "merge-base", "HEAD", "main"]);
  const baseSha = sh(["git", "rev-parse", "--short", base]);
  console.log(`\n2. over HTTP: base ${baseSha} against ${values["new-binary"] ?? "./dkv"}`);
  baseBin = buildDkvAt(baseSha, dir);
}
console.log(`   wrk -t1 -c64, ${DURATION_S} s runs, pairs alternate base and new`);
const newBin = join(dir, "dkv-new");
copyFileSync(values["new-binary"] ?? join(ROOT, "dkv"), newBin);
sh(["chmod", "+x", newBin]);

async function start(bin: string, label: string): Promise<System> {
  useDkvBinary(bin);
  const sys = await startDkv(label, 1, 1);
  await settle();
  await runWrk({
    script: "load.lua",
    targets: sys.addresses,
    threads: 1,
    connections: 16,
    durationS: 120,
    untilDone: true,
    env: {
      BENCH_KEYS: String(KEYS),
      BENCH_PREFIX: "bench-",
      BENCH_VALUE_BYTES: String(VALUE_BYTES),
    },
  });
  return sys;
}

const systems = {
  base: await start(baseBin, "metrics-base"),
  new: await start(newBin, "metrics-new"),
};
try {
  for (const [workload, script] of [["GET", "get.lua"], ["PUT", "put.lua"]] as const) {
    /** One wrk run, and the server's CPU per request (less disturbed by a busy machine). */
    const run = async (sys: System, durationS: number) => {
      const pids = sys.procs.map((p) => p.pid);
      const cpu0 = procsCpuMs(pids);
      const r = await runWrk({
        script,
        targets: sys.addresses,
        threads: 1,
        connections: 64,
        durationS,
        env: { BENCH_KEYS: String(KEYS), BENCH_VALUE_BYTES: String(VALUE_BYTES) },
      });
      return { ...r, cpuUs: ((procsCpuMs(pids) - cpu0) * 1000) / Math.max(1, r.requests) };
    };
    await run(systems.base, 1);
    await run(systems.new, 1);
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const b = await run(systems.base, DURATION_S);
      const n = await run(systems.new, DURATION_S);
      ratios.push(n.rps / b.rps);
      cpuRatios.push(n.cpuUs / b.cpuUs);
      const busy = Math.max(b.foreignCores, n.foreignCores);
      console.log(
        `   ${workload} pair ${i + 1}: base ${b.rps.toFixed(0)} req/s (p99 ${
          b.p99Ms.toFixed(2)
        } ms, ${b.cpuUs.toFixed(1)} µs CPU/req), new ${n.rps.toFixed(0)} req/s (p99 ${
          n.p99Ms.toFixed(2)
        } ms, ${n.cpuUs.toFixed(1)} µs CPU/req), new/base ${(n.rps / b.rps).toFixed(3)} req/s, ${
          (n.cpuUs / b.cpuUs).toFixed(3)
        } CPU${busy > 0.1 ? `  (other processes used up to ${busy.toFixed(2)} cores)` : ""}`,
      );
    }
    const summary = (xs: number[]) => {
      const sorted = [...xs].sort((x, y) => x - y);
      return `median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)} (min ${
        sorted[0]!.toFixed(3)
      }, max ${sorted[sorted.length - 1]!.toFixed(3)})`;
    };
    console.log(
      `   ${workload} over ${RUNS} pairs: new/base req/s ${summary(ratios)}; ` +
        `new/base server CPU per request ${summary(cpuRatios)}`,
    );
  }
} finally {
  await systems.base.stop();
  await systems.new.stop();
  rmSync(dir, { recursive: true, force: true });
}
