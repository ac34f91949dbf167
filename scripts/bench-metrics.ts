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
import { pairedRuns, startLoaded } from "./bench/ab.ts";
import { buildDkvAt, killAllOnExit, ROOT, sh } from "./bench/procs.ts";
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

const systems = {
  base: await startLoaded(baseBin, "metrics-base", 1),
  new: await startLoaded(newBin, "metrics-new", 1),
};
try {
  await pairedRuns({
    base: systems.base,
    new: systems.new,
    threads: 1,
    connections: 64,
    runs: RUNS,
    durationS: DURATION_S,
    indent: "   ",
  });
} finally {
  await systems.base.stop();
  await systems.new.stop();
  rmSync(dir, { recursive: true, force: true });
}
