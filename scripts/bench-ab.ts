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
 * --fsync always|batch|never gives every node of both sides its own --data-dir in that mode;
 * --only get|put runs one workload.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AB_KEYS, AB_VALUE_BYTES, pairedRuns, startLoaded } from "./bench/ab.ts";
import { buildDkvAt, killAllOnExit, ROOT, sh } from "./bench/procs.ts";

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
    fsync: { type: "string" },
    only: { type: "string" },
    help: { type: "boolean", default: false },
  },
  strict: true,
});
if (values.help) {
  console.log(
    "npm run bench:ab -- [--base REF | --base-binary PATH] [--new-binary PATH] " +
      "[--nodes 1|3|5] [--runs N] [--duration S] [--connections N] [--env K=V] [--base-env K=V] " +
      "[--fsync always|batch|never] [--only get|put]",
  );
  process.exit(0);
}
const RUNS = Number(values.runs);
const DURATION_S = Number(values.duration);
const NODES = Number(values.nodes);
const CONNECTIONS = Number(values.connections);
if (
  !(Number.isInteger(RUNS) && RUNS >= 1 && RUNS <= 50) || !(DURATION_S > 0 && DURATION_S <= 60) ||
  ![1, 3, 5].includes(NODES) || !(Number.isInteger(CONNECTIONS) && CONNECTIONS >= 1) ||
  ![undefined, "always", "batch", "never"].includes(values.fsync) ||
  ![undefined, "get", "put"].includes(values.only)
) {
  console.error(
    "bench-ab: --runs 1..50, --duration 0..60 s, --nodes 1, 3 or 5, --connections >= 1, " +
      "--fsync always|batch|never, --only get|put",
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
    `${DURATION_S} s runs, ${RUNS} pairs alternating base and new; ${AB_KEYS} keys × ${AB_VALUE_BYTES} B`,
);

const fsync = values.fsync;
const disk = fsync === undefined ? undefined : (side: string) => ({
  extra: ["--fsync", fsync],
  nodeArgs: (i: number) => ["--data-dir", join(dir, `${side}-data-${i}`)],
});
if (fsync !== undefined) console.log(`every node: --data-dir (under ${dir}) --fsync ${fsync}`);
const systems = {
  base: await startLoaded(baseBin, "ab-base", NODES, BASE_ENV, disk?.("base")),
  new: await startLoaded(newBin, "ab-new", NODES, NEW_ENV, disk?.("new")),
};
try {
  await pairedRuns({
    base: systems.base,
    new: systems.new,
    threads: NODES,
    connections: CONNECTIONS,
    runs: RUNS,
    durationS: DURATION_S,
    ...(values.only === undefined ? {} : { only: values.only.toUpperCase() as "GET" | "PUT" }),
  });
} finally {
  await systems.base.stop();
  await systems.new.stop();
  rmSync(dir, { recursive: true, force: true });
}
