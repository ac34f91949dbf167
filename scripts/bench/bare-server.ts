/**
 * The runtime's HTTP ceiling for scripts/bench.ts: Bun.serve answering every request with a
 * fixed JSON body shaped like a dkv answer (a 100-byte value). A request with a body (POST, PUT)
 * has it read first, as dkv must. Usage: bun scripts/bench/bare-server.ts PORT
 */
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error("usage: bun scripts/bench/bare-server.ts PORT");
  process.exit(2);
}

const body = JSON.stringify({
  status: "SUCCESS",
  key: "bench-0000000",
  value: "v".repeat(100),
  version: "1700000000000.0@127.0.0.1:8080",
});
const headers = { "content-type": "application/json" };

Bun.serve({
  hostname: "127.0.0.1",
  port,
  async fetch(req) {
    if (req.body !== null) await req.arrayBuffer();
    return new Response(body, { headers });
  },
});
console.log(`bare Bun.serve listening on http://127.0.0.1:${port}`);
