/**
 * End-to-end test support: start real `dkv` processes on loopback ports, wait on conditions with
 * deadlines, and always kill what was started (call `stopAll()` in afterAll; an exit hook kills
 * leftovers even if a test file crashes).
 */
import { closeSync, mkdirSync, openSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

export const ROOT = resolve(import.meta.dir, "../..");
export const DKV = join(ROOT, "dkv");
export const DENO = join(ROOT, "node_modules/.bin/deno");
export const LOG_DIR = join(ROOT, "tmp/test-logs");

const running = new Set<Proc>();
process.on("exit", () => {
  for (const p of running) p.kill(9);
});

export interface Proc {
  readonly name: string;
  readonly port: number;
  readonly address: string;
  readonly proc: Subprocess;
  readonly logPath: string;
  kill(signal?: number): void;
  exited: Promise<number>;
}

/** A free loopback port, found by letting the OS pick one and releasing it. */
export function freePort(): number {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = s.port!;
  s.stop(true);
  return port;
}

/** `count` distinct free ports. */
export function freePorts(count: number): number[] {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(freePort());
  return [...ports];
}

/** Start a process with stdout+stderr in a log file under tmp/test-logs. */
export function spawnLogged(name: string, cmd: string[], port: number): Proc {
  mkdirSync(LOG_DIR, { recursive: true });
  const logPath = join(LOG_DIR, `${name}.log`);
  const fd = openSync(logPath, "a");
  const proc = Bun.spawn(cmd, { cwd: ROOT, stdout: fd, stderr: fd, stdin: "ignore" });
  closeSync(fd);
  const p: Proc = {
    name,
    port,
    address: `127.0.0.1:${port}`,
    proc,
    logPath,
    kill(signal = 9) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
    exited: proc.exited.then((code) => {
      running.delete(p);
      return code;
    }),
  };
  running.add(p);
  return p;
}

export function startOrchestrator(port: number, extra: string[] = [], name = `orch-${port}`): Proc {
  return spawnLogged(name, [
    DKV,
    "--role",
    "orchestrator",
    "--port",
    String(port),
    "--preset",
    "local",
    ...extra,
  ], port);
}

export function startNode(
  port: number,
  orchestratorPort: number,
  extra: string[] = [],
  name = `node-${port}`,
): Proc {
  return spawnLogged(
    name,
    [
      DKV,
      "--role",
      "node",
      "--port",
      String(port),
      // Port 0: no orchestrator (the node joins through --join in `extra`).
      ...(orchestratorPort === 0 ? [] : [`--orchestrator=127.0.0.1:${orchestratorPort}`]),
      "--preset",
      "local",
      ...extra,
    ],
    port,
  );
}

/** Kill everything started by this process (SIGKILL) and wait for the exits. */
export async function stopAll(): Promise<void> {
  const all = [...running];
  for (const p of all) p.kill(9);
  await Promise.all(all.map((p) => p.exited));
}

/** Poll `check` until it returns a truthy value or the deadline passes (then throw with `what`). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await Bun.sleep(50);
  }
  throw new Error(
    `timed out after ${timeoutMs}ms waiting for ${what}${
      last ? ` (last error: ${String(last)})` : ""
    }`,
  );
}

export interface HttpResult {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** One HTTP call to a member, JSON answer parsed. Never throws on HTTP errors. */
export async function http(
  method: string,
  address: string,
  path: string,
  body?: string | Uint8Array<ArrayBuffer>,
  headers?: Record<string, string>,
): Promise<HttpResult> {
  const res = await fetch(`http://${address}${path}`, {
    method,
    body,
    headers,
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

/** GET /all-nodes on a member: the nodes (role node) with their status. */
export async function nodeStates(address: string): Promise<Map<string, string>> {
  const r = await http("GET", address, "/all-nodes");
  const out = new Map<string, string>();
  for (const m of r.body.allNodes as { id: string; role: string; status: string }[]) {
    if (m.role === "node") out.set(m.id, m.status);
  }
  return out;
}

/** True when `address` lists exactly `ids` as nodes, all UP. */
export async function allUp(address: string, ids: readonly string[]): Promise<boolean> {
  const states = await nodeStates(address);
  return states.size === ids.length && ids.every((id) => states.get(id) === "UP");
}

export interface Cluster {
  orchestrator: Proc;
  nodes: Proc[];
  all(): Proc[];
}

/** Orchestrator + `n` nodes on free ports, waited until every member lists every node UP. */
export async function startCluster(
  n: number,
  opts: { nodeArgs?: string[]; orchArgs?: string[] } = {},
): Promise<Cluster> {
  const [orchPort, ...nodePorts] = freePorts(n + 1);
  const orchestrator = startOrchestrator(orchPort!, opts.orchArgs);
  const nodes = nodePorts.map((p) => startNode(p, orchPort!, opts.nodeArgs));
  const ids = nodes.map((p) => p.address);
  for (const m of [orchestrator, ...nodes]) {
    await waitFor(`${m.name} to list ${n} nodes UP`, () => allUp(m.address, ids), 20_000);
  }
  return { orchestrator, nodes, all: () => [orchestrator, ...nodes] };
}
