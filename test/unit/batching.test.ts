/** Bounded batches: key and byte limits, order kept, an oversized record alone. */
import { describe, expect, test } from "bun:test";
import { batchEnd, batches, type BatchLimits, recordBytes } from "../../src/core/batching.ts";
import type { KvRecord } from "../../src/core/record.ts";
import { del, put, rng, SEEDS, ver } from "./seeded.ts";

/** A record of exactly `bytes` by recordBytes (at least key + "n" + 48 of framing). */
function sized(i: number, bytes: number): KvRecord {
  const r = put(`k${i}`, "", ver(i, 0, "n"));
  return { ...r, value: "x".repeat(bytes - recordBytes(r)) };
}

const bytesOf = (batch: readonly KvRecord[]): number =>
  batch.reduce((n, r) => n + recordBytes(r), 0);

/** All batches by repeated batchEnd calls from 0. */
function viaBatchEnd(records: readonly KvRecord[], limits: BatchLimits): KvRecord[][] {
  const out: KvRecord[][] = [];
  for (let start = 0; start < records.length;) {
    const end = batchEnd(records, start, limits);
    out.push(records.slice(start, end));
    start = end;
  }
  return out;
}

/** Every invariant of a split; returns what is wrong (empty when all hold). */
function violations(input: readonly KvRecord[], out: KvRecord[][], limits: BatchLimits): string[] {
  const bad: string[] = [];
  const flat = out.flat();
  if (flat.length !== input.length || flat.some((r, i) => r !== input[i])) {
    bad.push("concatenation ≠ input");
  }
  out.forEach((batch, i) => {
    if (batch.length === 0) bad.push(`batch ${i} empty`);
    if (batch.length > limits.keysMax) bad.push(`batch ${i} has ${batch.length} keys`);
    if (bytesOf(batch) > limits.bytesMax && batch.length !== 1) {
      bad.push(`batch ${i} has ${bytesOf(batch)} bytes in ${batch.length} records`);
    }
    // Greedy: a batch closes only because the next record would break a limit.
    const next = out[i + 1]?.[0];
    if (
      next !== undefined && batch.length < limits.keysMax &&
      bytesOf(batch) + recordBytes(next) <= limits.bytesMax
    ) bad.push(`batch ${i} closed early`);
  });
  return bad;
}

describe("recordBytes", () => {
  test("counts key, value, node id and 48 bytes of framing", () => {
    expect(recordBytes(put("abc", "hello", ver(1, 0, "node")))).toBe(3 + 5 + 4 + 48);
    expect(recordBytes(del("abc", ver(1, 0, "node")))).toBe(3 + 0 + 4 + 48);
    expect(recordBytes(sized(0, 123))).toBe(123);
  });
});

describe("batches and batchEnd", () => {
  const hundred = Array.from({ length: 100 }, (_, i) => sized(i, 100));
  const cases: readonly [string, KvRecord[], BatchLimits, number[]][] = [
    ["empty input → no batches", [], { keysMax: 10, bytesMax: 1000 }, []],
    ["one record", [sized(0, 100)], { keysMax: 10, bytesMax: 1000 }, [1]],
    ["keys bound: 100 by 30", hundred, { keysMax: 30, bytesMax: 1e9 }, [30, 30, 30, 10]],
    ["keys bound of 1", hundred.slice(0, 3), { keysMax: 1, bytesMax: 1e9 }, [1, 1, 1]],
    [
      "bytes bound: 100 × 100B by 1000B",
      hundred,
      { keysMax: 1000, bytesMax: 1000 },
      Array<number>(10).fill(10),
    ],
    ["bytes bound, remainder", hundred.slice(0, 7), { keysMax: 99, bytesMax: 250 }, [2, 2, 2, 1]],
    ["tighter of both bounds wins", hundred.slice(0, 9), { keysMax: 4, bytesMax: 350 }, [3, 3, 3]],
    [
      "an oversized record in the middle travels alone",
      [sized(0, 100), sized(1, 100), sized(2, 5000), sized(3, 100), sized(4, 100)],
      { keysMax: 10, bytesMax: 1000 },
      [2, 1, 2],
    ],
    [
      "oversized records back to back each travel alone",
      [sized(0, 5000), sized(1, 5000), sized(2, 100)],
      { keysMax: 10, bytesMax: 1000 },
      [1, 1, 1],
    ],
    [
      "every record larger than the bound",
      hundred.slice(0, 4),
      { keysMax: 10, bytesMax: 10 },
      [1, 1, 1, 1],
    ],
    [
      "exactly at the byte bound fits",
      hundred.slice(0, 4),
      { keysMax: 10, bytesMax: 200 },
      [2, 2],
    ],
  ];
  for (const [name, input, limits, sizes] of cases) {
    test(name, () => {
      const out = [...batches(input, limits)];
      expect(out.map((b) => b.length)).toEqual(sizes);
      expect(violations(input, out, limits)).toEqual([]);
      expect(viaBatchEnd(input, limits)).toEqual(out);
    });
  }

  test("batches accepts any iterable, including a generator", () => {
    function* gen(): Generator<KvRecord> {
      for (let i = 0; i < 5; i++) yield sized(i, 60);
    }
    const out = [...batches(gen(), { keysMax: 2, bytesMax: 1e6 })];
    expect(out.map((b) => b.map((r) => r.key))).toEqual([["k0", "k1"], ["k2", "k3"], ["k4"]]);
  });

  test("batchEnd from a middle start, and at the end", () => {
    const rs = hundred.slice(0, 10);
    const limits = { keysMax: 3, bytesMax: 1e6 };
    expect(batchEnd(rs, 4, limits)).toBe(7);
    expect(batchEnd(rs, 9, limits)).toBe(10);
    expect(batchEnd(rs, 10, limits)).toBe(10);
    expect(batchEnd([], 0, limits)).toBe(0);
    // At least one record even when it alone breaks the byte bound.
    expect(batchEnd([sized(0, 5000)], 0, { keysMax: 3, bytesMax: 10 })).toBe(1);
  });

  test("random inputs and limits: every invariant holds and batchEnd agrees", () => {
    const failures: string[] = [];
    for (const seed of SEEDS) {
      const r = rng(seed);
      const input = Array.from(
        { length: r.int(200) },
        (_, i) => sized(i, 60 + (r.next() < 0.05 ? 2000 + r.int(5000) : r.int(400))),
      );
      const limits = { keysMax: 1 + r.int(40), bytesMax: 50 + r.int(3000) };
      const out = [...batches(input, limits)];
      const bad = violations(input, out, limits);
      if (bad.length > 0) failures.push(`seed ${seed}: ${bad.join("; ")}`);
      const other = viaBatchEnd(input, limits);
      if (JSON.stringify(other) !== JSON.stringify(out)) {
        failures.push(`seed ${seed}: batchEnd disagrees`);
      }
    }
    expect(failures).toEqual([]);
  });
});
