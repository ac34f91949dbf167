/**
 * End-to-end test support: start real `dkv` processes on loopback ports, wait on conditions with
 * deadlines, and always kill what was started.
 *
 * - **Ports** come from `freePort()`: a range below the kernel's ephemeral range (so no outgoing
 *   connection takes one meanwhile), each probed free, never handed out twice in one run. A port
 *   can still be taken between the probe and the child's bind (another test run on the machine):
 *   `launch()` and `startCluster()` then start again on fresh ports, and `restart()` waits for its
 *   port to be free and tries again.
 * - **Identity**: `ready(p)` waits until `/health` on p's address answers with an incarnation (the
 *   process start time) not older than p's spawn, so a test never talks to the process p replaced.
 * - **Environment**: children get `childEnv()`, a short allowlist of the caller's variables plus
 *   what the test passes; never the caller's `DKV_*` settings.
 * - **Cleanup**: call `stopAll()` in afterAll (or afterEach). Whatever is left is SIGKILLed when the
 *   runner exits, and when it gets SIGTERM, SIGINT or SIGHUP.
 */
import { closeSync, mkdirSync, openSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

export const ROOT = resolve(import.meta.dir, "../..");
export const DKV = join(ROOT, "dkv");
export const DENO = join(ROOT, "node_modules/.bin/deno");
export const LOG_DIR = join(ROOT, "tmp/test-logs");

const running = new Set<Proc>();
/** Processes started by something else (scripts/demo.sh) that this run must not leave behind. */
const adopted = new Set<number>();

/** Synchronous clean-ups for what a test started some other way, run at exit and on signals. */
const exitHooks: (() => void)[] = [];

function killLeftovers(): void {
  for (const p of running) p.kill(9);
  for (const pid of adopted) {
    try {
      process.kill(pid, 9);
    } catch {
      // Already gone.
    }
  }
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // Best effort: the other hooks still run.
    }
  }
}

process.on("exit", killLeftovers);
for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130], ["SIGHUP", 129]] as const) {
  process.on(signal, () => {
    killLeftovers();
    // process.exit runs the exit hooks too (partition.ts removes its iptables rules there).
    process.exit(code);
  });
}

/** Kill `pid` (SIGKILL) when this run ends, if it is still running then. */
export function adoptPid(pid: number): void {
  adopted.add(pid);
}

/** Run `hook` (synchronous) when the runner exits or gets SIGTERM, SIGINT or SIGHUP. */
export function atExit(hook: () => void): void {
  exitHooks.push(hook);
}

/**
 * The environment every child gets: these variables of the caller's, when set, and `extra`.
 * Nothing else: a `DKV_REPLICATION_FACTOR=1` in the caller's shell must not change the clusters
 * the tests build.
 */
const PASSED_ENV = [
  "PATH",
  "HOME",
  "TMPDIR",
  "LANG",
  "LC_ALL",
  "TZ",
  "DENO_DIR",
  "XDG_CACHE_HOME",
];

/**
 * The peer transport of the nodes the harness starts, from `DKV_PEER_TRANSPORT` in the test
 * runner's environment (not passed on): `tcp` (the default) leaves nodes on their TCP peer link
 * (every peer call but /health over it, --peer-port auto); `http` gives each `--peer-port off`,
 * so the same suites run with every peer call over HTTP (`npm test` runs the e2e suites both
 * ways).
 */
export const PEER_TRANSPORT = process.env.DKV_PEER_TRANSPORT ?? "tcp";
if (PEER_TRANSPORT !== "tcp" && PEER_TRANSPORT !== "http") {
  throw new Error(`DKV_PEER_TRANSPORT must be tcp or http, not ${PEER_TRANSPORT}`);
}
/**
 * The environment of a child dkv: the variables it needs passed on, and under
 * DKV_PEER_TRANSPORT=http `DKV_PEER_PORT=off`, so every member a test starts (through
 * spawnLogged, not only nodeCmd's) calls its peers over HTTP; a `--peer-port` flag still wins.
 */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of PASSED_ENV) {
    const v = process.env[name];
    if (v !== undefined) env[name] = v;
  }
  if (PEER_TRANSPORT === "http") env.DKV_PEER_PORT = "off";
  return { ...env, ...extra };
}

export interface Proc {
  readonly name: string;
  readonly port: number;
  /** Where it listens (and, unless started with --advertise, its id). */
  readonly address: string;
  readonly proc: Subprocess;
  readonly logPath: string;
  /** The command line, to start it again (`restart`). */
  readonly cmd: readonly string[];
  readonly env: Record<string, string>;
  /** Date.now() just before the spawn: its incarnation is at least this. */
  readonly spawnedAtMs: number;
  kill(signal?: number): void;
  /** True until it has exited. */
  alive(): boolean;
  /** What this process (not earlier ones under the same name) wrote to its log. */
  log(): string;
  exited: Promise<number>;
}

/**
 * Ports handed out: from below the kernel's ephemeral range, starting at a random point (so two
 * test runs at once rarely probe the same ports), each once per run.
 */
const portRange = (() => {
  let low = 32768;
  try {
    low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(/\s+/)[0]);
  } catch {
    // Not Linux: keep the usual default.
  }
  return low > 12_000 ? { lo: 10_000, hi: low } : { lo: 20_000, hi: 32_000 };
})();
let nextPort = portRange.lo + Math.floor(Math.random() * (portRange.hi - portRange.lo));
const handedOut = new Set<number>();

/** True when nothing listens on 127.0.0.1:`port` (checked by binding it for a moment). */
export function portFree(port: number): boolean {
  try {
    const s = Bun.serve({ hostname: "127.0.0.1", port, fetch: () => new Response() });
    s.stop(true);
    return true;
  } catch {
    return false;
  }
}

/** A loopback port that was free a moment ago and that this run has not handed out before. */
export function freePort(): number {
  for (let i = 0; i < portRange.hi - portRange.lo; i++) {
    const port = nextPort;
    nextPort = nextPort + 1 >= portRange.hi ? portRange.lo : nextPort + 1;
    if (handedOut.has(port) || !portFree(port)) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port left in ${portRange.lo}-${portRange.hi}`);
}

/** `count` distinct ports from `freePort()`. */
export function freePorts(count: number): number[] {
  return Array.from({ length: count }, () => freePort());
}

/** Start a process with stdout+stderr in a log file under tmp/test-logs, env from `childEnv`. */
export function spawnLogged(
  name: string,
  cmd: readonly string[],
  port: number,
  env: Record<string, string> = childEnv(),
): Proc {
  mkdirSync(LOG_DIR, { recursive: true });
  const logPath = join(LOG_DIR, `${name}.log`);
  const fd = openSync(logPath, "a");
  const logStart = statSync(logPath).size;
  const spawnedAtMs = Date.now();
  const proc = Bun.spawn([...cmd], { cwd: ROOT, env, stdout: fd, stderr: fd, stdin: "ignore" });
  closeSync(fd);
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const p: Proc = {
    name,
    port,
    address: `127.0.0.1:${port}`,
    proc,
    logPath,
    cmd,
    env,
    spawnedAtMs,
    kill(signal = 9) {
      if (alive()) proc.kill(signal);
    },
    alive,
    log: () => readFileSync(logPath).subarray(logStart).toString("utf8"),
    exited: proc.exited.then((code) => {
      running.delete(p);
      return code;
    }),
  };
  running.add(p);
  return p;
}

/** The dkv command line of an orchestrator on `port` (local preset). */
export function orchestratorCmd(port: number, extra: readonly string[] = []): string[] {
  return [DKV, "--role", "orchestrator", "--port", String(port), "--preset", "local", ...extra];
}

/** The dkv command line of a node on `port`; orchestrator port 0: none (use --join in extra). */
export function nodeCmd(
  port: number,
  orchestratorPort: number,
  extra: readonly string[] = [],
): string[] {
  return [
    DKV,
    "--role",
    "node",
    "--port",
    String(port),
    ...(orchestratorPort === 0 ? [] : [`--orchestrator=127.0.0.1:${orchestratorPort}`]),
    "--preset",
    "local",
    ...(PEER_TRANSPORT === "http" && !extra.some((a) => a.startsWith("--peer-port"))
      ? ["--peer-port", "off"]
      : []),
    ...extra,
  ];
}

export function startOrchestrator(port: number, extra: string[] = [], name = `orch-${port}`): Proc {
  return spawnLogged(name, orchestratorCmd(port, extra), port);
}

export function startNode(
  port: number,
  orchestratorPort: number,
  extra: string[] = [],
  name = `node-${port}`,
): Proc {
  return spawnLogged(name, nodeCmd(port, orchestratorPort, extra), port);
}

/** Thrown by `ready` when the process exited first because its port was taken. */
export class PortTakenError extends Error {}

/**
 * Wait until `p` answers `/health` as itself: an incarnation not older than its spawn, so not a
 * process it replaced. Throws with its log if it exits first (`PortTakenError` if the port was
 * taken).
 */
export async function ready(p: Proc, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    if (!p.alive()) {
      const code = await p.exited;
      const log = p.log();
      const msg = `${p.name} exited with code ${code} before it was ready:\n${log.slice(-2000)}`;
      throw log.includes("is already in use") ? new PortTakenError(msg) : new Error(msg);
    }
    try {
      const r = await http("GET", p.address, "/health", undefined, undefined, 1000);
      const inc = Number(r.body?.incarnation);
      if (r.status === 200 && inc >= p.spawnedAtMs) return;
      last = `answered ${r.status} ${JSON.stringify(r.body)} (spawned at ${p.spawnedAtMs})`;
    } catch (e) {
      last = String(e);
    }
    await Bun.sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${p.name} to be ready: ${last}`);
}

/**
 * Start a member on a fresh port with `start(port)` and wait until it is ready; if the port was
 * taken meanwhile, start it again on another one.
 */
export async function launch(
  start: (port: number) => Proc,
  timeoutMs = 20_000,
  attempts = 5,
): Promise<Proc> {
  for (let i = 1;; i++) {
    const p = start(freePort());
    try {
      await ready(p, timeoutMs);
      return p;
    } catch (e) {
      if (!(e instanceof PortTakenError) || i >= attempts) throw e;
    }
  }
}

/**
 * Start `cmd` on the given `port` (one a test needs again: a restart, or an address reused on
 * purpose) and wait until it is ready. Waits for the port to be free, and tries again if it was
 * taken meanwhile.
 */
export async function startAt(
  name: string,
  cmd: readonly string[],
  port: number,
  env: Record<string, string> = childEnv(),
  timeoutMs = 20_000,
): Promise<Proc> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await waitFor(`port ${port} to be free`, () => portFree(port), deadline - Date.now());
    const p = spawnLogged(name, cmd, port, env);
    try {
      await ready(p, Math.max(1000, deadline - Date.now()));
      return p;
    } catch (e) {
      if (!(e instanceof PortTakenError) || Date.now() >= deadline) throw e;
    }
  }
}

/**
 * Start `p` again on the same port with the same command line and environment (SIGKILLed first if
 * it still runs), and wait until the new process, not `p`, answers.
 */
export async function restart(
  p: Proc,
  name = `${p.name}-again`,
  timeoutMs = 20_000,
): Promise<Proc> {
  p.kill(9);
  await p.exited;
  return await startAt(name, p.cmd, p.port, p.env, timeoutMs);
}

/** SIGKILL everything this process started (a stopped process dies of it too) and wait. */
export async function stopAll(): Promise<void> {
  const all = [...running];
  for (const p of all) p.kill(9);
  for (const pid of adopted) {
    try {
      process.kill(pid, 9);
    } catch {
      // Already gone.
    }
  }
  adopted.clear();
  await Promise.all(all.map((p) => p.exited));
}

/**
 * Poll `check` until it returns a truthy value or the deadline passes (then throw with `what`).
 * The deadline only bounds a test that would otherwise hang: make it generous, and print a
 * measured time if it matters, never assert one.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
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
  timeoutMs = 5000,
): Promise<HttpResult> {
  const res = await fetch(`http://${address}${path}`, {
    method,
    body,
    headers,
    signal: AbortSignal.timeout(timeoutMs),
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
export async function nodeStates(
  address: string,
  headers?: Record<string, string>,
): Promise<Map<string, string>> {
  const r = await http("GET", address, "/all-nodes", undefined, headers);
  const out = new Map<string, string>();
  for (const m of r.body.allNodes as { id: string; role: string; status: string }[]) {
    if (m.role === "node") out.set(m.id, m.status);
  }
  return out;
}

/** True when `address` lists exactly `ids` as nodes, all UP. */
export async function allUp(
  address: string,
  ids: readonly string[],
  headers?: Record<string, string>,
): Promise<boolean> {
  const states = await nodeStates(address, headers);
  return states.size === ids.length && ids.every((id) => states.get(id) === "UP");
}

export interface Cluster {
  orchestrator: Proc;
  nodes: Proc[];
  all(): Proc[];
}

/**
 * Wait until `m` serves quorum requests: a quorum read of a key never written answers 404. A
 * member that has just seen a majority of the ring alive (at start-up, each node sees the others
 * arrive one by one) refuses quorum with 503 for a moment, until membership settles.
 */
export async function servesQuorum(
  m: Proc,
  timeoutMs = 30_000,
  headers?: Record<string, string>,
): Promise<void> {
  const probe = "/kv/never-written-startup-probe";
  await waitFor(
    `${m.name} to serve quorum reads`,
    async () => (await http("GET", m.address, probe, undefined, headers)).status === 404,
    timeoutMs,
  );
}

/**
 * Orchestrator + `n` nodes on fresh ports, each ready, then waited until every member lists every
 * node UP and serves quorum reads. Started again on other ports if a port was taken meanwhile.
 */
export async function startCluster(
  n: number,
  /** `headers`: sent with the waits' own requests (a client token, when members need one). */
  opts: {
    nodeArgs?: string[];
    orchArgs?: string[];
    headers?: Record<string, string>;
    /** More flags for node i (0-based): e.g. its own --resp-port. */
    nodeArgsFor?: (i: number) => string[];
  } = {},
): Promise<Cluster> {
  for (let attempt = 1;; attempt++) {
    const [orchPort, ...nodePorts] = freePorts(n + 1);
    const orchestrator = startOrchestrator(orchPort!, opts.orchArgs);
    const nodes = nodePorts.map((p, i) =>
      startNode(p, orchPort!, [...(opts.nodeArgs ?? []), ...(opts.nodeArgsFor?.(i) ?? [])])
    );
    const all = [orchestrator, ...nodes];
    try {
      for (const m of all) await ready(m);
    } catch (e) {
      for (const m of all) m.kill(9);
      await Promise.all(all.map((m) => m.exited));
      if (!(e instanceof PortTakenError) || attempt >= 5) throw e;
      continue;
    }
    const ids = nodes.map((p) => p.address);
    for (const m of all) {
      await waitFor(
        `${m.name} to list ${n} nodes UP`,
        () => allUp(m.address, ids, opts.headers),
        30_000,
      );
    }
    for (const m of all) await servesQuorum(m, 30_000, opts.headers);
    return { orchestrator, nodes, all: () => [orchestrator, ...nodes] };
  }
}

/** Run a short command to its end, output captured; SIGKILLed after `timeoutMs`. */
export async function runCaptured(
  cmd: readonly string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string; code: number; timedOut: boolean }> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const p = Bun.spawn([...cmd], {
    cwd: ROOT,
    env: opts.env ?? childEnv(),
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  adoptPid(p.pid);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill(9);
  }, timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    return { stdout, stderr, code, timedOut };
  } finally {
    clearTimeout(timer);
    adopted.delete(p.pid);
  }
}
