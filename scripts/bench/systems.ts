/**
 * The systems under test, each started on free loopback ports and waited for until it serves:
 * a dkv cluster (orchestrator + nodes), a bare Bun.serve, redis-server, a 3-member etcd cluster.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  BUN,
  freePort,
  type Proc,
  ROOT,
  runCapture,
  sleep,
  spawnLogged,
  waitFor,
} from "./procs.ts";

export const DKV = join(ROOT, "dkv");

/** The binary startDkv runs: ./dkv unless the caller pinned a copy (see useDkvBinary). */
let dkvBinary = DKV;

/**
 * Run a copy of ./dkv from now on, so a rebuild of ./dkv during a run (tests rebuild it) cannot
 * change what is measured halfway through.
 */
export function useDkvBinary(path: string): void {
  dkvBinary = path;
}

/** The binary startDkv runs now. */
export function dkvBinaryPath(): string {
  return dkvBinary;
}

/** Deadline for anything to come up on loopback; start-up takes well under a second normally. */
const READY_TIMEOUT_MS = 20_000;

export interface System {
  /** Client addresses (host:port) the load generator may use. */
  readonly addresses: string[];
  readonly procs: Proc[];
  /** A dkv cluster's orchestrator (host:port), which holds no data but answers the API too. */
  readonly orchestratorAddress?: string;
  stop(): Promise<void>;
}

function systemOf(addresses: string[], procs: Proc[]): System {
  return {
    addresses,
    procs,
    stop: async () => {
      await Promise.all(procs.map((p) => p.stop()));
    },
  };
}

/** Fail fast with the log tail if a process died while we waited for it. */
function assertAlive(procs: readonly Proc[]): void {
  for (const p of procs) {
    if (!p.alive()) throw new Error(`${p.name} exited early; its log ends:\n${p.logTail()}`);
  }
}

/** A client of members serving HTTPS: the CA to check them against, a certificate for mTLS. */
export interface TlsClient {
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

async function getJson(
  url: string,
  tls?: TlsClient,
  headers: Record<string, string> = {},
): Promise<unknown> {
  const res = await fetch(url, {
    signal: AbortSignal.timeout(2000),
    headers,
    ...(tls ? { tls } : {}),
  });
  return res.ok ? await res.json() : undefined;
}

/**
 * An orchestrator and `nodes` data nodes with replication factor `n`, default timers, logs at
 * warn. Ready when every member lists every node UP (GET /all-nodes).
 */
export async function startDkv(
  label: string,
  nodes: number,
  n: number,
  /** Extra flags for every member (e.g. --cluster-secret-file). */
  extra: readonly string[] = [],
  /** Members serve HTTPS (extra has --tls-cert ...): how to reach them (PEM texts). */
  tls?: TlsClient,
  /** Headers for the readiness checks (an Authorization header when members need tokens). */
  headers: Record<string, string> = {},
  /** Flags for node i (0-based) only (e.g. its own --data-dir). */
  nodeArgs: (i: number) => readonly string[] = () => [],
): Promise<System> {
  const orchPort = freePort();
  const orch = spawnLogged(`${label}-orchestrator`, [
    dkvBinary,
    "--role",
    "orchestrator",
    "--port",
    String(orchPort),
    "--replication-factor",
    String(n),
    "--log-level",
    "warn",
    ...extra,
  ]);
  const procs = [orch];
  const addresses: string[] = [];
  const system = {
    ...systemOf(addresses, procs),
    orchestratorAddress: `127.0.0.1:${orchPort}`,
  };
  try {
    for (let i = 0; i < nodes; i++) {
      const port = freePort();
      addresses.push(`127.0.0.1:${port}`);
      procs.push(spawnLogged(`${label}-node${i + 1}`, [
        dkvBinary,
        "--role",
        "node",
        `--orchestrator=127.0.0.1:${orchPort}`,
        "--port",
        String(port),
        "--log-level",
        "warn",
        // `--env DKV_PEER_TRANSPORT=http` (bench:ab): every peer call over HTTP, no TCP link.
        ...(process.env.DKV_PEER_TRANSPORT === "http" ? ["--peer-port", "off"] : []),
        ...extra,
        ...nodeArgs(i),
      ]));
    }
    for (const address of [`127.0.0.1:${orchPort}`, ...addresses]) {
      await waitFor(`${label}: ${address} to list ${nodes} nodes UP`, async () => {
        assertAlive(procs);
        const body = await getJson(
          `${tls ? "https" : "http"}://${address}/all-nodes`,
          tls,
          headers,
        ) as {
          allNodes: { role: string; status: string }[];
        } | undefined;
        const up = body?.allNodes.filter((m) => m.role === "node" && m.status === "UP") ?? [];
        return up.length === nodes;
      }, READY_TIMEOUT_MS);
    }
    return system;
  } catch (e) {
    await system.stop();
    throw e;
  }
}

/** The runtime's HTTP ceiling: Bun.serve answering a fixed body (bare-server.ts). */
export async function startBare(): Promise<System> {
  const port = freePort();
  const proc = spawnLogged("bare-bun", [
    BUN,
    join(import.meta.dir, "bare-server.ts"),
    String(port),
  ]);
  const system = systemOf([`127.0.0.1:${port}`], [proc]);
  try {
    await waitFor("bare Bun.serve to answer", async () => {
      assertAlive([proc]);
      return (await fetch(`http://127.0.0.1:${port}/`)).ok;
    }, READY_TIMEOUT_MS);
    return system;
  } catch (e) {
    await system.stop();
    throw e;
  }
}

/** redis-server without persistence, DEBUG allowed from loopback (DEBUG POPULATE for memory). */
export async function startRedis(dataDir: string): Promise<System> {
  mkdirSync(dataDir, { recursive: true });
  const port = freePort();
  const proc = spawnLogged("redis", [
    "redis-server",
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dataDir,
    "--enable-debug-command",
    "local",
  ]);
  const system = systemOf([`127.0.0.1:${port}`], [proc]);
  try {
    await waitFor("redis to answer PING", async () => {
      assertAlive([proc]);
      const out = await redisCli(port, ["PING"]);
      return out.trim() === "PONG";
    }, READY_TIMEOUT_MS);
    return system;
  } catch (e) {
    await system.stop();
    throw e;
  }
}

export async function redisCli(port: number, args: string[]): Promise<string> {
  const out = await runCapture(["redis-cli", "-h", "127.0.0.1", "-p", String(port), ...args], {
    timeoutMs: 60_000,
  });
  if (out.code !== 0) throw new Error(`redis-cli ${args.join(" ")}: ${out.stderr.trim()}`);
  return out.stdout;
}

/**
 * A 3-member etcd cluster (default settings: fsync on, data dirs under `dataDir`). Ready when
 * every member answers /health with {"health":"true"} (it has a leader).
 */
export async function startEtcd(dataDir: string, members = 3): Promise<System> {
  const ms = Array.from({ length: members }, (_, i) => ({
    name: `m${i + 1}`,
    client: freePort(),
    peer: freePort(),
  }));
  const initialCluster = ms.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(",");
  const procs: Proc[] = [];
  const addresses = ms.map((m) => `127.0.0.1:${m.client}`);
  const system = systemOf(addresses, procs);
  try {
    for (const m of ms) {
      procs.push(spawnLogged(`etcd-${m.name}`, [
        "etcd",
        "--name",
        m.name,
        "--data-dir",
        join(dataDir, m.name),
        "--listen-client-urls",
        `http://127.0.0.1:${m.client}`,
        "--advertise-client-urls",
        `http://127.0.0.1:${m.client}`,
        "--listen-peer-urls",
        `http://127.0.0.1:${m.peer}`,
        "--initial-advertise-peer-urls",
        `http://127.0.0.1:${m.peer}`,
        "--initial-cluster",
        initialCluster,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        `dkv-bench-${process.pid}`,
        "--log-level",
        "warn",
      ]));
    }
    for (const a of addresses) {
      await waitFor(`etcd ${a} to be healthy`, async () => {
        assertAlive(procs);
        const body = await getJson(`http://${a}/health`) as { health?: string } | undefined;
        return body?.health === "true";
      }, READY_TIMEOUT_MS);
    }
    // The JSON gateway serves once the member is healthy; one put proves it end to end.
    const res = await fetch(`http://${addresses[0]}/v3/kv/put`, {
      method: "POST",
      body: JSON.stringify({ key: btoa("bench-probe"), value: btoa("1") }),
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok) throw new Error(`etcd JSON gateway answered HTTP ${res.status} to /v3/kv/put`);
    return system;
  } catch (e) {
    await system.stop();
    throw e;
  }
}

/** Give a freshly started system a moment (JIT, connection pools) before it is measured. */
export const settle = () => sleep(200);
