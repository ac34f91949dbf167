/** The clock-skew guard: refuses what is too far ahead, counts it, warns at most once a second. */
import { describe, expect, test } from "bun:test";
import type { KvRecord } from "../../src/core/record.ts";
import { DkvError } from "../../src/http/errors.ts";
import { ClockGuard } from "../../src/node/clock-guard.ts";

const rec = (key: string, wallMs: number): KvRecord => ({
  key,
  value: "v",
  version: { wallMs, counter: 0, nodeId: "n" },
  tombstone: false,
});

function guard(maxSkewMs = 1000) {
  const clock = { t: 10_000 };
  const warnings: string[] = [];
  const log = { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {} };
  return { g: new ClockGuard(maxSkewMs, () => clock.t, log), clock, warnings };
}

describe("ClockGuard", () => {
  test("refuseAhead: within the bound returns; beyond throws a 400 naming key, lead and limit", () => {
    const { g } = guard();
    g.refuseAhead([rec("a", 10_000), rec("b", 11_000), rec("c", 5)], "kv/write");
    expect(g.refused).toBe(0);
    let err: unknown;
    try {
      g.refuseAhead([rec("ok", 10_000), rec("far", 12_500), rec("far2", 99_999)], "kv/write");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DkvError);
    expect((err as DkvError).status).toBe(400);
    expect((err as Error).message).toContain('key "far"');
    expect((err as Error).message).toContain("2500 ms ahead");
    expect((err as Error).message).toContain("limit (--max-clock-skew) is 1000 ms");
    expect((err as Error).message).toContain("and 1 more records");
    expect(g.refused).toBe(2);
  });

  test("admits / admitsVersion: false and counted beyond the bound", () => {
    const { g } = guard();
    expect(g.admits(rec("a", 11_000), "ae")).toBe(true);
    expect(g.admits(rec("a", 11_001), "ae")).toBe(false);
    expect(g.admitsVersion("a", { wallMs: 20_000, counter: 0, nodeId: "x" }, "newer")).toBe(false);
    expect(g.refused).toBe(2);
  });

  test("warns at most once a second, then says how many were refused in between", () => {
    const { g, clock, warnings } = guard();
    for (let i = 0; i < 5; i++) g.admits(rec(`k${i}`, 99_999), "ae");
    expect(warnings.length).toBe(1);
    clock.t += 999;
    g.admits(rec("k", 99_999), "ae");
    expect(warnings.length).toBe(1);
    clock.t += 1;
    g.admits(rec("k", 99_999), "ae");
    expect(warnings.length).toBe(2);
    expect(warnings[1]).toContain("(5 more refused since the last warning)");
    expect(g.refused).toBe(7);
  });
});
