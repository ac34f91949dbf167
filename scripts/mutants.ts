/**
 * Planted bugs (mutation runs): apply each mutant of scripts/mutants-list.ts on its own to a
 * scratch copy of the tree, build ./dkv there, run the tests that should catch it, and print a
 * table: mutant → the failing tests and simulator seeds, or SURVIVED.
 *
 *   npm run mutants                      every mutant, every test set of each (exit 1 if any survived)
 *   npm run mutants -- --list            the mutants, what each plants and its test sets
 *   npm run mutants -- --only a,b        only these mutants
 *   npm run mutants -- --check           only check that every edit applies (no tests run)
 *   npm run mutants -- --quick           stop a mutant at the first test set that catches it
 *   npm run mutants -- --baseline        first run every test set on the unmutated copy: a test
 *                                        that fails there does not count as a catch
 *   npm run mutants -- --keep            keep the scratch copies (their paths are printed)
 *
 * The scratch copies live in one folder under the system temp dir (node_modules symlinked). Each
 * run (a `bun test` of one path, or one sim run) is a child process in its own process group,
 * killed with its group when it passes its time limit; on exit, Ctrl-C or SIGTERM every group
 * still running is killed, and so is any stray process whose executable or working directory is
 * inside the scratch folder (a ./dkv an e2e test started), and the folder is removed.
 * Exit codes: 0 every mutant caught, 1 one survived, 2 a usage error or an edit that does not
 * apply (its search text is not found exactly once).
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Mutant, MUTANTS, type SimRun } from "./mutants-list.ts";

const OPTIONS = {
  only: { type: "string" },
  list: { type: "boolean" },
  check: { type: "boolean" },
  quick: { type: "boolean" },
  baseline: { type: "boolean" },
  keep: { type: "boolean" },
  help: { type: "boolean" },
} as const;

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(dirname(SELF), "..");
/** Per-test timeout given to `bun test` (the same as `npm test`). */
const TEST_TIMEOUT_MS = 120_000;
/** Wall-time limit of one `bun test` run: unit, HTTP and sim folders / one e2e file. */
const FAST_RUN_LIMIT_MS = 5 * 60_000;
const E2E_RUN_LIMIT_MS = 15 * 60_000;
/** Wall-time limit of one sim run: a seed takes 0.15–0.25 s of one core; room for a loaded box. */
const simLimitMs = (s: SimRun) => 60_000 + s.seeds * 3_000;
/** What is not copied into a scratch tree (node_modules is symlinked; ./dkv is rebuilt). */
const SKIP = new Set([".git", "node_modules", "dkv", "tmp", ".dkv-demo"]);

function fail(msg: string): never {
  console.error(`mutants: ${msg}`);
  process.exit(2);
}

const values = (() => {
  try {
    return parseArgs({ args: process.argv.slice(2), strict: true, options: OPTIONS }).values;
  } catch (e) {
    fail(`${(e as Error).message} (see --help)`);
  }
})();

if (values.help) {
  const header = readFileSync(SELF, "utf8").split("*/")[0]!;
  console.log(header.split("\n").slice(1).map((l) => l.replace(/^ \* ?/, "")).join("\n").trim());
  process.exit(0);
}

// ---- which mutants -----------------------------------------------------------------------------
const names = new Set(MUTANTS.map((m) => m.name));
if (names.size !== MUTANTS.length) fail("two mutants share a name");
const selected: readonly Mutant[] = values.only === undefined ? MUTANTS : values.only.split(",")
  .filter((n) => n !== "").map((n) => {
    const m = MUTANTS.find((x) => x.name === n);
    if (m === undefined) fail(`--only: unknown mutant '${n}' (known: ${[...names].join(", ")})`);
    return m;
  });

const simLabel = (s: SimRun) => {
  const first = s.first ?? 1;
  return `sim ${first}–${first + s.seeds - 1}${s.faults ? ` (${s.faults})` : ""}`;
};

if (values.list) {
  for (const m of selected) {
    console.log(`${m.name}: ${m.what}`);
    const files = [...new Set(m.edits.map((e) => e.file))];
    console.log(`  ${m.edits.length} edit(s) in ${files.join(", ")}`);
    console.log(`  tests ${[...m.tests, ...m.sims.map(simLabel)].join(", ")}`);
  }
  process.exit(0);
}

// ---- edits: each search text exactly once, checked before anything runs ------------------------
/** The mutated files of a mutant (path → content), or the problems found. */
function applyEdits(m: Mutant, read: (file: string) => string): Map<string, string> | string[] {
  const out = new Map<string, string>();
  const problems: string[] = [];
  for (const [i, e] of m.edits.entries()) {
    if (e.search === e.replace) problems.push(`${m.name} edit ${i + 1}: replacement is the same`);
    let text: string;
    try {
      text = out.get(e.file) ?? read(e.file);
    } catch {
      problems.push(`${m.name} edit ${i + 1}: no file ${e.file}`);
      continue;
    }
    const count = text.split(e.search).length - 1;
    if (count !== 1) {
      problems.push(
        `${m.name} edit ${i + 1}: search text found ${count} times in ${e.file} (need exactly 1):` +
          `\n    ${JSON.stringify(e.search)}`,
      );
      continue;
    }
    out.set(e.file, text.replace(e.search, () => e.replace));
  }
  return problems.length > 0 ? problems : out;
}

const problems: string[] = [];
for (const m of selected) {
  const r = applyEdits(m, (f) => readFileSync(join(ROOT, f), "utf8"));
  if (Array.isArray(r)) problems.push(...r);
  if (m.edits.length === 0) problems.push(`${m.name}: no edits`);
  for (const t of m.tests) if (!existsSync(join(ROOT, t))) problems.push(`${m.name}: no ${t}`);
}
if (problems.length > 0) fail(`cannot plant:\n  ${problems.join("\n  ")}`);
if (values.check) {
  const edits = selected.reduce((n, m) => n + m.edits.length, 0);
  console.log(`mutants: ${selected.length} mutants, ${edits} edits, each applies exactly once`);
  process.exit(0);
}

// ---- child processes and clean-up ----------------------------------------------------------------
const SCRATCH = mkdtempSync(join(tmpdir(), "dkv-mutants-"));
const groups = new Set<ChildProcess>();

/** Kill every process whose executable or working directory is inside the scratch folder. */
function killStrays(): void {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return; // no /proc: the process groups are all there is
  }
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    for (const link of ["exe", "cwd"]) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/${link}`);
      } catch {
        continue;
      }
      if (target === SCRATCH || target.startsWith(`${SCRATCH}/`)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // gone already
        }
        break;
      }
    }
  }
}

function killGroup(c: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-c.pid!, signal);
  } catch {
    // the group is gone
  }
}

function cleanUp(): void {
  for (const c of groups) killGroup(c, "SIGKILL");
  groups.clear();
  killStrays();
  if (!values.keep) rmSync(SCRATCH, { recursive: true, force: true });
}

process.on("exit", cleanUp);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    console.error(`\nmutants: ${sig}: killing the runs and removing ${SCRATCH}`);
    process.exit(sig === "SIGINT" ? 130 : 143);
  });
}

/** The environment of every run: ours without DKV_* (a test cluster must not inherit flags). */
const ENV: Record<string, string> = Object.fromEntries(
  Object.entries(process.env).filter(([k, v]) => !k.startsWith("DKV_") && v !== undefined),
) as Record<string, string>;

interface RunResult {
  code: number | null;
  output: string;
  timedOut: boolean;
  ms: number;
}

/** Run a command in `cwd` in its own process group; kill the group after `limitMs`. */
function run(cmd: string[], cwd: string, limitMs: number): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((done) => {
    const c = spawn(cmd[0]!, cmd.slice(1), {
      cwd,
      env: ENV,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    groups.add(c);
    let output = "";
    let timedOut = false;
    const collect = (d: Buffer) => {
      // Bounded: the last 4 MB is plenty to find the failing tests.
      output = (output + d.toString()).slice(-4_000_000);
    };
    c.stdout!.on("data", collect);
    c.stderr!.on("data", collect);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(c, "SIGTERM");
      setTimeout(() => killGroup(c, "SIGKILL"), 3000).unref();
    }, limitMs);
    c.on("close", (code) => {
      clearTimeout(timer);
      killGroup(c, "SIGKILL"); // whatever the run left behind in its group
      groups.delete(c);
      killStrays();
      done({ code, output, timedOut, ms: performance.now() - t0 });
    });
  });
}

// ---- scratch trees -------------------------------------------------------------------------------
/** A copy of the working tree (uncommitted files too) with these files replaced. */
async function scratchTree(name: string, files: Map<string, string>): Promise<string> {
  const dir = join(SCRATCH, name);
  cpSync(ROOT, dir, {
    recursive: true,
    filter: (src) => {
      const rel = src.slice(ROOT.length + 1);
      return rel === "" || !SKIP.has(rel.split("/")[0]!) || rel.includes("/");
    },
  });
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  for (const [file, text] of files) writeFileSync(join(dir, file), text);
  const b = await run(["npm", "run", "--silent", "build"], dir, 120_000);
  if (b.code !== 0) {
    fail(`${name}: npm run build failed in ${dir} (exit ${b.code}):\n${b.output.slice(-3000)}`);
  }
  return dir;
}

// ---- one test set --------------------------------------------------------------------------------
interface SetResult {
  label: string;
  /** What failed: test names, sim seeds, or what went wrong with the run itself. */
  failures: string[];
  /** How much ran: "62 tests" or "200 seeds" (from the runner's summary), for the log. */
  ran: string;
  ms: number;
}

const BUN = process.execPath;

/** Failing test names of a `bun test` run, each as "file › name". */
function failingTests(output: string): string[] {
  const out = new Set<string>();
  let file = "";
  for (const line of output.split("\n")) {
    if (/^\d+ tests? failed:$/.test(line)) break; // bun's recap of the same failures
    const f = /^(test\/\S+\.test\.ts):$/.exec(line);
    if (f) file = f[1]!;
    const m = /^\(fail\) (.*?)(?: \[[\d.]+m?s\])?$/.exec(line);
    if (m) out.add(`${file.replace(/^test\//, "")} › ${m[1]}`);
  }
  return [...out];
}

async function runTests(dir: string, path: string): Promise<SetResult> {
  const limit = path.startsWith("test/e2e") ? E2E_RUN_LIMIT_MS : FAST_RUN_LIMIT_MS;
  const r = await run([BUN, "test", "--timeout", String(TEST_TIMEOUT_MS), path], dir, limit);
  const failures = failingTests(r.output);
  if (r.timedOut) failures.push(`${path}: no end within ${limit / 60_000} min (killed)`);
  else if (r.code !== 0 && failures.length === 0) {
    const err = r.output.split("\n").find((l) => /error/i.test(l))?.trim() ?? "";
    failures.push(`${path}: exit ${r.code} with no failing test named${err ? ` (${err})` : ""}`);
  }
  const pass = /^\s*(\d+) pass$/m.exec(r.output)?.[1] ?? "0";
  const failed = /^\s*(\d+) fail$/m.exec(r.output)?.[1] ?? "0";
  return { label: path, failures, ran: `${Number(pass) + Number(failed)} tests`, ms: r.ms };
}

async function runSim(dir: string, s: SimRun): Promise<SetResult> {
  const args = ["scripts/sim.ts", "--seeds", String(s.seeds), "--first", String(s.first ?? 1)];
  if (s.faults) args.push("--faults", s.faults);
  args.push("--workers", "1");
  const limit = simLimitMs(s);
  const r = await run([BUN, ...args], dir, limit);
  const seeds = [...r.output.matchAll(/^FAIL seed (\d+):/gm)].map((m) => m[1]!);
  const label = simLabel(s);
  const failures = seeds.map((n) => `${label} seed ${n}`);
  if (r.timedOut) failures.push(`${label}: no end within ${limit / 60_000} min (killed)`);
  else if (r.code === 2) {
    fail(`${label}: bad arguments to scripts/sim.ts:\n${r.output.slice(-3000)}`);
  } else if (r.code !== 0 && seeds.length === 0) {
    // It crashed (sim.ts exits 1 with a FAIL line per failing seed, or 2 on bad arguments).
    const err = r.output.split("\n").find((l) => /error/i.test(l))?.trim() ?? "";
    failures.push(`${label}: exit ${r.code} with no failing seed named${err ? ` (${err})` : ""}`);
  }
  const ran = /^sim: (\d+) seeds/m.exec(r.output)?.[1] ?? "0";
  return { label, failures, ran: `${ran} seeds`, ms: r.ms };
}

type TestSet = { kind: "tests"; path: string } | { kind: "sim"; sim: SimRun };
const setsOf = (m: Mutant): TestSet[] => [
  ...m.tests.map((path) => ({ kind: "tests" as const, path })),
  ...m.sims.map((sim) => ({ kind: "sim" as const, sim })),
];
const runSet = (dir: string, s: TestSet) =>
  s.kind === "tests" ? runTests(dir, s.path) : runSim(dir, s.sim);

/** Tests named per file in the table; past this, "and N more". */
const TESTS_SHOWN = 3;
/** Failing seeds named per sim run in the table. */
const SEEDS_SHOWN = 8;

/** Failures for the table: one line per test file and per sim run. */
function summarize(failures: readonly string[]): string[] {
  const out: string[] = [];
  const groups = new Map<string, string[]>();
  const add = (k: string, v: string) => groups.has(k) ? groups.get(k)!.push(v) : groups.set(k, [v]);
  for (const f of failures) {
    const seed = /^(sim .*) seed (\d+)$/.exec(f);
    const test = / › /.exec(f);
    if (seed !== null) add(seed[1]!, seed[2]!);
    else if (test !== null) add(f.slice(0, test.index), f.slice(test.index + 3));
    else out.push(f);
  }
  for (const [label, items] of groups) {
    if (label.startsWith("sim ")) {
      const shown = items.slice(0, SEEDS_SHOWN).join(", ") +
        (items.length > SEEDS_SHOWN ? ", …" : "");
      out.push(`${label}: ${items.length} seed${items.length > 1 ? "s" : ""} (${shown})`);
    } else {
      const more = items.length - TESTS_SHOWN;
      out.push(
        `${label} (${items.length}): ${
          items.slice(0, TESTS_SHOWN).map((t) => `"${t}"`).join(", ")
        }` +
          (more > 0 ? ` and ${more} more` : ""),
      );
    }
  }
  return out;
}

const fmtMs = (ms: number) =>
  ms < 60_000 ? `${(ms / 1000).toFixed(0)} s` : `${(ms / 60_000).toFixed(1)} min`;
const log = (msg: string) => console.error(`mutants: ${msg}`);

// ---- the run -------------------------------------------------------------------------------------
const t0 = performance.now();
log(`scratch folder ${SCRATCH}`);

/** Failures on the unmutated tree (test names, sim seeds): never counted as catches. */
const baseline = new Set<string>();
if (values.baseline) {
  const dir = await scratchTree("baseline", new Map());
  const sets = new Map<string, TestSet>();
  for (const m of selected) {
    for (const s of setsOf(m)) sets.set(s.kind === "tests" ? s.path : simLabel(s.sim), s);
  }
  for (const s of sets.values()) {
    const r = await runSet(dir, s);
    const verdict = r.failures.length ? summarize(r.failures).join("; ") : "pass";
    log(`baseline ${r.label}: ${verdict} (${r.ran}, ${fmtMs(r.ms)})`);
    for (const f of r.failures) baseline.add(f);
  }
  if (!values.keep) rmSync(dir, { recursive: true, force: true });
}

interface Verdict {
  mutant: Mutant;
  caughtBy: string[];
  /** Failures that also happen without the mutant (not catches). */
  alsoUnmutated: string[];
  ms: number;
}

const verdicts: Verdict[] = [];
for (const [i, m] of selected.entries()) {
  const m0 = performance.now();
  const files = applyEdits(m, (f) => readFileSync(join(ROOT, f), "utf8")) as Map<string, string>;
  const dir = await scratchTree(m.name, files);
  log(`[${i + 1}/${selected.length}] ${m.name}: ${m.what}${values.keep ? ` (in ${dir})` : ""}`);
  const v: Verdict = { mutant: m, caughtBy: [], alsoUnmutated: [], ms: 0 };
  for (const s of setsOf(m)) {
    const r = await runSet(dir, s);
    const real = r.failures.filter((f) => !baseline.has(f));
    v.caughtBy.push(...real);
    v.alsoUnmutated.push(...r.failures.filter((f) => baseline.has(f)));
    const verdict = real.length ? `CAUGHT (${real.length})` : "passes";
    log(`  ${r.label}: ${verdict} (${r.ran}, ${fmtMs(r.ms)})`);
    if (values.quick && v.caughtBy.length > 0) break;
  }
  if (!values.keep) rmSync(dir, { recursive: true, force: true });
  v.ms = performance.now() - m0;
  verdicts.push(v);
}

// ---- the table -----------------------------------------------------------------------------------
const cell = (s: string) => s.replaceAll("|", "\\|");
console.log("\n| mutant | planted bug | caught by | time |");
console.log("| --- | --- | --- | --- |");
for (const v of verdicts) {
  const by = v.caughtBy.length === 0
    ? "**SURVIVED**"
    : summarize(v.caughtBy).map(cell).join("<br>");
  const also = v.alsoUnmutated.length
    ? `<br>(failing without the mutant too: ${summarize(v.alsoUnmutated).map(cell).join("; ")})`
    : "";
  console.log(`| \`${v.mutant.name}\` | ${cell(v.mutant.what)} | ${by}${also} | ${fmtMs(v.ms)} |`);
}
const survived = verdicts.filter((v) => v.caughtBy.length === 0);
console.log(
  `\nmutants: ${verdicts.length - survived.length} of ${verdicts.length} caught` +
    (survived.length ? `; SURVIVED: ${survived.map((v) => v.mutant.name).join(", ")}` : "") +
    `; ${fmtMs(performance.now() - t0)}${values.quick ? " (--quick)" : ""}`,
);
process.exit(survived.length > 0 ? 1 : 0);
