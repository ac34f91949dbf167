/**
 * The Redis commands that read and write a key in one step (SET NX/XX/GET/KEEPTTL, SETNX,
 * GETSET, GETDEL, GETEX, INCR/DECR/INCRBY/DECRBY/INCRBYFLOAT, APPEND, EXPIRE family, PERSIST),
 * each one conditional write (Paxos per key) through the RESP front, with real processes: an
 * orchestrator and 3 nodes (N=3, quorum), every node with --resp-port. Their replies, errors
 * included, are compared byte for byte with a real redis-server's for the same requests. Then
 * concurrency through different members with clients nobody here wrote (ioredis, node-redis,
 * redis-cli): increments add up exactly, one SET NX wins, appends lose nothing. Every process
 * is killed in afterAll.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import Redis from "ioredis";
import { createClient } from "redis";
import {
  type Cluster,
  freePort,
  freePorts,
  runCaptured,
  servesQuorum,
  startCluster,
  stopAll,
  waitFor,
} from "../support/cluster.ts";
import { frame, startRedisServer, transcript } from "../support/resp.ts";
import { rng } from "../unit/seeded.ts";

let c: Cluster;
/** RESP ports of nodes 0-2. */
let resp: number[] = [];
/** A real redis-server, for its own replies to the same requests. */
let redisPort = 0;
afterAll(stopAll);

beforeAll(async () => {
  redisPort = freePort();
  startRedisServer(redisPort);
  resp = freePorts(3);
  // A conditional write that keeps being outbid retries within --request-timeout: 8 clients on
  // one key on a loaded 2-core machine need more than the 2 s default to never give up.
  c = await startCluster(3, {
    nodeArgs: ["--request-timeout", "20s"],
    nodeArgsFor: (i) => ["--resp-port", String(resp[i])],
  });
  // redis-server answers no /health: waited on with PING.
  await waitFor(
    "redis-server to answer",
    async () => (await transcript(redisPort, frame("PING"), 200)).reply.toString() === "+PONG\r\n",
    10_000,
  );
}, 120_000);

async function settle(): Promise<void> {
  for (const m of c.all()) if (m.alive()) await servesQuorum(m, 60_000);
}

function io(port: number): Redis {
  const r = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0 });
  r.on("error", () => {});
  return r;
}

describe("replies compared with redis-server's", () => {
  /**
   * Each request's reply is deterministic in both servers (no positive TTL is read back: it
   * depends on when the reply is made; PERSIST's 1 or 0 tells whether a ttl is there; GT and LT
   * never compare two equal relative times, which the milliseconds between them decide).
   */
  function cases(K: string): (string | Uint8Array)[][] {
    const k = (s: string) => `${K}:${s}`;
    return [
      // SET NX / XX / GET / KEEPTTL and their option rules
      ["SET", k("s"), "v1", "NX"],
      ["SET", k("s"), "v2", "NX"],
      ["GET", k("s")],
      ["SET", k("s"), "v3", "XX"],
      ["SET", k("none"), "v", "XX"],
      ["GET", k("none")],
      ["SET", k("s"), "v4", "GET"],
      ["SET", k("new"), "v", "GET"],
      ["GET", k("new")],
      ["SET", k("s"), "v5", "NX", "GET"],
      ["GET", k("s")],
      ["SET", k("nxget"), "v", "NX", "GET"],
      ["GET", k("nxget")],
      ["SET", k("s"), "v6", "XX", "GET"],
      ["SET", k("none2"), "v", "XX", "GET"],
      ["EXISTS", k("none2")],
      ["SET", k("s"), "v7", "NX", "NX"],
      ["SET", k("s"), "v8", "GET", "GET", "XX", "XX"],
      ["SET", k("s"), "v", "NX", "XX"],
      ["SET", k("s"), "v", "XX", "NX"],
      ["SET", k("s"), "v", "KEEPTTL", "EX", "10"],
      ["SET", k("s"), "v", "EX", "10", "KEEPTTL"],
      ["SET", k("s"), "v", "EX", "10", "EX", "20"],
      ["SET", k("s"), "v", "EX", "10", "PXAT", "20"],
      ["SET", k("s"), "v", "KEEPTTL", "KEEPTTL"],
      ["SET", k("s"), "v", "NX", "EX"],
      ["SET", k("s"), "v", "XX", "EX", "abc"],
      ["SET", k("s"), "v", "GET", "PX", "-1"],
      ["SET", k("s"), "v", "PERSIST"],
      ["SET", k("t"), "a", "EX", "1000"],
      ["SET", k("t"), "b", "KEEPTTL"],
      ["GET", k("t")],
      ["PERSIST", k("t")],
      ["SET", k("t"), "c", "EX", "1000"],
      ["SET", k("t"), "d", "XX", "KEEPTTL", "GET"],
      ["SET", k("t"), "e"],
      ["PERSIST", k("t")],
      ["TTL", k("t")],
      ["SET", k("t"), "f", "EX", "1000"],
      ["SET", k("t"), "g", "XX"],
      ["TTL", k("t")],
      // SETNX, GETSET, GETDEL
      ["SETNX", k("s"), "x"],
      ["SETNX", k("sn"), "x"],
      ["GET", k("sn")],
      ["GETSET", k("gs"), "1"],
      ["GETSET", k("gs"), "2"],
      ["SET", k("gs"), "3", "EX", "1000"],
      ["GETSET", k("gs"), "4"],
      ["TTL", k("gs")],
      ["GETDEL", k("gs")],
      ["GETDEL", k("gs")],
      ["EXISTS", k("gs")],
      ["SETNX", k("s")],
      ["GETSET", k("s")],
      ["GETDEL"],
      ["GETDEL", k("s"), k("s")],
      // GETEX with options
      ["GETEX", k("ge"), "EX", "100"],
      ["EXISTS", k("ge")],
      ["SET", k("ge"), "v"],
      ["GETEX", k("ge"), "EX", "100"],
      ["PERSIST", k("ge")],
      ["GETEX", k("ge"), "PX", "100000"],
      ["GETEX", k("ge"), "PERSIST"],
      ["TTL", k("ge")],
      ["GETEX", k("ge"), "PERSIST", "PERSIST"],
      ["GETEX", k("ge"), "EX", "5", "EX", "100"],
      ["PERSIST", k("ge")],
      ["GETEX", k("ge"), "EXAT", "1"],
      ["EXISTS", k("ge")],
      ["SET", k("ge"), "w"],
      ["GETEX", k("ge"), "PXAT", "1"],
      ["GET", k("ge")],
      ["GETEX", k("ge"), "EX", "0"],
      ["GETEX", k("ge"), "PX", "-5"],
      ["GETEX", k("ge"), "EX", "abc"],
      ["GETEX", k("ge"), "EX", "abc", "FOO"],
      ["GETEX", k("ge"), "PERSIST", "EX", "10"],
      ["GETEX", k("ge"), "EX", "10", "PERSIST"],
      ["GETEX", k("ge"), "EX", "10", "PX", "10"],
      ["GETEX", k("ge"), "EX"],
      ["GETEX", k("ge"), "KEEPTTL"],
      ["GETEX", k("ge"), "NX"],
      // INCR, DECR, INCRBY, DECRBY
      ["INCR", k("i")],
      ["INCRBY", k("i"), "10"],
      ["DECR", k("i")],
      ["DECRBY", k("i"), "20"],
      ["INCRBY", k("i"), "-5"],
      ["GET", k("i")],
      ["INCRBY", k("i"), "abc"],
      ["INCRBY", k("i"), "1.5"],
      ["INCRBY", k("i"), " 1"],
      ["INCRBY", k("i"), "+1"],
      ["INCRBY", k("i"), "01"],
      ["INCRBY", k("i"), "9223372036854775808"],
      ["INCRBY", k("i"), "9223372036854775807"],
      ["INCRBY", k("i"), "100"],
      ["SET", k("i"), "9223372036854775807"],
      ["INCR", k("i")],
      ["INCRBY", k("i"), "-1"],
      ["SET", k("i"), "-9223372036854775808"],
      ["DECR", k("i")],
      ["DECRBY", k("i"), "9223372036854775807"],
      ["INCRBY", k("i"), "-9223372036854775808"],
      ["DECRBY", k("i"), "-9223372036854775808"],
      ["DECRBY", k("i"), "-9223372036854775807"],
      ["GET", k("i")],
      ["SET", k("str"), "hello"],
      ["INCR", k("str")],
      ["DECRBY", k("str"), "1"],
      ["SET", k("str"), " 1"],
      ["INCR", k("str")],
      ["SET", k("str"), "01"],
      ["INCR", k("str")],
      ["SET", k("str"), "-0"],
      ["INCR", k("str")],
      ["SET", k("str"), "1.0"],
      ["INCR", k("str")],
      ["SET", k("str"), Buffer.from([0x31, 0xff])],
      ["INCR", k("str")],
      ["SET", k("str"), "0"],
      ["INCR", k("str")],
      ["SET", k("it"), "5", "EX", "1000"],
      ["INCR", k("it")],
      ["DECRBY", k("it"), "3"],
      ["PERSIST", k("it")],
      ["INCR"],
      ["INCR", k("i"), "1"],
      ["INCRBY", k("i")],
      ["DECRBY", k("i"), "1", "2"],
      // INCRBYFLOAT (x87 long double arithmetic, printed as %.17Lf trimmed)
      ["SET", k("f"), "10.50"],
      ["INCRBYFLOAT", k("f"), "0.1"],
      ["INCRBYFLOAT", k("f"), "-5"],
      ["SET", k("f"), "5.0e3"],
      ["INCRBYFLOAT", k("f"), "2.0e2"],
      ["INCRBYFLOAT", k("fn"), "0.1"],
      ["INCRBYFLOAT", k("fn"), "0.2"],
      ["INCRBYFLOAT", k("fn"), "-0.3"],
      ["INCRBYFLOAT", k("fn"), "1e-20"],
      ["INCRBYFLOAT", k("fn"), "3e20"],
      ["INCRBYFLOAT", k("fn"), "0x1p-3"],
      ["INCRBYFLOAT", k("fn"), ".5"],
      ["INCRBYFLOAT", k("fn"), "5."],
      ["INCRBYFLOAT", k("fn"), "+1.25E+2"],
      ["INCRBYFLOAT", k("fn"), "abc"],
      ["INCRBYFLOAT", k("fn"), ""],
      ["INCRBYFLOAT", k("fn"), " 1"],
      ["INCRBYFLOAT", k("fn"), "1 "],
      ["INCRBYFLOAT", k("fn"), "1e"],
      ["INCRBYFLOAT", k("fn"), "nan"],
      ["INCRBYFLOAT", k("fn"), "inf"],
      ["INCRBYFLOAT", k("fn"), "-Infinity"],
      ["INCRBYFLOAT", k("fn"), "1e5000"],
      ["INCRBYFLOAT", k("fn"), "1e-5000"],
      ["SET", k("fn"), "1.18e4932"],
      ["INCRBYFLOAT", k("fn"), "1e4932"],
      ["INCRBYFLOAT", k("str"), "1"],
      ["SET", k("str"), "hello"],
      ["INCRBYFLOAT", k("str"), "1"],
      ["SET", k("ft"), "1.5", "EX", "1000"],
      ["INCRBYFLOAT", k("ft"), "1"],
      ["PERSIST", k("ft")],
      ["INCRBYFLOAT", k("ft")],
      // APPEND
      ["APPEND", k("a"), "Hello"],
      ["APPEND", k("a"), " World"],
      ["GET", k("a")],
      ["APPEND", k("a"), ""],
      ["APPEND", k("a"), Buffer.from([0, 0xff, 13, 10])],
      ["GET", k("a")],
      ["STRLEN", k("a")],
      ["APPEND", k("ae"), ""],
      ["EXISTS", k("ae")],
      ["SET", k("at"), "x", "EX", "1000"],
      ["APPEND", k("at"), "y"],
      ["PERSIST", k("at")],
      ["APPEND", k("a")],
      // EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX/XX/GT/LT; PERSIST
      ["EXPIRE", k("none"), "100"],
      ["EXPIRE", k("none"), "-1"],
      ["PERSIST", k("none")],
      ["SET", k("e"), "v"],
      ["PERSIST", k("e")],
      ["EXPIRE", k("e"), "100", "XX"],
      ["EXPIRE", k("e"), "100", "GT"],
      ["EXPIRE", k("e"), "100", "LT"],
      ["EXPIRE", k("e"), "200", "NX"],
      ["EXPIRE", k("e"), "50", "XX"],
      ["EXPIRE", k("e"), "100", "GT"],
      ["EXPIRE", k("e"), "10", "GT"],
      ["EXPIRE", k("e"), "10", "LT"],
      ["EXPIRE", k("e"), "1000", "LT"],
      ["EXPIRE", k("e"), "1000", "XX", "GT"],
      ["EXPIRE", k("e"), "10", "XX", "LT"],
      ["EXPIRE", k("e"), "5", "gt", "gt"],
      ["PERSIST", k("e")],
      ["PERSIST", k("e")],
      ["TTL", k("e")],
      ["PEXPIRE", k("e"), "100000"],
      ["PEXPIRE", k("e"), "100000", "NX"],
      ["EXPIREAT", k("e"), "1", "GT"],
      ["EXISTS", k("e")],
      ["EXPIREAT", k("e"), "1"],
      ["EXISTS", k("e")],
      ["SET", k("e"), "v"],
      ["EXPIRE", k("e"), "0"],
      ["EXISTS", k("e")],
      ["SET", k("e"), "v"],
      ["PEXPIRE", k("e"), "-5"],
      ["EXISTS", k("e")],
      ["SET", k("e"), "v"],
      ["PEXPIREAT", k("e"), "1", "NX"],
      ["GET", k("e")],
      ["EXPIRE", k("e"), "abc"],
      ["EXPIRE", k("e"), "1.5"],
      ["EXPIRE", k("e"), "10", "NX", "XX"],
      ["EXPIRE", k("e"), "10", "NX", "GT"],
      ["EXPIRE", k("e"), "10", "GT", "LT"],
      ["EXPIRE", k("e"), "10", "FOO"],
      ["EXPIRE", k("e"), "abc", "FOO"],
      ["EXPIRE", k("e"), "abc", "NX", "LT"],
      ["EXPIRE", k("e"), "9223372036854775807"],
      ["EXPIRE", k("e"), "-9223372036854775807"],
      ["PEXPIRE", k("e"), "9223372036854775807"],
      ["EXPIREAT", k("e"), "9223372036854775807"],
      ["EXPIRE", k("e")],
      ["PERSIST"],
      ["PERSIST", k("e"), k("e")],
      ["GET", k("e")],
    ];
  }

  test("byte for byte, RESP2 then RESP3, for every request in the table", async () => {
    for (const resp3 of [false, true]) {
      const K = `atom:${resp3 ? 3 : 2}:${Date.now()}`;
      const req = Buffer.concat([
        ...(resp3 ? [frame("HELLO", "3", "SETNAME", "x")] : []),
        ...cases(K).map((ws) => frame(...ws)),
        frame("QUIT"),
      ]);
      const want = await transcript(redisPort, req, 5000);
      const got = await transcript(resp[0]!, req, 30_000);
      const cut = (b: Buffer) => (resp3 ? b.subarray(b.indexOf("modules") + 7) : b);
      const w = cut(want.reply).toString("latin1").split("\r\n");
      const g = cut(got.reply).toString("latin1").split("\r\n");
      expect(g).toEqual(w);
    }
  }, 120_000);

  test(
    "INCRBYFLOAT: 1,000 seeded operand pairs give redis-server's digits or its error",
    async () => {
      const r = rng(20260513);
      const edge = ["0.1", "-0.3", "1e4932", "1.2e4932", "1e-4950", "inf", "nan", "0x1.8p-2", "1e"];
      const operand = (): string => {
        switch (r.int(6)) {
          case 0:
            return String(r.int(2_000_000) - 1_000_000);
          case 1:
            return (r.next() * 1000 - 500).toFixed(r.int(20));
          case 2:
            return `${(r.next() * 10).toFixed(r.int(6))}e${r.int(60) - 30}`;
          case 3:
            return r.pick(edge);
          case 4:
            return String(r.next() * 10 ** r.int(30));
          default:
            return (r.next() * 100).toFixed(r.int(25));
        }
      };
      const pairs = Array.from({ length: 1000 }, () => [operand(), operand()] as const);
      const run = async (port: number) => {
        const client = io(port);
        const p = client.pipeline();
        pairs.forEach(([a, b], i) => p.set(`flt:${i}`, a).incrbyfloat(`flt:${i}`, b));
        const out = (await p.exec())!;
        client.disconnect();
        return pairs.map((_, i) => {
          const [err, v] = out[2 * i + 1]!;
          return err ? `-${err.message}` : String(v);
        });
      };
      const want = await run(redisPort);
      const got = await run(resp[1]!);
      const differ = pairs.flatMap(([a, b], i) =>
        got[i] === want[i] ? [] : [{ a, b, redis: want[i], dkv: got[i] }]
      );
      expect(differ).toEqual([]);
      // Both kinds of answers were exercised.
      expect(want.filter((x) => x.startsWith("-")).length).toBeGreaterThan(10);
      expect(want.filter((x) => !x.startsWith("-")).length).toBeGreaterThan(500);
    },
    120_000,
  );
});

describe("concurrency through different members (3 nodes, N=3)", () => {
  beforeEach(settle, 120_000);

  test("8 ioredis clients × 200 INCR on one key: exactly 1600, every answer once", async () => {
    const key = `conc:incr:${Date.now()}`;
    const clients = Array.from({ length: 8 }, (_, i) => io(resp[i % 3]!));
    const answers: number[] = [];
    const errors: string[] = [];
    try {
      await Promise.all(clients.map(async (r) => {
        for (let i = 0; i < 200; i++) {
          try {
            answers.push(await r.incr(key));
          } catch (e) {
            errors.push(String(e));
          }
        }
      }));
      expect(errors).toEqual([]);
      expect(await clients[0]!.get(key)).toBe("1600");
      // Linearizable: the answers are 1..1600, each once (no two INCRs saw the same value).
      expect(answers.sort((a, b) => a - b)).toEqual(Array.from({ length: 1600 }, (_, i) => i + 1));
    } finally {
      for (const r of clients) r.disconnect();
    }
  }, 300_000);

  test("SET NX from 12 clients (ioredis and node-redis) on one key: exactly one OK", async () => {
    const nr = await Promise.all([0, 1, 2].map(async (i) => {
      const client = createClient({ socket: { host: "127.0.0.1", port: resp[i]! } });
      client.on("error", () => {});
      await client.connect();
      return client;
    }));
    const ios = Array.from({ length: 9 }, (_, i) => io(resp[i % 3]!));
    try {
      for (let round = 0; round < 5; round++) {
        const key = `conc:nx:${Date.now()}:${round}`;
        const outs = await Promise.all([
          ...ios.map((r, i) => r.set(key, `io${i}`, "NX")),
          ...nr.map((client, i) => client.set(key, `nr${i}`, { NX: true })),
        ]);
        const winners = outs.map((o, i) => [o, i] as const).filter(([o]) => o === "OK");
        expect(winners.length).toBe(1);
        expect(outs.filter((o) => o === null).length).toBe(11);
        const w = winners[0]![1];
        const value = w < ios.length ? `io${w}` : `nr${w - ios.length}`;
        // Read back through each member.
        for (const r of ios.slice(0, 3)) expect(await r.get(key)).toBe(value);
      }
    } finally {
      for (const r of ios) r.disconnect();
      for (const client of nr) client.destroy();
    }
  }, 120_000);

  test(
    "APPEND from 6 clients: the length is the sum; each client's pieces stay in order",
    async () => {
      const key = `conc:append:${Date.now()}`;
      const ios = Array.from({ length: 4 }, (_, i) => io(resp[i % 3]!));
      const nr = createClient({ socket: { host: "127.0.0.1", port: resp[2]! } });
      nr.on("error", () => {});
      await nr.connect();
      const nr2 = createClient({ socket: { host: "127.0.0.1", port: resp[0]! }, RESP: 3 });
      nr2.on("error", () => {});
      await nr2.connect();
      const appenders: ((s: string) => Promise<number>)[] = [
        ...ios.map((r) => (s: string) => r.append(key, s)),
        (s) => nr.append(key, s),
        (s) => nr2.append(key, s),
      ];
      const lengths: number[] = [];
      let sum = 0;
      try {
        await Promise.all(appenders.map(async (append, id) => {
          for (let i = 0; i < 40; i++) {
            // Client id, piece number, and a tail of 1..5 bytes: every piece is distinct.
            const piece = `[${id}.${i}${"x".repeat(1 + (i % 5))}]`;
            sum += piece.length;
            lengths.push(await append(piece));
          }
        }));
        const value = (await ios[0]!.get(key))!;
        expect(value.length).toBe(sum);
        expect(await ios[1]!.strlen(key)).toBe(sum);
        // Each APPEND answered the length right after it: all distinct, the largest is the sum.
        expect(new Set(lengths).size).toBe(lengths.length);
        expect(Math.max(...lengths)).toBe(sum);
        for (let id = 0; id < appenders.length; id++) {
          const seen = [...value.matchAll(new RegExp(`\\[${id}\\.(\\d+)x+\\]`, "g"))].map((m) =>
            Number(m[1])
          );
          expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => i));
        }
      } finally {
        for (const r of ios) r.disconnect();
        nr.destroy();
        nr2.destroy();
      }
    },
    300_000,
  );

  test(
    "redis-cli: 3 processes × 100 INCRBY 2 on different members, then GETSET and GETDEL",
    async () => {
      const key = `conc:cli:${Date.now()}`;
      const runs = await Promise.all(
        resp.map((port) =>
          runCaptured(
            ["redis-cli", "-p", String(port), "-r", "100", "INCRBY", key, "2"],
            { timeoutMs: 240_000 },
          )
        ),
      );
      const answers: number[] = [];
      for (const r of runs) {
        expect(r.code).toBe(0);
        for (const line of r.stdout.trim().split("\n")) answers.push(Number(line));
      }
      expect(answers.sort((a, b) => a - b)).toEqual(
        Array.from({ length: 300 }, (_, i) => 2 * (i + 1)),
      );
      const getset = await runCaptured(["redis-cli", "-p", String(resp[1]), "GETSET", key, "x"]);
      expect(getset.stdout.trim()).toBe("600");
      const getdel = await runCaptured(["redis-cli", "-p", String(resp[2]), "GETDEL", key]);
      expect(getdel.stdout.trim()).toBe("x");
      const after = await runCaptured(["redis-cli", "-p", String(resp[0]), "EXISTS", key]);
      expect(after.stdout.trim()).toBe("0");
    },
    300_000,
  );

  test("INCRBYFLOAT from 4 clients × 50: the sum, as redis-server prints it", async () => {
    const key = `conc:float:${Date.now()}`;
    const clients = Array.from({ length: 4 }, (_, i) => io(resp[i % 3]!));
    try {
      await Promise.all(clients.map(async (r) => {
        for (let i = 0; i < 50; i++) await r.incrbyfloat(key, "0.1");
      }));
      // redis-server's own sum of the same 200 increments (long double arithmetic: "20"; a JS
      // double would print 20.000000000000004).
      const ref = io(redisPort);
      let want = "";
      for (let i = 0; i < 200; i++) want = String(await ref.incrbyfloat(key, "0.1"));
      ref.disconnect();
      expect(await clients[0]!.get(key)).toBe(want);
    } finally {
      for (const r of clients) r.disconnect();
    }
  }, 300_000);

  test("EXPIRE and PERSIST through different members; GETEX; TTLs read back", async () => {
    const key = `conc:ttl:${Date.now()}`;
    const [a, b, d] = resp.map((p) => io(p));
    try {
      expect(await a!.set(key, "v")).toBe("OK");
      expect(await b!.expire(key, 100)).toBe(1);
      const ttl = await d!.ttl(key);
      expect(ttl).toBeGreaterThan(90);
      expect(ttl).toBeLessThanOrEqual(100);
      expect(await d!.incr(`${key}:n`)).toBe(1);
      expect(await a!.pexpire(`${key}:n`, 200_000)).toBe(1);
      expect(await b!.incr(`${key}:n`)).toBe(2);
      expect(await d!.ttl(`${key}:n`)).toBeGreaterThan(150);
      expect(await a!.persist(key)).toBe(1);
      expect(await b!.ttl(key)).toBe(-1);
      expect(await d!.getex(key, "EX", 50)).toBe("v");
      expect(await a!.ttl(key)).toBeGreaterThan(40);
      expect(await b!.set(key, "w", "KEEPTTL")).toBe("OK");
      expect(await d!.ttl(key)).toBeGreaterThan(40);
      expect(await a!.set(key, "x", "PX", 1)).toBe("OK");
      await waitFor("the key to expire", async () => (await b!.get(key)) === null, 10_000);
      expect(await d!.set(key, "y", "NX")).toBe("OK");
    } finally {
      for (const r of [a, b, d]) r!.disconnect();
    }
  }, 120_000);
});
