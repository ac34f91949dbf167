/**
 * What client tokens cost per request (issue 9, part 3): a micro-benchmark, printed, never
 * asserted.
 *
 *   1. ClientTokens.check alone: a SHA-256 of the presented token, then a constant-time compare
 *      with every stored digest; for 3 and for 1024 tokens (the file's maximum), a known token,
 *      an unknown one, and no header;
 *   2. the front door alone (src/http/front-door.ts) with a stub behind it, without and with
 *      tokens: what every request pays before it is served;
 *   3. in process, no sockets: a client PUT and GET through a 3-node in-memory cluster
 *      (app.request), with and without --auth-token-file, the ratio in the same run (the whole
 *      front door: URL, route name, role table, token).
 *
 *   npm run bench:tokens -- [--seconds 2]
 */
import { parseArgs } from "node:util";
import { median5, printRatios, timeKvOps, timeSync as timeSyncFor } from "./bench/micro.ts";
import { frontDoor } from "../src/http/front-door.ts";
import { parseTokenFile } from "../src/security/client-tokens.ts";
import { memoryCluster } from "../test/http/memory-cluster.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { seconds: { type: "string", default: "2" } },
  strict: true,
});
const SECONDS = Number(values.seconds);
if (!(SECONDS > 0)) {
  console.error("bench-tokens: --seconds must be > 0");
  process.exit(2);
}

/** µs per call of `f`, run for about SECONDS / 4. */
const timeSync = (f: () => void) => timeSyncFor(f, (SECONDS * 1000) / 4, 200);

const tokenOf = (i: number) => `token-${String(i).padStart(6, "0")}-0123456789abcdef0123456789`;
function table(n: number) {
  const lines = Array.from({ length: n }, (_, i) => `${tokenOf(i)} ${i === 0 ? "admin" : "read"}`);
  const t = parseTokenFile(lines.join("\n"));
  if (!t.ok) throw new Error(t.message);
  return t.tokens;
}

console.log(`runtime: ${typeof Bun !== "undefined" ? `bun ${Bun.version}` : "other"}`);
console.log("\n1. ClientTokens.check (µs per call)");
console.log("   tokens   known token   unknown token   no header");
for (const n of [3, 1024]) {
  const t = table(n);
  const known = `Bearer ${tokenOf(n - 1)}`, unknown = `Bearer ${tokenOf(n + 5)}`;
  const f = (x: number) => x.toFixed(2).padStart(10);
  console.log(
    `   ${String(n).padEnd(6)} ${f(timeSync(() => void t.check(known)))}    ${
      f(timeSync(() => void t.check(unknown)))
    }    ${f(timeSync(() => void t.check(null)))}`,
  );
}

console.log("\n2. the front door alone, a stub behind it (µs per request, GET /kv/k)");
{
  const ok = new Response("");
  const sched = (await import("../src/platform/scheduler.ts")).realScheduler;
  const opts = { advertise: "127.0.0.1:8080", allowOrigins: [], sched, bodyReadTimeoutMs: 30_000 };
  const open = frontDoor(opts, () => ok);
  const guarded = frontDoor({ ...opts, tokens: table(3) }, () => ok);
  const plain = new Request("http://127.0.0.1:8080/kv/k");
  const withToken = new Request("http://127.0.0.1:8080/kv/k", {
    headers: { authorization: `Bearer ${tokenOf(1)}` },
  });
  const f = (x: number) => x.toFixed(2).padStart(8);
  console.log(`   no tokens ${f(timeSync(() => void open.fetch(plain)))}`);
  console.log(`   tokens    ${f(timeSync(() => void guarded.fetch(withToken)))}`);
}

console.log(
  "\n3. in process: client ops through a 3-node in-memory cluster (µs per op, median of 5 " +
    "interleaved rounds; 3 tokens)",
);
const off = await memoryCluster(3);
const on = await memoryCluster(3, [], Date.now, { tokens: table(3) });
const results: [string, number, number][] = [];
for (const [name, method, body] of [["PUT", "PUT", "v".repeat(100)], ["GET", "GET", undefined]]) {
  const per = (c: typeof off, headers: Record<string, string>) =>
    timeKvOps(c.nodes[0]!.app, method!, body, headers, SECONDS / 5);
  const a: number[] = [], b: number[] = [];
  for (let r = 0; r < 5; r++) {
    // The same header both ways (the cluster without tokens ignores it): only the check differs.
    a.push(await per(off, { authorization: `Bearer ${tokenOf(0)}` }));
    b.push(await per(on, { authorization: `Bearer ${tokenOf(0)}` }));
  }
  results.push([name!, median5(a), median5(b)]);
}
printRatios(results, "no tokens", "tokens");
off.stop();
on.stop();
