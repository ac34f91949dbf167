/**
 * `npm run bench:ab`: two builds of dkv side by side, GET and PUT with wrk, in alternating pairs
 * of runs (base, new, base, new, ...) so a machine that drifts moves both sides alike. Printed,
 * never asserted. Besides req/s it reports the servers' CPU time per request (user + system of
 * every member, from /proc): on a shared machine, where throughput swings with whatever else
 * runs, CPU per request is the steadier figure of what a change costs the hot path.
 *
 *   npm run bench:ab -- [--base REF | --base-binary PATH] [--new-binary PATH] [--nodes 1|3|5]
 *     [--runs N] [--duration S] [--connections N] [--env NAME=VALUE ...] [--base-env ...]
 *
 * --base defaults to the merge base of HEAD and main (built from `git archive` of it);
 * --new-binary defaults to ./dkv. With --nodes > 1 the cluster has N=3 and wrk spreads its
 * connections over every node (quorum reads and writes). --env sets a variable for the new
 * build's members only, --base-env for the base's (e.g. the same build with a feature off).
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildDkvAt, killAllOnExit, procsCpuMs, ROOT, sh } from "./bench/procs.ts";
import { settle, startDkv, type System, useDkvBinary } from "./bench/systems.ts";
import { runWrk } from "./bench/wrk.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    base: { type: "string" },
    "base-binary": { type: "string" },
    "new-binary": { type: "string" },
    nodes: { type: "string", default: "3" },
    runs: { type: "string", default: "5" },
    duration: { type: "string", default: "3" },
    connections: { type: "string", default: "64" },
    env: { type: "string", multiple: true, default: [] },
    "base-env": { type: "string", multiple: true, default: [] },
    help: { type: "boolean", default: false },
  },
  strict: true,
});
if (values.help) {
  console.log(
    "npm run bench:ab -- [--base REF | --base-binary PATH] [--new-binary PATH] " +
      "[--nodes 1|3|5] [--runs N] [--duration S] [--connections N] [--env K=V] [--base-env K=V]",
  );
  process.exit(0);
}
const RUNS = Number(values.runs);
const DURATION_S = Number(values.duration);
const NODES = Number(values.nodes);
const CONNECTIONS = Number(values.connections);
if (
  !(Number.isInteger(RUNS) && RUNS >= 1 && RUNS <= 50) || !(DURATION_S > 0 && DURATION_S <= 60) ||
  ![1, 3, 5].includes(NODES) || !(Number.isInteger(CONNECTIONS) && CONNECTIONS >= 1)
) {
  console.error(
    "bench-ab: --runs 1..50, --duration 0..60 s, --nodes 1, 3 or 5, --connections >= 1",
  );
  process.exit(2);
}
function envOf(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf("=");
    if (eq <= 0) {
      console.error(`bench-ab: --env takes NAME=VALUE (got '${kv}')`);
      process.exit(2);
    }
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}
const NEW_ENV = envOf(values.env);
const BASE_ENV = envOf(values["base-env"]);
const KEYS = 10_000;
const VALUE_BYTES = 100;

const dir = mkdtempSync(join(tmpdir(), "dkv-bench-ab-"));
killAllOnExit(() => rmSync(dir, { recursive: true, force: true }));
let baseBin: string;
let baseLabel: string;
if (values["base-binary"] !== undefined) {
  baseBin = values["base-binary"];
  baseLabel = baseBin;
} else {
  const base = values.base ?? sh(["git", "merge-base", "HEAD", "main"]);
  baseLabel = sh(["git", "rev-parse", "--short", base]);
  baseBin = buildDkvAt(baseLabel, dir);
}
const newBin = join(dir, "dkv-new");
copyFileSync(values["new-binary"] ?? join(ROOT, "dkv"), newBin);
sh(["chmod", "+x", newBin]);
console.log(`runtime: bun ${Bun.version}`);
console.log(
  `base ${baseLabel}${Object.keys(BASE_ENV).length ? ` ${JSON.stringify(BASE_ENV)}` : ""} ` +
    `against ${values["new-binary"] ?? "./dkv"}${
      Object.keys(NEW_ENV).length ? ` ${JSON.stringify(NEW_ENV)}` : ""
    }`,
);
console.log(
  `${NODES} node(s)${NODES > 1 ? ", N=3, quorum" : ", N=1"}; wrk -t${NODES} -c${CONNECTIONS}, ` +
    `${DURATION_S} s runs, ${RUNS} pairs alternating base and new; ${KEYS} keys × ${VALUE_BYTES} B`,
);

async function start(bin: string, label: string, env: Record<string, string>): Promise<System> {
  useDkvBinary(bin);
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    const sys = await startDkv(label, NODES, Math.min(3, NODES));
    await settle();
    await runWrk({
      script: "load.lua",
      targets: sys.addresses,
      threads: NODES,
      connections: 16 * NODES,
      durationS: 120,
      untilDone: true,
      env: {
        BENCH_KEYS: String(KEYS),
        BENCH_PREFIX: "bench-",
        BENCH_VALUE_BYTES: String(VALUE_BYTES),
      },
    });
    return sys;
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const systems = {
  base: await start(baseBin, "ab-base", BASE_ENV),
  new: await start(newBin, "ab-new", NEW_ENV),
};
const summary = (xs: number[]) => {
  const sorted = [...xs].sort((x, y) => x - y);
  return `median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)} (min ${
    sorted[0]!.toFixed(3)
  }, max ${sorted[sorted.length - 1]!.toFixed(3)})`;
};
try {
  for (const [workload, script] of [["GET", "get.lua"], ["PUT", "put.lua"]] as const) {
    /** One wrk run, and the servers' CPU per request. */
    const run = async (sys: System, durationS: number) => {
      const pids = sys.procs.map((p) => p.pid);
      const cpu0 = procsCpuMs(pids);
      const r = await runWrk({
        script,
        targets: sys.addresses,
        threads: NODES,
        connections: CONNECTIONS,
        durationS,
        env: { BENCH_KEYS: String(KEYS), BENCH_VALUE_BYTES: String(VALUE_BYTES) },
      });
      return { ...r, cpuUs: ((procsCpuMs(pids) - cpu0) * 1000) / Math.max(1, r.requests) };
    };
    await run(systems.base, 1);
    await run(systems.new, 1);
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    const cpus = { base: [] as number[], new: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      const b = await run(systems.base, DURATION_S);
      const n = await run(systems.new, DURATION_S);
      ratios.push(n.rps / b.rps);
      cpuRatios.push(n.cpuUs / b.cpuUs);
      cpus.base.push(b.cpuUs);
      cpus.new.push(n.cpuUs);
      const busy = Math.max(b.foreignCores, n.foreignCores);
      console.log(
        `${workload} pair ${i + 1}: base ${b.rps.toFixed(0)} req/s (p50 ${
          b.p50Ms.toFixed(2)
        }, p99 ${b.p99Ms.toFixed(2)} ms, ` +
          `${b.cpuUs.toFixed(1)} µs CPU/req), new ${n.rps.toFixed(0)} req/s (p50 ${
            n.p50Ms.toFixed(2)
          }, p99 ${n.p99Ms.toFixed(2)} ms, ${n.cpuUs.toFixed(1)} µs CPU/req)${
            b.errors + n.errors ? `, errors ${b.errors}/${n.errors}` : ""
          }${busy > 0.1 ? `  (other processes used up to ${busy.toFixed(2)} cores)` : ""}`,
      );
    }
    const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    console.log(
      `${workload} over ${RUNS} pairs: new/base req/s ${summary(ratios)}; CPU per request ` +
        `base ${med(cpus.base).toFixed(1)} µs, new ${med(cpus.new).toFixed(1)} µs, ` +
        `new/base ${summary(cpuRatios)}`,
    );
  }
} finally {
  await systems.base.stop();
  await systems.new.stop();
  rmSync(dir, { recursive: true, force: true });
}
