/**
 * What the cluster secret costs per call (issue 9, part 1): a micro-benchmark, printed, never
 * asserted.
 *
 *   1. the signing primitives alone, per body size: sign a request, check it (header, MAC,
 *      replay window), sign the answer, check the answer;
 *   2. in process, no sockets: a client PUT and GET through a 3-node in-memory cluster
 *      (app.request; each op makes N = 3 signed replica calls with quorum), with and without a
 *      secret, the ratio in the same run.
 *
 *   3. with --real: the compiled ./dkv as real processes on loopback, an orchestrator and 3 nodes
 *      (N = 3) without a secret, with a secret, and with a secret and client tokens (wrk sends
 *      the bearer token), driven by wrk (PUT, then GET of the keys written), runs interleaved so
 *      that load from other processes hits all three alike; the median req/s, and the median CPU
 *      time all members spent per request (user + system, from /proc), which load from other
 *      processes on the machine hardly changes.
 *
 *   npm run bench:auth -- [--seconds 2] [--real] [--runs 3]
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { median5, printRatios, timeKvOps, timeSync as timeSyncFor } from "./bench/micro.ts";
import { ClusterAuth, type RequestClaim } from "../src/security/cluster-auth.ts";
import { memoryCluster } from "../test/http/memory-cluster.ts";
import { killAllOnExit, procsCpuMs } from "./bench/procs.ts";
import { startDkv } from "./bench/systems.ts";
import { runWrk } from "./bench/wrk.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    seconds: { type: "string", default: "2" },
    real: { type: "boolean" },
    runs: { type: "string", default: "3" },
  },
  strict: true,
});
const SECONDS = Number(values.seconds);
if (!(SECONDS > 0)) {
  console.error("bench-auth: --seconds must be > 0");
  process.exit(2);
}

const enc = new TextEncoder();
const secret = enc.encode("x".repeat(64));
const auth = (id: string) =>
  new ClusterAuth([secret], {
    selfId: id,
    windowMs: 60_000,
    now: Date.now,
    random: Math.random,
    warn: () => {},
  });

/** µs per call of `f`, run for about SECONDS / 4. */
const timeSync = (f: () => void) => timeSyncFor(f, (SECONDS * 1000) / 4, 500);

console.log(`runtime: ${typeof Bun !== "undefined" ? `bun ${Bun.version}` : "other"}`);
console.log("\n1. primitives (µs per call; one secret; body = a JSON record of that size)");
console.log("   body      sign req   check req   sign answer   check answer   total per call");
const sender = auth("127.0.0.1:8080");
const receiver = auth("127.0.0.1:8081");
const PATH = "/internal/v1/kv/write";
for (const size of [100, 1024, 16 * 1024, 1024 * 1024]) {
  const body = enc.encode(JSON.stringify({ to: "x", v: "v".repeat(size) }));
  const answer = enc.encode(JSON.stringify({ hadLive: [false] }));
  const { header, nonce } = sender.signRequest("a:1", "POST", PATH, body);
  const sign = timeSync(() => void sender.signRequest("a:1", "POST", PATH, body));
  // A fresh receiver each time would measure allocation; checking the same nonce again is a
  // replay (refused after the MAC), which costs the same work, so it is what we time.
  const check = timeSync(() => {
    const claim = receiver.readClaim(header) as RequestClaim;
    void receiver.verifyRequest(claim, "POST", PATH, body);
  });
  const signAns = timeSync(() => void receiver.signAnswer(200, "POST", PATH, nonce, answer));
  const ansHeader = receiver.signAnswer(200, "POST", PATH, nonce, answer);
  const checkAns = timeSync(
    () => void sender.verifyAnswer(200, "POST", PATH, nonce, ansHeader, answer),
  );
  const label = size >= 1024 * 1024 ? "1 MiB" : size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
  const f = (x: number) => x.toFixed(2).padStart(8);
  console.log(
    `   ${label.padEnd(8)} ${f(sign)}   ${f(check)}    ${f(signAns)}      ${f(checkAns)}       ${
      f(sign + check + signAns + checkAns)
    }`,
  );
}

console.log(
  "\n2. in process: client ops through a 3-node in-memory cluster (µs per op, median of 5 " +
    "interleaved rounds)",
);
const off = await memoryCluster(3);
const on = await memoryCluster(3, [], Date.now, { secrets: [secret] });
const results: [string, number, number][] = [];
for (const [name, method, body] of [["PUT", "PUT", "v".repeat(100)], ["GET", "GET", undefined]]) {
  const per = (c: typeof off) => timeKvOps(c.nodes[0]!.app, method!, body, {}, SECONDS / 5);
  // Interleaved rounds, so that load on the machine hits both alike; the median of each.
  const a: number[] = [], b: number[] = [];
  for (let r = 0; r < 5; r++) {
    a.push(await per(off));
    b.push(await per(on));
  }
  results.push([name!, median5(a), median5(b)]);
}
printRatios(results, "no secret", "secret");
off.stop();
on.stop();

if (values.real) {
  const runs = Number(values.runs);
  const dir = mkdtempSync(join(tmpdir(), "dkv-bench-auth-"));
  killAllOnExit(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "cluster.secret");
  writeFileSync(file, randomBytes(32).toString("hex"), { mode: 0o600 });
  const token = randomBytes(24).toString("hex");
  const tokenFile = join(dir, "tokens");
  writeFileSync(tokenFile, `${token} admin\n`, { mode: 0o600 });
  const bearer = { Authorization: `Bearer ${token}` };
  console.log(
    `\n3. real processes: orchestrator + 3 nodes, N = 3, wrk 2 threads × 32 connections to one ` +
      `node, 100-byte values, 1000 keys, ${runs} interleaved runs of 5 s (median req/s)`,
  );
  const off = await startDkv("auth-off", 3, 3);
  const on = await startDkv("auth-on", 3, 3, ["--cluster-secret-file", file]);
  const both = await startDkv(
    "auth-tokens",
    3,
    3,
    ["--cluster-secret-file", file, "--auth-token-file", tokenFile],
    undefined,
    bearer,
  );
  const env = { BENCH_KEYS: "1000", BENCH_VALUE_BYTES: "100" };
  const systems = [
    { sys: off, env },
    { sys: on, env },
    { sys: both, env: { ...env, BENCH_AUTH: bearer.Authorization } },
  ];
  const wrk = (s: typeof systems[number], script: string, durationS: number) =>
    runWrk({
      script,
      targets: [s.sys.addresses[0]!],
      threads: 2,
      connections: 32,
      durationS,
      env: s.env,
    });
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const col = (x: number, w = 9) => Math.round(x).toString().padStart(w);
  console.log(
    "   req/s: throughput; CPU µs/req: CPU time of all four members (user + system) per answered\n" +
      "   request, which other load on the machine hardly changes (it is what the members spend)",
  );
  console.log(
    "   op    no secret    secret  +tokens   secret/none  +tokens/none  |  CPU µs/req: none  " +
      "secret  +tokens   secret/none  +tokens/none  errors",
  );
  for (const script of ["put.lua", "get.lua"]) {
    for (const s of systems) await wrk(s, script, 2); // warm-up (and keys)
    const rps: number[][] = systems.map(() => []);
    const cpu: number[][] = systems.map(() => []);
    let errors = 0;
    for (let i = 0; i < runs; i++) {
      for (const [j, s] of systems.entries()) {
        const pids = s.sys.procs.map((p) => p.pid);
        const before = procsCpuMs(pids);
        const r = await wrk(s, script, 5);
        const used = procsCpuMs(pids) - before;
        rps[j]!.push(r.rps);
        cpu[j]!.push((used * 1000) / Math.max(1, r.requests));
        errors += r.errors;
      }
    }
    const [ma, mb, mc] = rps.map(median) as [number, number, number];
    const [ca, cb, cc] = cpu.map(median) as [number, number, number];
    console.log(
      `   ${script === "put.lua" ? "PUT" : "GET"}   ${col(ma)} ${col(mb)} ${col(mc)}        ` +
        `${(mb / ma).toFixed(2)}          ${(mc / ma).toFixed(2)}      |  ${col(ca, 16)} ${
          col(cb, 7)
        } ${col(cc, 8)}        ${(cb / ca).toFixed(2)}          ${
          (cc / ca).toFixed(2)
        }     ${errors}`,
    );
  }
  await off.stop();
  await on.stop();
  await both.stop();
  rmSync(dir, { recursive: true, force: true });
}
