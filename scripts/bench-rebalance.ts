/**
 * Rebalance and repair figures (self-healing issue), on loopback:
 *
 *   1. rebalance throughput: a 5-node cluster (N=3) holding K keys × V-byte values; a sixth node
 *      joins; time from its start until every node reports no partition moving and none held
 *      that it does not own; keys/s and MB/s from the senders' counters; the streaming rate
 *      alone, from the first sender's round start to the last sender's streams acknowledged
 *      (the movers' lastStartedAt and lastStreamedAt: the wait before the drops, two view-push
 *      intervals from the ring change, is not streaming); meanwhile a client
 *      reads loaded keys and writes new ones through random nodes, and every non-2xx answer (or
 *      a 404 for a loaded key) counts as an error;
 *   2. repair time: one node killed (-9) and restarted empty on the same port; time from the
 *      restart until it holds every key it owns again (hints + anti-entropy).
 *
 * Keys are bulk-loaded straight onto their replicas through the internal write message, with
 * placement computed by the project's own core (a client load through the public API would
 * take minutes and measure something else).
 *
 *   npm run bench:rebalance -- [--keys 500000] [--value-bytes 100] [--anti-entropy-interval 10s]
 *
 * BENCH_PROFILE=1: the nodes run from source under `bun --cpu-prof`; once the move settled each
 * is stopped (two SIGINTs: the second exits at once, so no leave is profiled) and a summary of
 * its samples from the join to the end of the streams is written to
 * tmp/bench-profile/rebalance/<node>.txt (the repair part is skipped).
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Ring, type View } from "../src/core/view.ts";
import { DKV } from "./bench/systems.ts";
import { summarize } from "./bench/cpu-profile.ts";
import {
  freePort,
  killAllNow,
  killAllOnExit,
  type Proc,
  ROOT,
  spawnLogged,
  waitFor,
} from "./bench/procs.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    keys: { type: "string", default: "500000" },
    "value-bytes": { type: "string", default: "100" },
    "anti-entropy-interval": { type: "string", default: "10s" },
    clients: { type: "string", default: "8" },
  },
  strict: true,
});
const KEYS = Number(values.keys);
const VALUE_BYTES = Number(values["value-bytes"]);
const CLIENTS = Number(values.clients);
const AE = values["anti-entropy-interval"]!;
if (!(KEYS > 0 && VALUE_BYTES > 0 && CLIENTS > 0)) {
  console.error("bench-rebalance: --keys, --value-bytes and --clients must be positive numbers");
  process.exit(2);
}
const PARTITIONS = 256;
const PROFILE_DIR = process.env.BENCH_PROFILE
  ? join(ROOT, "tmp/bench-profile/rebalance")
  : undefined;
const N = 3;

killAllOnExit();

interface Member {
  proc: Proc;
  port: number;
  address: string;
}

const orchPort = freePort();
const orchAddress = `127.0.0.1:${orchPort}`;

function startNode(port: number, name: string): Member {
  const dkv = PROFILE_DIR === undefined ? [DKV] : [
    join(ROOT, "node_modules/.bin/bun"),
    "--cpu-prof",
    "--cpu-prof-interval=250",
    `--cpu-prof-dir=${join(PROFILE_DIR, name)}`,
    join(ROOT, "src/main.ts"),
  ];
  const proc = spawnLogged(name, [
    ...dkv,
    "--role",
    "node",
    "--port",
    String(port),
    `--orchestrator=${orchAddress}`,
    "--anti-entropy-interval",
    AE,
    "--log-level",
    process.env.BENCH_LOG_LEVEL ?? "warn",
    // Extra node flags for experiments, e.g. BENCH_NODE_ARGS="--batch-keys 4000".
    ...(process.env.BENCH_NODE_ARGS ?? "").split(" ").filter((a) => a !== ""),
  ]);
  return { proc, port, address: `127.0.0.1:${port}` };
}

async function json(address: string, path: string, init?: RequestInit) {
  const res = await fetch(`http://${address}${path}`, {
    ...init,
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, body: await res.json() };
}

async function allUp(ids: string[]): Promise<boolean> {
  const r = await json(orchAddress, "/all-nodes");
  const up = (r.body.allNodes as { id: string; role: string; status: string }[])
    .filter((m) => m.role === "node" && m.status === "UP").map((m) => m.id);
  return ids.every((id) => up.includes(id)) && up.length === ids.length;
}

/** The ring as the cluster has it, rebuilt from /all-nodes with the project's own placement. */
async function currentRing(): Promise<Ring> {
  const r = await json(orchAddress, "/all-nodes");
  const members = (r.body.allNodes as {
    id: string;
    ip: string;
    port: number;
    role: "node" | "orchestrator";
    status: "UP";
    inRing: boolean;
  }[])
    .map((m) => ({
      id: m.id,
      address: `${m.ip}:${m.port}`,
      role: m.role,
      state: m.status,
      inRing: m.inRing,
      incarnation: 0,
    }));
  const view: View = {
    instance: "bench",
    epoch: 0,
    replicationFactor: N,
    partitions: PARTITIONS,
    members,
  };
  return new Ring(view);
}

const keyOf = (i: number) => `bench-key-${i}`;
const value = "v".repeat(VALUE_BYTES);

async function bulkLoad(ring: Ring): Promise<void> {
  type Loaded = { k: string; v: string; t: number; c: number; n: string };
  const byNode = new Map<string, { id: string; records: Loaded[] }>();
  const t = Date.now();
  for (let i = 0; i < KEYS; i++) {
    for (const m of ring.replicas(keyOf(i))) {
      let to = byNode.get(m.address);
      if (to === undefined) byNode.set(m.address, to = { id: m.id, records: [] });
      to.records.push({ k: keyOf(i), v: value, t, c: 0, n: "bench-loader" });
    }
  }
  await Promise.all([...byNode].map(async ([address, { id, records }]) => {
    for (let i = 0; i < records.length; i += 5000) {
      // A replica write names the member it is meant for (`to`), or the node refuses it (400).
      const r = await json(address, "/internal/v1/kv/write", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ to: id, records: records.slice(i, i + 5000) }),
      });
      if (r.status !== 200) {
        throw new Error(
          `bulk load to ${address}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`,
        );
      }
    }
  }));
}

interface NodeStatus {
  id: string;
  keys: number;
  movingOut: number;
  movingIn: number;
  partitionsHeldNotOwned: number;
  rebalance: {
    keysSent: number;
    bytesSent: number;
    running: boolean;
    lastStartedAt: string | null;
    /** Absent from builds before these figures. */
    lastStreamedAt?: string | null;
    lastStreamBytes?: number | null;
  };
  error?: string;
}

/** After the join: each mover's first round that streamed anything (a later orphan round resets them). */
let joinStart = Infinity;
const streamRounds = new Map<string, NodeStatus["rebalance"]>();

async function statuses(): Promise<NodeStatus[]> {
  const r = await json(orchAddress, "/cluster/status");
  const nodes = (r.body.members as NodeStatus[]).filter((m) =>
    (m as unknown as { role: string }).role === "node"
  );
  for (const { id, rebalance: rb } of nodes) {
    if (!rb || (rb.lastStreamBytes ?? 0) === 0 || rb.lastStartedAt === null) continue;
    const at = Date.parse(rb.lastStartedAt);
    const seen = streamRounds.get(id);
    if (at >= joinStart && (seen === undefined || at < Date.parse(seen.lastStartedAt!))) {
      streamRounds.set(id, rb);
    }
  }
  return nodes;
}

/** A client mixing reads of loaded keys and writes of new ones while something happens. */
function clientLoad(members: () => Member[]) {
  let running = true;
  const counts = {
    ok: 0,
    writes: 0,
    errors: 0,
    samples: [] as string[],
    /** Errors by kind: read or write, status, the message without addresses and numbers. */
    kinds: new Map<string, number>(),
  };
  const kind = (read: boolean, what: string) => {
    const k = `${read ? "GET" : "POST"} ${
      what.replace(/127\.0\.0\.1:\d+/g, "X").replace(/\d+/g, "N").slice(0, 90)
    }`;
    counts.kinds.set(k, (counts.kinds.get(k) ?? 0) + 1);
  };
  const loops = Array.from({ length: CLIENTS }, async (_, c) => {
    let i = c;
    while (running) {
      const ms = members();
      const at = ms[i % ms.length]!.address;
      const read = i % 4 !== 0;
      const path = read ? `/kv/${keyOf((i * 7919) % KEYS)}` : `/kv/bench-new-${c}-${i}`;
      try {
        const res = await fetch(`http://${at}${path}`, {
          method: read ? "GET" : "POST",
          body: read ? undefined : value,
          signal: AbortSignal.timeout(10_000),
        });
        const text = await res.text();
        if (res.status === 200) {
          counts.ok++;
          if (!read) counts.writes++;
        } else {
          counts.errors++;
          const message = /"errorMessage":"([^"]*)"/.exec(text)?.[1] ?? text;
          kind(read, `${res.status} ${message}`);
          if (counts.samples.length < 5) {
            counts.samples.push(`${path} at ${at}: HTTP ${res.status} ${text.slice(0, 400)}`);
          }
        }
      } catch (e) {
        counts.errors++;
        kind(read, (e as Error).message);
        if (counts.samples.length < 5) {
          counts.samples.push(`${path} at ${at}: ${(e as Error).message}`);
        }
      }
      i += CLIENTS;
    }
  });
  return {
    counts,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function main() {
  if (PROFILE_DIR !== undefined) rmSync(PROFILE_DIR, { recursive: true, force: true });
  spawnLogged("rb-orch", [
    DKV,
    "--role",
    "orchestrator",
    "--port",
    String(orchPort),
    "--log-level",
    "warn",
  ]);
  const nodes: Member[] = [];
  for (let i = 0; i < 5; i++) nodes.push(startNode(freePort(), `rb-node-${i}`));
  await waitFor("five nodes UP", () => allUp(nodes.map((n) => n.address)), 30_000);

  const loadStart = Date.now();
  await bulkLoad(await currentRing());
  const loadMs = Date.now() - loadStart;
  const before = await statuses();
  const total = before.reduce((n, s) => n + s.keys, 0);
  console.log(`loaded ${KEYS} keys × ${VALUE_BYTES} B (${total} replicas) in ${loadMs} ms`);
  if (total !== KEYS * N) {
    throw new Error(`expected ${KEYS * N} replicas after the load, found ${total}`);
  }

  // 1. A sixth node joins, once every node is ready to serve (the load may have paused them).
  await waitFor("five nodes ready", async () => {
    for (const n of nodes) if (!(await isReady(n))) return false;
    return true;
  }, 60_000);
  const serving = [...nodes]; // the client uses a node once it is listening and UP
  const client = clientLoad(() => serving);
  await Bun.sleep(500); // client traffic under way before the join (a warm-up, not a wait)
  const cpuBefore = nodes.map((n) => cpuMs(n.proc.pid));
  joinStart = Date.now();
  const sixth = startNode(freePort(), "rb-node-5");
  nodes.push(sixth);
  // CPU time of every node from the join until the streams all ended (each old node moves some).
  let cpuStreams: number[] | undefined;
  const noteStreamsEnd = () => {
    if (cpuStreams === undefined && streamRounds.size === 5) {
      cpuStreams = nodes.map((n) => cpuMs(n.proc.pid));
    }
  };
  await waitFor("six nodes UP", () => allUp(nodes.map((n) => n.address)), 30_000);
  const upAt = Date.now();
  const sixthCpuAtUp = cpuMs(sixth.proc.pid); // its start-up is not the move's
  // The client sends the new node requests once it says it is ready (GET /ready, as a load
  // balancer would ask): UP at the orchestrator, it may not have its own view yet.
  const ready = waitFor("the sixth node to be ready", () => isReady(sixth), 60_000)
    .then(() => serving.push(sixth));
  let after: NodeStatus[] = [];
  // The bulk move: every sender done with its plan (no partition moving out anywhere).
  await waitFor("the streams to finish", async () => {
    const s = await statuses();
    noteStreamsEnd();
    return s.length === 6 && s.every((x) =>
      !x.error && x.movingOut === 0 && !x.rebalance.running
    ) &&
      s.find((x) => x.id === sixth.address)!.keys > 0;
  }, 600_000);
  const streamedMs = Date.now() - upAt;
  // Settled: also no data held anywhere for a partition its holder does not own (writes that
  // reached an old owner from a coordinator whose view was a moment behind are handed on by the
  // orphan check).
  await waitFor("the rebalance to finish", async () => {
    after = await statuses();
    return after.length === 6 && after.every((s) =>
      !s.error && s.movingOut === 0 && s.partitionsHeldNotOwned === 0
    ) &&
      after.find((s) => s.id === sixth.address)!.keys > 0;
  }, 600_000);
  const moveMs = Date.now() - joinStart;
  const moveAfterUpMs = Date.now() - upAt;
  await ready;
  await client.stop();
  const sent = after.reduce((n, s) => n + s.rebalance.keysSent, 0) -
    before.reduce((n, s) => n + s.rebalance.keysSent, 0);
  const bytes = after.reduce((n, s) => n + s.rebalance.bytesSent, 0) -
    before.reduce((n, s) => n + s.rebalance.bytesSent, 0);
  const finalReplicas = after.reduce((n, s) => n + s.keys, 0);
  const requests = client.counts.ok + client.counts.errors;

  const mb = bytes / 1e6;
  // The streams alone: senders of this round, from the first one's start to the last one's end.
  const movers = [...streamRounds.values()];
  let streaming = "streaming alone: not reported by this build";
  let streamsEndMs = Date.now();
  if (movers.length > 0) {
    const from = Math.min(...movers.map((rb) => Date.parse(rb.lastStartedAt!)));
    const to = Math.max(...movers.map((rb) => Date.parse(rb.lastStreamedAt!)));
    streamsEndMs = to;
    const streamMb = movers.reduce((n, rb) => n + rb.lastStreamBytes!, 0) / 1e6;
    streaming = `streaming alone: ${streamMb.toFixed(1)} MB by ${movers.length} movers in ${
      to - from
    } ms = ${((streamMb * 1000) / Math.max(1, to - from)).toFixed(1)} MB/s`;
  }
  let cpu = "CPU from the join to the end of the streams: not measured (fewer than 5 movers)";
  if (cpuStreams !== undefined) {
    const movers5 = cpuStreams.slice(0, 5).reduce((n, c, i) => n + c - cpuBefore[i]!, 0);
    const receiver = cpuStreams[5]! - sixthCpuAtUp;
    const us = (ms: number) => ((ms * 1000) / Math.max(1, sent)).toFixed(2);
    cpu = `CPU from the join to the end of the streams (client traffic and status polls ` +
      `included): the 5 movers ${movers5} ms (${us(movers5)} µs/key), the new node (from UP) ` +
      `${receiver} ms (${us(receiver)} µs/key)`;
  }
  const lines = [
    `keys loaded: ${KEYS} × ${VALUE_BYTES} B, N=${N}, ${PARTITIONS} partitions; load took ${loadMs} ms`,
    `join of a 6th node: ${sent} keys (${
      mb.toFixed(1)
    } MB) streamed; ${moveMs} ms from its start ` +
    `(${moveAfterUpMs} ms from UP) to settled = ${
      Math.round((sent * 1000) / moveAfterUpMs)
    } keys/s, ` +
    `${
      ((mb * 1000) / moveAfterUpMs).toFixed(1)
    } MB/s; the streams themselves finished ${streamedMs} ms ` +
    `after UP (the drops' wait for the ring to spread included) = ${
      Math.round((sent * 1000) / streamedMs)
    } keys/s, ${((mb * 1000) / streamedMs).toFixed(1)} MB/s`,
    streaming,
    cpu,
    `replicas after the move: ${finalReplicas} (loaded ${
      KEYS * N
    } + ${client.counts.writes} client writes × ${N})`,
    `client during the move: ${requests} requests, ${client.counts.errors} errors ` +
    `(${((100 * client.counts.errors) / Math.max(1, requests)).toFixed(3)}%)${
      client.counts.samples.length ? `; e.g. ${client.counts.samples.join(" | ")}` : ""
    }`,
    ...[...client.counts.kinds].map(([k, n]) => `  ${n} × ${k}`),
    PROFILE_DIR === undefined
      ? await repair(nodes)
      : await profiles(nodes, joinStart, streamsEndMs),
  ];
  console.log(lines.join("\n"));
}

/** Does the node answer GET /ready with 200 (it can serve quorum requests)? */
async function isReady(n: Member): Promise<boolean> {
  const res = await fetch(`http://${n.address}/ready`, { signal: AbortSignal.timeout(5000) });
  await res.arrayBuffer();
  return res.status === 200;
}

/** User + system CPU time of a process so far, in ms (Linux /proc; 10 ms ticks). */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command (which may hold spaces) start after its closing parenthesis.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10; // utime, stime (fields 14, 15) at 100 Hz
  } catch {
    return NaN;
  }
}

/** 2. Kill -9 one node, restart it empty, time the repair. */
async function repair(nodes: Member[]): Promise<string> {
  const victim = nodes[1]!;
  const ring = await currentRing();
  let owned = 0;
  for (let i = 0; i < KEYS; i++) {
    if (ring.replicas(keyOf(i)).some((m) => m.id === victim.address)) owned++;
  }
  const extra = (await statuses()).find((s) => s.id === victim.address)!.keys - owned; // client writes
  process.kill(victim.proc.pid, "SIGKILL");
  await victim.proc.exited;
  const restartAt = Date.now();
  nodes[1] = startNode(victim.port, "rb-node-1-restarted");
  await waitFor("the restarted node to hold all it owns", async () => {
    const s = (await statuses()).find((x) => x.id === victim.address);
    return s !== undefined && !s.error && s.keys >= owned + extra;
  }, 600_000);
  const repairMs = Date.now() - restartAt;
  return `restart of a node (kill -9, empty) to fully repaired (${
    owned + extra
  } keys, anti-entropy every ${AE}): ${repairMs} ms`;
}

/** BENCH_PROFILE: stop every node, summarize its samples from `fromMs` to `toMs` (wall). */
async function profiles(nodes: Member[], fromMs: number, toMs: number): Promise<string> {
  const written: string[] = [];
  for (const n of nodes) {
    // The second signal exits at once (the first starts a leave, which is not profiled).
    process.kill(n.proc.pid, "SIGINT");
    await Bun.sleep(20);
    process.kill(n.proc.pid, "SIGINT");
    await n.proc.exited;
    const exitMs = Date.now();
    const dir = join(PROFILE_DIR!, n.proc.name);
    const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
    if (file === undefined) continue;
    const text = summarize(JSON.parse(readFileSync(join(dir, file), "utf8")), 30, {
      fromEndUs: (exitMs - fromMs) * 1000,
      toEndUs: Math.max(0, exitMs - toMs) * 1000,
    });
    const out = join(PROFILE_DIR!, `${n.proc.name}.txt`);
    writeFileSync(out, `${text}\n`);
    written.push(out);
  }
  return `profiles (from the join to the end of the streams): ${written.join(", ")}`;
}

try {
  await main();
} catch (e) {
  console.error(`bench-rebalance: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  killAllNow();
}
