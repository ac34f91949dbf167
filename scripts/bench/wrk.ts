/**
 * Running wrk with one of the Lua scripts beside this file and reading the "BENCH_RESULT {json}"
 * line its `done` prints (common.lua). Every setting reaches the scripts as BENCH_* variables.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { foreignCpu, sleep, spawnCapture } from "./procs.ts";

export const LUA_DIR = import.meta.dir;

/** Where load.lua's done-markers go: the run's own temp dir once set, so cleanup covers them. */
let scratchDir = tmpdir();
export function setScratchDir(dir: string): void {
  scratchDir = dir;
}

export interface WrkOptions {
  /** Lua script name in scripts/bench, e.g. "get.lua". */
  readonly script: string;
  /** host:port list; wrk thread i talks to targets[i mod n]. */
  readonly targets: readonly string[];
  readonly threads: number;
  readonly connections: number;
  readonly durationS: number;
  /** Extra BENCH_* variables for the script. */
  readonly env?: Record<string, string>;
  /**
   * load.lua: the script marks each thread done with a file in BENCH_DONE_DIR; once every
   * thread has, wrk gets SIGINT (its main thread otherwise sleeps the whole -d).
   */
  readonly untilDone?: boolean;
  /** `https` for members serving TLS (wrk does not check their certificate). */
  readonly scheme?: "http" | "https";
}

/** One wrk run, as measured. Latencies in ms. */
export interface RunResult {
  readonly requests: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Non-2xx answers, socket errors and timeouts. */
  readonly errors: number;
  /** Answers counted by the script itself (load.lua). */
  readonly ok: number;
  readonly failed: number;
  /** CPU other processes on the machine used during the run, in cores (0 = a quiet machine). */
  readonly foreignCores: number;
}

interface RawResult {
  requests: number;
  durationUs: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latencyUs: { p50: number | null; p99: number | null };
  ok: number;
  failed: number;
}

/** Seconds a run may overrun its -d before it is killed (connect, setup, script init). */
const WRK_SLACK_MS = 30_000;

export async function runWrk(o: WrkOptions): Promise<RunResult> {
  if (o.connections < o.threads) throw new Error("wrk needs at least one connection per thread");
  const cmd = [
    "wrk",
    `-t${o.threads}`,
    `-c${o.connections}`,
    `-d${o.durationS}s`,
    "--timeout",
    "2s",
    "-s",
    join(LUA_DIR, o.script),
    `${o.scheme ?? "http"}://${o.targets[0]}/`,
  ];
  const doneDir = o.untilDone ? mkdtempSync(join(scratchDir, "wrk-done-")) : undefined;
  try {
    const foreign = foreignCpu();
    const { proc, result } = spawnCapture(cmd, {
      timeoutMs: o.durationS * 1000 + WRK_SLACK_MS,
      env: {
        BENCH_LUA_DIR: LUA_DIR,
        BENCH_TARGETS: o.targets.join(","),
        BENCH_THREADS: String(o.threads),
        BENCH_CONNECTIONS: String(o.connections),
        ...(doneDir ? { BENCH_DONE_DIR: doneDir } : {}),
        ...o.env,
      },
    });
    if (doneDir !== undefined) {
      while (proc.exitCode === null && readdirSync(doneDir).length < o.threads) await sleep(50);
      // wrk ignores SIGINT until its threads are running: repeat until it ends.
      while (proc.exitCode === null) {
        proc.kill("SIGINT");
        await Promise.race([proc.exited, sleep(500)]);
      }
    }
    const out = await result;
    const line = out.stdout.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
    if (out.code !== 0 || line === undefined) {
      throw new Error(
        `wrk failed (exit ${out.code}): ${
          cmd.join(" ")
        }\n${out.stderr.trim()}\n${out.stdout.trim()}`,
      );
    }
    const raw = JSON.parse(line.slice("BENCH_RESULT ".length)) as RawResult;
    const e = raw.errors;
    return {
      requests: raw.requests,
      rps: raw.requests / (raw.durationUs / 1e6),
      p50Ms: (raw.latencyUs.p50 ?? NaN) / 1000,
      p99Ms: (raw.latencyUs.p99 ?? NaN) / 1000,
      errors: e.connect + e.read + e.write + e.status + e.timeout,
      ok: raw.ok,
      failed: raw.failed,
      foreignCores: foreign(),
    };
  } finally {
    if (doneDir !== undefined) rmSync(doneDir, { recursive: true, force: true });
  }
}

/** The number of connections wrk really opens: it gives each thread connections / threads. */
export function effectiveConnections(connections: number, threads: number): number {
  return Math.floor(connections / threads) * threads;
}
