/**
 * What TLS costs (issue 9, part 5): printed, never asserted. Three clusters of real processes
 * (the compiled ./dkv; an orchestrator and 3 nodes, N = 3, default timers), certificates made
 * with openssl at run time (ECDSA P-256, test/support/certs.ts):
 *   plain   no TLS
 *   tls     --tls-cert/--tls-key/--tls-ca: HTTPS for clients and between peers
 *   mtls    the same with --tls-client-auth (every connection shows a client certificate)
 *
 *   1. a new connection per request: GET /health on one node, one at a time (what a client that
 *      does not keep connections alive pays: the TCP and, with TLS, the handshake);
 *   2. wrk, 2 threads × 32 keep-alive connections to one node, PUT then GET of 1000 keys with
 *      100-byte values, interleaved 5 s runs, medians: plain against tls (wrk cannot show a client
 *      certificate, so mtls is not driven by wrk; once connected, mutual TLS costs the same per
 *      request as TLS, the client certificate is only checked in the handshake).
 *
 *   npm run build && bun scripts/bench-tls.ts [--runs 3] [--handshakes 300]
 */
import { parseArgs } from "node:util";
import { CertDir } from "../test/support/certs.ts";
import { killAllOnExit } from "./bench/procs.ts";
import { startDkv, type TlsClient } from "./bench/systems.ts";
import { runWrk } from "./bench/wrk.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runs: { type: "string", default: "3" },
    handshakes: { type: "string", default: "300" },
  },
});
const runs = Number(values.runs);
const handshakes = Number(values.handshakes);

const certs = new CertDir().ca("bench").cert("member", "bench").cert("client", "bench");
killAllOnExit(() => certs.remove());
const member = ["--tls-cert", certs.file("member.crt"), "--tls-key", certs.file("member.key")];
const ca = ["--tls-ca", certs.file("bench-ca.crt")];
const client: TlsClient = {
  ca: certs.pem("bench-ca.crt"),
  cert: certs.pem("client.crt"),
  key: certs.pem("client.key"),
};

const plain = await startDkv("tls-bench-plain", 3, 3);
const tls = await startDkv("tls-bench-tls", 3, 3, [...member, ...ca], client);
const mtls = await startDkv(
  "tls-bench-mtls",
  3,
  3,
  [...member, ...ca, "--tls-client-auth"],
  client,
);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(
  `1. a new connection per request: GET /health on one node, ${handshakes} sequential requests ` +
    "per mode, interleaved (median and p90 ms)",
);
const modes = [
  { name: "plain", url: `http://${plain.addresses[0]}/health`, init: {} },
  { name: "tls", url: `https://${tls.addresses[0]}/health`, init: { tls: { ca: client.ca } } },
  { name: "mtls", url: `https://${mtls.addresses[0]}/health`, init: { tls: client } },
];
const times = new Map<string, number[]>(modes.map((m) => [m.name, []]));
for (let i = 0; i < handshakes; i++) {
  for (const m of modes) {
    const t0 = performance.now();
    const res = await fetch(m.url, { ...m.init, keepalive: false } as RequestInit);
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${m.name}: HTTP ${res.status}`);
    times.get(m.name)!.push(performance.now() - t0);
  }
}
for (const m of modes) {
  const xs = [...times.get(m.name)!].sort((a, b) => a - b);
  const p90 = xs[Math.floor(xs.length * 0.9)]!;
  console.log(`   ${m.name.padEnd(6)} ${median(xs).toFixed(2)} ms   p90 ${p90.toFixed(2)} ms`);
}

console.log(
  `\n2. wrk 2 threads × 32 keep-alive connections to one node, 100-byte values, 1000 keys, ` +
    `${runs} interleaved runs of 5 s (median req/s)`,
);
const env = { BENCH_KEYS: "1000", BENCH_VALUE_BYTES: "100" };
const wrk = (target: string, scheme: "http" | "https", script: string, durationS: number) =>
  runWrk({ script, targets: [target], threads: 2, connections: 32, durationS, env, scheme });
console.log("   op        plain       tls    tls / plain    p50 ms plain / tls    errors");
for (const script of ["put.lua", "get.lua"]) {
  await wrk(plain.addresses[0]!, "http", script, 2); // warm-up (and the keys)
  await wrk(tls.addresses[0]!, "https", script, 2);
  const a: number[] = [], b: number[] = [], la: number[] = [], lb: number[] = [];
  let errors = 0;
  for (let i = 0; i < runs; i++) {
    const ra = await wrk(plain.addresses[0]!, "http", script, 5);
    const rb = await wrk(tls.addresses[0]!, "https", script, 5);
    a.push(ra.rps);
    b.push(rb.rps);
    la.push(ra.p50Ms);
    lb.push(rb.p50Ms);
    errors += ra.errors + rb.errors;
  }
  const [ma, mb] = [median(a), median(b)];
  console.log(
    `   ${script === "put.lua" ? "PUT" : "GET"}   ${Math.round(ma).toString().padStart(9)} ${
      Math.round(mb).toString().padStart(9)
    }        ${(mb / ma).toFixed(2)}          ${median(la).toFixed(2)} / ${
      median(lb).toFixed(2)
    }          ${errors}`,
  );
}
await plain.stop();
await tls.stop();
await mtls.stop();
certs.remove();
