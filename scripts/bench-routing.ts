/**
 * Routing (issue 14): the same keys and load sent three ways to a real cluster, runs interleaved
 * so that load from other processes hits all three alike, printed (never asserted):
 *
 *   direct   partition-aware, as the client library routes (src/client): each key goes to a
 *            replica of it (the first in preference order), so the coordinator is a replica;
 *   random   each key to a member picked at random, as a client that knows nothing of the ring;
 *   gateway  everything to a `--role gateway` member, which holds no data and coordinates all.
 *
 * wrk drives each (scripts/bench/routed.lua: per-target key lists written here; one thread per
 * node, so every node is a target in the direct and random modes). For each, the
 * median req/s and p99, and from the members' own `routing` counters (/cluster/status) the
 * replica calls per request and the share of requests coordinated by a replica of their key:
 * those two do not depend on the machine's load.
 *
 *   npm run bench:routing -- [--nodes 3] [--n 3] [--runs 3] [--seconds 5]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { partitionOf } from "../src/core/placement.ts";
import { freePort, killAllOnExit, spawnLogged, waitFor } from "./bench/procs.ts";
import { DKV, startDkv } from "./bench/systems.ts";
import { runWrk } from "./bench/wrk.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    nodes: { type: "string", default: "3" },
    n: { type: "string", default: "3" },
    runs: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    keys: { type: "string", default: "3000" },
  },
  strict: true,
});
const NODES = Number(values.nodes);
const N = Number(values.n);
const RUNS = Number(values.runs);
const SECONDS = Number(values.seconds);
const KEYS = Number(values.keys);
if (![NODES, N, RUNS, SECONDS, KEYS].every((x) => Number.isInteger(x) && x > 0) || N > NODES) {
  console.error("bench-routing: --nodes, --n, --runs, --seconds, --keys: whole numbers, n ≤ nodes");
  process.exit(2);
}

/** One wrk thread per node, so that every node gets its share in the direct and random modes. */
const THREADS = Math.max(2, NODES);
const CONNECTIONS = THREADS * Math.ceil(32 / THREADS);

const dir = mkdtempSync(join(tmpdir(), "dkv-bench-routing-"));
killAllOnExit(() => rmSync(dir, { recursive: true, force: true }));

const sys = await startDkv("routing", NODES, N);
const gwPort = freePort();
const orchAddress = await (async () => {
  const r = await fetch(`http://${sys.addresses[0]}/cluster/status`);
  return ((await r.json()) as { orchestrator: { address: string } }).orchestrator.address;
})();
const gateway = `127.0.0.1:${gwPort}`;
spawnLogged("routing-gateway", [
  DKV,
  "--role",
  "gateway",
  `--orchestrator=${orchAddress}`,
  "--port",
  String(gwPort),
  "--log-level",
  "warn",
]);
await waitFor("the gateway to see the ring", async () => {
  try {
    const r = await fetch(`http://${gateway}/cluster/ring`);
    if (!r.ok) return false;
    const ring = (await r.json()) as { members: { inRing: boolean; state: string }[] };
    return ring.members.filter((m) => m.inRing && m.state === "UP").length === NODES;
  } catch {
    return false;
  }
}, 30_000);

interface Ring {
  partitions: number;
  replicas: string[][];
  members: { id: string; address: string }[];
}
const ring = (await (await fetch(`http://${sys.addresses[0]}/cluster/ring`)).json()) as Ring;
const addressOf = new Map(ring.members.map((m) => [m.id, m.address]));
const keys = Array.from({ length: KEYS }, (_, i) => `route-${String(i).padStart(7, "0")}`);

/** Key lists per target index, written to their own directory; returns it. */
function writeLists(name: string, lists: string[][]): string {
  const d = join(dir, name);
  rmSync(d, { recursive: true, force: true });
  Bun.spawnSync(["mkdir", "-p", d]);
  lists.forEach((l, i) => writeFileSync(join(d, `keys-${i}.txt`), l.join("\n") + "\n"));
  return d;
}

const nodeIndex = new Map(sys.addresses.map((a, i) => [a, i]));
const direct: string[][] = sys.addresses.map(() => []);
const random: string[][] = sys.addresses.map(() => []);
let seed = 12345;
const rnd = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
};
for (const k of keys) {
  const first = addressOf.get(ring.replicas[partitionOf(k, ring.partitions)]![0]!)!;
  direct[nodeIndex.get(first)!]!.push(k);
  random[Math.floor(rnd() * NODES)]!.push(k);
}
const modes = [
  { name: "direct", targets: sys.addresses, keysDir: writeLists("direct", direct) },
  { name: "random", targets: sys.addresses, keysDir: writeLists("random", random) },
  { name: "gateway", targets: [gateway], keysDir: writeLists("gateway", [keys]) },
];

interface Routing {
  coordinated: number;
  asReplica: number;
  replicaCalls: number;
}
/** Routing counters of every node and the gateway, summed. */
async function routingTotals(): Promise<Routing> {
  const r = await fetch(`http://${gateway}/cluster/status`);
  const s = (await r.json()) as { routing: Routing; members: { routing?: Routing }[] };
  const t = { ...s.routing };
  for (const m of s.members) {
    if (m.routing === undefined) continue;
    t.coordinated += m.routing.coordinated;
    t.asReplica += m.routing.asReplica;
    t.replicaCalls += m.routing.replicaCalls;
  }
  return t;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(
  `routing: ${NODES} nodes, N = ${N}, ${KEYS} keys, 100-byte values, wrk ${THREADS} threads × ` +
    `${CONNECTIONS} connections, ${RUNS} interleaved runs of ${SECONDS} s per mode (medians)`,
);
console.log(
  "   op    mode       req/s   p99 ms   replica calls/req   coordinated by a replica",
);
for (const op of ["put", "get"]) {
  const rps = modes.map(() => [] as number[]);
  const p99 = modes.map(() => [] as number[]);
  const calls = modes.map(() => ({ req: 0, calls: 0, asReplica: 0 }));
  for (const m of modes) {
    // Warm-up (and, before the gets, the keys' values).
    await runWrk({
      script: "routed.lua",
      targets: m.targets,
      threads: THREADS,
      connections: CONNECTIONS,
      durationS: 2,
      env: { BENCH_OP: "put", BENCH_KEYS_DIR: m.keysDir },
    });
  }
  for (let run = 0; run < RUNS; run++) {
    for (const [i, m] of modes.entries()) {
      const before = await routingTotals();
      const r = await runWrk({
        script: "routed.lua",
        targets: m.targets,
        threads: THREADS,
        connections: CONNECTIONS,
        durationS: SECONDS,
        env: { BENCH_OP: op, BENCH_KEYS_DIR: m.keysDir },
      });
      const after = await routingTotals();
      rps[i]!.push(r.rps);
      p99[i]!.push(r.p99Ms);
      calls[i]!.req += after.coordinated - before.coordinated;
      calls[i]!.calls += after.replicaCalls - before.replicaCalls;
      calls[i]!.asReplica += after.asReplica - before.asReplica;
    }
  }
  for (const [i, m] of modes.entries()) {
    const c = calls[i]!;
    console.log(
      `   ${op.toUpperCase().padEnd(5)} ${m.name.padEnd(8)} ${
        Math.round(median(rps[i]!)).toString().padStart(7)
      } ${median(p99[i]!).toFixed(1).padStart(8)}   ${
        (c.calls / Math.max(1, c.req)).toFixed(2).padStart(17)
      }   ${((100 * c.asReplica) / Math.max(1, c.req)).toFixed(0).padStart(22)} %`,
    );
  }
}
await sys.stop();
process.exit(0);
