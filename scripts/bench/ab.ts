/**
 * Two builds of dkv side by side (bench:ab, bench:metrics): start each loaded with the same keys,
 * then GET and PUT with wrk in alternating pairs of runs (base, new, base, new, ...) so a machine
 * that drifts moves both sides alike. Besides req/s, the members' CPU time per request (user +
 * system from /proc), the steadier figure on a shared machine. Printed, never asserted.
 */
import { procsCpuMs } from "./procs.ts";
import { settle, startDkv, type System, useDkvBinary } from "./systems.ts";
import { runWrk } from "./wrk.ts";

export const AB_KEYS = 10_000;
export const AB_VALUE_BYTES = 100;

/**
 * `bin` as an orchestrator and `nodes` nodes (N=3, or N=1 for one node), `AB_KEYS` keys loaded;
 * `env` set for its members only.
 */
export async function startLoaded(
  bin: string,
  label: string,
  nodes: number,
  env: Record<string, string> = {},
  /** Flags for every member, and for node i only (a data dir of its own). */
  disk?: { extra: readonly string[]; nodeArgs: (i: number) => readonly string[] },
): Promise<System> {
  useDkvBinary(bin);
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    const sys = await startDkv(
      label,
      nodes,
      Math.min(3, nodes),
      disk?.extra,
      undefined,
      {},
      disk?.nodeArgs,
    );
    await settle();
    await runWrk({
      script: "load.lua",
      targets: sys.addresses,
      threads: nodes,
      connections: 16 * nodes,
      durationS: 120,
      untilDone: true,
      env: {
        BENCH_KEYS: String(AB_KEYS),
        BENCH_PREFIX: "bench-",
        BENCH_VALUE_BYTES: String(AB_VALUE_BYTES),
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

export interface PairOptions {
  readonly base: System;
  readonly new: System;
  /** wrk threads: one per node. */
  readonly threads: number;
  readonly connections: number;
  readonly runs: number;
  readonly durationS: number;
  /** Printed before every line (a section's indent). */
  readonly indent?: string;
  /** One workload only (both by default). */
  readonly only?: "GET" | "PUT";
}

const median = (xs: readonly number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

function summary(xs: readonly number[]): string {
  const sorted = [...xs].sort((x, y) => x - y);
  return `median ${median(xs).toFixed(3)} (min ${sorted[0]!.toFixed(3)}, max ${
    sorted[sorted.length - 1]!.toFixed(3)
  })`;
}

/** GET then PUT: a warm-up run of each side, then `runs` pairs; one line per pair, one summary. */
export async function pairedRuns(o: PairOptions): Promise<void> {
  const indent = o.indent ?? "";
  for (const [workload, script] of [["GET", "get.lua"], ["PUT", "put.lua"]] as const) {
    if (o.only !== undefined && o.only !== workload) continue;
    const run = async (sys: System, durationS: number) => {
      const pids = sys.procs.map((p) => p.pid);
      const cpu0 = procsCpuMs(pids);
      const r = await runWrk({
        script,
        targets: sys.addresses,
        threads: o.threads,
        connections: o.connections,
        durationS,
        env: { BENCH_KEYS: String(AB_KEYS), BENCH_VALUE_BYTES: String(AB_VALUE_BYTES) },
      });
      return { ...r, cpuUs: ((procsCpuMs(pids) - cpu0) * 1000) / Math.max(1, r.requests) };
    };
    await run(o.base, 1);
    await run(o.new, 1);
    const ratios: number[] = [];
    const cpuRatios: number[] = [];
    const cpus = { base: [] as number[], new: [] as number[] };
    for (let i = 0; i < o.runs; i++) {
      const b = await run(o.base, o.durationS);
      const n = await run(o.new, o.durationS);
      ratios.push(n.rps / b.rps);
      cpuRatios.push(n.cpuUs / b.cpuUs);
      cpus.base.push(b.cpuUs);
      cpus.new.push(n.cpuUs);
      const busy = Math.max(b.foreignCores, n.foreignCores);
      const side = (x: typeof b) =>
        `${x.rps.toFixed(0)} req/s (p50 ${x.p50Ms.toFixed(2)}, p99 ${x.p99Ms.toFixed(2)} ms, ` +
        `${x.cpuUs.toFixed(1)} µs CPU/req)`;
      console.log(
        `${indent}${workload} pair ${i + 1}: base ${side(b)}, new ${side(n)}` +
          (b.errors + n.errors ? `, errors ${b.errors}/${n.errors}` : "") +
          (busy > 0.1 ? `  (other processes used up to ${busy.toFixed(2)} cores)` : ""),
      );
    }
    console.log(
      `${indent}${workload} over ${o.runs} pairs: new/base req/s ${summary(ratios)}; CPU per ` +
        `request base ${median(cpus.base).toFixed(1)} µs, new ${median(cpus.new).toFixed(1)} µs, ` +
        `new/base ${summary(cpuRatios)}`,
    );
  }
}
