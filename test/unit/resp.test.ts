/** The RESP codec (src/core/resp.ts): requests in both forms, limits, answers, globs. */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  emptyPlainCommand,
  globMatch,
  globPrefix,
  matchPlain,
  parseRequest,
  PLAIN_GET,
  PLAIN_SET,
  type PlainCommand,
  type RespLimits,
  RespWriter,
  splitArgs,
} from "../../src/core/resp.ts";
import { encodeUtf8Into, utf8Into } from "../../src/core/utf8.ts";

const LIMITS: RespLimits = { bulkBytesMax: 1024, arrayLenMax: 16, inlineBytesMax: 256 };
const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string) => enc.encode(s);

function words(r: ReturnType<typeof parseRequest>): string[] {
  if (r.kind !== "command") throw new Error(`not a command: ${JSON.stringify(r)}`);
  return r.args.map((a) => dec.decode(a));
}

/** A multibulk request of these words. */
function frame(args: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [b(`*${args.length}\r\n`)];
  for (const a of args) parts.push(b(`$${a.length}\r\n`), a, b("\r\n"));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe("parseRequest: multibulk", () => {
  test("a whole command, and where the next starts", () => {
    const buf = b("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n");
    const r = parseRequest(buf, 0, LIMITS);
    expect(words(r)).toEqual(["GET", "k"]);
    const r2 = parseRequest(buf, (r as { next: number }).next, LIMITS);
    expect(words(r2)).toEqual(["PING"]);
    expect((r2 as { next: number }).next).toBe(buf.length);
  });

  test("every strict prefix of a frame is incomplete, never an error", () => {
    const buf = frame([b("SET"), b("key"), b("va\r\nlue")]);
    for (let i = 0; i < buf.length; i++) {
      expect(parseRequest(buf.subarray(0, i), 0, LIMITS).kind).toBe("incomplete");
    }
    expect(words(parseRequest(buf, 0, LIMITS))).toEqual(["SET", "key", "va\r\nlue"]);
  });

  test("errors in Redis's words", () => {
    const cases: [string, string][] = [
      ["*x\r\n", "Protocol error: invalid multibulk length"],
      ["*17\r\n", "Protocol error: invalid multibulk length"],
      ["*1\r\n:3\r\n", "Protocol error: expected '$', got ':'"],
      ["*1\r\n$-1\r\n", "Protocol error: invalid bulk length"],
      ["*1\r\n$1025\r\n", "Protocol error: invalid bulk length"],
      ["*1\r\n$abc\r\n", "Protocol error: invalid bulk length"],
      ["*1\r\n$1\r\nab\r\n", "Protocol error: bulk string is not followed by CRLF"],
      ["*1\n", "Protocol error: invalid multibulk length"],
      // Characters next to the digits in ASCII (':' is 10 past '0', '/' is 1 before it).
      ["*/\r\n", "Protocol error: invalid multibulk length"],
      ["*1\r\n$0:\r\n", "Protocol error: invalid bulk length"],
      ["*1\r\n$ 1\r\n", "Protocol error: invalid bulk length"],
    ];
    for (const [input, message] of cases) {
      expect(parseRequest(b(input), 0, LIMITS)).toEqual({ kind: "error", message });
    }
  });

  test("*0 and *-1 are skipped", () => {
    expect(parseRequest(b("*0\r\n"), 0, LIMITS)).toEqual({ kind: "skip", next: 4 });
    expect(parseRequest(b("*-1\r\n"), 0, LIMITS)).toEqual({ kind: "skip", next: 5 });
  });

  test("a header line that never ends is an error once it is too long", () => {
    expect(parseRequest(b("*1111111111111111111111111111111111"), 0, LIMITS).kind).toBe("error");
    expect(parseRequest(b("*11"), 0, LIMITS).kind).toBe("incomplete");
  });

  test("property: any words, binary, round-trip through a frame and any split point", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 64 }), { minLength: 1, maxLength: 16 }),
        fc.nat(),
        (args, cut) => {
          const buf = frame(args);
          const r = parseRequest(buf, 0, LIMITS);
          if (r.kind !== "command") return false;
          if (r.next !== buf.length) return false;
          if (r.args.length !== args.length) return false;
          for (let i = 0; i < args.length; i++) {
            if (Buffer.compare(Buffer.from(r.args[i]!), Buffer.from(args[i]!)) !== 0) return false;
          }
          const at = cut % buf.length;
          return parseRequest(buf.subarray(0, at), 0, LIMITS).kind === "incomplete";
        },
      ),
      { seed: 13, numRuns: 500 },
    );
  });

  test("property: random bytes never throw, and a command never reads past the buffer", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const buf = new Uint8Array([42, ...bytes]);
        const r = parseRequest(buf, 0, LIMITS);
        if (r.kind === "command" || r.kind === "skip") return r.next <= buf.length;
        return true;
      }),
      { seed: 1313, numRuns: 2000 },
    );
  });
});

describe("matchPlain: the GET/SET fast path agrees with parseRequest", () => {
  const found = emptyPlainCommand;
  /** The words matchPlain found, as parseRequest gives them. */
  function plainWords(buf: Uint8Array, at: number, p: PlainCommand): Uint8Array[] {
    const key = buf.subarray(p.keyAt, p.keyAt + p.keyBytes);
    const name = buf.subarray(at + 8, at + 11);
    if (p.op === PLAIN_GET) return [name, key];
    expect(p.op).toBe(PLAIN_SET);
    return [name, key, buf.subarray(p.valueAt, p.valueAt + p.valueBytes)];
  }

  test("the frames clients send are found, in any case, after other requests", () => {
    const buf = b(
      "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nget\r\n$1\r\nk\r\n" +
        "*3\r\n$3\r\nSeT\r\n$2\r\nk2\r\n$5\r\nv\r\nx!\r\n",
    );
    const p = found();
    expect(matchPlain(buf, 0, LIMITS.bulkBytesMax, p)).toBe(false);
    expect(matchPlain(buf, 14, LIMITS.bulkBytesMax, p)).toBe(true);
    expect(p).toMatchObject({ op: PLAIN_GET, keyBytes: 1, next: 14 + 20 });
    expect(dec.decode(buf.subarray(p.keyAt, p.keyAt + p.keyBytes))).toBe("k");
    expect(matchPlain(buf, p.next, LIMITS.bulkBytesMax, p)).toBe(true);
    expect(p.op).toBe(PLAIN_SET);
    expect(dec.decode(buf.subarray(p.valueAt, p.valueAt + p.valueBytes))).toBe("v\r\nx!");
    expect(p.next).toBe(buf.length);
  });

  test("what parseRequest refuses or waits for is left to it", () => {
    const refused = [
      "*2\r\n$3\r\nGET\r\n$1025\r\n", // past bulkBytesMax: parseRequest's protocol error
      "*2\r\n$3\r\nGET\r\n$1\r\nkk\r\n", // no CRLF after the key
      "*2\r\n$3\r\nGET\r\n$-1\r\n",
      "*2\r\n$3\r\nGET\r\n$\r\nk\r\n",
      "*3\r\n$3\r\nGET\r\n$1\r\nk\r\n$1\r\nv\r\n", // GET with 3 words: arity error
      "*2\r\n$3\r\nSET\r\n$1\r\nk\r\n", // SET with 2 words
      "*2\r\n$3\r\nGEX\r\n$1\r\nk\r\n",
      "*2\r\n$3\r\nGE\x14\r\n$1\r\nk\r\n",
      "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nNX\r\n",
      "GET k\r\n",
    ];
    // A whole key past bulkBytesMax: parseRequest's protocol error too.
    refused.push(`*2\r\n$3\r\nGET\r\n$1025\r\n${"k".repeat(1025)}\r\n`);
    for (const text of refused) {
      const buf = b(text);
      for (let i = 0; i <= buf.length; i++) {
        expect(matchPlain(buf.subarray(0, i), 0, LIMITS.bulkBytesMax, found())).toBe(false);
      }
    }
  });

  test("property: any key and value, any case and split: found with parseRequest's words", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("GET", "get", "Get", "SET", "set", "sEt"),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.nat(),
        (name, key, value, cut) => {
          const args = name.toUpperCase() === "GET" ? [b(name), key] : [b(name), key, value];
          const buf = new Uint8Array([...b("*1\r\n$1\r\nx\r\n"), ...frame(args)]);
          const at = 11;
          const p = found();
          if (!matchPlain(buf, at, LIMITS.bulkBytesMax, p)) return false;
          const r = parseRequest(buf, at, LIMITS);
          if (r.kind !== "command" || r.next !== p.next) return false;
          const mine = plainWords(buf, at, p);
          if (mine.length !== r.args.length) return false;
          for (let i = 0; i < mine.length; i++) {
            if (Buffer.compare(Buffer.from(mine[i]!), Buffer.from(r.args[i]!)) !== 0) return false;
          }
          // Every strict prefix: not found (parseRequest waits for the rest).
          const part = buf.subarray(0, at + (cut % (buf.length - at)));
          return !matchPlain(part, at, LIMITS.bulkBytesMax, found());
        },
      ),
      { seed: 1613, numRuns: 1000 },
    );
  });

  test("property: on random bytes, what it finds parseRequest reads as the same command", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("*2\r\n$3\r\nGET\r\n$", "*3\r\n$3\r\nset\r\n$"),
        fc.uint8Array({ maxLength: 40 }),
        (head, bytes) => {
          const buf = new Uint8Array([...b(head), ...bytes]);
          const p = found();
          if (!matchPlain(buf, 0, LIMITS.bulkBytesMax, p)) return true;
          const r = parseRequest(buf, 0, LIMITS);
          if (r.kind !== "command" || r.next !== p.next || p.next > buf.length) return false;
          const mine = plainWords(buf, 0, p);
          return mine.every((w, i) =>
            Buffer.compare(Buffer.from(w), Buffer.from(r.args[i]!)) === 0
          );
        },
      ),
      { seed: 1614, numRuns: 5000 },
    );
  });
});

describe("parseRequest: inline", () => {
  test("words, quotes and escapes as redis-cli splits them", () => {
    expect(words(parseRequest(b("SET k v\r\n"), 0, LIMITS))).toEqual(["SET", "k", "v"]);
    expect(words(parseRequest(b("set \"a b\" 'c d'\n"), 0, LIMITS))).toEqual(["set", "a b", "c d"]);
    expect(words(parseRequest(b('echo "\\x41\\n"\r\n'), 0, LIMITS))).toEqual(["echo", "A\n"]);
    expect(words(parseRequest(b("echo 'it\\'s'\r\n"), 0, LIMITS))).toEqual(["echo", "it's"]);
  });

  test("empty lines are skipped; no newline yet is incomplete", () => {
    expect(parseRequest(b("\r\n"), 0, LIMITS)).toEqual({ kind: "skip", next: 2 });
    expect(parseRequest(b("   \n"), 0, LIMITS)).toEqual({ kind: "skip", next: 4 });
    expect(parseRequest(b("PING"), 0, LIMITS).kind).toBe("incomplete");
  });

  test("unbalanced quotes and too long lines are protocol errors", () => {
    expect(parseRequest(b('set "a b\r\n'), 0, LIMITS)).toEqual({
      kind: "error",
      message: "Protocol error: unbalanced quotes in request",
    });
    expect(parseRequest(b('set "a"b\r\n'), 0, LIMITS).kind).toBe("error");
    expect(parseRequest(b("x".repeat(257)), 0, LIMITS)).toEqual({
      kind: "error",
      message: "Protocol error: too big inline request",
    });
    expect(parseRequest(b("x".repeat(256)), 0, LIMITS).kind).toBe("incomplete");
  });

  test("splitArgs of plain words is a split on spaces", () => {
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[a-z0-9]{1,8}$/), { maxLength: 10 }),
        (ws) => {
          const got = splitArgs(b(ws.join("  "))) ?? [];
          return JSON.stringify(got.map((w) => dec.decode(w))) === JSON.stringify(ws);
        },
      ),
      { seed: 7 },
    );
  });
});

describe("RespWriter", () => {
  test("RESP2 and RESP3 encodings", () => {
    const w = new RespWriter();
    w.simple("OK");
    w.error("ERR bad\r\nthing");
    w.integer(-3);
    w.bulk("hé");
    w.null();
    w.mapHeader(1);
    w.double("1.5");
    expect(dec.decode(w.take())).toBe(
      "+OK\r\n-ERR bad  thing\r\n:-3\r\n$3\r\nhé\r\n$-1\r\n*2\r\n$3\r\n1.5\r\n",
    );
    w.resp3 = true;
    w.null();
    w.mapHeader(2);
    w.double("1.5");
    w.verbatim("hi");
    expect(dec.decode(w.take())).toBe("_\r\n%2\r\n,1.5\r\n=6\r\ntxt:hi\r\n");
  });

  test("property: bulk text is its UTF-8 with its byte length, bytes are themselves (both text encoders)", () => {
    const expected = (bytes: Uint8Array) =>
      Buffer.concat([b(`$${bytes.length}\r\n`), bytes, b("\r\n")]);
    fc.assert(
      fc.property(
        // ASCII with a few other units: lengths whose digit count grows once encoded (9 → 10).
        fc.array(fc.oneof(fc.constantFrom("a", "é", "€", "😀", "\ud800", "\r"), fc.string()), {
          maxLength: 40,
        }),
        fc.uint8Array({ maxLength: 120 }),
        fc.nat(5000),
        (parts, bytes, before) => {
          const text = parts.join("");
          // TextEncoder's, and the server's (Buffer's utf8Write on the writer's buffer).
          return [encodeUtf8Into, utf8Into].every((into) => {
            const w = new RespWriter(16, into);
            w.bulk("x".repeat(before)); // a writer already holding answers, grown once or more
            const start = w.length;
            w.bulk(text);
            w.bulk(bytes);
            const out = Buffer.from(w.view().subarray(start));
            return out.equals(Buffer.concat([expected(enc.encode(text)), expected(bytes)]));
          });
        },
      ),
      { seed: 1615, numRuns: 1000 },
    );
  });

  test("a large answer grows the buffer and comes out whole", () => {
    const w = new RespWriter();
    const big = new Uint8Array(100_000).fill(7);
    w.bulk(big);
    const out = w.take();
    expect(out.length).toBe(100_000 + "$100000\r\n".length + 2);
    expect(out[50_000]).toBe(7);
  });
});

describe("globMatch", () => {
  const m = (p: string, s: string) => globMatch(b(p), b(s));
  test("as Redis's stringmatchlen", () => {
    expect(m("*", "")).toBe(true);
    expect(m("user:*", "user:1")).toBe(true);
    expect(m("user:*", "use")).toBe(false);
    expect(m("h?llo", "hello")).toBe(true);
    expect(m("h?llo", "hllo")).toBe(false);
    expect(m("h[ae]llo", "hallo")).toBe(true);
    expect(m("h[^e]llo", "hello")).toBe(false);
    expect(m("h[a-b]llo", "hbllo")).toBe(true);
    expect(m("h\\*llo", "h*llo")).toBe(true);
    expect(m("h\\*llo", "hello")).toBe(false);
    expect(m("*a*b*c", "xxaxxbxxc")).toBe(true);
    expect(m("*a*b*c", "xxaxxcxxb")).toBe(false);
  });
  test("a pathological pattern answers at once (no exponential backtracking)", () => {
    expect(m("*a*a*a*a*a*a*a*a*a*a*b", "a".repeat(5000))).toBe(false);
  });
  test("globPrefix is the literal start", () => {
    expect(dec.decode(globPrefix(b("user:*:x")))).toBe("user:");
    expect(dec.decode(globPrefix(b("ab?")))).toBe("ab");
    expect(dec.decode(globPrefix(b("plain")))).toBe("plain");
  });
  test("property: a literal pattern matches only itself, prefix* matches its extensions", () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z:]{0,10}$/),
        fc.stringMatching(/^[a-z:]{0,10}$/),
        (p, s) => m(p, s) === (p === s) && m(`${p}*`, p + s),
      ),
      { seed: 42 },
    );
  });
});
