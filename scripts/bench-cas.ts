/**
 * Conditional writes (issue 12), printed, never asserted:
 *
 *   1. CAS and incr throughput on 3 dkv nodes (N=3), uncontended (each worker on its own key)
 *      and 8-way contended (8 workers on one key), against the 3-member etcd's transaction
 *      (`/v3/kv/txn`: compare mod_revision, then put) in the same run, runs interleaved;
 *   2. plain GET and PUT (wrk, 3 nodes N=3) on this build against a baseline build (`main` by
 *      default, built from `git archive`), paired: the two clusters run side by side and their
 *      runs alternate A/B, B/A, so load from elsewhere hits both alike.
 *
 * A CAS worker keeps the version (etcd: the mod revision) its last answer gave and sends the
 * next write conditional on it; a 412 (etcd: `succeeded: false`) hands it the current one, and
 * it tries again. "CAS/s" counts successful writes; "attempts/s" every conditional request.
 *
 *   npm run bench:cas -- [--seconds 5] [--runs 3] [--workers 16] [--baseline REF|PATH]
 *                        [--skip-cas] [--skip-ab]
 *
 * The baseline ref must build with this tree's node_modules (the branch's merge base does).
 */
import { Buffer } from "node:buffer";
import { execSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BUN, killAllOnExit, ROOT } from "./bench/procs.ts";
import { DKV, startDkv, startEtcd, type System, useDkvBinary } from "./bench/systems.ts";
import { runWrk } from "./bench/wrk.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    seconds: { type: "string", default: "5" },
    runs: { type: "string", default: "3" },
    workers: { type: "string", default: "16" },
    baseline: { type: "string", default: "main" },
    "skip-ab": { type: "boolean", default: false },
    "skip-cas": { type: "boolean", default: false },
  },
  strict: true,
});
const SECONDS = Number(values.seconds);
const RUNS = Number(values.runs);
const WORKERS = Number(values.workers);
const CONTENDED = 8;

const dir = mkdtempSync(join(tmpdir(), "dkv-bench-cas-"));
killAllOnExit(() => rmSync(dir, { recursive: true, force: true }));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const say = (s: string) => console.log(s);

/** Run `workers` loops of `op` for SECONDS; each op answers whether it wrote. */
async function drive(
  workers: number,
  op: (w: number) => Promise<boolean>,
): Promise<{ okPerS: number; attemptsPerS: number }> {
  let ok = 0;
  let attempts = 0;
  const end = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: workers }, async (_, w) => {
    while (performance.now() < end) {
      attempts++;
      if (await op(w)) ok++;
    }
  }));
  const s = (performance.now() - t0) / 1000;
  return { okPerS: ok / s, attemptsPerS: attempts / s };
}

// ---- dkv ---------------------------------------------------------------------------------------

/** A dkv CAS workload: worker w writes key `keyOf(w)` conditional on the version it holds. */
function dkvCas(sys: System, keyOf: (w: number) => string) {
  const etags = new Map<number, string | undefined>();
  let n = 0;
  return async (w: number): Promise<boolean> => {
    const key = keyOf(w);
    const addr = sys.addresses[w % sys.addresses.length]!;
    const etag = etags.get(w);
    const headers: Record<string, string> = etag === undefined
      ? { "if-none-match": "*" }
      : { "if-match": etag };
    const res = await fetch(`http://${addr}/kv/${key}`, {
      method: "PUT",
      body: `v${++n}`,
      headers,
    });
    const body = await res.json() as { version?: string; current?: { version: string } | null };
    if (res.status === 200) {
      etags.set(w, `"${body.version}"`);
      return true;
    }
    if (res.status === 412) {
      etags.set(w, body.current ? `"${body.current.version}"` : undefined);
    }
    return false;
  };
}

function dkvIncr(sys: System, keyOf: (w: number) => string) {
  return async (w: number): Promise<boolean> => {
    const addr = sys.addresses[w % sys.addresses.length]!;
    const res = await fetch(`http://${addr}/kv/${keyOf(w)}?op=incr`, { method: "POST" });
    await res.arrayBuffer();
    return res.status === 200;
  };
}

// ---- etcd --------------------------------------------------------------------------------------

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** etcd's txn: compare the key's mod revision with the one held, then put; else read it back. */
function etcdCas(sys: System, keyOf: (w: number) => string) {
  const revs = new Map<number, string>();
  let n = 0;
  return async (w: number): Promise<boolean> => {
    const key = b64(keyOf(w));
    const addr = sys.addresses[w % sys.addresses.length]!;
    const rev = revs.get(w) ?? "0";
    const res = await fetch(`http://${addr}/v3/kv/txn`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        compare: [{ key, target: "MOD", result: "EQUAL", mod_revision: rev }],
        success: [{ request_put: { key, value: b64(`v${++n}`) } }],
        failure: [{ request_range: { key } }],
      }),
    });
    const body = await res.json() as {
      succeeded?: boolean;
      header?: { revision?: string };
      responses?: { response_range?: { kvs?: { mod_revision: string }[] } }[];
    };
    if (body.succeeded === true) {
      revs.set(w, body.header?.revision ?? "0");
      return true;
    }
    revs.set(w, body.responses?.[0]?.response_range?.kvs?.[0]?.mod_revision ?? "0");
    return false;
  };
}

// ---- the runs ----------------------------------------------------------------------------------

interface Row {
  readonly label: string;
  readonly ok: number[];
  readonly attempts: number[];
}

async function casAndIncr(): Promise<Row[]> {
  const dkv = await startDkv("cas", 3, 3);
  const etcd = await startEtcd(join(dir, "etcd"));
  try {
    const own = (prefix: string) => (w: number) => `${prefix}-${w}`;
    const one = (key: string) => () => key;
    let round = 0;
    const cases: { label: string; workers: number; op: () => (w: number) => Promise<boolean> }[] = [
      {
        label: `etcd txn CAS, uncontended (${WORKERS} keys)`,
        workers: WORKERS,
        op: () => etcdCas(etcd, own(`u${round}`)),
      },
      {
        label: `dkv CAS, uncontended (${WORKERS} keys)`,
        workers: WORKERS,
        op: () => dkvCas(dkv, own(`u${round}`)),
      },
      {
        label: `dkv incr, uncontended (${WORKERS} keys)`,
        workers: WORKERS,
        op: () => dkvIncr(dkv, own(`i${round}`)),
      },
      {
        label: `etcd txn CAS, ${CONTENDED}-way on one key`,
        workers: CONTENDED,
        op: () => etcdCas(etcd, one(`hot${round}`)),
      },
      {
        label: `dkv CAS, ${CONTENDED}-way on one key`,
        workers: CONTENDED,
        op: () => dkvCas(dkv, one(`hot${round}`)),
      },
      {
        label: `dkv incr, ${CONTENDED}-way on one key`,
        workers: CONTENDED,
        op: () => dkvIncr(dkv, one(`ihot${round}`)),
      },
    ];
    const rows: Row[] = cases.map((c) => ({ label: c.label, ok: [], attempts: [] }));
    for (round = 0; round < RUNS; round++) {
      for (const [i, c] of cases.entries()) {
        const r = await drive(c.workers, c.op());
        rows[i]!.ok.push(r.okPerS);
        rows[i]!.attempts.push(r.attemptsPerS);
        say(`  run ${round + 1}: ${c.label}: ${Math.round(r.okPerS)} writes/s`);
      }
    }
    return rows;
  } finally {
    await dkv.stop();
    await etcd.stop();
  }
}

/** The baseline binary: PATH, or a build of a git ref (default main). */
function baselineBinary(ref: string): string {
  if (existsSync(ref)) return ref;
  const src = join(dir, "baseline-src");
  execSync(`mkdir -p ${src} && git -C ${ROOT} archive ${ref} | tar -x -C ${src}`);
  symlinkSync(join(ROOT, "node_modules"), join(src, "node_modules"));
  const out = join(dir, "dkv-baseline");
  execSync(
    `${BUN} build src/main.ts --compile --no-compile-autoload-dotenv ` +
      `--no-compile-autoload-bunfig --compile-exec-argv=--max-http-header-size=262144 ` +
      `--outfile ${out}`,
    { cwd: src, stdio: "ignore" },
  );
  return out;
}

async function plainAB(): Promise<{ workload: string; base: number[]; head: number[] }[]> {
  const baseBin = baselineBinary(values.baseline!);
  useDkvBinary(baseBin);
  const base = await startDkv("ab-base", 3, 3);
  useDkvBinary(DKV);
  const head = await startDkv("ab-head", 3, 3);
  try {
    const env = { BENCH_KEYS: "10000", BENCH_PREFIX: "bench-", BENCH_VALUE_BYTES: "100" };
    for (const sys of [base, head]) {
      await runWrk({
        script: "load.lua",
        targets: sys.addresses,
        threads: 3,
        connections: 48,
        durationS: 60,
        untilDone: true,
        env: { ...env, BENCH_API: "dkv" },
      });
    }
    const out = [
      { workload: "GET", script: "get.lua", base: [] as number[], head: [] as number[] },
      { workload: "PUT", script: "put.lua", base: [] as number[], head: [] as number[] },
    ];
    for (let run = 0; run < RUNS; run++) {
      for (const w of out) {
        const order = run % 2 === 0 ? [base, head] : [head, base];
        for (const sys of order) {
          const r = await runWrk({
            script: w.script,
            targets: sys.addresses,
            threads: 2,
            connections: 32,
            durationS: SECONDS,
            env,
          });
          (sys === base ? w.base : w.head).push(r.rps);
        }
        say(
          `  run ${run + 1}: ${w.workload} base ${Math.round(w.base.at(-1)!)} req/s, ` +
            `this ${Math.round(w.head.at(-1)!)} req/s`,
        );
      }
    }
    return out;
  } finally {
    await base.stop();
    await head.stop();
  }
}

say(`bench-cas: ${RUNS} runs of ${SECONDS} s, ${WORKERS} uncontended workers`);
if (!values["skip-cas"]) {
  const rows = await casAndIncr();
  const etcdU = median(rows[0]!.ok);
  const etcdC = median(rows[3]!.ok);
  say("");
  say("| workload | writes/s (median) | attempts/s | vs etcd txn (same contention) |");
  say("| --- | ---: | ---: | ---: |");
  for (const [i, r] of rows.entries()) {
    const vs = i < 3 ? etcdU : etcdC;
    say(
      `| ${r.label} | ${Math.round(median(r.ok))} | ${Math.round(median(r.attempts))} | ` +
        `${(median(r.ok) / vs).toFixed(2)}× |`,
    );
  }
}
if (!values["skip-ab"]) {
  say("");
  const ab = await plainAB();
  say(
    `| plain workload (3 nodes, N=3, wrk 2×32) | ${values.baseline} req/s | this req/s | this / base (paired median) |`,
  );
  say("| --- | ---: | ---: | ---: |");
  for (const w of ab) {
    const ratios = w.base.map((b, i) => w.head[i]! / b);
    say(
      `| ${w.workload} | ${Math.round(median(w.base))} | ${Math.round(median(w.head))} | ` +
        `${median(ratios).toFixed(3)} (runs: ${ratios.map((x) => x.toFixed(3)).join(", ")}) |`,
    );
  }
}
process.exit(0);
