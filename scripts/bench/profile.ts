/**
 * Where a single dkv node (N=1) spends its CPU under wrk load. An orchestrator (./dkv) and one
 * node start on free loopback ports, 10,000 keys are written, then wrk drives one workload
 * (64 connections) while the node is profiled one of two ways:
 *
 *   bun scripts/bench/profile.ts [get|put|mixed] [--seconds 8]
 *     The node runs from source under `bun --cpu-prof` (JSC's sampling profiler); it is stopped
 *     with SIGINT so it writes the profile, which is summarized by samples: self and total share
 *     per JavaScript function. JSC only samples while JavaScript runs: time in the kernel or in
 *     Bun's native HTTP code is not in it.
 *
 *   bun scripts/bench/profile.ts [get|put|mixed] --nodes 3 [--src DIR]
 *     Three nodes (N=3, quorum), wrk spread over all three as `npm run bench`'s cluster3 does;
 *     the first node runs from source under the profiler, the others are ./dkv. --src runs the
 *     profiled node from another checkout's src/main.ts (to compare two revisions).
 *
 *   --fsync always|batch|never: every node keeps a data dir (in the output dir) in that mode.
 *
 *   bun scripts/bench/profile.ts [get|put|mixed] --perf [--bare]
 *     The node is ./dkv itself (or, with --bare, scripts/bench/bare-server.ts), sampled by
 *     `perf record -g` for the whole process: the split between the kernel (per syscall), the
 *     runtime's native code and JIT-compiled JavaScript, and the CPU cost per request.
 *
 * Output: tmp/bench-profile/<workload>[-perf][-bare]/ (raw profile and summary.txt).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  BUN,
  freePort,
  killAllNow,
  type Proc,
  ROOT,
  runCapture,
  sleep,
  spawnLogged,
  waitFor,
} from "./procs.ts";
import { summarize } from "./cpu-profile.ts";
import { DKV } from "./systems.ts";
import { runWrk } from "./wrk.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  strict: true,
  options: {
    seconds: { type: "string", default: "8" },
    "interval-us": { type: "string", default: "200" },
    top: { type: "string", default: "30" },
    perf: { type: "boolean" },
    bare: { type: "boolean" },
    nodes: { type: "string", default: "1" },
    src: { type: "string" },
    fsync: { type: "string" },
  },
});
const workload = positionals[0] ?? "get";
const scripts: Record<string, string> = { get: "get.lua", put: "put.lua", mixed: "mixed.lua" };
const nodeCount = Number(values.nodes);
if (
  !(workload in scripts) || (values.bare && !values.perf) || ![1, 3].includes(nodeCount) ||
  (nodeCount === 3 && (values.perf || values.bare))
) {
  console.error(
    "usage: bun scripts/bench/profile.ts [get|put|mixed] [--seconds N] " +
      "[--perf [--bare] | --nodes 3 [--src DIR]] [--fsync always|batch|never]",
  );
  process.exit(2);
}
const seconds = Number(values.seconds);
const outDir = join(
  ROOT,
  "tmp/bench-profile",
  `${workload}${values.perf ? "-perf" : ""}${values.bare ? "-bare" : ""}${
    nodeCount === 3 ? "-3nodes" : ""
  }`,
);

process.on("exit", killAllNow);
process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));

/**
 * `perf script` output → share of samples per place: user space by DSO (runtime binary, JIT
 * code, libc), kernel by the syscall on the stack (or none: interrupts, page faults).
 */
export function perfSplit(script: string): Map<string, number> {
  const out = new Map<string, number>();
  let frames: string[] = [];
  const flush = () => {
    if (frames.length === 0) return;
    const leaf = frames[0]!;
    let where: string;
    if (leaf.includes("[kernel.kallsyms]")) {
      const sys = frames.map((f) => /\b(__x64_sys_\w+|__do_sys_\w+)/.exec(f)?.[1]).find((x) => x);
      where = `kernel: ${sys?.replace(/^__(x64|do)_sys_/, "") ?? "no syscall (irq, fault)"}`;
    } else {
      const dso = /\(([^)]*)\)\s*$/.exec(leaf)?.[1] ?? "?";
      where = dso.startsWith("/tmp/perf-") || dso.includes("JIT")
        ? "user: JIT-compiled JavaScript"
        : `user: ${dso.split("/").pop()}`;
    }
    out.set(where, (out.get(where) ?? 0) + 1);
    frames = [];
  };
  for (const line of script.split("\n")) {
    if (line.trim() === "") flush();
    else if (/^\s/.test(line)) frames.push(line.trim());
  }
  flush();
  return out;
}

function startNode(orchPort: number, nodePort: number, profiled = true): Proc {
  const common = [
    "--role",
    "node",
    `--orchestrator=127.0.0.1:${orchPort}`,
    "--port",
    String(nodePort),
    "--log-level",
    "warn",
    // --fsync MODE: every node keeps a data dir (under the output dir) with that mode.
    ...(values.fsync === undefined
      ? []
      : ["--data-dir", join(outDir, `data-${nodePort}`), "--fsync", values.fsync]),
  ];
  if (values.perf || !profiled) return spawnLogged(`node-${nodePort}`, [DKV, ...common]);
  return spawnLogged("profile-node", [
    BUN,
    "--cpu-prof",
    "--cpu-prof-md",
    `--cpu-prof-interval=${values["interval-us"]}`,
    `--cpu-prof-dir=${outDir}`,
    join(values.src ?? ROOT, "src/main.ts"),
    ...common,
  ]);
}

async function main(): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const nodePort = freePort();
  const address = `127.0.0.1:${nodePort}`;
  const targets = [address];
  const keys = { BENCH_KEYS: "10000" };
  let node: Proc;
  if (values.bare) {
    node = spawnLogged("profile-bare", [
      BUN,
      join(import.meta.dir, "bare-server.ts"),
      String(nodePort),
    ]);
    await waitFor("bare Bun.serve", async () => (await fetch(`http://${address}/`)).ok, 20_000);
  } else {
    const orchPort = freePort();
    spawnLogged("profile-orchestrator", [
      DKV,
      "--role",
      "orchestrator",
      "--port",
      String(orchPort),
      "--replication-factor",
      String(nodeCount),
      "--log-level",
      "warn",
    ]);
    node = startNode(orchPort, nodePort);
    for (let i = 1; i < nodeCount; i++) {
      const port = freePort();
      startNode(orchPort, port, false);
      targets.push(`127.0.0.1:${port}`);
    }
    await waitFor("the nodes to be UP", async () => {
      const res = await fetch(`http://${address}/all-nodes`);
      const body = await res.json() as { allNodes: { role: string; status: string }[] };
      return body.allNodes.filter((m) => m.role === "node" && m.status === "UP").length ===
        nodeCount;
    }, 20_000);
    // Every member's view has every node, and the partitions have settled.
    await sleep(nodeCount > 1 ? 3000 : 0);
    await runWrk({
      script: "load.lua",
      targets: [address],
      threads: 1,
      connections: 64,
      durationS: 120,
      untilDone: true,
      env: keys,
    });
  }
  const load = runWrk({
    script: scripts[workload]!,
    targets,
    threads: targets.length,
    connections: 64,
    durationS: seconds,
    env: keys,
  });
  let text: string;
  if (values.perf) {
    // Sample the middle of the run: skip the first second, stop a second before the end.
    await sleep(1000);
    const data = join(outDir, "perf.data");
    const recordS = Math.max(1, seconds - 2);
    const rec = await runCapture(
      [
        "perf",
        "record",
        "-F",
        "1999",
        "-g",
        "-p",
        String(node.pid),
        "-o",
        data,
        "--",
        "sleep",
        String(recordS),
      ],
      { timeoutMs: (recordS + 30) * 1000 },
    );
    if (rec.code !== 0) throw new Error(`perf record failed: ${rec.stderr.trim()}`);
    const r = await load;
    const script = await runCapture(["perf", "script", "-i", data, "-F", "ip,sym,dso"], {
      timeoutMs: 120_000,
    });
    const split = perfSplit(script.stdout);
    const samples = [...split.values()].reduce((a, b) => a + b, 0);
    const cores = samples / 1999 / recordS;
    const usPerReq = (cores * 1e6) / r.rps;
    const lines = [
      `${workload} on ${values.bare ? "bare Bun.serve" : "./dkv"}: ${Math.round(r.rps)} req/s, ` +
      `${cores.toFixed(2)} cores busy, ${usPerReq.toFixed(1)} µs of CPU per request`,
      "",
      "share   µs/req  where",
    ];
    for (const [where, n] of [...split].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
      const share = n / samples;
      lines.push(
        `${(100 * share).toFixed(1).padStart(5)} %  ${
          (share * usPerReq).toFixed(1).padStart(5)
        }  ${where}`,
      );
    }
    text = lines.join("\n");
  } else {
    const loadStart = performance.now();
    const r = await load;
    const loadEnd = performance.now();
    // SIGINT: leave the cluster and exit; a second one exits at once. The profile is written
    // on exit.
    for (let i = 0; i < 2 && node.alive(); i++) {
      process.kill(node.pid, "SIGINT");
      await Promise.race([node.exited, sleep(1000)]);
    }
    await Promise.race([node.exited, sleep(10_000)]);
    const exitAt = performance.now();
    const file = readdirSync(outDir).find((f) => f.endsWith(".cpuprofile"));
    if (file === undefined) {
      throw new Error(`no .cpuprofile in ${outDir}; node log: ${node.logTail()}`);
    }
    text = `${workload}: ${Math.round(r.rps)} req/s under the profiler\n\n` +
      summarize(JSON.parse(readFileSync(join(outDir, file), "utf8")), Number(values.top), {
        // The workload's run, less its first second (warm-up, JIT tiers settling).
        fromEndUs: (exitAt - loadStart - 1000) * 1000,
        toEndUs: (exitAt - loadEnd) * 1000,
      });
  }
  writeFileSync(join(outDir, "summary.txt"), `${text}\n`);
  console.log(text);
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`profile: ${(e as Error).message}`);
    process.exitCode = 1;
  } finally {
    killAllNow();
  }
  process.exit();
}
