/** Record merge: last writer (by version) wins, in any arrival order; tombstones are records. */
import { describe, expect, test } from "bun:test";
import type { Version } from "../../src/core/hlc.ts";
import {
  detached,
  isLive,
  type KvRecord,
  merge,
  newest,
  textRecord,
  utf8Of,
  Utf8Text,
} from "../../src/core/record.ts";
import { encodeRecord } from "../../src/core/wal-format.ts";
import { Store } from "../../src/node/store.ts";

const ver = (wallMs: number, counter: number, nodeId: string): Version => ({
  wallMs,
  counter,
  nodeId,
});
const put = (value: string, version: Version): KvRecord => ({
  key: "k",
  value,
  version,
  tombstone: false,
});
const del = (version: Version): KvRecord => ({ key: "k", value: "", version, tombstone: true });

// Distinct versions, interleaving values and tombstones; listed in ascending version order.
const ASCENDING: readonly KvRecord[] = [
  put("v1", ver(100, 0, "a")),
  del(ver(100, 0, "b")),
  put("v2", ver(100, 1, "a")),
  put("v3", ver(200, 0, "c")),
  del(ver(200, 1, "a")),
  put("v4", ver(300, 0, "a")),
];

function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  const out: T[][] = [];
  xs.forEach((x, i) => {
    for (const rest of permutations([...xs.slice(0, i), ...xs.slice(i + 1)])) {
      out.push([x, ...rest]);
    }
  });
  return out;
}

const fold = (records: readonly KvRecord[]): KvRecord | undefined =>
  records.reduce<KvRecord | undefined>((cur, r) => merge(cur, r), undefined);

describe("merge", () => {
  test("with nothing stored, the incoming record is kept", () => {
    const r = put("x", ver(1, 0, "a"));
    expect(merge(undefined, r)).toBe(r);
    const t = del(ver(1, 0, "a"));
    expect(merge(undefined, t)).toBe(t);
  });

  test("is commutative on every pair", () => {
    for (const a of ASCENDING) {
      for (const b of ASCENDING) {
        expect(merge(a, b)).toBe(merge(b, a));
      }
    }
  });

  test("is idempotent: merging a record with itself, or twice, changes nothing", () => {
    for (const a of ASCENDING) {
      expect(merge(a, a)).toBe(a);
      for (const b of ASCENDING) {
        const once = merge(a, b);
        expect(merge(once, b)).toBe(once);
        expect(merge(once, a)).toBe(once);
      }
    }
  });

  test("is associative on every triple", () => {
    for (const a of ASCENDING) {
      for (const b of ASCENDING) {
        for (const c of ASCENDING) {
          expect(merge(merge(a, b), c)).toBe(merge(a, merge(b, c)));
        }
      }
    }
  });

  test("every arrival order (all 720 permutations) converges on the newest record", () => {
    const want = ASCENDING[ASCENDING.length - 1]!;
    const perms = permutations(ASCENDING);
    expect(perms.length).toBe(720);
    for (const order of perms) {
      expect(fold(order)).toBe(want);
      // Re-delivering everything again (duplicates) does not change the outcome.
      expect(fold([...order, ...order.slice().reverse()])).toBe(want);
    }
  });

  test("every subset, in every order, converges on the subset's maximum", () => {
    for (let mask = 1; mask < 1 << ASCENDING.length; mask++) {
      const subset = ASCENDING.filter((_, i) => (mask & (1 << i)) !== 0);
      const want = subset[subset.length - 1]!;
      for (const order of permutations(subset)) expect(fold(order)).toBe(want);
    }
  });

  test("a re-delivered record with the stored version keeps the stored object (no rewrite)", () => {
    // The store only writes when merge returns something other than what it holds.
    const stored = put("x", ver(7, 1, "a"));
    const again = put("x", ver(7, 1, "a"));
    expect(merge(stored, again)).toBe(stored);
    expect(merge(again, stored)).toBe(again);
  });

  const cases: readonly [name: string, current: KvRecord, incoming: KvRecord, want: string][] = [
    ["newer value replaces older", put("old", ver(1, 0, "a")), put("new", ver(2, 0, "a")), "new"],
    ["older value is ignored", put("cur", ver(2, 0, "a")), put("stale", ver(1, 9, "z")), "cur"],
    ["tombstone newer than value wins", put("x", ver(1, 0, "a")), del(ver(1, 1, "a")), "<del>"],
    ["tombstone older than value loses", put("x", ver(5, 0, "a")), del(ver(4, 0, "z")), "x"],
    ["value newer than tombstone resurrects", del(ver(5, 0, "a")), put("y", ver(6, 0, "a")), "y"],
    ["value older than tombstone loses", del(ver(5, 0, "a")), put("y", ver(5, 0, "0")), "<del>"],
    ["nodeId breaks an exact tie", put("a", ver(5, 0, "a")), put("b", ver(5, 0, "b")), "b"],
    ["newer tombstone over older tombstone", del(ver(1, 0, "a")), del(ver(2, 0, "a")), "<del>"],
  ];
  const show = (r: KvRecord): string => (r.tombstone ? "<del>" : String(r.value));
  for (const [name, current, incoming, want] of cases) {
    test(name, () => {
      expect(show(merge(current, incoming))).toBe(want);
      expect(show(merge(incoming, current))).toBe(want);
    });
  }
});

describe("newest", () => {
  const a = put("a", ver(10, 0, "n1"));
  const b = put("b", ver(20, 0, "n2"));
  const t = del(ver(30, 0, "n3"));
  const cases: readonly [
    name: string,
    input: readonly (KvRecord | undefined)[],
    want: KvRecord | undefined,
  ][] = [
    ["empty list", [], undefined],
    ["only misses", [undefined, undefined], undefined],
    ["one answer among misses", [undefined, a, undefined], a],
    ["newest value wins regardless of position", [b, a], b],
    ["newest value wins regardless of position (reversed)", [a, b], b],
    ["a newer tombstone is the newest", [a, t, b], t],
    ["a tombstone alone", [undefined, t], t],
  ];
  for (const [name, input, want] of cases) {
    test(name, () => {
      expect(newest(input)).toBe(want);
    });
  }

  test("agrees with a fold of merge for every order", () => {
    for (const order of permutations([a, b, t, undefined])) {
      expect(newest(order)).toBe(t);
    }
  });
});

describe("isLive", () => {
  test("a value record is live", () => {
    expect(isLive(put("x", ver(1, 0, "a")))).toBe(true);
  });
  test("an empty-string value is still live (it is not a tombstone)", () => {
    expect(isLive(put("", ver(1, 0, "a")))).toBe(true);
  });
  test("a tombstone is not live", () => {
    expect(isLive(del(ver(1, 0, "a")))).toBe(false);
  });
  test("nothing stored is not live", () => {
    expect(isLive(undefined)).toBe(false);
  });
  test("after a newer delete the merged record is not live; after an older one it is", () => {
    const value = put("x", ver(10, 0, "a"));
    expect(isLive(merge(value, del(ver(11, 0, "a"))))).toBe(false);
    expect(isLive(merge(value, del(ver(9, 0, "a"))))).toBe(true);
  });
});

describe("merge with equal versions and different content", () => {
  const v = { wallMs: 5, counter: 0, nodeId: "n" };
  const value = { key: "k", value: "a", version: v, tombstone: false };
  const other = { key: "k", value: "b", version: v, tombstone: false };
  const tomb = { key: "k", value: "", version: v, tombstone: true };
  test("is commutative: the tombstone wins, then the greater value", () => {
    expect(merge(value, tomb)).toBe(tomb);
    expect(merge(tomb, value)).toBe(tomb);
    expect(merge(value, other)).toBe(other);
    expect(merge(other, value)).toBe(other);
  });
});

describe("a text record (a value that arrived as its UTF-8 bytes)", () => {
  const latin1 = (b: Uint8Array, from: number, to: number) =>
    new TextDecoder().decode(b.subarray(from, to));
  const text = (s: string) => {
    const bytes = new TextEncoder().encode(`..${s}..`);
    return new Utf8Text(bytes, 2, bytes.length - 4, bytes.every((b) => b < 128), latin1);
  };
  const version = ver(5, 1, "n1");

  test("reads as the plain record of its text; JSON and `detached` write every field out", () => {
    for (const s of ["", "hello", "héllo wörld ✓"]) {
      const r = textRecord("k", text(s), version, 77);
      const plain: KvRecord = { key: "k", value: s, version, tombstone: false, expiresAt: 77 };
      expect(r.value).toBe(s);
      expect(JSON.parse(JSON.stringify(r))).toEqual(JSON.parse(JSON.stringify(plain)));
      const d = detached(r);
      expect(utf8Of(d)).toBeUndefined();
      expect({ ...d }).toEqual(plain);
      expect(utf8Of(r)?.length).toBe(new TextEncoder().encode(s).length);
    }
    expect("expiresAt" in textRecord("k", text("v"), version)).toBe(false);
  });

  test("the store and the log keep the same bytes as for its string", () => {
    for (const s of ["x".repeat(100), "ünïcode ✓", ""]) {
      const r = textRecord("k", text(s), version);
      const plain: KvRecord = { key: "k", value: s, version, tombstone: false };
      expect(encodeRecord(r)).toEqual(encodeRecord(plain));
      const store = new Store(4);
      store.apply(r);
      expect(store.get("k")).toEqual(plain);
      expect(store.bytes).toBe(1 + new TextEncoder().encode(s).length);
    }
  });
});
