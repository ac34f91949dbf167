/**
 * Membership figures (gossip issue), real processes on loopback with DEFAULT settings
 * (--preset lan): an orchestrator and N nodes.
 *
 *   1. join: time from starting one more node (--join through one member) until every member
 *      lists it UP;
 *   2. failure detection: time from kill -9 of a node until every other member lists it DOWN;
 *   3. gossip bandwidth: bytes each node sent per second over a quiet window.
 * Each repeated --runs times on a fresh cluster; prints median and min–max.
 *
 *   npm run bench:gossip -- [--nodes 5] [--runs 3] [--window-ms 5000]
 */
import { parseArgs } from "node:util";
import { DKV } from "./bench/systems.ts";
import {
  freePort,
  killAllNow,
  killAllOnExit,
  type Proc,
  spawnLogged,
  waitFor,
} from "./bench/procs.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    nodes: { type: "string", default: "5" },
    runs: { type: "string", default: "3" },
    "window-ms": { type: "string", default: "5000" },
  },
  strict: true,
});
const NODES = Number(values.nodes);
const RUNS = Number(values.runs);
const WINDOW_MS = Number(values["window-ms"]);
if (!(NODES >= 3 && RUNS >= 1 && WINDOW_MS >= 1000)) {
  console.error("bench-gossip: --nodes ≥ 3, --runs ≥ 1, --window-ms ≥ 1000");
  process.exit(2);
}
killAllOnExit();

interface Member {
  proc: Proc;
  address: string;
}

async function states(address: string): Promise<Map<string, string>> {
  const res = await fetch(`http://${address}/all-nodes`, { signal: AbortSignal.timeout(2000) });
  const body = await res.json() as { allNodes: { id: string; status: string }[] };
  return new Map(body.allNodes.map((m) => [m.id, m.status]));
}

/** Poll every member in parallel until all report `id` as `state`; returns ms since `t0`. */
async function untilAll(members: Member[], id: string, state: string, t0: number): Promise<number> {
  const seen = new Map<string, number>();
  await waitFor(`${id} ${state} everywhere`, async () => {
    await Promise.all(members.map(async (m) => {
      if (seen.has(m.address)) return;
      const s = await states(m.address).catch(() => undefined);
      if (s?.get(id) === state) seen.set(m.address, performance.now() - t0);
    }));
    return seen.size === members.length;
  }, 60_000);
  return Math.max(...seen.values());
}

function node(port: number, args: string[], name: string): Member {
  return {
    proc: spawnLogged(name, [
      DKV,
      "--role",
      "node",
      "--port",
      String(port),
      "--log-level",
      "warn",
      ...args,
    ]),
    address: `127.0.0.1:${port}`,
  };
}

async function run(i: number) {
  const orchPort = freePort();
  const orch: Member = {
    proc: spawnLogged(`g-orch-${i}`, [
      DKV,
      "--role",
      "orchestrator",
      "--port",
      String(orchPort),
      "--log-level",
      "warn",
    ]),
    address: `127.0.0.1:${orchPort}`,
  };
  const nodes = Array.from(
    { length: NODES },
    (_, k) => node(freePort(), [`--orchestrator=${orch.address}`], `g-node-${i}-${k}`),
  );
  const all = () => [orch, ...nodes];
  for (const n of nodes) await untilAll(all(), n.address, "UP", performance.now());

  // Bandwidth over a quiet window.
  const sentBytes = async () =>
    await Promise.all(nodes.map(async (n) => {
      const r = await fetch(`http://${n.address}/internal/v1/status`);
      return ((await r.json()) as { gossip: { bytesSent: number; messagesSent: number } }).gossip;
    }));
  const a = await sentBytes();
  const wStart = performance.now();
  await Bun.sleep(WINDOW_MS); // a measurement window, not a wait for a condition
  const b = await sentBytes();
  const secs = (performance.now() - wStart) / 1000;
  const bytesPerNodeSec = b.reduce((s, x, k) => s + x.bytesSent - a[k]!.bytesSent, 0) /
    nodes.length / secs;
  const msgsPerNodeSec = b.reduce((s, x, k) => s + x.messagesSent - a[k]!.messagesSent, 0) /
    nodes.length / secs;

  // Join through one member (no orchestrator address given).
  const joinT0 = performance.now();
  const joiner = node(freePort(), [`--join=${nodes[0]!.address}`], `g-joiner-${i}`);
  nodes.push(joiner);
  const joinMs = await untilAll(all(), joiner.address, "UP", joinT0);

  // kill -9 one node.
  const victim = nodes[1]!;
  const killT0 = performance.now();
  process.kill(victim.proc.pid, "SIGKILL");
  const others = all().filter((m) => m !== victim);
  const downMs = await untilAll(others, victim.address, "DOWN", killT0);
  killAllNow();
  await Promise.all(all().map((m) => m.proc.exited));
  return { joinMs, downMs, bytesPerNodeSec, msgsPerNodeSec };
}

const stat = (xs: number[], digits = 0) => {
  const s = [...xs].sort((p, q) => p - q);
  const f = (x: number) => x.toFixed(digits);
  return `${f(s[Math.floor(s.length / 2)]!)} (${f(s[0]!)}–${f(s[s.length - 1]!)})`;
};

const results = [];
for (let i = 0; i < RUNS; i++) results.push(await run(i));
console.log(
  `gossip, ${NODES} nodes + orchestrator, default settings (--preset lan), ${RUNS} runs, median (min–max):`,
);
console.log(`  join via --join visible on every member:  ${stat(results.map((r) => r.joinMs))} ms`);
console.log(`  kill -9 → DOWN on every other member:     ${stat(results.map((r) => r.downMs))} ms`);
console.log(
  `  gossip sent per node per second:          ${
    stat(results.map((r) => r.bytesPerNodeSec))
  } bytes, ${stat(results.map((r) => r.msgsPerNodeSec), 1)} messages`,
);
killAllNow();
