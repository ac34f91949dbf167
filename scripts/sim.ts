/**
 * The whole-cluster simulation from the command line (test/sim/cluster-sim.ts).
 *
 *   npm run sim -- --seeds 1000                 seeds 1..1000
 *   npm run sim -- --seeds 10000 --workers 2    the same in two child processes
 *   npm run sim -- --seed 1234                  replay one seed: its faults, violations
 *   npm run sim -- --seed 1234 --history        ... and its whole history as JSON lines
 *   --faults crash,pause,...                    fault kinds to draw from (default: all)
 *   --mutation countHints|noRepair|dropRightAfterStream   flip a known-bad switch
 *   --secret                                    members sign their calls with a cluster secret
 *   --transport http|link|tcp                   peer calls as HTTP requests (default), as the
 *                                               TCP peer link's frames (test/sim/sim-link.ts),
 *                                               or over the link itself on simulated TCP
 *                                               connections (test/sim/sim-tcp.ts)
 *   --no-ttl-keys                               clients use no ttl keys (histories as before ttls)
 *   --no-listings                               no listers (no paged listings, no rule (list))
 *   --first F                                   start at seed F instead of 1
 *
 * Prints one line per failing seed with the command that replays it, then a summary line, and
 * exits 1 if any seed failed.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Mutation, mutations } from "../src/core/mutations.ts";
import {
  DEFAULT_FAULTS,
  FAULT_KINDS,
  type FaultKind,
  runSeed,
  type SimResult,
} from "../test/sim/cluster-sim.ts";
import { describe } from "../test/support/checker.ts";

const OPTIONS = {
  seeds: { type: "string" },
  seed: { type: "string" },
  first: { type: "string" },
  faults: { type: "string" },
  workers: { type: "string" },
  mutation: { type: "string" },
  secret: { type: "boolean" },
  transport: { type: "string" },
  "no-ttl-keys": { type: "boolean" },
  "no-listings": { type: "boolean" },
  history: { type: "boolean" },
  // Internal: run as worker `i` of `k` (seeds with (seed - first) % k === i), JSON lines out.
  "worker-of": { type: "string" },
  "worker-index": { type: "string" },
  help: { type: "boolean" },
} as const;

function parse() {
  try {
    return parseArgs({ args: process.argv.slice(2), strict: true, options: OPTIONS }).values;
  } catch (e) {
    console.error(`sim: ${(e as Error).message} (see --help)`);
    process.exit(2);
  }
}
const values = parse();

const SELF = fileURLToPath(import.meta.url);

function fail(msg: string): never {
  console.error(`sim: ${msg}`);
  process.exit(2);
}

function int(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) fail(`--${name}: expected a whole number, got '${v}'`);
  return n;
}

if (values.help) {
  const header = readFileSync(SELF, "utf8").split("*/")[0]!;
  console.log(header.split("\n").slice(1).map((l) => l.replace(/^ \* ?/, "")).join("\n").trim());
  process.exit(0);
}

const faults: FaultKind[] = values.faults === undefined
  ? [...DEFAULT_FAULTS]
  : values.faults.split(",").filter((f) => f !== "").map((f) => {
    if (!(FAULT_KINDS as readonly string[]).includes(f)) {
      fail(`--faults: unknown kind '${f}' (known: ${FAULT_KINDS.join(",")})`);
    }
    return f as FaultKind;
  });
const mutation = values.mutation as Mutation | undefined;
if (mutation !== undefined && !(mutation in mutations)) {
  fail(`--mutation: unknown '${mutation}' (known: ${Object.keys(mutations).join(",")})`);
}

/** The flags that reproduce a run, besides the seed. */
const replayFlags = [
  ...(values.faults !== undefined ? [`--faults ${faults.join(",")}`] : []),
  ...(mutation ? [`--mutation ${mutation}`] : []),
  ...(values.secret ? ["--secret"] : []),
  ...(values.transport !== undefined ? [`--transport ${values.transport}`] : []),
  ...(values["no-ttl-keys"] ? ["--no-ttl-keys"] : []),
  ...(values["no-listings"] ? ["--no-listings"] : []),
].join(" ");
const secret = values.secret === true;
const transport = values.transport ?? "http";
if (transport !== "http" && transport !== "link" && transport !== "tcp") {
  fail(`--transport: http, link or tcp, not '${transport}'`);
}
const ttlKeys = values["no-ttl-keys"] !== true;
const listings = values["no-listings"] !== true;
const replay = (seed: number) =>
  `npm run sim -- --seed ${seed}${replayFlags ? ` ${replayFlags}` : ""}`;

interface Summary {
  seed: number;
  violations: number;
  first: string;
}

function summarize(r: SimResult): Summary {
  const v = r.violations[0];
  return {
    seed: r.seed,
    violations: r.violations.length,
    first: v ? `(${v.rule}) ${v.message}` : "",
  };
}

function failLine(s: Summary): string {
  const first = s.first.length > 300 ? `${s.first.slice(0, 300)}…` : s.first;
  return `FAIL seed ${s.seed}: ${s.violations} violation(s); ${first}\n  replay: ${replay(s.seed)}`;
}

// ---- one seed, in detail ---------------------------------------------------------------------
if (values.seed !== undefined) {
  const seed = int("seed", values.seed, 1);
  const t0 = performance.now();
  const r = await runSeed({ seed, faults, mutation, secret, ttlKeys, listings, transport });
  const ms = performance.now() - t0;
  console.log(
    `seed ${seed}: faults ${faults.join(",")}${mutation ? `, mutation ${mutation}` : ""}`,
  );
  for (const e of r.events) console.log(`  ${e}`);
  if (values.history) { for (const op of r.history) console.log(JSON.stringify(op)); }
  for (const v of r.violations) console.log(`VIOLATION (${v.rule}) ${v.message}`);
  const ops = r.history.filter((o) => !o.final);
  const ok = ops.filter((o) => o.outcome === "ok").length;
  const whole = r.listings.filter((l) => l.pages.at(-1)?.next === null).length;
  console.log(
    `seed ${seed}: ${r.violations.length} violation(s); ${ops.length} client ops (${ok} ok), ` +
      `${r.listings.length} listings (${whole} to the end), ` +
      `${r.messages} messages, ${r.eventsRun} events, ${ms.toFixed(0)} ms`,
  );
  if (r.violations.length === 0 && values.history) {
    for (const op of r.history.filter((o) => o.final)) console.log(describe(op));
  }
  process.exit(r.violations.length > 0 ? 1 : 0);
}

// ---- many seeds ------------------------------------------------------------------------------
const count = int("seeds", values.seeds, 100);
const first = int("first", values.first, 1);
const seeds = Array.from({ length: count }, (_, i) => first + i);

if (values["worker-of"] !== undefined) {
  const k = int("worker-of", values["worker-of"], 1);
  const i = int("worker-index", values["worker-index"], 0);
  for (const seed of seeds.filter((s) => (s - first) % k === i)) {
    const r = await runSeed({ seed, faults, mutation, secret, ttlKeys, listings, transport });
    process.stdout.write(`${JSON.stringify(summarize(r))}\n`);
  }
  process.exit(0);
}

const t0 = performance.now();
const workers = Math.max(1, int("workers", values.workers, 1));
const failures: Summary[] = [];
let done = 0;
const onResult = (s: Summary) => {
  done++;
  if (s.violations > 0) {
    failures.push(s);
    console.log(failLine(s));
  }
};

if (workers === 1) {
  for (const seed of seeds) {
    onResult(
      summarize(await runSeed({ seed, faults, mutation, secret, ttlKeys, listings, transport })),
    );
  }
} else {
  const passOn = process.argv.slice(2).filter((a, i, all) =>
    a !== "--workers" && all[i - 1] !== "--workers" && !a.startsWith("--workers=")
  );
  await Promise.all(
    Array.from({ length: workers }, (_, i) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          [SELF, ...passOn, "--worker-of", String(workers), "--worker-index", String(i)],
          { stdio: ["ignore", "pipe", "inherit"] },
        );
        let buf = "";
        child.stdout.on("data", (d: Buffer) => {
          buf += d.toString();
          let nl;
          while ((nl = buf.indexOf("\n")) >= 0) {
            onResult(JSON.parse(buf.slice(0, nl)) as Summary);
            buf = buf.slice(nl + 1);
          }
        });
        child.on("exit", (code) =>
          code === 0 ? resolve() : reject(new Error(`worker ${i} exited with ${code}`)));
      })),
  );
}

const secs = (performance.now() - t0) / 1000;
console.log(
  `sim: ${done} seeds (${first}..${first + count - 1}), ${failures.length} failing, ` +
    `${secs.toFixed(1)} s (${((secs * 1000) / Math.max(1, done)).toFixed(0)} ms/seed, ` +
    `${workers} worker${workers > 1 ? "s" : ""})` +
    (failures.length > 0 ? `; failing seeds: ${failures.map((f) => f.seed).join(",")}` : ""),
);
process.exit(failures.length > 0 ? 1 : 0);
