/**
 * Processes the benchmark starts: spawn with a log file, stop, and kill everything on the way
 * out (normal end, error, SIGINT, SIGTERM). Ports are found by binding port 0 and releasing it.
 */
import { closeSync, mkdirSync, openSync, readFileSync, symlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

export const ROOT = resolve(import.meta.dir, "../..");
export const BUN = join(ROOT, "node_modules/.bin/bun");
/** Logs of every started process; under the repo's gitignored tmp/, overwritten per run. */
export const LOG_DIR = join(ROOT, "tmp/bench-logs");

const running = new Set<Subprocess>();

export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  readonly exited: Promise<number>;
  alive(): boolean;
  /**
   * SIGKILL; resolves once the process is gone. Nothing measured is kept, and a graceful stop
   * would only add work (a dkv node leaving the ring hands its data over).
   */
  stop(): Promise<void>;
  /** The last lines of its log, for error messages. */
  logTail(lines?: number): string;
}

/** Start `cmd` with stdout and stderr appended to tmp/bench-logs/<name>.log. */
export function spawnLogged(
  name: string,
  cmd: string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Proc {
  mkdirSync(LOG_DIR, { recursive: true });
  const logPath = join(LOG_DIR, `${name}.log`);
  const fd = openSync(logPath, "w");
  let proc: Subprocess;
  try {
    proc = Bun.spawn(cmd, {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env },
      stdin: "ignore",
      stdout: fd,
      stderr: fd,
    });
  } finally {
    closeSync(fd);
  }
  running.add(proc);
  const exited = proc.exited.then((code) => {
    running.delete(proc);
    return code;
  });
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  return {
    name,
    pid: proc.pid,
    logPath,
    exited,
    alive,
    async stop() {
      if (alive()) proc.kill("SIGKILL");
      await exited;
    },
    logTail(lines = 15) {
      try {
        return readFileSync(logPath, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
      } catch {
        return "(no log)";
      }
    },
  };
}

export interface Captured {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Start a command with stdout and stderr captured (tracked, so Ctrl-C kills it too). Past
 * `timeoutMs` it gets SIGKILL and `result` rejects.
 */
export function spawnCapture(
  cmd: string[],
  opts: { env?: Record<string, string>; timeoutMs: number },
): { proc: Subprocess; result: Promise<Captured> } {
  const proc = Bun.spawn(cmd, {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  running.add(proc);
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs);
  const result = (async () => {
    try {
      const [stdout, stderr, code] = await Promise.all([
        new Response(proc.stdout).text(),
        new Response(proc.stderr).text(),
        proc.exited,
      ]);
      if (proc.signalCode === "SIGKILL") {
        throw new Error(`${cmd[0]} did not finish within ${opts.timeoutMs} ms`);
      }
      return { code, stdout, stderr };
    } finally {
      clearTimeout(timer);
      running.delete(proc);
    }
  })();
  return { proc, result };
}

/** Run a command to completion; see spawnCapture. */
export function runCapture(
  cmd: string[],
  opts: { env?: Record<string, string>; timeoutMs: number },
): Promise<Captured> {
  return spawnCapture(cmd, opts).result;
}

/**
 * A short command's stdout, or undefined if it is missing or fails (version strings).
 * `anyExit`: take the output whatever the exit code (`wrk -v` prints its version, then exits 1).
 */
export function quickOutput(cmd: string[], anyExit = false): string | undefined {
  try {
    const out = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", timeout: 5000 });
    if (out.exitCode !== 0 && !anyExit) return undefined;
    return out.stdout.toString().trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Kill everything this process started when it exits, or on SIGINT/SIGTERM (then exit with
 * 128 + the signal number), after `cleanup` if given.
 */
export function killAllOnExit(cleanup: () => void = () => {}): void {
  const now = () => {
    killAllNow();
    cleanup();
  };
  process.on("exit", now);
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    process.on(signal, () => {
      now();
      process.exit(code);
    });
  }
}

/** SIGKILL everything still running. Synchronous: safe in an exit handler. */
export function killAllNow(): void {
  for (const p of running) {
    try {
      p.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

const handedOut = new Set<number>();

/** A free loopback port: let the OS pick one, release it; never the same one twice per run. */
export function freePort(): number {
  for (let attempt = 0; attempt < 100; attempt++) {
    const s = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { data() {} },
    });
    const port = s.port;
    s.stop(true);
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error("could not find a free loopback port");
}

/** VmRSS (or another /proc status field) of a process, in bytes. */
export function procStatusBytes(pid: number, field = "VmRSS"): number {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` until truthy or the deadline passes (then throw naming `what`). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
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
    await sleep(50);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ""}`,
  );
}

/** Clock ticks per second of /proc times (USER_HZ; 100 on Linux x86-64). */
const TICKS_PER_S = 100;

/** CPU time of this process, its reaped children and its running ones, in ticks. */
function ourTicks(): number {
  const fields = (pid: number | "self") => {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ").map(Number);
  };
  // After the ")": state is field 3 of stat(5), so utime (14) is index 11 here.
  const self = fields("self");
  let ticks = self[11]! + self[12]! + self[13]! + self[14]!;
  for (const p of running) {
    try {
      const f = fields(p.pid);
      ticks += f[11]! + f[12]!;
    } catch {
      // exited and reaped meanwhile: counted in our children's times
    }
  }
  return ticks;
}

/**
 * CPU time (user + system) the given running processes have used so far, in ms (10 ms steps).
 * A process that has exited counts 0.
 */
export function procsCpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const text = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = text.slice(text.lastIndexOf(")") + 2).split(" ").map(Number);
      ticks += f[11]! + f[12]!;
    } catch {
      // gone
    }
  }
  return (ticks * 1000) / TICKS_PER_S;
}

/**
 * Busy CPU ticks of the whole machine that processes account for (user, nice, system), plus
 * steal (another VM had the CPU). Interrupt time is left out: the kernel charges it to no
 * process, and here it is mostly our own loopback traffic.
 */
function machineTicks(): number {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).map(Number);
  // cpu user nice system idle iowait irq softirq steal ...
  return cpu[1]! + cpu[2]! + cpu[3]! + cpu[8]!;
}

/**
 * Measure how much CPU processes other than ours used meanwhile: call at the start of an
 * interval, call the result at its end; cores, averaged over the interval.
 */
export function foreignCpu(): () => number {
  const t0 = performance.now();
  const machine0 = machineTicks();
  const ours0 = ourTicks();
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const foreign = machineTicks() - machine0 - (ourTicks() - ours0);
    return Math.max(0, foreign / TICKS_PER_S / Math.max(seconds, 0.001));
  };
}

/** Run `cmd` to completion; its trimmed stdout, or an Error with the start of its stderr. */
export function sh(cmd: string[], cwd = ROOT): string {
  const r = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) {
    throw new Error(`${cmd.join(" ")} failed: ${r.stderr.toString().slice(0, 500)}`);
  }
  return r.stdout.toString().trim();
}

/**
 * Build the dkv binary of git `ref` into `dir` (the tree from `git archive`, this checkout's
 * node_modules, the same compile flags as npm run build); returns the binary's path.
 */
export function buildDkvAt(ref: string, dir: string): string {
  sh(["bash", "-c", `git archive ${ref} | tar -x -C ${dir}`]);
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  const bin = join(dir, "dkv-base");
  sh([
    BUN,
    "build",
    "src/main.ts",
    "--compile",
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    "--compile-exec-argv=--max-http-header-size=262144",
    "--outfile",
    bin,
  ], dir);
  return bin;
}
