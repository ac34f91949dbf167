/** Client tokens: the file format, the bearer check and the route → role table (pure). */
import { describe, expect, test } from "bun:test";
import {
  type Access,
  parseTokenFile,
  requiredAccess,
  TOKENS_MAX,
  VERIFIED_MAX,
} from "../../src/security/client-tokens.ts";

const R = "r".repeat(32), W = "w".repeat(32), A = "a".repeat(32);

function tokens(text: string) {
  const out = parseTokenFile(text);
  if (!out.ok) throw new Error(out.message);
  return out.tokens;
}

function problem(text: string): string {
  const out = parseTokenFile(text);
  if (out.ok) throw new Error("expected a problem");
  return out.message;
}

describe("token file", () => {
  test("TOKEN ROLE per line; comments, blank lines and any whitespace between", () => {
    const t = tokens(`# dkv tokens\n\n${R} read\n  ${W}\t\twrite   # the app\n${A}  admin\r\n`);
    expect(t.count).toBe(3);
    expect(t.roleCounts()).toEqual({ read: 1, write: 1, admin: 1 });
  });

  test("problems name the line, never the token", () => {
    const cases: [string, string][] = [
      ["", "no tokens (lines are TOKEN ROLE)"],
      ["# only a comment\n", "no tokens (lines are TOKEN ROLE)"],
      [`${R}\n`, "line 1: expected TOKEN ROLE, found 1 field(s)"],
      [`\n${R} read extra\n`, "line 2: expected TOKEN ROLE, found 3 field(s)"],
      [`${R} root\n`, "line 1: role must be read, write or admin (got 'root')"],
      [`${R} READ\n`, "line 1: role must be read, write or admin (got 'READ')"],
      [
        "short read\n",
        "line 1: token is 5 characters; it must be 16-256 (make one with: openssl rand -hex 32)",
      ],
      [
        `${"x".repeat(257)} read\n`,
        "line 1: token is 257 characters; it must be 16-256 (make one with: openssl rand -hex 32)",
      ],
      [
        `${"é".repeat(20)} read\n`,
        "line 1: token may only use letters, digits and - . _ ~ + / (then = padding)",
      ],
      [`${R} read\n${R} admin\n`, "line 2: the same token is listed twice"],
    ];
    for (const [text, message] of cases) {
      expect(problem(text)).toBe(message);
      expect(message).not.toContain(R);
    }
    const many = Array.from(
      { length: TOKENS_MAX + 1 },
      (_, i) => `token-${i}`.padEnd(20, "x") + " read",
    )
      .join("\n");
    expect(problem(many)).toBe(`line ${TOKENS_MAX + 1}: more than ${TOKENS_MAX} tokens`);
  });

  test("the bearer check: role, missing, malformed, unknown", () => {
    const t = tokens(`${R} read\n${W} write\n${A} admin\n`);
    expect(t.check(`Bearer ${R}`)).toEqual({ ok: true, role: "read" });
    expect(t.check(`bearer ${W}`)).toEqual({ ok: true, role: "write" });
    expect(t.check(`Bearer  ${A} `)).toEqual({ ok: true, role: "admin" });
    expect(t.check(null)).toEqual({ ok: false, why: "missing" });
    expect(t.check(A)).toEqual({ ok: false, why: "malformed" });
    expect(t.check(`Basic ${A}`)).toEqual({ ok: false, why: "malformed" });
    expect(t.check(`Bearer ${A} ${A}`)).toEqual({ ok: false, why: "malformed" });
    expect(t.check(`Bearer ${"x".repeat(10_000)}`)).toEqual({ ok: false, why: "malformed" });
    expect(t.check(`Bearer ${A.slice(1)}`)).toEqual({ ok: false, why: "unknown" });
    expect(t.check(`Bearer ${A}x`)).toEqual({ ok: false, why: "unknown" });
  });

  test("accepted headers are remembered, refused ones never; the table stays bounded", () => {
    const t = tokens(`${R} read\n${W} write\n`);
    expect(t.remembered).toBe(0);
    for (let i = 0; i < 3; i++) expect(t.check(`Bearer ${W}`)).toEqual({ ok: true, role: "write" });
    expect(t.remembered).toBe(1);
    // Unknown and malformed tokens are checked in full every time and not kept.
    for (let i = 0; i < 3; i++) {
      expect(t.check(`Bearer ${W}x`)).toEqual({ ok: false, why: "unknown" });
      expect(t.check(`Bearer ${W} ${W}`)).toEqual({ ok: false, why: "malformed" });
    }
    expect(t.remembered).toBe(1);
    // The remembered answer is the role of that very header: read stays read.
    expect(t.check(`Bearer ${R}`)).toEqual({ ok: true, role: "read" });
    expect(t.check(`Bearer ${R}`)).toEqual({ ok: true, role: "read" });
    // Spellings of an accepted token fill the table; it is emptied when full, never outgrown.
    const spelling = (i: number) => {
      const word = [..."bearer"].map((c, k) => (i >> k) & 1 ? c.toUpperCase() : c).join("");
      return `${word}${" ".repeat(1 + (i >> 6))}${R}`;
    };
    for (let i = 0; i < VERIFIED_MAX + 10; i++) {
      expect(t.check(spelling(i))).toEqual({ ok: true, role: "read" });
      expect(t.remembered).toBeLessThanOrEqual(VERIFIED_MAX);
    }
    expect(t.remembered).toBeLessThan(VERIFIED_MAX);
    expect(t.check(`Bearer ${W}x`)).toEqual({ ok: false, why: "unknown" });
  });
});

describe("the role each route needs", () => {
  const table: [string, string, Access][] = [
    ["GET", "/health", "open"],
    ["HEAD", "/health", "open"],
    ["GET", "/ready", "open"],
    ["HEAD", "/ready", "open"],
    ["POST", "/ready", "read"],
    ["POST", "/health", "read"],
    ["GET", "/kv/x", "read"],
    ["HEAD", "/kv/x", "read"],
    ["GET", "/kv/a/b", "read"],
    ["PUT", "/kv/x", "write"],
    ["POST", "/kv/x", "write"],
    ["DELETE", "/kv/x", "write"],
    ["PATCH", "/kv/x", "read"],
    ["GET", "/kv/all-data", "admin"],
    ["HEAD", "/kv/all-data", "admin"],
    ["PUT", "/kv/all-data", "write"],
    ["GET", "/all-nodes", "read"],
    ["GET", "/all-nodes/x", "read"],
    ["GET", "/cluster/status", "admin"],
    ["HEAD", "/cluster/status", "admin"],
    ["POST", "/admin/leave", "admin"],
    ["GET", "/admin/anything", "admin"],
    ["POST", "/internal/v1/kv/write", "internal"],
    ["GET", "/internal/v1/status", "internal"],
    ["GET", "/no-such-route", "read"],
    // The dashboard's page and the redirect to it hold no data (issue 14); its data does.
    ["GET", "/", "open"],
    ["GET", "/ui", "open"],
    ["HEAD", "/ui", "open"],
    ["POST", "/ui", "read"],
    ["GET", "/ui/partitions", "read"],
    ["GET", "/metrics", "read"],
  ];
  for (const [method, path, access] of table) {
    test(`${method} ${path} → ${access}`, () => {
      expect(requiredAccess(method, path)).toBe(access);
    });
  }
});
