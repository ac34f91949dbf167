/** SWIM presets, formulas, the piggyback queue and the suspicion timer. */
import { describe, expect, test } from "bun:test";
import {
  pushPullPeriodMs,
  retransmitLimit,
  suspicionBoundsMs,
  suspicionTimeoutMs,
  SWIM_LAN,
  SWIM_LOCAL,
  validateSwimConfig,
} from "../../src/core/swim-config.ts";
import { BroadcastQueue } from "../../src/core/swim-broadcast.ts";
import type { Gossip } from "../../src/core/swim-merge.ts";
import { Suspicion } from "../../src/core/swim-suspicion.ts";

describe("presets", () => {
  test("both presets are valid", () => {
    expect(() => validateSwimConfig(SWIM_LAN)).not.toThrow();
    expect(() => validateSwimConfig(SWIM_LOCAL)).not.toThrow();
  });

  test("local is faster than lan", () => {
    expect(SWIM_LOCAL.probeIntervalMs).toBeLessThan(SWIM_LAN.probeIntervalMs);
    expect(suspicionBoundsMs(SWIM_LOCAL, 5).maxMs).toBeLessThan(
      suspicionBoundsMs(SWIM_LAN, 5).maxMs,
    );
  });

  const bad: readonly [string, Partial<typeof SWIM_LAN>, RegExp][] = [
    ["timeout not below the interval", { probeTimeoutMs: 200 }, /below probeIntervalMs/],
    ["zero interval", { probeIntervalMs: 0 }, /probeIntervalMs must be > 0/],
    ["negative indirect checks", { indirectChecks: -1 }, /≥ 0/],
    ["max below min", { suspicionMaxMult: 0.5 }, /suspicionMaxMult/],
    ["no piggyback room", { piggybackMax: 0 }, /piggybackMax/],
  ];
  for (const [name, patch, msg] of bad) {
    test(`rejects ${name}`, () => {
      expect(() => validateSwimConfig({ ...SWIM_LAN, ...patch })).toThrow(msg);
    });
  }
});

describe("formulas (LAN preset)", () => {
  test("suspicion bounds: 2 · max(1, log10 n) · 200 ms, max 6 times that", () => {
    expect(suspicionBoundsMs(SWIM_LAN, 1)).toEqual({ minMs: 400, maxMs: 2400 });
    expect(suspicionBoundsMs(SWIM_LAN, 10)).toEqual({ minMs: 400, maxMs: 2400 });
    expect(suspicionBoundsMs(SWIM_LAN, 100)).toEqual({ minMs: 800, maxMs: 4800 });
  });

  test("suspicion timeout shrinks with confirmations down to the minimum", () => {
    const got = [0, 1, 2, 3, 4].map((c) => suspicionTimeoutMs(400, 2400, c, 3));
    // max − (max − min) · ln(c + 1) / ln(k + 1)
    expect(got).toEqual([2400, 1400, 815, 400, 400]);
  });

  test("retransmits: 6 · ceil(log10(n + 1))", () => {
    expect([1, 5, 9, 10, 99, 200].map((n) => retransmitLimit(SWIM_LAN, n))).toEqual([
      6,
      6,
      6,
      12,
      12,
      18,
    ]);
  });

  test("push-pull slows down logarithmically above 32 members", () => {
    expect([5, 32, 33, 64, 200].map((n) => pushPullPeriodMs(SWIM_LAN, n))).toEqual([
      5000,
      5000,
      10_000,
      10_000,
      20_000,
    ]);
  });
});

const g = (id: string, incarnation = 1): Gossip => ({
  id,
  address: `${id}:1`,
  role: "node",
  incarnation,
  state: "UP",
  inRing: true,
  by: id,
});

describe("BroadcastQueue", () => {
  test("least-sent first, newest first among equals", () => {
    const q = new BroadcastQueue(10);
    for (const id of ["a", "b", "c"]) q.push(g(id));
    expect(q.take(2, 5).map((x) => x.id)).toEqual(["c", "b"]);
    expect(q.take(2, 5).map((x) => x.id)).toEqual(["a", "c"]);
  });

  test("each update is sent `limit` times, then leaves the queue", () => {
    const q = new BroadcastQueue(10);
    q.push(g("a"));
    const sent = Array.from({ length: 5 }, () => q.take(8, 3).length);
    expect(sent).toEqual([1, 1, 1, 0, 0]);
    expect(q.size).toBe(0);
  });

  test("newer news about a member replaces the queued one, with a fresh count", () => {
    const q = new BroadcastQueue(10);
    q.push(g("a", 1));
    q.take(1, 3);
    q.take(1, 3);
    q.push(g("a", 2));
    expect(q.size).toBe(1);
    expect(q.take(1, 3)).toEqual([g("a", 2)]);
    expect(q.take(1, 3).length).toBe(1); // count restarted: 3 sends in all
  });

  test("skips the members given, and is bounded", () => {
    const q = new BroadcastQueue(2);
    q.push(g("a"));
    q.take(1, 9); // a sent once: the first to go when full
    q.push(g("b"));
    q.push(g("c"));
    expect(q.size).toBe(2);
    expect(q.evicted).toBe(1);
    expect(q.take(8, 9, new Set(["c"])).map((x) => x.id)).toEqual(["b"]);
  });
});

describe("Suspicion", () => {
  test("starts at max; independent confirmations move the deadline to min", () => {
    const s = new Suspicion(7, 1000, 400, 2400, 3, "a");
    expect(s.deadlineMs()).toBe(3400);
    expect(s.confirm("a")).toBe(false); // the accuser itself does not count
    expect(s.confirm("b")).toBe(true);
    expect(s.confirm("b")).toBe(false); // nor a repeat
    expect(s.deadlineMs()).toBe(2400);
    expect(s.confirm("c")).toBe(true);
    expect(s.confirm("d")).toBe(true);
    expect(s.deadlineMs()).toBe(1400);
    expect(s.confirm("e")).toBe(false); // k reached
    expect(s.confirmations).toBe(3);
  });

  test("postpone moves the deadline by the paused time", () => {
    const s = new Suspicion(1, 0, 400, 2400, 3, "a");
    s.postpone(5000);
    expect(s.deadlineMs()).toBe(7400);
  });
});
