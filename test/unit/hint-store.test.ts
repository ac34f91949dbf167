/** Hinted handoff store: one slot per (target, key), newest kept, bounded, never throws. */
import { describe, expect, test } from "bun:test";
import { recordBytes } from "../../src/core/batching.ts";
import { type Hint, HintStore } from "../../src/core/hint-store.ts";
import type { KvRecord } from "../../src/core/record.ts";
import { del, put, rng, SEEDS, ver } from "./seeded.ts";

const ROOMY = { countMax: 1000, bytesMax: 1_000_000 };
const BATCH = { keysMax: 1000, bytesMax: 1_000_000 };

/** A record of exactly `bytes` by recordBytes. */
function sized(key: string, bytes: number, wallMs = 1): KvRecord {
  const r = put(key, "", ver(wallMs, 0, "n"));
  return { ...r, value: "x".repeat(bytes - recordBytes(r)) };
}

const keysOf = (hs: readonly Hint[]): string[] => hs.map((h) => h.record.key);

/** Every hint in the store, all targets, as `target/key@wallMs`. */
function contents(s: HintStore): string[] {
  return s.targets().flatMap((t) =>
    s.peek(t, BATCH).map((h) => `${h.target}/${h.record.key}@${h.record.version.wallMs}`)
  ).sort();
}

describe("add, peek, remove", () => {
  test("hints come back per target in insertion order, and remove frees them", () => {
    const s = new HintStore(ROOMY);
    const a1 = put("k1", "v", ver(1)), a2 = put("k2", "v", ver(2)), a3 = del("k3", ver(3));
    const b1 = put("k1", "w", ver(4));
    expect(s.add("A", a1, 100)).toBe(true);
    expect(s.add("A", a2, 101)).toBe(true);
    expect(s.add("B", b1, 102)).toBe(true);
    expect(s.add("A", a3, 103)).toBe(true);
    expect(s.count).toBe(4);
    expect(s.bytes).toBe([a1, a2, a3, b1].reduce((n, r) => n + recordBytes(r), 0));
    expect(s.targets().sort()).toEqual(["A", "B"]);
    expect(s.countFor("A")).toBe(3);
    expect(s.countFor("B")).toBe(1);
    expect(s.countFor("C")).toBe(0);

    const peeked = s.peek("A", BATCH);
    expect(peeked.map((h) => h.record)).toEqual([a1, a2, a3]);
    expect(peeked.map((h) => [h.target, h.storedAtMs])).toEqual([["A", 100], ["A", 101], [
      "A",
      103,
    ]]);
    expect(s.count).toBe(4); // peek does not remove

    s.remove(peeked);
    expect(s.count).toBe(1);
    expect(s.bytes).toBe(recordBytes(b1));
    expect(s.targets()).toEqual(["B"]);
    expect(s.countFor("A")).toBe(0);
    expect(s.peek("A", BATCH)).toEqual([]);

    s.remove(peeked); // twice: nothing more goes
    expect(s.count).toBe(1);
    expect(s.bytes).toBe(recordBytes(b1));
  });

  test("the same key for two targets takes two slots", () => {
    const s = new HintStore(ROOMY);
    s.add("A", put("k", "v", ver(1)), 0);
    s.add("B", put("k", "v", ver(1)), 0);
    expect(s.count).toBe(2);
    expect(s.countFor("A")).toBe(1);
    expect(s.countFor("B")).toBe(1);
  });

  const peekCases: readonly [string, number[], { keysMax: number; bytesMax: number }, number][] = [
    ["keys bound", [100, 100, 100, 100], { keysMax: 2, bytesMax: 1e6 }, 2],
    ["bytes bound", [100, 100, 100, 100], { keysMax: 99, bytesMax: 250 }, 2],
    ["bytes bound exactly met", [100, 100, 100], { keysMax: 99, bytesMax: 200 }, 2],
    ["an oversized first hint alone", [5000, 100], { keysMax: 99, bytesMax: 250 }, 1],
    ["all fit", [100, 100], { keysMax: 99, bytesMax: 1e6 }, 2],
  ];
  for (const [name, sizes, limits, want] of peekCases) {
    test(`peek: ${name}`, () => {
      const s = new HintStore(ROOMY);
      sizes.forEach((b, i) => s.add("A", sized(`k${i}`, b), i));
      expect(keysOf(s.peek("A", limits))).toEqual(sizes.slice(0, want).map((_, i) => `k${i}`));
    });
  }
});

describe("one slot per (target, key), newest kept", () => {
  const cases: readonly [string, KvRecord, KvRecord, "first" | "second"][] = [
    ["newer wallMs replaces", put("k", "old", ver(1)), put("k", "new", ver(2)), "second"],
    ["newer counter replaces", put("k", "a", ver(1, 0)), put("k", "b", ver(1, 1)), "second"],
    [
      "newer nodeId replaces",
      put("k", "a", ver(1, 0, "a")),
      put("k", "b", ver(1, 0, "b")),
      "second",
    ],
    ["newer tombstone replaces", put("k", "a", ver(1)), del("k", ver(2)), "second"],
    ["longer newer value replaces", put("k", "a", ver(1)), put("k", "abcdef", ver(2)), "second"],
    ["older is ignored", put("k", "new", ver(2)), put("k", "old", ver(1)), "first"],
    ["older tombstone is ignored", put("k", "new", ver(2)), del("k", ver(1)), "first"],
    ["equal version is ignored", put("k", "a", ver(2)), put("k", "b", ver(2)), "first"],
  ];
  for (const [name, first, second, keep] of cases) {
    test(name, () => {
      const s = new HintStore(ROOMY);
      expect(s.add("A", first, 10)).toBe(true);
      expect(s.add("A", second, 20)).toBe(true);
      expect(s.count).toBe(1);
      expect(s.countFor("A")).toBe(1);
      expect(s.dropped).toBe(0);
      const hints = s.peek("A", BATCH);
      expect(hints).toHaveLength(1);
      const kept = keep === "first" ? first : second;
      expect(hints[0]!.record).toBe(kept);
      expect(hints[0]!.storedAtMs).toBe(keep === "first" ? 10 : 20);
      expect(s.bytes).toBe(recordBytes(kept));
    });
  }

  test("a replacement takes no new slot even when the store is full", () => {
    const s = new HintStore({ countMax: 2, bytesMax: 1e6 });
    s.add("A", put("k1", "v", ver(1)), 0);
    s.add("A", put("k2", "v", ver(1)), 0);
    expect(s.add("A", put("k3", "v", ver(1)), 0)).toBe(false);
    expect(s.add("A", put("k1", "v2", ver(2)), 0)).toBe(true);
    expect(s.count).toBe(2);
    expect(s.dropped).toBe(1);
    expect(s.peek("A", BATCH).map((h) => h.record.value)).toEqual(["v2", "v"]);
  });
});

describe("bounds: refuse, count the drop, never throw", () => {
  test("count bound", () => {
    const s = new HintStore({ countMax: 3, bytesMax: 1e6 });
    const results = ["a", "b", "c", "d", "e"].map((k) => s.add("A", put(k, "v", ver(1)), 0));
    expect(results).toEqual([true, true, true, false, false]);
    expect(s.count).toBe(3);
    expect(s.dropped).toBe(2);
    expect(s.add("B", put("z", "v", ver(1)), 0)).toBe(false); // the bound is global
    expect(s.dropped).toBe(3);
    expect(s.countFor("B")).toBe(0);
    expect(s.targets()).toEqual(["A"]); // a refused hint leaves no empty target behind
  });

  test("byte bound: a hint that would cross it is refused, a smaller one still fits", () => {
    const s = new HintStore({ countMax: 100, bytesMax: 260 });
    expect(s.add("A", sized("k1", 100), 0)).toBe(true);
    expect(s.add("A", sized("k2", 100), 0)).toBe(true);
    expect(s.add("A", sized("k3", 100), 0)).toBe(false);
    expect(s.dropped).toBe(1);
    expect(s.add("A", sized("k4", 60), 0)).toBe(true);
    expect(s.bytes).toBe(260);
    expect(s.add("A", sized("k5", 60), 0)).toBe(false);
    expect(s.dropped).toBe(2);
    expect(keysOf(s.peek("A", BATCH))).toEqual(["k1", "k2", "k4"]);
  });

  test("a single hint larger than the byte bound is refused", () => {
    const s = new HintStore({ countMax: 100, bytesMax: 250 });
    expect(s.add("A", sized("big", 251), 0)).toBe(false);
    expect(s.count).toBe(0);
    expect(s.bytes).toBe(0);
  });

  test("zero bounds refuse everything", () => {
    for (const limits of [{ countMax: 0, bytesMax: 1e6 }, { countMax: 10, bytesMax: 0 }]) {
      const s = new HintStore(limits);
      expect(s.add("A", put("k", "v", ver(1)), 0)).toBe(false);
      expect(s.count).toBe(0);
      expect(s.dropped).toBe(1);
    }
  });

  test("room freed by remove is reusable", () => {
    const s = new HintStore({ countMax: 1, bytesMax: 1e6 });
    s.add("A", put("a", "v", ver(1)), 0);
    expect(s.add("A", put("b", "v", ver(1)), 0)).toBe(false);
    s.remove(s.peek("A", BATCH));
    expect(s.add("A", put("b", "v", ver(1)), 0)).toBe(true);
  });

  test("random operations: count bound held, count/bytes match contents, never throws", () => {
    const failures: string[] = [];
    for (const seed of SEEDS) {
      const r = rng(seed);
      const limits = { countMax: 1 + r.int(20), bytesMax: 100 + r.int(2000) };
      const s = new HintStore(limits);
      let refused = 0;
      try {
        for (let i = 0; i < 300; i++) {
          const target = r.pick(["A", "B", "C"]);
          const op = r.next();
          if (op < 0.6) {
            const rec = sized(`k${r.int(15)}`, 60 + r.int(150), r.int(50));
            if (!s.add(target, rec, i)) refused++;
          } else if (op < 0.8) {
            s.remove(s.peek(target, { keysMax: 1 + r.int(5), bytesMax: 1e6 }));
          } else if (op < 0.9) {
            s.expire(i - r.int(100));
          } else {
            s.add(target, sized(`k${r.int(15)}`, 60, 1000 + i), i); // newer of a maybe-held key
          }
          const all = s.targets().flatMap((t) => s.peek(t, BATCH));
          const bytes = all.reduce((n, h) => n + recordBytes(h.record), 0);
          if (s.count > limits.countMax) failures.push(`seed ${seed}: count ${s.count}`);
          if (all.length !== s.count) failures.push(`seed ${seed}: count ≠ contents`);
          if (bytes !== s.bytes) failures.push(`seed ${seed}: bytes ${s.bytes} ≠ ${bytes}`);
          if (s.targets().some((t) => s.countFor(t) === 0)) {
            failures.push(`seed ${seed}: empty target listed`);
          }
        }
      } catch (e) {
        failures.push(`seed ${seed}: threw ${e}`);
      }
      if (s.dropped < refused) failures.push(`seed ${seed}: dropped ${s.dropped} < ${refused}`);
    }
    expect([...new Set(failures)]).toEqual([]);
  });

  // Replacing a hint with a larger one is bounded too (a newer hint that does not fit is refused).
  test("bytes never exceed bytesMax, also when a hint is replaced by a larger one", () => {
    const s = new HintStore({ countMax: 100, bytesMax: 250 });
    expect(s.add("A", sized("k1", 100, 1), 0)).toBe(true);
    expect(s.add("A", sized("k2", 100, 1), 0)).toBe(true);
    s.add("A", sized("k1", 1000, 2), 0);
    expect(s.bytes).toBeLessThanOrEqual(250);
  });
});

describe("remove after replacement", () => {
  test("a hint replaced since it was peeked stays; the others go", () => {
    const s = new HintStore(ROOMY);
    s.add("A", put("k1", "v1", ver(1)), 0);
    s.add("A", put("k2", "v1", ver(1)), 0);
    const peeked = s.peek("A", BATCH);
    s.add("A", put("k1", "v2", ver(2)), 5);
    s.remove(peeked);
    expect(s.count).toBe(1);
    const left = s.peek("A", BATCH);
    expect(left.map((h) => h.record)).toEqual([put("k1", "v2", ver(2))]);
    expect(s.bytes).toBe(recordBytes(left[0]!.record));
  });

  test("an ignored older hint does not protect nor remove the peeked one", () => {
    const s = new HintStore(ROOMY);
    s.add("A", put("k1", "v2", ver(2)), 0);
    const peeked = s.peek("A", BATCH);
    s.add("A", put("k1", "v1", ver(1)), 5); // older: ignored
    s.remove(peeked);
    expect(s.count).toBe(0);
    expect(s.targets()).toEqual([]);
  });
});

describe("expire", () => {
  const stored: readonly [target: string, key: string, atMs: number][] = [
    ["A", "a", 10],
    ["A", "b", 20],
    ["A", "c", 30],
    ["B", "d", 40],
  ];
  const cases: readonly [cutoffMs: number, gone: string[], targets: string[]][] = [
    [0, [], ["A", "B"]],
    [10, [], ["A", "B"]],
    [11, ["a"], ["A", "B"]],
    [30, ["a", "b"], ["A", "B"]],
    [31, ["a", "b", "c"], ["B"]],
    [41, ["a", "b", "c", "d"], []],
  ];
  for (const [cutoff, gone, targets] of cases) {
    test(`cutoff ${cutoff} drops only hints stored before it: [${gone.join(", ")}]`, () => {
      const s = new HintStore(ROOMY);
      for (const [t, k, at] of stored) s.add(t, put(k, "v", ver(1)), at);
      expect(s.expire(cutoff)).toBe(gone.length);
      const kept = stored.filter(([, k]) => !gone.includes(k));
      expect(contents(s)).toEqual(kept.map(([t, k]) => `${t}/${k}@1`));
      expect(s.count).toBe(kept.length);
      expect(s.bytes).toBe(kept.length * recordBytes(put("a", "v", ver(1))));
      expect(s.targets().sort()).toEqual(targets);
    });
  }

  test("a replaced hint is as old as its replacement", () => {
    const s = new HintStore(ROOMY);
    s.add("A", put("k", "v1", ver(1)), 10);
    s.add("A", put("k", "v2", ver(2)), 50);
    expect(s.expire(30)).toBe(0);
    expect(s.count).toBe(1);
    expect(s.expire(51)).toBe(1);
    expect(s.count).toBe(0);
    expect(s.bytes).toBe(0);
  });
});
