/** Anti-entropy digests: record hashes, incremental bucket sums, and bucket comparison. */
import { describe, expect, test } from "bun:test";
import {
  bucketOf,
  BUCKETS,
  differingBuckets,
  type Digest,
  DigestTable,
  recordHash,
  sameDigest,
} from "../../src/core/digest.ts";
import type { KvRecord } from "../../src/core/record.ts";
import { del, put, rng, SEEDS, ver } from "./seeded.ts";

const P = 4;
const KEYS = Array.from({ length: 40 }, (_, i) => `key-${i}`);
/** A fixed key → partition assignment for the table tests (the store uses placement instead). */
const partitionOfKey = (key: string): number => KEYS.indexOf(key) % P;

/** The digest of a table built from scratch holding exactly `records`, inserted in that order. */
function fromScratch(records: Iterable<KvRecord>): DigestTable {
  const t = new DigestTable(P);
  for (const r of records) t.update(partitionOfKey(r.key), undefined, r);
  return t;
}

function snapshot(t: DigestTable): { partitions: Digest[]; buckets: Digest[][] } {
  const ps = Array.from({ length: t.partitions }, (_, p) => p);
  return {
    partitions: ps.map((p) => t.partitionDigest(p)),
    buckets: ps.map((p) => t.bucketDigests(p)),
  };
}

/** A key whose bucket is `b`, so tests can aim at one bucket. */
function keyInBucket(b: number, avoid: ReadonlySet<string> = new Set()): string {
  for (let i = 0;; i++) {
    const k = `aim-${i}`;
    if (bucketOf(k) === b && !avoid.has(k)) return k;
  }
}

describe("recordHash", () => {
  const base = put("k", "v", ver(1000, 2, "node-a"));
  const variants: readonly [string, KvRecord][] = [
    ["key", { ...base, key: "k2" }],
    ["key (prefix)", { ...base, key: "" }],
    ["version.wallMs", { ...base, version: ver(1001, 2, "node-a") }],
    ["version.counter", { ...base, version: ver(1000, 3, "node-a") }],
    ["version.nodeId", { ...base, version: ver(1000, 2, "node-b") }],
    ["tombstone flag", { ...base, tombstone: true }],
    ["wallMs and counter swapped", { ...base, version: ver(2, 1000, "node-a") }],
    ["wallMs above 2^32 (high word)", { ...base, version: ver(1000 + 2 ** 32, 2, "node-a") }],
    ["key and node id swapped", { ...base, key: "node-a", version: ver(1000, 2, "k") }],
  ];
  for (const [field, variant] of variants) {
    test(`changes with ${field}`, () => {
      expect(recordHash(variant)).not.toBe(recordHash(base));
    });
  }

  // Realistic wall clocks (ms since 1970) are above 2^32: both words must count.
  const now = 1_764_000_000_000;
  const clock: readonly [string, number, number][] = [
    ["+1 ms", now, now + 1],
    ["+2^32 ms", now, now + 2 ** 32],
    ["+2^33 ms", now, now + 2 ** 33],
  ];
  for (const [name, a, b] of clock) {
    test(`changes with a realistic wallMs ${name}`, () => {
      expect(recordHash(put("k", "v", ver(a)))).not.toBe(recordHash(put("k", "v", ver(b))));
    });
  }

  test("is a deterministic unsigned 32-bit integer", () => {
    const copy = put("k", "v", ver(1000, 2, "node-a"));
    expect(recordHash(copy)).toBe(recordHash(base));
    for (const [, r] of variants) {
      const h = recordHash(r);
      expect(Number.isInteger(h)).toBe(true);
      expect(h).toBeGreaterThanOrEqual(0);
      expect(h).toBeLessThan(2 ** 32);
    }
  });
});

// Part of the anti-entropy protocol: peers running different builds must compute the same
// hashes, or every partition looks out of sync. A change here must be deliberate.
describe("golden values", () => {
  const records: readonly [KvRecord, hash: number, bucket: number][] = [
    [put("k", "v", ver(1000, 2, "node-a")), 223608286, 44],
    [del("user:42", ver(1_764_000_000_000, 0, "127.0.0.1:8080")), 3546200539, 30],
    [put("ключ", "x", ver(1_764_000_000_123, 7, "127.0.0.1:8081")), 2952988818, 49],
  ];
  for (const [r, hash, bucket] of records) {
    test(`${r.key} → hash ${hash}, bucket ${bucket}`, () => {
      expect(recordHash(r)).toBe(hash);
      expect(bucketOf(r.key)).toBe(bucket);
    });
  }

  test("partition digest of those three records", () => {
    const t = new DigestTable(1);
    for (const [r] of records) t.update(0, undefined, r);
    expect(t.partitionDigest(0)).toEqual({ sum: 4219574265, count: 3 });
  });
});

describe("bucketOf", () => {
  const keys = [
    "",
    "a",
    "ключ",
    "🔑",
    "a/b?c=d",
    "x".repeat(10_000),
    ...Array.from({ length: 5000 }, (_, i) => `k${i}`),
  ];

  test("is an integer within [0, BUCKETS) for every key", () => {
    for (const k of keys) {
      const b = bucketOf(k);
      expect(Number.isInteger(b)).toBe(true);
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(BUCKETS);
    }
  });

  test("5000 keys reach every bucket", () => {
    expect(new Set(keys.map(bucketOf)).size).toBe(BUCKETS);
  });
});

describe("DigestTable.update", () => {
  test("an empty table has zero digests everywhere", () => {
    const t = new DigestTable(P);
    for (let p = 0; p < P; p++) {
      expect(t.partitionDigest(p)).toEqual({ sum: 0, count: 0 });
      expect(t.bucketDigests(p)).toHaveLength(BUCKETS);
      for (const d of t.bucketDigests(p)) expect(d).toEqual({ sum: 0, count: 0 });
    }
  });

  test("one insert lands in its bucket with the record's hash and count 1", () => {
    const t = new DigestTable(P);
    const r = put("key-1", "v", ver(5));
    t.update(1, undefined, r);
    const buckets = t.bucketDigests(1);
    buckets.forEach((d, b) => {
      if (b === bucketOf(r.key)) expect(d).toEqual({ sum: recordHash(r), count: 1 });
      else expect(d).toEqual({ sum: 0, count: 0 });
    });
    expect(t.partitionDigest(1).count).toBe(1);
    expect(t.partitionDigest(0)).toEqual({ sum: 0, count: 0 });
  });

  const steps: readonly [string, (t: DigestTable) => void, KvRecord[]][] = [
    ["insert then delete → empty", (t) => {
      const r = put("key-0", "a", ver(1));
      t.update(0, undefined, r);
      t.update(0, r, undefined);
    }, []],
    ["insert then overwrite → only the newer record", (t) => {
      const a = put("key-0", "a", ver(1));
      const b = put("key-0", "b", ver(2));
      t.update(0, undefined, a);
      t.update(0, a, b);
    }, [put("key-0", "b", ver(2))]],
    ["value then tombstone → only the tombstone", (t) => {
      const a = put("key-4", "a", ver(1));
      const d = del("key-4", ver(2));
      t.update(0, undefined, a);
      t.update(0, a, d);
    }, [del("key-4", ver(2))]],
    ["update with neither record is a no-op", (t) => {
      t.update(2, undefined, undefined);
    }, []],
  ];
  for (const [name, run, final] of steps) {
    test(name, () => {
      const t = new DigestTable(P);
      run(t);
      expect(snapshot(t)).toEqual(snapshot(fromScratch(final)));
    });
  }

  test("incremental digests equal from-scratch digests after random writes/overwrites/deletes", () => {
    const failures: string[] = [];
    for (const seed of SEEDS) {
      const r = rng(seed);
      const t = new DigestTable(P);
      const model = new Map<string, KvRecord>();
      const ops = 50 + r.int(300);
      for (let i = 0; i < ops; i++) {
        const key = r.pick(KEYS);
        const prev = model.get(key);
        if (prev !== undefined && r.next() < 0.2) {
          t.update(partitionOfKey(key), prev, undefined);
          model.delete(key);
          continue;
        }
        const version = ver(1 + r.int(50), r.int(4), r.pick(["a", "b", "c"]));
        const next = r.next() < 0.25 ? del(key, version) : put(key, `v${r.int(9)}`, version);
        t.update(partitionOfKey(key), prev, next);
        model.set(key, next);
      }
      const got = snapshot(t);
      const want = snapshot(fromScratch(model.values()));
      if (JSON.stringify(got) !== JSON.stringify(want)) failures.push(`seed ${seed}`);
      const total = got.partitions.reduce((n, d) => n + d.count, 0);
      if (total !== model.size) failures.push(`seed ${seed}: count ${total} ≠ ${model.size}`);
    }
    expect(failures).toEqual([]);
  });

  test("same final records in different orders → same partition and bucket digests", () => {
    const failures: string[] = [];
    for (const seed of SEEDS) {
      const r = rng(seed);
      const records = KEYS.filter(() => r.next() < 0.7).map((key) =>
        r.next() < 0.3 ? del(key, ver(r.int(100))) : put(key, "v", ver(r.int(100), r.int(3)))
      );
      const a = snapshot(fromScratch(records));
      const b = snapshot(fromScratch(r.shuffle(records)));
      const c = snapshot(fromScratch([...records].reverse()));
      if (JSON.stringify(a) !== JSON.stringify(b) || JSON.stringify(a) !== JSON.stringify(c)) {
        failures.push(`seed ${seed}`);
      }
    }
    expect(failures).toEqual([]);
  });

  test("different record sets give different partition digests", () => {
    const base = KEYS.map((key) => put(key, "v", ver(10)));
    const a = fromScratch(base);
    const b = fromScratch(base.map((r, i) => (i === 0 ? { ...r, version: ver(11) } : r)));
    const c = fromScratch(base.slice(1));
    const p = partitionOfKey(KEYS[0]!);
    expect(sameDigest(a.partitionDigest(p), b.partitionDigest(p))).toBe(false);
    expect(sameDigest(a.partitionDigest(p), c.partitionDigest(p))).toBe(false);
    for (let q = 0; q < P; q++) {
      if (q !== p) expect(a.partitionDigest(q)).toEqual(b.partitionDigest(q));
    }
  });

  // Anti-entropy compares partition digests first and looks no further when they are equal: a
  // bucket the partition digest leaves out would never be synced.
  test("a record in any one bucket, the first and the last too, changes the partition digest", () => {
    const empty = new DigestTable(1).partitionDigest(0);
    const missed: number[] = [];
    for (let b = 0; b < BUCKETS; b++) {
      const t = new DigestTable(1);
      t.update(0, undefined, put(keyInBucket(b), "v", ver(10)));
      if (sameDigest(t.partitionDigest(0), empty)) missed.push(b);
    }
    expect(missed).toEqual([]);
  });
});

describe("DigestTable.clearPartition", () => {
  for (let cleared = 0; cleared < P; cleared++) {
    test(`clearing partition ${cleared} resets it and leaves the others`, () => {
      const t = fromScratch(KEYS.map((key, i) => put(key, "v", ver(i + 1))));
      const before = snapshot(t);
      t.clearPartition(cleared);
      const after = snapshot(t);
      for (let p = 0; p < P; p++) {
        if (p === cleared) {
          expect(before.partitions[p]!.count).toBeGreaterThan(0);
          expect(after.partitions[p]).toEqual({ sum: 0, count: 0 });
          for (const d of after.buckets[p]!) expect(d).toEqual({ sum: 0, count: 0 });
        } else {
          expect(after.partitions[p]).toEqual(before.partitions[p]!);
          expect(after.buckets[p]).toEqual(before.buckets[p]!);
        }
      }
    });
  }

  test("a cleared partition then refilled equals a fresh one", () => {
    const records = KEYS.map((key) => put(key, "v", ver(3)));
    const t = fromScratch(records);
    t.update(1, undefined, put("key-1", "stale", ver(1))); // skew partition 1 first
    t.clearPartition(1);
    for (const r of records) if (partitionOfKey(r.key) === 1) t.update(1, undefined, r);
    expect(snapshot(t)).toEqual(snapshot(fromScratch(records)));
  });
});

describe("differingBuckets", () => {
  const zero = (): Digest[] => Array.from({ length: BUCKETS }, () => ({ sum: 0, count: 0 }));
  const withAt = (ds: Digest[], b: number, d: Digest): Digest[] =>
    ds.map((x, i) => (i === b ? d : x));

  const cases: readonly [string, Digest[], Digest[], number[]][] = [
    ["identical", zero(), zero(), []],
    ["one sum differs", zero(), withAt(zero(), 7, { sum: 1, count: 0 }), [7]],
    ["one count differs", zero(), withAt(zero(), 0, { sum: 0, count: 1 }), [0]],
    [
      "first and last differ",
      withAt(zero(), 0, { sum: 5, count: 1 }),
      withAt(zero(), BUCKETS - 1, { sum: 5, count: 1 }),
      [0, BUCKETS - 1],
    ],
    ["theirs shorter: the missing tail differs", zero(), zero().slice(0, 60), [60, 61, 62, 63]],
    ["mine empty: every bucket differs", [], zero().slice(0, 3), [0, 1, 2]],
    ["both empty", [], [], []],
  ];
  for (const [name, mine, theirs, want] of cases) {
    test(name, () => {
      expect(differingBuckets(mine, theirs)).toEqual(want);
      expect(differingBuckets(theirs, mine)).toEqual(want);
    });
  }

  test("finds exactly the buckets touched by differing records (random)", () => {
    const failures: string[] = [];
    for (const seed of SEEDS) {
      const r = rng(seed);
      const common = KEYS.map((key) => put(key, "v", ver(r.int(20))));
      const a = fromScratch(common);
      const b = fromScratch(common);
      const touched = new Set<number>();
      const used = new Set(KEYS);
      for (let i = r.int(6); i > 0; i--) {
        const bucket = r.int(BUCKETS);
        const key = keyInBucket(bucket, used);
        used.add(key);
        // An extra record on one side only, in partition 0 whatever its key says.
        (r.next() < 0.5 ? a : b).update(0, undefined, put(key, "x", ver(1)));
        touched.add(bucket);
      }
      const want = [...touched].sort((x, y) => x - y);
      const got = differingBuckets(a.bucketDigests(0), b.bucketDigests(0));
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        failures.push(`seed ${seed}: got ${got} want ${want}`);
      }
      if (sameDigest(a.partitionDigest(0), b.partitionDigest(0)) !== (want.length === 0)) {
        failures.push(`seed ${seed}: partition digest disagrees with buckets`);
      }
    }
    expect(failures).toEqual([]);
  });
});
