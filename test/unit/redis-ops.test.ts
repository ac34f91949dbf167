/**
 * The Redis commands' conditions and mutations (src/core/redis-ops.ts) and the x87 long double
 * of INCRBYFLOAT (src/core/long-double.ts), pure, table-driven. Their replies against a real
 * redis-server are in test/e2e/resp-atomic.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { addLongDouble, formatLongDouble, parseLongDouble } from "../../src/core/long-double.ts";
import { applyMutation, holds } from "../../src/core/paxos.ts";
import {
  NAN_OR_INF,
  NOT_FLOAT,
  NOT_INTEGER,
  OVERFLOW,
  parseInt64,
} from "../../src/core/redis-ops.ts";
import type { KvRecord } from "../../src/core/record.ts";

const NOW = 1_000_000;
function rec(value: string | Uint8Array, expiresAt?: number): KvRecord {
  const r = { key: "k", value, version: { wallMs: 1, counter: 0, nodeId: "n" }, tombstone: false };
  return expiresAt === undefined ? r : { ...r, expiresAt };
}

/** INCRBYFLOAT as Redis does it: both parsed, added, printed; or its error. */
function incrbyfloat(current: string, by: string): string {
  const a = parseLongDouble(current);
  const b = parseLongDouble(by);
  if (a === undefined || b === undefined) return NOT_FLOAT;
  const s = addLongDouble(a, b);
  return s.kind === "finite" ? formatLongDouble(s) : NAN_OR_INF;
}

describe("int64 (INCR and friends)", () => {
  test("parseInt64 takes Redis's integers only", () => {
    for (const ok of ["0", "1", "-1", "9223372036854775807", "-9223372036854775808"]) {
      expect(parseInt64(ok)).toBe(BigInt(ok));
    }
    for (
      const bad of ["", "-", "-0", "01", "+1", " 1", "1 ", "1.0", "1e3", "9223372036854775808"]
    ) {
      expect(parseInt64(bad)).toBeUndefined();
    }
    expect(parseInt64("-9223372036854775809")).toBeUndefined();
  });

  test("beyond 2^53 exactly (bigint, not a JS number); overflow and non-integers refused", () => {
    const big = rec("9007199254740993");
    expect(applyMutation({ kind: "incrInt64", by: 1n }, big, NOW)).toMatchObject({
      ok: true,
      value: "9007199254740994",
    });
    expect(applyMutation({ kind: "incrInt64", by: 1n }, rec("9223372036854775807"), NOW))
      .toEqual({ ok: false, why: OVERFLOW });
    expect(applyMutation({ kind: "incrInt64", by: -1n }, rec("-9223372036854775808"), NOW))
      .toEqual({ ok: false, why: OVERFLOW });
    expect(applyMutation({ kind: "incrInt64", by: 1n }, rec("1.5"), NOW))
      .toEqual({ ok: false, why: NOT_INTEGER });
    expect(applyMutation({ kind: "incrInt64", by: 1n }, rec(new Uint8Array([0x31, 0xff])), NOW))
      .toEqual({ ok: false, why: NOT_INTEGER });
    expect(applyMutation({ kind: "incrInt64", by: -3n }, undefined, NOW)).toMatchObject({
      ok: true,
      value: "-3",
    });
  });

  test("the ttl is kept (INCR on a key with an expiry)", () => {
    expect(applyMutation({ kind: "incrInt64", by: 2n }, rec("5", NOW + 10), NOW)).toEqual({
      ok: true,
      value: "7",
      tombstone: false,
      expiresAt: NOW + 10,
    });
  });
});

describe("long double (INCRBYFLOAT)", () => {
  test.each([
    ["10.50", "0.1", "10.6"],
    ["10.6", "-5", "5.6"],
    ["5.0e3", "2.0e2", "5200"],
    ["0.1", "0.2", "0.3"],
    ["0", "-0", "0"],
    ["1", "-1", "0"],
    ["0", "1e-20", "0"],
    ["0", "-1e-20", "0"],
    ["0", "3e20", "300000000000000000000"],
    ["0", "0x1p-3", "0.125"],
    ["0", ".5", "0.5"],
    ["0", "5.", "5"],
    ["0", "+1.25E+2", "125"],
    ["1.18e4932", "1e4932", NAN_OR_INF],
    ["0", "inf", NAN_OR_INF],
    ["0", "-INFINITY", NAN_OR_INF],
    ["0", "nan", NOT_FLOAT],
    ["0", "1e5000", NOT_FLOAT],
    ["0", "1e-5000", NOT_FLOAT],
    ["0", " 1", NOT_FLOAT],
    ["0", "1 ", NOT_FLOAT],
    ["0", "1e", NOT_FLOAT],
    ["0", "", NOT_FLOAT],
    ["0", "1\u00002", NOT_FLOAT],
    ["hello", "1", NOT_FLOAT],
  ])("%p + %p = %p", (a, b, want) => {
    expect(incrbyfloat(a, b)).toBe(want);
  });

  test("rounding is to 64 significant bits, ties to even (not a double's 53)", () => {
    // 2^64 + 1 is not a long double: it rounds to 2^64; 2^53 + 1 is one (a double is not).
    expect(incrbyfloat("0", "18446744073709551617")).toBe("18446744073709551616");
    expect(incrbyfloat("0", "9007199254740993")).toBe("9007199254740993");
    // Halfway between two long doubles: the even one (2^64 + 2 is odd in units of 2).
    expect(incrbyfloat("18446744073709551616", "3")).toBe("18446744073709551620");
  });

  test("a result longer than --max-value-bytes is refused (too large), not stored", () => {
    const big = rec("1e300");
    expect(applyMutation({ kind: "incrFloat", by: "1", bytesMax: 1000 }, big, NOW)).toMatchObject({
      ok: true,
    });
    expect(applyMutation({ kind: "incrFloat", by: "1", bytesMax: 300 }, big, NOW)).toMatchObject({
      ok: false,
      tooLarge: true,
    });
  });

  test("the text is bounded: 5,120 characters or more are not a float", () => {
    expect(parseLongDouble("1.".padEnd(5119, "0"))).toBeDefined();
    expect(parseLongDouble("1.".padEnd(5120, "0"))).toBeUndefined();
  });
});

describe("expiry conditions and mutations", () => {
  const at = NOW + 5000;
  test.each(
    [
      // [condition, current expiry (undefined: none; null: key absent), holds]
      [{ kind: "expiry" }, undefined, true],
      [{ kind: "expiry" }, null, false],
      [{ kind: "expiry", nx: true }, undefined, true],
      [{ kind: "expiry", nx: true }, at, false],
      [{ kind: "expiry", xx: true }, undefined, false],
      [{ kind: "expiry", xx: true }, at, true],
      [{ kind: "expiry", gt: at + 1 }, at, true],
      [{ kind: "expiry", gt: at }, at, false],
      [{ kind: "expiry", gt: at + 1 }, undefined, false],
      [{ kind: "expiry", lt: at - 1 }, at, true],
      [{ kind: "expiry", lt: at }, at, false],
      [{ kind: "expiry", lt: at }, undefined, true],
      [{ kind: "expiry", xx: true, lt: at }, undefined, false],
    ] as const,
  )("%p on expiry %p: %p", (c, expiry, want) => {
    const current = expiry === null ? undefined : rec("v", expiry);
    expect(holds(c, current, NOW)).toBe(want);
  });

  test("expireAt sets, clears, or (a time not after now) deletes; putKeepTtl keeps", () => {
    expect(applyMutation({ kind: "expireAt", at }, rec("v"), NOW)).toEqual({
      ok: true,
      value: "v",
      tombstone: false,
      expiresAt: at,
    });
    expect(applyMutation({ kind: "expireAt", at: null }, rec("v", at), NOW)).toEqual({
      ok: true,
      value: "v",
      tombstone: false,
    });
    expect(applyMutation({ kind: "expireAt", at: NOW }, rec("v", at), NOW)).toMatchObject({
      ok: true,
      tombstone: true,
    });
    expect(applyMutation({ kind: "putKeepTtl", value: "w" }, rec("v", at), NOW)).toEqual({
      ok: true,
      value: "w",
      tombstone: false,
      expiresAt: at,
    });
    // An expired record is absent: nothing to keep.
    expect(applyMutation({ kind: "putKeepTtl", value: "w" }, rec("v", NOW), NOW)).toEqual({
      ok: true,
      value: "w",
      tombstone: false,
    });
  });
});
