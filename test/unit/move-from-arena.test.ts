/**
 * Moves stream straight from the arena (issue 17): `Store.encodeMove` builds a move frame from a
 * partition's columns and arena bytes. It must be byte for byte the frame `encodeMoveFrame` makes
 * of the records `partitionRecords` materializes (so receivers of any version read it), batched as
 * `batchEnd` batches those records; and a watch must note every slot whose record changed, so a
 * hand-off's catch-up pass sends every write made during the stream.
 *
 * Seeded (fast-check): DKV_FUZZ_SEED replays a run, DKV_FUZZ_RUNS sets the cases per property.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { batchEnd, recordBytes } from "../../src/core/batching.ts";
import { bucketOf, BUCKETS } from "../../src/core/digest.ts";
import type { Version } from "../../src/core/hlc.ts";
import { decodeMoveFrame, encodeMoveFrame } from "../../src/core/move-frame.ts";
import { type KvRecord, sameRecord, valueOf } from "../../src/core/record.ts";
import { type MoveSource, Store } from "../../src/node/store.ts";

const SEED = Number(process.env.DKV_FUZZ_SEED ?? 20261126);
const RUNS = Number(process.env.DKV_FUZZ_RUNS ?? 200);

function check<T>(prop: fc.IRawProperty<T>, runs = RUNS): void {
  fc.assert(prop, { seed: SEED, numRuns: runs });
}

const P = 4;
/** ASCII, 2-, 3- and 4-byte UTF-8, a BOM, a NUL, and a lone surrogate (stored as its U+FFFD). */
const KEYS = [
  "a",
  "key-1",
  "key-2",
  "k".repeat(70),
  "é",
  "€uro",
  "𝄞clef",
  "\uFEFFbom",
  "nul\u0000",
  "lone\uD800",
  "x/y/z",
  "ключ",
];
const NODE_IDS = ["n1", "127.0.0.1:8080", "node-é", "\uDC00x"];

const value = fc.oneof(
  fc.constantFrom("", "v", "x".repeat(100)),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }), // lone surrogates too: stored as U+FFFD
  fc.uint8Array({ maxLength: 90 }), // often not UTF-8 (binary), sometimes UTF-8 bytes
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => (b[0] = 0xff, b)),
);
const version: fc.Arbitrary<Version> = fc.record({
  wallMs: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(2 ** 40 + 3)),
  counter: fc.oneof(fc.integer({ min: 0, max: 2 }), fc.constant(0xffff_ffff)),
  nodeId: fc.constantFrom(...NODE_IDS),
});

type Op =
  | { kind: "write"; record: KvRecord }
  | { kind: "collect"; cutoffMs: number };

const write: fc.Arbitrary<Op> = fc.record({
  key: fc.constantFrom(...KEYS),
  value,
  version,
  tombstone: fc.boolean(),
  expiresAt: fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: undefined }),
}).map(({ key, value, version, tombstone, expiresAt }) => {
  const r: KvRecord = { key, value: tombstone ? "" : value, version, tombstone };
  return { kind: "write", record: expiresAt === undefined ? r : { ...r, expiresAt } };
});
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 12, arbitrary: write },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 25 }).map((cutoffMs): Op => ({
      kind: "collect",
      cutoffMs,
    })),
  },
);

function run(store: Store, ops: readonly Op[]): void {
  for (const o of ops) {
    if (o.kind === "write") store.apply(o.record);
    else store.collectTombstones(o.cutoffMs);
  }
}

/** Values in canonical form (bytes that are UTF-8 as text), as the receiver decodes them. */
const canonical = (rs: readonly KvRecord[]) =>
  rs.map((r) => (typeof r.value === "string" ? r : { ...r, value: valueOf(r.value) }));

const all = (src: MoveSource) => ({ from: 0, to: src.slots.length });

describe("move frames straight from the arena", () => {
  test("a partition's frame is byte for byte encodeMoveFrame of its records, and decodes to them", () => {
    check(fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
      const store = new Store(P);
      run(store, ops);
      for (let p = 0; p < P; p++) {
        const src = store.moveSource(p);
        const { from, to } = all(src);
        const { frame, count } = store.encodeMove(src, from, to, "mem:8081");
        const records = store.partitionRecords(p);
        expect(count).toBe(records.length);
        expect(frame).toEqual(encodeMoveFrame("mem:8081", records));
        expect(decodeMoveFrame(frame)).toEqual({ to: "mem:8081", records: canonical(records) });
      }
    }));
  });

  test("batches end where batchEnd ends them, with recordBytes' bytes; each is its records' frame", () => {
    const limits = fc.record({
      keysMax: fc.integer({ min: 1, max: 6 }),
      bytesMax: fc.integer({ min: 1, max: 600 }),
    });
    check(fc.property(fc.array(op, { maxLength: 120 }), limits, (ops, limits) => {
      const store = new Store(P);
      run(store, ops);
      for (let p = 0; p < P; p++) {
        const src = store.moveSource(p);
        const records = store.partitionRecords(p);
        for (let start = 0; start < records.length;) {
          const { end, bytes } = store.moveBatch(src, start, limits);
          expect(end).toBe(batchEnd(records, start, limits));
          const batch = records.slice(start, end);
          expect(bytes).toBe(batch.reduce((n, r) => n + recordBytes(r), 0));
          expect(store.encodeMove(src, start, end, "t").frame).toEqual(encodeMoveFrame("t", batch));
          expect(store.moveRecords(src, start, end)).toEqual(batch);
          start = end;
        }
      }
    }));
  });

  test("slots written after the source was taken: their latest record; slots collected: left out", () => {
    check(fc.property(
      fc.array(op, { maxLength: 80 }),
      fc.array(op, { maxLength: 40 }),
      (before, during) => {
        const store = new Store(P);
        run(store, before);
        const sources = Array.from({ length: P }, (_, p) => store.moveSource(p));
        run(store, during);
        for (let p = 0; p < P; p++) {
          const src = sources[p]!;
          const now = new Map(store.partitionRecords(p).map((r) => [r.key, r]));
          // Each slot is read when its batch is encoded: what it holds then, if still held.
          const got = store.moveRecords(src, 0, src.slots.length);
          for (const r of got) expect(now.get(r.key)).toEqual(r);
          const { frame, count } = store.encodeMove(src, 0, src.slots.length, "t");
          expect(count).toBe(got.length);
          expect(frame).toEqual(encodeMoveFrame("t", got));
          const unbounded = { keysMax: Infinity, bytesMax: Infinity };
          expect(store.moveBatch(src, 0, unbounded)).toEqual({
            end: src.slots.length,
            bytes: got.reduce((n, r) => n + recordBytes(r), 0),
          });
        }
      },
    ));
  });

  test("a watch notes exactly the keys whose stored record changed (new ones included)", () => {
    check(fc.property(
      fc.array(op, { maxLength: 80 }),
      fc.array(fc.array(op, { maxLength: 30 }), { minLength: 1, maxLength: 3 }),
      (before, passes) => {
        const store = new Store(P);
        run(store, before);
        const watches = Array.from({ length: P }, (_, p) => store.watch(p));
        for (const during of passes) {
          const was = Array.from({ length: P }, (_, p) => store.partitionRecords(p));
          run(store, during);
          for (let p = 0; p < P; p++) {
            const old = new Map(was[p]!.map((r) => [r.key, r]));
            const want = store.partitionRecords(p)
              .filter((r) => !old.has(r.key) || !sameRecord(old.get(r.key)!, r))
              .map((r) => r.key)
              .sort();
            const src = store.takeWatched(watches[p]!);
            const got = store.moveRecords(src, 0, src.slots.length).map((r) => r.key).sort();
            expect(got).toEqual(want);
          }
        }
        for (const w of watches) store.unwatch(w);
      },
    ));
  });

  test("bucketRecords, its buckets hashed from the arena's key bytes: the records bucketOf picks", () => {
    const buckets = fc.uniqueArray(fc.integer({ min: 0, max: BUCKETS - 1 }), { maxLength: 40 });
    check(fc.property(fc.array(op, { maxLength: 120 }), buckets, (ops, some) => {
      const store = new Store(P);
      run(store, ops);
      const set = new Set(some);
      for (let p = 0; p < P; p++) {
        const want = store.partitionRecords(p).filter((r) => set.has(bucketOf(r.key)));
        expect(store.bucketRecords(p, set)).toEqual(want);
      }
    }));
    // A key with a lone surrogate is stored (and hashed) as its U+FFFD, as bucketOf encodes it.
    expect(bucketOf("lone\uD800")).toBe(bucketOf("lone\uFFFD"));
  });

  test("a watch: after a drop, only what is written next; after a resize, everything", () => {
    const v = (ms: number): Version => ({ wallMs: ms, counter: 0, nodeId: "n1" });
    const store = new Store(1);
    store.apply({ key: "a", value: "1", version: v(1), tombstone: false });
    const w = store.watch(0);
    store.apply({ key: "a", value: "2", version: v(2), tombstone: false });
    store.dropPartition(0);
    store.apply({ key: "b", value: "3", version: v(3), tombstone: false });
    let src = store.takeWatched(w);
    expect(store.moveRecords(src, 0, src.slots.length).map((r) => r.key)).toEqual(["b"]);
    // An older version loses the merge: nothing changed, nothing noted.
    store.apply({ key: "b", value: "old", version: v(1), tombstone: false });
    expect(store.takeWatched(w).slots.length).toBe(0);
    for (const key of ["c", "d", "e", "f", "g", "h"]) {
      store.apply({ key, value: "4", version: v(4), tombstone: false });
    }
    expect(store.takeWatched(w).slots.length).toBe(6);
    store.resize(2);
    const held = store.partitionRecords(0).map((r) => r.key).sort();
    expect(held.length).toBeGreaterThan(0);
    src = store.takeWatched(w);
    expect(store.moveRecords(src, 0, src.slots.length).map((r) => r.key).sort()).toEqual(held);
    store.unwatch(w);
    for (const key of ["b", "c", "d", "e"]) {
      store.apply({ key, value: "5", version: v(5), tombstone: false });
    }
    expect(w.slots.size).toBe(0);
  });
});
