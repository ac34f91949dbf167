/**
 * Connection and server commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT,
 * COMMAND, CONFIG GET, INFO, TIME and DKV.CONSISTENCY. Enough for redis-cli's, ioredis's and
 * node-redis's handshakes and for redis-benchmark.
 */
import { globMatch } from "../core/resp.ts";
import { runtime } from "../platform/index.ts";
import {
  clusterKeyCount,
  type CommandSpec,
  DATA_COMMANDS,
  DKV_VERSION,
  type Env,
  REDIS_COMPAT_VERSION,
  type Session,
  upper,
  word,
} from "./commands.ts";
import { arity, RespError, SYNTAX } from "./errors.ts";

const NONE = ["fast", "no-auth"];

function unknownSub(cmd: string, sub: Uint8Array): RespError {
  return new RespError(`ERR unknown subcommand '${word(sub)}'. Try ${cmd} HELP.`);
}

/** AUTH's check: the token (the password) against --auth-token-file. */
function authenticate(env: Env, password: Uint8Array): void {
  const tokens = env.ctx.tokens;
  if (tokens === undefined) {
    throw new RespError(
      "ERR AUTH <password> called without any password configured for the default user. " +
        "Are you sure your configuration is correct?",
    );
  }
  const out = tokens.check(`Bearer ${word(password)}`);
  if (!out.ok) {
    tokens.refused++;
    env.front.stats.authRefused++;
    throw new RespError("WRONGPASS invalid username-password pair or user is disabled.");
  }
  env.s.role = out.role;
}

function validName(name: string): boolean {
  return /^[\x21-\x7e]*$/.test(name);
}

function helloMap(env: Env): void {
  const w = env.w;
  w.mapHeader(7);
  w.bulk("server");
  w.bulk("redis");
  w.bulk("version");
  w.bulk(REDIS_COMPAT_VERSION);
  w.bulk("proto");
  w.integer(w.resp3 ? 3 : 2);
  w.bulk("id");
  w.integer(env.s.id);
  w.bulk("mode");
  w.bulk("standalone");
  w.bulk("role");
  w.bulk("master");
  w.bulk("modules");
  w.arrayHeader(0);
}

function clientLine(env: Env, s: Session): string {
  const now = env.ctx.sched.now();
  return `id=${s.id} addr=${s.addr} laddr=${env.ctx.config.host}:${env.front.port} fd=0 ` +
    `name=${s.name} age=${Math.floor((now - s.createdAtMs) / 1000)} idle=0 flags=N db=0 ` +
    `sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 tot-mem=0 ` +
    `rbs=0 rbp=0 obl=0 oll=0 omem=0 events=r cmd=${s.lastCommand.toLowerCase()} user=default redir=-1 ` +
    `resp=${s.resp3 ? 3 : 2} lib-name=${s.libName} lib-ver=${s.libVer} ` +
    `dkv-consistency=${s.consistency}`;
}

/** `CONFIG GET`: what redis-benchmark and the client libraries ask, answered truthfully. */
function configValues(env: Env): [string, string][] {
  const c = env.ctx.config;
  return [
    ["save", ""],
    ["appendonly", "no"],
    ["databases", "1"],
    ["maxclients", String(env.front.maxConnections)],
    ["proto-max-bulk-len", String(Math.max(c.valueBytesMax, c.keyBytesMax))],
    ["client-query-buffer-limit", String(env.front.bufferBytes)],
    ["timeout", "0"],
    ["port", String(env.front.port)],
    ["bind", c.host],
    ["maxmemory", String(c.storeBytesMax ?? 0)],
    ["maxmemory-policy", "noeviction"],
    ["cluster-enabled", "no"],
  ];
}

function memoryUsage(): { rss: number; heapUsed: number } {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed };
}

async function info(env: Env, sections: string[]): Promise<string> {
  const all = sections.length === 0 || sections.includes("all") ||
    sections.includes("everything") || sections.includes("default");
  const want = (s: string) => all || sections.includes(s);
  const out: string[] = [];
  const ctx = env.ctx;
  const now = ctx.sched.now();
  if (want("server")) {
    const rt = runtime();
    out.push(
      "# Server",
      `redis_version:${REDIS_COMPAT_VERSION}`,
      `dkv_version:${DKV_VERSION}`,
      `dkv_role:${ctx.role}`,
      `dkv_node_id:${ctx.selfId}`,
      "redis_mode:standalone",
      `os:${process.platform}`,
      `runtime:${rt.name} ${rt.version}`,
      `process_id:${process.pid}`,
      `tcp_port:${env.front.port}`,
      `uptime_in_seconds:${Math.floor((now - env.front.startedAtMs) / 1000)}`,
      "",
    );
  }
  if (want("clients")) {
    out.push(
      "# Clients",
      `connected_clients:${env.front.sessions.size}`,
      `maxclients:${env.front.maxConnections}`,
      `total_connections_received:${env.front.stats.connectionsTotal}`,
      `rejected_connections:${env.front.stats.connectionsRefused}`,
      "",
    );
  }
  if (want("memory")) {
    const m = memoryUsage();
    out.push(
      "# Memory",
      `used_memory:${m.heapUsed}`,
      `used_memory_rss:${m.rss}`,
      `dkv_store_bytes:${ctx.store?.bytes ?? 0}`,
      `maxmemory:${ctx.config.storeBytesMax ?? 0}`,
      "",
    );
  }
  if (want("persistence")) out.push("# Persistence", "loading:0", "");
  if (want("cluster")) {
    const members = ctx.view()?.members ?? [];
    out.push(
      "# Cluster",
      "cluster_enabled:0",
      `dkv_members:${members.length}`,
      `dkv_replication_factor:${ctx.view()?.replicationFactor ?? 0}`,
      ...members.map((m, i) =>
        `member${i}:id=${m.id},address=${m.address},role=${m.role},state=${m.state},` +
        `in_ring=${m.inRing ? 1 : 0}`
      ),
      "",
    );
  }
  // Counting the keyspace lists the whole cluster: only when asked by name (or `all`), not in
  // the plain INFO clients send on every connect (ioredis's ready check).
  const countKeys = sections.includes("keyspace") || sections.includes("all") ||
    sections.includes("everything");
  if (want("keyspace") && !countKeys) {
    out.push("# Keyspace", "dkv_keyspace:INFO keyspace counts the cluster's keys (a listing)", "");
  } else if (countKeys) {
    out.push("# Keyspace");
    try {
      const n = await clusterKeyCount(ctx, env.s.consistency);
      if (n > 0) out.push(`db0:keys=${n},expires=0,avg_ttl=0`);
    } catch (e) {
      out.push(`dkv_keyspace_error:${(e as Error).message.replace(/[\r\n]/g, " ")}`);
    }
    out.push("");
  }
  return out.join("\r\n");
}

function commandInfo(env: Env, name: string, spec: CommandSpec): void {
  const w = env.w;
  w.arrayHeader(10);
  w.bulk(name.toLowerCase());
  w.integer(spec.arity);
  w.setHeader(spec.flags.length);
  for (const f of spec.flags) w.simple(f);
  w.integer(spec.keys[0]);
  w.integer(spec.keys[1]);
  w.integer(spec.keys[2]);
  w.setHeader(0);
  w.arrayHeader(0);
  w.arrayHeader(0);
  w.arrayHeader(0);
}

export function connectionCommands(
  table: () => Record<string, CommandSpec>,
): Record<string, CommandSpec> {
  return {
    PING: {
      arity: -1,
      flags: ["fast"],
      keys: [0, 0, 0],
      access: "read",
      run: (env, a) => {
        if (a.length > 2) throw arity("ping");
        if (a.length === 2) env.w.bulk(a[1]!);
        else env.w.simple("PONG");
      },
    },
    ECHO: {
      arity: 2,
      flags: ["fast"],
      keys: [0, 0, 0],
      access: "read",
      run: (env, a) => env.w.bulk(a[1]!),
    },
    HELLO: {
      arity: -1,
      flags: NONE,
      keys: [0, 0, 0],
      access: "none",
      run: (env, a) => {
        let proto: number | undefined;
        if (a.length >= 2) {
          const v = word(a[1]!);
          if (!/^\d+$/.test(v)) {
            throw new RespError("ERR Protocol version is not an integer or out of range");
          }
          proto = Number(v);
          if (proto !== 2 && proto !== 3) {
            throw new RespError("NOPROTO unsupported protocol version");
          }
        }
        let name: string | undefined;
        for (let i = 2; i < a.length; i++) {
          const opt = upper(a[i]!);
          if (opt === "AUTH" && i + 2 < a.length) {
            authenticate(env, a[i + 2]!);
            i += 2;
          } else if (opt === "SETNAME" && i + 1 < a.length) {
            name = word(a[++i]!);
            if (!validName(name)) {
              throw new RespError(
                "ERR Client names cannot contain spaces, newlines or special characters.",
              );
            }
          } else throw new RespError(`ERR Syntax error in HELLO option '${word(a[i]!)}'`);
        }
        if (env.ctx.tokens !== undefined && env.s.role === undefined) {
          throw new RespError(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise " +
              "the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the " +
              "client and select the RESP protocol version at the same time",
          );
        }
        if (name !== undefined) env.s.name = name;
        if (proto !== undefined) env.s.resp3 = env.w.resp3 = proto === 3;
        helloMap(env);
      },
    },
    AUTH: {
      arity: -2,
      flags: NONE,
      keys: [0, 0, 0],
      access: "none",
      run: (env, a) => {
        if (a.length > 3) throw new RespError(SYNTAX);
        authenticate(env, a[a.length - 1]!);
        env.w.simple("OK");
      },
    },
    SELECT: {
      arity: 2,
      flags: ["fast"],
      keys: [0, 0, 0],
      access: "read",
      run: (env, a) => {
        const v = word(a[1]!);
        if (!/^-?\d+$/.test(v)) throw new RespError("ERR value is not an integer or out of range");
        if (Number(v) !== 0) {
          throw new RespError("ERR DB index is out of range (dkv has one database, 0)");
        }
        env.w.simple("OK");
      },
    },
    QUIT: {
      arity: -1,
      flags: NONE,
      keys: [0, 0, 0],
      access: "none",
      run: (env) => {
        env.s.closeAfterReply = true;
        env.w.simple("OK");
      },
    },
    RESET: {
      arity: 1,
      flags: NONE,
      keys: [0, 0, 0],
      access: "none",
      run: (env) => {
        env.s.resp3 = env.w.resp3 = false;
        env.s.role = undefined;
        env.s.name = "";
        env.s.consistency = "quorum";
        env.w.simple("RESET");
      },
    },
    CLIENT: {
      arity: -2,
      flags: [],
      keys: [0, 0, 0],
      access: "read",
      run: (env, a) => {
        const sub = upper(a[1]!);
        const w = env.w;
        switch (sub) {
          case "ID":
            if (a.length !== 2) throw arity("client|id");
            return w.integer(env.s.id);
          case "GETNAME":
            if (a.length !== 2) throw arity("client|getname");
            return env.s.name === "" ? w.null() : w.bulk(env.s.name);
          case "SETNAME": {
            if (a.length !== 3) throw arity("client|setname");
            const name = word(a[2]!);
            if (!validName(name)) {
              throw new RespError(
                "ERR Client names cannot contain spaces, newlines or special characters.",
              );
            }
            env.s.name = name;
            return w.simple("OK");
          }
          case "SETINFO": {
            if (a.length !== 4) throw arity("client|setinfo");
            const attr = upper(a[2]!);
            const v = word(a[3]!);
            if (!validName(v)) {
              throw new RespError(
                `ERR ${attr.toLowerCase()} cannot contain spaces, newlines or special characters.`,
              );
            }
            if (attr === "LIB-NAME") env.s.libName = v;
            else if (attr === "LIB-VER") env.s.libVer = v;
            else throw new RespError(`ERR Unrecognized option '${word(a[2]!)}'`);
            return w.simple("OK");
          }
          case "INFO":
            return w.verbatim(`${clientLine(env, env.s)}\n`);
          case "LIST": {
            const lines = [...env.front.sessions.values()].map((s) => `${clientLine(env, s)}\n`);
            return w.verbatim(lines.join(""));
          }
          default:
            throw unknownSub("CLIENT", a[1]!);
        }
      },
    },
    COMMAND: {
      arity: -1,
      flags: [],
      keys: [0, 0, 0],
      access: "read",
      run: (env, a) => {
        const all = table();
        const w = env.w;
        if (a.length === 1) {
          const names = Object.keys(all);
          w.arrayHeader(names.length);
          for (const n of names) commandInfo(env, n, all[n]!);
          return;
        }
        const sub = upper(a[1]!);
        if (sub === "COUNT") return w.integer(Object.keys(all).length);
        if (sub === "LIST") {
          const names = Object.keys(all);
          w.arrayHeader(names.length);
          for (const n of names) w.bulk(n.toLowerCase());
          return;
        }
        if (sub === "INFO") {
          const names = a.length === 2 ? Object.keys(all) : a.slice(2).map((b) => upper(b));
          w.arrayHeader(names.length);
          for (const n of names) {
            const spec = all[n];
            if (spec === undefined) w.nullArray();
            else commandInfo(env, n, spec);
          }
          return;
        }
        // DOCS: no documentation entries (redis-cli then shows no hints); an empty map.
        if (sub === "DOCS") return w.mapHeader(0);
        throw unknownSub("COMMAND", a[1]!);
      },
    },
    CONFIG: {
      arity: -2,
      flags: [],
      keys: [0, 0, 0],
      access: "read",
      run: (env, a) => {
        const sub = upper(a[1]!);
        if (sub !== "GET") {
          if (sub === "SET" || sub === "RESETSTAT" || sub === "REWRITE") {
            throw new RespError(
              `ERR CONFIG ${sub} is not supported: dkv is configured by its flags (--help)`,
            );
          }
          throw unknownSub("CONFIG", a[1]!);
        }
        if (a.length < 3) throw arity("config|get");
        const values = configValues(env);
        const hits = values.filter(([k]) =>
          a.slice(2).some((p) => globMatch(lower(p), new TextEncoder().encode(k)))
        );
        env.w.mapHeader(hits.length);
        for (const [k, v] of hits) {
          env.w.bulk(k);
          env.w.bulk(v);
        }
      },
    },
    INFO: {
      arity: -1,
      flags: [],
      keys: [0, 0, 0],
      access: "read",
      run: async (env, a) => {
        const text = await info(env, a.slice(1).map((b) => word(b).toLowerCase()));
        env.w.verbatim(text);
      },
    },
    TIME: {
      arity: 1,
      flags: ["fast"],
      keys: [0, 0, 0],
      access: "read",
      run: (env) => {
        const ms = env.ctx.sched.now();
        env.w.arrayHeader(2);
        env.w.bulk(String(Math.floor(ms / 1000)));
        env.w.bulk(String((ms % 1000) * 1000));
      },
    },
    "DKV.CONSISTENCY": {
      arity: -1,
      flags: ["fast"],
      keys: [0, 0, 0],
      access: "read",
      run: (env, a) => {
        if (a.length === 1) return env.w.bulk(env.s.consistency);
        if (a.length > 2) throw arity("dkv.consistency");
        const v = word(a[1]!).toLowerCase();
        if (v !== "one" && v !== "quorum" && v !== "all" && v !== "any") {
          throw new RespError(
            `ERR consistency must be one, quorum, all or any (got '${word(a[1]!).slice(0, 40)}')`,
          );
        }
        env.s.consistency = v;
        env.w.simple("OK");
      },
    },
  };
}

function lower(b: Uint8Array): Uint8Array {
  return new TextEncoder().encode(word(b).toLowerCase());
}

/** All the commands this front answers. */
export function commandTable(): Record<string, CommandSpec> {
  const all: Record<string, CommandSpec> = { ...DATA_COMMANDS };
  Object.assign(all, connectionCommands(() => all));
  return all;
}
