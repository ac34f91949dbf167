/** The hedge delay of reads (issue 16, point 15): a bounded percentile of peer read latency. */
import { describe, expect, test } from "bun:test";
import {
  hedgeDelayMs,
  LATENCY_SAMPLES_MAX,
  LATENCY_SAMPLES_MIN,
  LatencyWindow,
  type ReadHedgePolicy,
} from "../../src/core/read-hedge.ts";

const P99: ReadHedgePolicy = { kind: "percentile", percentile: 99, minMs: 2, maxMs: 100 };

function windowOf(values: number[], percentile = 99): LatencyWindow {
  const w = new LatencyWindow(percentile);
  for (const v of values) w.record(v);
  return w;
}

describe("LatencyWindow", () => {
  test("no percentile until enough samples", () => {
    expect(windowOf(Array(LATENCY_SAMPLES_MIN - 1).fill(5)).value()).toBeUndefined();
    expect(windowOf(Array(LATENCY_SAMPLES_MIN).fill(5)).value()).toBe(5);
  });

  test("nearest-rank percentile: 1..100 gives 99 at p99 and 50 at p50", () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1).reverse();
    expect(windowOf(values).value()).toBe(99);
    expect(windowOf(values, 50).value()).toBe(50);
  });

  test("keeps only the newest samples", () => {
    const w = windowOf(Array(LATENCY_SAMPLES_MAX).fill(500));
    for (let i = 0; i < LATENCY_SAMPLES_MAX; i++) w.record(3);
    expect(w.count).toBe(LATENCY_SAMPLES_MAX);
    expect(w.value()).toBe(3);
  });

  test("refuses a percentile outside [50, 100)", () => {
    expect(() => new LatencyWindow(100)).toThrow();
    expect(() => new LatencyWindow(10)).toThrow();
  });
});

describe("hedgeDelayMs", () => {
  const table: [string, ReadHedgePolicy, number[], number, number | undefined][] = [
    ["off never hedges", { kind: "off" }, [], 1000, undefined],
    ["fixed", { kind: "fixed", delayMs: 20 }, [], 1000, 20],
    ["fixed, capped at half the request timeout", { kind: "fixed", delayMs: 900 }, [], 1000, 500],
    ["percentile before enough samples: the upper bound", P99, [1, 2], 1000, 100],
    ["percentile within bounds", P99, Array(100).fill(7), 1000, 7],
    ["percentile below the lower bound", P99, Array(100).fill(0), 1000, 2],
    ["percentile above the upper bound", P99, Array(100).fill(400), 1000, 100],
    ["a fraction of a ms rounds up", P99, Array(100).fill(2.2), 1000, 3],
    ["percentile capped at half the request timeout", P99, Array(100).fill(400), 150, 75],
  ];
  for (const [name, policy, samples, timeoutMs, want] of table) {
    test(name, () => {
      expect(hedgeDelayMs(policy, windowOf(samples), timeoutMs)).toBe(want);
    });
  }
});
