/**
 * The client commands of the `dkv` binary (etcdctl, `consul kv` and redis-cli habits), built on
 * the client library (src/client):
 *
 *   dkv get KEY | put KEY [VALUE] | del KEY | ls [PREFIX] | watch KEY | watch --prefix P
 *   dkv members | status | bench
 *
 * Common flags: --server host:port[,...] (env DKV_SERVER, default 127.0.0.1:8080),
 * --consistency, --output text|json, --token / --token-file (env DKV_TOKEN), --tls-ca (https).
 * Text output is for shell scripts: `get` prints the value alone, `ls` one key per line.
 * Exit codes: 0 success; 1 not found or a failed request (one line on stderr); 2 usage error.
 */
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  type Consistency,
  DkvClient,
  type DkvClientOptions,
  DkvHttpError,
  DkvTransportError,
  type Entry,
} from "../client/index.ts";

export const COMMANDS = ["get", "put", "del", "ls", "watch", "members", "status", "bench"];

/** One line per command, for `dkv --help`. */
export const COMMAND_USAGE = [
  "  dkv get KEY                  print the value (--output json: the API's answer)",
  "  dkv put KEY [VALUE]          set KEY (VALUE from stdin when absent or -)",
  "  dkv del KEY                  delete KEY (exit 1 when it held no value)",
  "  dkv ls [PREFIX]              keys under PREFIX, one per line",
  "  dkv watch KEY | --prefix P   print changes as they happen",
  "  dkv members                  members and their state",
  "  dkv status                   a table: member, role, state, partitions, keys, hints, moves",
  "  dkv bench                    a short load test: req/s and latency percentiles",
  "  (each takes --server host:port[,...]; `dkv COMMAND --help` for its flags)",
];

const COMMON_HELP = [
  "  --server host:port[,...]   members to talk to (env DKV_SERVER; default 127.0.0.1:8080)",
  "  --consistency LEVEL        one, quorum, all or any (default: the member's, quorum)",
  "  --output text|json         text (default) or the API's JSON answer",
  "  --token TOKEN              client token (env DKV_TOKEN); or --token-file PATH",
  "  --tls-ca PATH              members serve https: check them against this CA",
  "  --timeout DURATION         per attempt (default 5s)",
  "  --routing partition|servers  partition (default): straight to a replica of the key;",
  "                             servers: only to --server (a gateway or load balancer)",
  "  -h, --help                 this help",
];

const HELP: Record<string, { usage: string; flags?: string[] }> = {
  get: { usage: "dkv get KEY [flags]" },
  put: {
    usage: "dkv put KEY [VALUE|-] [flags]",
    flags: ["  --ttl DURATION             expire the key after it (30s, 5m, 1h)"],
  },
  del: { usage: "dkv del KEY [flags]" },
  ls: {
    usage: "dkv ls [PREFIX] [flags]",
    flags: ["  --limit N                  stop after N keys"],
  },
  watch: {
    usage: "dkv watch KEY [flags] | dkv watch --prefix PREFIX [flags]",
    flags: ["  --prefix PREFIX            watch every key under PREFIX"],
  },
  members: { usage: "dkv members [flags]" },
  status: { usage: "dkv status [flags]" },
  bench: {
    usage: "dkv bench [flags]",
    flags: [
      "  --op put|get|mixed         what to send (default mixed: 1 put per 9 gets)",
      "  --requests N               how many (default 10000)",
      "  --concurrency N            in flight at once (default 32)",
      "  --keys N                   distinct keys (default 1000)",
      "  --value-bytes N            value size (default 100)",
    ],
  },
};

class UsageError extends Error {}

function helpOf(cmd: string): string {
  const h = HELP[cmd]!;
  return [`Usage: ${h.usage}`, "", "Flags:", ...(h.flags ?? []), ...COMMON_HELP].join("\n");
}

const OPTIONS = {
  server: { type: "string" },
  consistency: { type: "string" },
  output: { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
  "tls-ca": { type: "string" },
  timeout: { type: "string" },
  routing: { type: "string" },
  ttl: { type: "string" },
  prefix: { type: "string" },
  limit: { type: "string" },
  op: { type: "string" },
  requests: { type: "string" },
  concurrency: { type: "string" },
  keys: { type: "string" },
  "value-bytes": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Which flags each command takes besides the common ones. */
const OWN_FLAGS: Record<string, readonly string[]> = {
  put: ["ttl"],
  ls: ["limit"],
  watch: ["prefix"],
  bench: ["op", "requests", "concurrency", "keys", "value-bytes"],
};
const COMMON = [
  "server",
  "consistency",
  "output",
  "token",
  "token-file",
  "tls-ca",
  "timeout",
  "routing",
  "help",
];

interface Io {
  out(text: string): void;
  outBytes(bytes: Uint8Array): void;
  err(text: string): void;
  stdin(): Promise<Uint8Array>;
  env: Record<string, string | undefined>;
}

const realIo: Io = {
  out: (t) => process.stdout.write(t + "\n"),
  outBytes: (b) => process.stdout.write(b),
  err: (t) => process.stderr.write(t + "\n"),
  stdin: async () => {
    const chunks: Uint8Array[] = [];
    for await (const c of process.stdin as AsyncIterable<Uint8Array>) chunks.push(c);
    return Buffer.concat(chunks);
  },
  env: process.env,
};

function whole(flag: string, text: string | undefined, dflt: number, min: number, max: number) {
  if (text === undefined) return dflt;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) {
    throw new UsageError(`--${flag}: must be a whole number ${min}-${max}`);
  }
  return n;
}

function durationMs(flag: string, text: string | undefined, dflt: number): number {
  if (text === undefined) return dflt;
  const m = /^(\d+)(ms|s|m)$/.exec(text.trim());
  if (m === null) throw new UsageError(`--${flag}: must be a duration such as 500ms, 5s or 1m`);
  const n = Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "s" ? 1000 : 60_000);
  if (n < 1 || n > 600_000) throw new UsageError(`--${flag}: must be between 1ms and 10m`);
  return n;
}

/** Run a client command; resolves to the exit code. */
export async function runCli(argv: readonly string[], io: Io = realIo): Promise<number> {
  const cmd = argv[0]!;
  try {
    return await runCommand(cmd, argv.slice(1), io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`dkv ${cmd}: ${e.message}`);
      return 2;
    }
    if (e instanceof DkvHttpError) {
      io.err(`dkv ${cmd}: ${e.message} (HTTP ${e.status} from ${e.server})`);
      return 1;
    }
    if (e instanceof DkvTransportError) {
      io.err(`dkv ${cmd}: ${e.message}`);
      return 1;
    }
    io.err(`dkv ${cmd}: ${(e as Error).message}`);
    return 1;
  }
}

async function runCommand(cmd: string, args: readonly string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0]!;
    const flag = /'(-[^']*)'/.exec(msg)?.[1];
    throw new UsageError(
      /^Unknown option/.test(msg) && flag !== undefined ? `unknown flag ${flag} (see --help)` : msg,
    );
  }
  const v = parsed.values;
  if (v.help) {
    io.out(helpOf(cmd));
    return 0;
  }
  const allowed = new Set([...COMMON, ...(OWN_FLAGS[cmd] ?? [])]);
  for (const name of Object.keys(v)) {
    if (!allowed.has(name)) throw new UsageError(`--${name} is not a flag of ${cmd}`);
  }
  const pos = parsed.positionals;
  const output = v.output ?? "text";
  if (output !== "text" && output !== "json") {
    throw new UsageError("--output: must be text or json");
  }
  const consistency = v.consistency;
  if (consistency !== undefined && !["one", "quorum", "all", "any"].includes(consistency)) {
    throw new UsageError("--consistency: must be one, quorum, all or any");
  }
  const servers = (v.server ?? io.env["DKV_SERVER"] ?? "127.0.0.1:8080").split(",").map((s) =>
    s.trim()
  ).filter((s) => s.length > 0);
  if (servers.length === 0) throw new UsageError("--server: give at least one host:port");
  for (const s of servers) {
    if (
      !/^(https?:\/\/)?[^\s/:]+(:\d{1,5})?$|^(https?:\/\/)?\[[0-9a-fA-F:.]+\](:\d{1,5})?$/.test(s)
    ) {
      throw new UsageError(`--server: '${s.slice(0, 80)}' is not host:port`);
    }
  }
  let token = v.token ?? io.env["DKV_TOKEN"];
  if (v["token-file"] !== undefined) {
    try {
      token = readFileSync(v["token-file"], "utf8").trim().split(/\s+/)[0];
    } catch (e) {
      throw new UsageError(`--token-file: ${(e as Error).message}`);
    }
  }
  const routing = v.routing ?? "partition";
  if (routing !== "partition" && routing !== "servers") {
    throw new UsageError("--routing: must be partition or servers");
  }
  const opts: DkvClientOptions = {
    servers,
    routing,
    ...(token === undefined || token === "" ? {} : { token }),
    ...(consistency === undefined ? {} : { consistency: consistency as Consistency }),
    timeoutMs: durationMs("timeout", v.timeout, 5000),
    ...(v["tls-ca"] === undefined ? {} : tlsOptions(v["tls-ca"])),
  };
  const client = new DkvClient(opts);
  const need = (n: number, what: string) => {
    if (pos.length < n) throw new UsageError(`missing ${what} (dkv ${HELP[cmd]!.usage})`);
  };
  const noMore = (n: number) => {
    if (pos.length > n) throw new UsageError(`unexpected argument '${pos[n]!.slice(0, 40)}'`);
  };
  switch (cmd) {
    case "get": {
      need(1, "KEY");
      noMore(1);
      const e = await client.get(pos[0]!);
      if (e === undefined) {
        if (output === "json") io.out(JSON.stringify(notFound(pos[0]!)));
        io.err(`dkv get: key '${pos[0]}' not found`);
        return 1;
      }
      if (output === "json") io.out(JSON.stringify(entryJson(e)));
      else {
        io.outBytes(e.bytes);
        io.outBytes(new Uint8Array([10]));
      }
      return 0;
    }
    case "put": {
      need(1, "KEY");
      noMore(2);
      const value = pos[1] === undefined || pos[1] === "-" ? await io.stdin() : pos[1];
      const e = await client.put(pos[0]!, value, v.ttl === undefined ? {} : { ttl: v.ttl });
      io.out(output === "json" ? JSON.stringify(entryJson(e)) : "OK");
      return 0;
    }
    case "del": {
      need(1, "KEY");
      noMore(1);
      const held = await client.delete(pos[0]!);
      if (!held) {
        if (output === "json") io.out(JSON.stringify(notFound(pos[0]!)));
        io.err(`dkv del: key '${pos[0]}' not found`);
        return 1;
      }
      io.out(output === "json" ? JSON.stringify({ status: "SUCCESS", key: pos[0] }) : "OK");
      return 0;
    }
    case "ls": {
      noMore(1);
      const limit = whole("limit", v.limit, Number.MAX_SAFE_INTEGER, 1, Number.MAX_SAFE_INTEGER);
      let n = 0;
      for await (const item of client.list(pos[0] ?? "", { keysOnly: output === "text" })) {
        io.out(output === "json" ? JSON.stringify(entryJson(item as Entry, false)) : item.key);
        if (++n >= limit) break;
      }
      return 0;
    }
    case "watch": {
      if (v.prefix === undefined) need(1, "KEY or --prefix PREFIX");
      noMore(v.prefix === undefined ? 1 : 0);
      const target = v.prefix === undefined ? pos[0]! : { prefix: v.prefix };
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      for await (const ev of client.watch(target, { signal: stop.signal })) {
        if (output === "json") io.out(JSON.stringify({ type: ev.type, ...ev.record }));
        else {
          io.out(
            ev.type === "put"
              ? `PUT ${ev.key} ${String(ev.record["value"] ?? "")}`
              : `DELETE ${ev.key}`,
          );
        }
      }
      return 0;
    }
    case "members": {
      noMore(0);
      const members = await client.members();
      if (output === "json") io.out(JSON.stringify({ allNodes: members }));
      else {
        io.out(table(
          ["ID", "ADDRESS", "ROLE", "STATE", "IN RING"],
          members.map((m) => [m.id, m.address, m.role, m.state, m.inRing ? "yes" : "no"]),
        ));
      }
      return 0;
    }
    case "status": {
      noMore(0);
      const s = await client.status();
      if (output === "json") {
        io.out(JSON.stringify(s));
        return 0;
      }
      const rows = ((s["members"] ?? []) as Record<string, unknown>[]).map((m) => {
        const num = (k: string) => (typeof m[k] === "number" ? String(m[k]) : "-");
        const moves = typeof m["movingIn"] === "number"
          ? `${m["movingIn"]} in, ${m["movingOut"]} out`
          : "-";
        return [
          String(m["id"]),
          String(m["role"]),
          String(m["state"]) + (typeof m["error"] === "string" ? " (unreachable)" : ""),
          num("partitionsOwned"),
          num("keys"),
          num("hintsPending"),
          moves,
        ];
      });
      io.out(
        `epoch ${s["epoch"]}, N=${s["replicationFactor"]}, ${s["partitions"]} partitions, ` +
          `answered by ${s["answeredBy"]}`,
      );
      io.out(table(["MEMBER", "ROLE", "STATE", "PARTITIONS", "KEYS", "HINTS", "MOVES"], rows));
      return 0;
    }
    case "bench":
      noMore(0);
      return await bench(client, v, output, io);
  }
  throw new UsageError(`unknown command ${cmd}`);
}

function tlsOptions(caPath: string): Partial<DkvClientOptions> {
  let ca: string;
  try {
    ca = readFileSync(caPath, "utf8");
  } catch (e) {
    throw new UsageError(`--tls-ca: ${(e as Error).message}`);
  }
  return {
    scheme: "https",
    // Bun's fetch takes the CA per request.
    fetch: (url, init) => fetch(url, { ...init, tls: { ca } } as RequestInit),
  };
}

function notFound(key: string) {
  return {
    status: "FAILED",
    error: { errorMessage: `key '${key}' not found`, errorSystemCode: 404 },
  };
}

/** An entry as the API answers it (`status` only for a single record's answer). */
function entryJson(e: Entry, status = true) {
  return {
    ...(status ? { status: "SUCCESS" } : {}),
    key: e.key,
    value: e.value,
    ...(e.encoding === undefined ? {} : { encoding: e.encoding }),
    version: e.version,
    ...(e.expiresAt === undefined ? {} : { expiresAt: e.expiresAt }),
  };
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}

async function bench(
  client: DkvClient,
  v: Record<string, string | boolean | undefined>,
  output: string,
  io: Io,
): Promise<number> {
  const op = (v["op"] as string | undefined) ?? "mixed";
  if (!["put", "get", "mixed"].includes(op)) {
    throw new UsageError("--op: must be put, get or mixed");
  }
  const requests = whole("requests", v["requests"] as string | undefined, 10_000, 1, 10_000_000);
  const concurrency = whole("concurrency", v["concurrency"] as string | undefined, 32, 1, 4096);
  const keys = whole("keys", v["keys"] as string | undefined, 1000, 1, 10_000_000);
  const valueBytes = whole("value-bytes", v["value-bytes"] as string | undefined, 100, 0, 1 << 20);
  const value = "v".repeat(valueBytes);
  const key = (i: number) => `bench:${i % keys}`;
  if (op !== "put") {
    // Reads need keys to read: write each once first (not timed).
    const fill = Math.min(keys, requests);
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(concurrency, fill) }, async () => {
      while (next < fill) await client.put(key(next++), value);
    }));
  }
  const latencies = new Float64Array(requests);
  let next = 0;
  let errors = 0;
  let firstError = "";
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, requests) }, async () => {
    while (next < requests) {
      const i = next++;
      const isPut = op === "put" || (op === "mixed" && i % 10 === 0);
      const t0 = performance.now();
      try {
        if (isPut) await client.put(key(i), value);
        else await client.get(key(i));
      } catch (e) {
        errors++;
        firstError ||= (e as Error).message;
      }
      latencies[i] = performance.now() - t0;
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort();
  const pct = (p: number) => latencies[Math.min(requests - 1, Math.floor((p / 100) * requests))]!;
  const result = {
    op,
    requests,
    concurrency,
    errors,
    seconds: Number(seconds.toFixed(3)),
    rps: Math.round(requests / seconds),
    latencyMs: {
      p50: Number(pct(50).toFixed(3)),
      p90: Number(pct(90).toFixed(3)),
      p99: Number(pct(99).toFixed(3)),
      max: Number(latencies[requests - 1]!.toFixed(3)),
    },
  };
  if (output === "json") io.out(JSON.stringify(result));
  else {
    io.out(
      `${op}: ${requests} requests, ${concurrency} in flight, ${result.seconds} s: ` +
        `${result.rps} req/s; latency ms p50 ${result.latencyMs.p50}, p90 ${result.latencyMs.p90}, ` +
        `p99 ${result.latencyMs.p99}, max ${result.latencyMs.max}; errors ${errors}`,
    );
  }
  if (errors > 0) {
    io.err(`dkv bench: ${errors} requests failed; the first: ${firstError}`);
    return 1;
  }
  return 0;
}
