/** The node's store: merge on apply, per-partition access, drops, tombstone GC, digests. */
import { describe, expect, test } from "bun:test";
import { bucketOf, type Digest } from "../../src/core/digest.ts";
import { partitionOf } from "../../src/core/placement.ts";
import { COUNTER_MAX, tick } from "../../src/core/hlc.ts";
import type { KvRecord } from "../../src/core/record.ts";
import { DkvError } from "../../src/http/errors.ts";
import { Store } from "../../src/node/store.ts";
import { del, put, rng, SEEDS, ver } from "./seeded.ts";

const P = 16;
const KEYS = Array.from({ length: 60 }, (_, i) => `key-${i}`);

function storeOf(records: Iterable<KvRecord>, partitions = P): Store {
  const s = new Store(partitions);
  for (const r of records) s.apply(r);
  return s;
}

function digests(s: Store): { partitions: Digest[]; buckets: Digest[][] } {
  const ps = Array.from({ length: s.partitionCount }, (_, p) => p);
  return {
    partitions: ps.map((p) => s.partitionDigest(p)),
    buckets: ps.map((p) => s.bucketDigests(p)),
  };
}

/** Every stored record, tombstones included, sorted by key. */
function contents(s: Store): KvRecord[] {
  return Array.from({ length: s.partitionCount }, (_, p) => s.partitionRecords(p)).flat()
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

const byKey = (rs: readonly KvRecord[]): string[] => rs.map((r) => r.key).sort();

/** Random records over KEYS: several versions per key, values and tombstones mixed. */
function randomRecords(seed: number, count: number): KvRecord[] {
  const r = rng(seed);
  return Array.from({ length: count }, () => {
    const key = r.pick(KEYS);
    const v = ver(1 + r.int(100), r.int(3), r.pick(["a", "b"]));
    return r.next() < 0.3 ? del(key, v) : put(key, `v${r.int(5)}`, v);
  });
}

describe("apply: merge by version, hadLive", () => {
  type Row = [
    name: string,
    current: KvRecord | undefined,
    incoming: KvRecord,
    kept: "cur" | "inc",
    hadLive: boolean,
  ];
  const cases: readonly Row[] = [
    ["nothing stored", undefined, put("k", "a", ver(1)), "inc", false],
    ["newer value over value", put("k", "a", ver(1)), put("k", "b", ver(2)), "inc", true],
    ["older value ignored", put("k", "b", ver(2)), put("k", "a", ver(1)), "cur", true],
    ["newer tombstone over value", put("k", "a", ver(1)), del("k", ver(2)), "inc", true],
    ["older tombstone ignored", put("k", "a", ver(2)), del("k", ver(1)), "cur", true],
    ["newer value over tombstone", del("k", ver(1)), put("k", "a", ver(2)), "inc", false],
    ["older value under tombstone", del("k", ver(2)), put("k", "a", ver(1)), "cur", false],
    ["same record again", put("k", "a", ver(1)), put("k", "a", ver(1)), "cur", true],
    ["same tombstone again", del("k", ver(1)), del("k", ver(1)), "cur", false],
    ["tie on wallMs: counter", put("k", "a", ver(1, 1)), put("k", "b", ver(1, 0)), "cur", true],
    ["tie: nodeId", put("k", "a", ver(1, 0, "a")), put("k", "b", ver(1, 0, "b")), "inc", true],
    ["equal version: greater value", put("k", "b", ver(1)), put("k", "c", ver(1)), "inc", true],
    ["equal version: smaller value", put("k", "b", ver(1)), put("k", "a", ver(1)), "cur", true],
    ["equal version: tombstone wins", put("k", "a", ver(1)), del("k", ver(1)), "inc", true],
  ];
  for (const [name, current, incoming, kept, hadLive] of cases) {
    test(name, () => {
      const s = new Store(P);
      if (current !== undefined) s.apply(current);
      expect(s.apply(incoming)).toBe(hadLive);
      const want = kept === "cur" ? current! : incoming;
      expect(s.get("k")).toEqual(want);
      // What kv/write answers: the version kept instead of the incoming record, if another.
      const other = kept === "cur" && JSON.stringify(current) !== JSON.stringify(incoming);
      expect(s.versionOtherThan(incoming)).toEqual(other ? current!.version : undefined);
      expect(s.size).toBe(1);
      expect(digests(s)).toEqual(digests(storeOf([want])));
    });
  }

  test("versionOtherThan right after apply (remembered) equals the one looked up", () => {
    for (const seed of SEEDS) {
      const r = rng(seed);
      const s = new Store(P);
      let applied: KvRecord | undefined;
      for (const rec of randomRecords(seed, 300)) {
        s.apply(rec);
        // Sometimes the store changes between the apply and the question.
        const x = r.next();
        if (x < 0.1) s.dropPartition(s.partitionOf(rec.key));
        else if (x < 0.15) s.collectTombstones(1 + r.int(100));
        else if (x < 0.25 && applied !== undefined) s.apply({ ...applied, key: rec.key });
        // A copy is not the record applied last: it is looked up.
        expect(s.versionOtherThan(rec)).toEqual(s.versionOtherThan({ ...rec }));
        applied = rec;
      }
    }
  });

  test("hadLive for a missing key on a populated store is false", () => {
    const s = storeOf(KEYS.map((k) => put(k, "v", ver(1))));
    expect(s.apply(put("other", "v", ver(1)))).toBe(false);
    expect(s.apply(put("other", "w", ver(2)))).toBe(true);
  });

  test("a record lands in partitionOf(key)", () => {
    const s = storeOf(KEYS.map((k) => put(k, "v", ver(1))));
    for (const k of KEYS) {
      expect(s.partitionOf(k)).toBe(partitionOf(k, P));
      expect(s.partitionRecords(partitionOf(k, P)).map((r) => r.key)).toContain(k);
    }
  });
});

describe("partitionRecords and bucketRecords", () => {
  const records = KEYS.map((
    k,
    i,
  ) => (i % 4 === 0 ? del(k, ver(i + 1)) : put(k, `v${i}`, ver(i + 1))));

  test("partitionRecords: exactly that partition's records, tombstones included", () => {
    const s = storeOf(records);
    let total = 0;
    for (let p = 0; p < P; p++) {
      const got = s.partitionRecords(p);
      expect(byKey(got)).toEqual(byKey(records.filter((r) => partitionOf(r.key, P) === p)));
      expect(s.partitionSize(p)).toBe(got.length);
      total += got.length;
    }
    expect(total).toBe(records.length);
    expect(s.partitionRecords(P)).toEqual([]);
    expect(s.partitionRecords(-1)).toEqual([]);
  });

  test("partitionRecords is a snapshot: writing while iterating is safe", () => {
    const s = storeOf(records);
    const p = partitionOf(KEYS[0]!, P);
    const snap = s.partitionRecords(p);
    for (const r of snap) s.apply({ ...r, version: ver(1000) });
    expect(snap.every((r) => r.version.wallMs < 1000)).toBe(true);
    expect(s.partitionRecords(p).every((r) => r.version.wallMs === 1000)).toBe(true);
  });

  test("bucketRecords: the partition's records in the given buckets only", () => {
    const s = storeOf(records);
    const r = rng(7);
    for (let p = 0; p < P; p++) {
      const all = s.partitionRecords(p);
      const some = new Set(all.filter(() => r.next() < 0.5).map((x) => bucketOf(x.key)));
      expect(byKey(s.bucketRecords(p, some))).toEqual(
        byKey(all.filter((x) => some.has(bucketOf(x.key)))),
      );
      expect(s.bucketRecords(p, new Set())).toEqual([]);
      const every = new Set(Array.from({ length: 64 }, (_, b) => b));
      expect(byKey(s.bucketRecords(p, every))).toEqual(byKey(all));
    }
    expect(s.bucketRecords(P, new Set([0, 1]))).toEqual([]);
  });
});

describe("dropPartition", () => {
  for (const p of [0, 5, P - 1]) {
    test(`dropping partition ${p} returns its count and zeroes only its digest`, () => {
      const s = storeOf(randomRecords(p + 1, 200));
      const before = digests(s);
      const n = s.partitionSize(p);
      const sizeBefore = s.size;
      expect(n).toBeGreaterThan(0);
      expect(s.dropPartition(p)).toBe(n);
      expect(s.size).toBe(sizeBefore - n);
      expect(s.partitionRecords(p)).toEqual([]);
      expect(s.partitionDigest(p)).toEqual({ sum: 0, count: 0 });
      for (const d of s.bucketDigests(p)) expect(d).toEqual({ sum: 0, count: 0 });
      const after = digests(s);
      for (let q = 0; q < P; q++) {
        if (q === p) continue;
        expect(after.partitions[q]).toEqual(before.partitions[q]!);
        expect(after.buckets[q]).toEqual(before.buckets[q]!);
      }
      expect(s.dropPartition(p)).toBe(0);
    });
  }

  test("out of range drops nothing", () => {
    const s = storeOf(randomRecords(1, 50));
    expect(s.dropPartition(P)).toBe(0);
    expect(s.size).toBe(new Set(randomRecords(1, 50).map((r) => r.key)).size);
  });

  test("a dropped then refilled partition digests like a fresh one", () => {
    const records = randomRecords(3, 200);
    const s = storeOf(records);
    s.dropPartition(2);
    for (const r of records) if (partitionOf(r.key, P) === 2) s.apply(r);
    expect(digests(s)).toEqual(digests(storeOf(records)));
  });
});

describe("collectTombstones", () => {
  const cases: readonly [cutoffMs: number, removed: string[]][] = [
    [0, []],
    [10, []],
    [11, ["d10"]],
    [20, ["d10"]],
    [21, ["d10", "d20"]],
    [1000, ["d10", "d20"]],
  ];
  for (const [cutoff, removed] of cases) {
    test(`cutoff ${cutoff}: removes [${removed.join(", ")}], never a value`, () => {
      const records = [
        del("d10", ver(10)),
        del("d20", ver(20, 5)),
        put("p5", "v", ver(5)),
        put("p30", "v", ver(30)),
      ];
      const s = storeOf(records);
      expect(s.collectTombstones(cutoff)).toBe(removed.length);
      const left = records.filter((r) => !removed.includes(r.key));
      expect(contents(s)).toEqual(contents(storeOf(left)));
      expect(digests(s)).toEqual(digests(storeOf(left)));
      expect(s.counts()).toEqual({ live: 2, tombstones: 2 - removed.length });
    });
  }

  test("random stores: removes exactly the old tombstones; digests as if never there", () => {
    const failures: string[] = [];
    for (const seed of SEEDS) {
      const s = storeOf(randomRecords(seed, 150));
      const cutoff = rng(seed ^ 0xabc).int(110);
      const stored = contents(s);
      const old = stored.filter((r) => r.tombstone && r.version.wallMs < cutoff);
      const kept = stored.filter((r) => !old.includes(r));
      const n = s.collectTombstones(cutoff);
      if (n !== old.length) failures.push(`seed ${seed}: collected ${n}, want ${old.length}`);
      if (JSON.stringify(contents(s)) !== JSON.stringify(kept)) {
        failures.push(`seed ${seed}: contents`);
      }
      if (JSON.stringify(digests(s)) !== JSON.stringify(digests(storeOf(kept)))) {
        failures.push(`seed ${seed}: digests`);
      }
      if (s.collectTombstones(cutoff) !== 0) failures.push(`seed ${seed}: second pass collected`);
    }
    expect(failures).toEqual([]);
  });
});

describe("order independence", () => {
  test("same records in different orders → same contents and digests in every partition", () => {
    const failures: string[] = [];
    for (const seed of SEEDS) {
      const records = randomRecords(seed, 120);
      const r = rng(seed + 1);
      const a = storeOf(records);
      const b = storeOf(r.shuffle(records));
      const c = storeOf([...records, ...r.shuffle(records)]); // duplicates are idempotent
      for (const other of [b, c]) {
        for (let p = 0; p < P; p++) {
          const x = a.partitionDigest(p), y = other.partitionDigest(p);
          if (x.sum !== y.sum || x.count !== y.count) failures.push(`seed ${seed}: partition ${p}`);
        }
        if (JSON.stringify(digests(a)) !== JSON.stringify(digests(other))) {
          failures.push(`seed ${seed}: buckets`);
        }
        if (JSON.stringify(contents(a)) !== JSON.stringify(contents(other))) {
          failures.push(`seed ${seed}: contents`);
        }
      }
    }
    expect([...new Set(failures)]).toEqual([]);
  });

  test("stores with one differing record differ in that partition's digest only", () => {
    const records = KEYS.map((k) => put(k, "v", ver(1)));
    const a = storeOf(records);
    const b = storeOf(records);
    b.apply(put(KEYS[3]!, "v", ver(2)));
    const p = partitionOf(KEYS[3]!, P);
    for (let q = 0; q < P; q++) {
      if (q === p) expect(a.partitionDigest(q)).not.toEqual(b.partitionDigest(q));
      else expect(a.partitionDigest(q)).toEqual(b.partitionDigest(q));
    }
  });
});

describe("resize", () => {
  for (const [from, to] of [[1, P], [P, 64], [64, 7], [P, 1]] as const) {
    test(`${from} → ${to} partitions keeps every record, re-bucketed`, () => {
      const records = randomRecords(from * 100 + to, 200);
      const s = storeOf(records, from);
      const before = contents(s);
      s.resize(to);
      expect(s.partitionCount).toBe(to);
      expect(contents(s)).toEqual(before);
      for (let p = 0; p < to; p++) {
        for (const r of s.partitionRecords(p)) expect(partitionOf(r.key, to)).toBe(p);
      }
      for (const r of before) expect(s.get(r.key)).toEqual(r);
      expect(digests(s)).toEqual(digests(storeOf(before, to)));
    });
  }

  test("resize to the same count is a no-op", () => {
    const s = storeOf(randomRecords(9, 100));
    const before = { contents: contents(s), digests: digests(s) };
    s.resize(P);
    expect({ contents: contents(s), digests: digests(s) }).toEqual(before);
  });
});

describe("counts, size and live", () => {
  test("a record whose ttl ran out is neither live nor a tombstone", () => {
    const s = new Store(P, Infinity, () => 1000);
    s.apply({ ...put("gone", "1", ver(1)), expiresAt: 999 });
    s.apply({ ...put("kept", "1", ver(1)), expiresAt: 1001 });
    s.apply({ ...put("now", "1", ver(1)), expiresAt: 1000 });
    s.apply(del("deleted", ver(1)));
    expect(s.counts()).toEqual({ live: 1, tombstones: 1 });
    expect([...s.live()].map((r) => r.key)).toEqual(["kept"]);
  });

  const cases: readonly [string, KvRecord[], { live: number; tombstones: number }][] = [
    ["empty", [], { live: 0, tombstones: 0 }],
    ["values only", [put("a", "1", ver(1)), put("b", "1", ver(1))], { live: 2, tombstones: 0 }],
    ["a value deleted", [put("a", "1", ver(1)), del("a", ver(2))], { live: 0, tombstones: 1 }],
    ["a delete undone", [del("a", ver(1)), put("a", "1", ver(2))], { live: 1, tombstones: 0 }],
    ["mixed", [
      put("a", "1", ver(1)),
      del("b", ver(1)),
      put("c", "1", ver(1)),
      put("a", "2", ver(2)),
    ], {
      live: 2,
      tombstones: 1,
    }],
  ];
  for (const [name, records, want] of cases) {
    test(name, () => {
      const s = storeOf(records);
      expect(s.counts()).toEqual(want);
      expect(s.size).toBe(want.live + want.tombstones);
      const live = [...s.live()];
      expect(live).toHaveLength(want.live);
      expect(live.every((r) => !r.tombstone)).toBe(true);
    });
  }
});

describe("bounds: node id table and counters", () => {
  // 65,535 distinct ids fill the table (literal: this also describes the code before the check).
  const IDS_MAX = 65_535;
  const full = (): Store => {
    const s = new Store(P);
    for (let i = 0; i < IDS_MAX; i++) {
      s.apply(put(`k${i % 50}`, `v${i}`, ver(1000 + i, 0, `n${i}`)));
    }
    return s;
  };
  const snapshot = (s: Store) => ({ size: s.size, contents: contents(s), digests: digests(s) });
  const refusedWith400 = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(DkvError);
      expect((e as DkvError).status).toBe(400);
      return (e as Error).message;
    }
    throw new Error("not refused");
  };

  const cases: readonly [name: string, record: KvRecord][] = [
    ["a new key", put("fresh", "x", ver(999_999, 0, "one-too-many"))],
    ["a newer version of a stored key", put("k7", "x", ver(999_999, 0, "one-too-many"))],
    ["an older version of a stored key", put("k7", "x", ver(1, 0, "one-too-many"))],
  ];
  for (const [name, record] of cases) {
    test(`the 65,536th distinct node id (${name}) is a 400 and the store is unchanged`, () => {
      const s = full();
      const before = snapshot(s);
      expect(refusedWith400(() => s.apply(record))).toContain("too many distinct node ids");
      expect(snapshot(s)).toEqual(before);
      // Known ids still work.
      s.apply(put("k7", "y", ver(999_999, 0, "n3")));
      expect(s.get("k7")?.value).toBe("y");
    });
  }

  test("admit: a batch needing one id too many is refused whole before any of it is applied", () => {
    const s = new Store(P);
    for (let i = 0; i < IDS_MAX - 1; i++) s.apply(put("k", "v", ver(1000 + i, 0, `n${i}`)));
    const batch = [put("a", "1", ver(5000, 0, "new-1")), put("b", "1", ver(5000, 0, "new-2"))];
    const before = snapshot(s);
    expect(refusedWith400(() => s.admit(batch))).toContain("new-2");
    expect(snapshot(s)).toEqual(before);
    s.admit(batch.slice(0, 1)); // one fresh id still fits
    s.admit([put("c", "1", ver(5000, 0, "n0"))]); // known ids always fit
  });

  test("a counter beyond 32 bits is refused, never wrapped", () => {
    const s = new Store(P);
    s.apply(put("k", "acked", ver(1000, 5, "a")));
    const before = snapshot(s);
    refusedWith400(() => s.apply(put("k", "wrapped", ver(1000, 2 ** 32 + 1, "a"))));
    refusedWith400(() => s.admit([put("k", "wrapped", ver(1000, 2 ** 32, "a"))]));
    expect(snapshot(s)).toEqual(before);
  });

  test("round trip at COUNTER_MAX keeps order: an older version never overwrites a newer one", () => {
    // A clock at the counter's maximum issues (w, MAX) then, instead of wrapping, (w + 1, 0).
    const hlc = { wallMs: 1000, counter: COUNTER_MAX - 1 };
    const older = put("k", "older", tick(hlc, 1000, "a"));
    const newer = put("k", "newer", tick(hlc, 1000, "a"));
    expect(older.version.counter).toBe(COUNTER_MAX);
    for (const order of [[older, newer], [newer, older]]) {
      const s = storeOf(order);
      expect(s.get("k")).toEqual(newer);
      expect(s.get("k")?.version.counter).toBe(newer.version.counter);
    }
  });
});

describe("KeyIndex", () => {
  test("inserts and removes keep order; from(prefix, after) seeks without a scan", async () => {
    const { KeyIndex } = await import("../../src/core/key-index.ts");
    const ix = new KeyIndex();
    const keys = Array.from({ length: 5000 }, (_, i) => `k${(i * 7919) % 5000}`);
    for (const k of keys) ix.insert(k);
    ix.insert("k1"); // a repeat changes nothing
    expect(ix.size).toBe(5000);
    const sorted = [...new Set(keys)].sort();
    expect([...ix.from("")]).toEqual(sorted);
    expect([...ix.from("k12")]).toEqual(sorted.filter((k) => k.startsWith("k12")));
    expect([...ix.from("k12", "k1234")]).toEqual(
      sorted.filter((k) => k.startsWith("k12") && k > "k1234"),
    );
    for (const k of keys.slice(0, 2500)) ix.remove(k);
    ix.remove("absent");
    expect([...ix.from("k")]).toEqual([...keys.slice(2500)].sort());
    expect([...KeyIndex.of(keys.slice(2500)).from("k4", "k40")]).toEqual(
      keys.slice(2500).sort().filter((k) => k.startsWith("k4") && k > "k40"),
    );
  });
});
