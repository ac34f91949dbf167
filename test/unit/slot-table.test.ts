/**
 * SlotTable (src/core/slot-table.ts): keys and values as bytes in one arena, found through an
 * open-addressing table. Checked against a Map after seeded random adds, overwrites of every
 * size, removals and compactions; with hashes squeezed into a few values, so probe runs are long
 * and removal's backward shift is exercised.
 */
import { describe, expect, test } from "bun:test";
import { recordPartHash } from "../../src/core/digest.ts";
import { SlotTable } from "../../src/core/slot-table.ts";
import { utf8Bytes } from "../../src/core/utf8.ts";
import { type Rng, rng, SEEDS } from "./seeded.ts";

/** Keys that look alike byte for byte in tricky ways: "é" is C3 A9, "Ã©" is U+00C3 U+00A9. */
const TRICKY = [
  "\ufeffé",
  "é",
  "Ã©",
  "e",
  "ée",
  "é\u0301",
  "😀",
  "\u00ff",
  "ÿ",
  "a",
  "aa",
  "\u0080",
];

function keyOf(r: Rng): string {
  switch (r.int(4)) {
    case 0:
      return r.pick(TRICKY) + (r.int(3) === 0 ? String(r.int(5)) : "");
    case 1:
      return `key-${r.int(200)}`;
    case 2:
      return `k${"x".repeat(r.int(70))}${r.int(20)}`; // past the short-key copy loop
    default:
      return `ü-${r.int(50)}`;
  }
}

function valueOf(r: Rng): string | Uint8Array {
  switch (r.int(5)) {
    case 0:
      return "";
    case 1:
      return Uint8Array.from({ length: 1 + r.int(40) }, () => r.int(256));
    case 2:
      return "v".repeat(r.int(300));
    case 3:
      return `${r.int(2) === 0 ? "\ufeff" : ""}välue-${r.int(1000)}`; // a leading BOM is kept
    default:
      return String(r.int(100));
  }
}

const size = (v: string | Uint8Array) => (typeof v === "string" ? utf8Bytes(v) : v.length);

/** Check every key of `model` is found with its value, and a few absent ones are not. */
function agree(t: SlotTable, model: Map<string, string | Uint8Array>, hash: (k: string) => number) {
  expect(t.count).toBe(model.size);
  for (const [k, v] of model) {
    const slot = t.find(k, hash(k));
    expect(slot).toBeGreaterThanOrEqual(0);
    expect(t.key(slot)).toBe(k);
    expect(t.value(slot)).toEqual(v);
    expect(t.valueLen[slot]).toBe(size(v));
  }
  expect(Array.from(t.heldSlots())).toEqual(Array.from(t.slots()));
  const held = new Set(Array.from(t.slots(), (s) => t.key(s)));
  expect(held).toEqual(new Set(model.keys()));
  for (const k of TRICKY) if (!model.has(k)) expect(t.find(k, hash(k))).toBe(-1);
}

describe("SlotTable against a Map", () => {
  const hashes: [string, (k: string) => number][] = [
    ["recordPartHash", recordPartHash],
    // Few distinct hashes: long probe runs that wrap the table.
    ["hash mod 3", (k) => recordPartHash(k) % 3],
    ["hash near the top", (k) => 0xffff_fff0 + (recordPartHash(k) % 4)],
  ];
  for (const [name, hash] of hashes) {
    test(`adds, overwrites, removes (${name})`, () => {
      for (const seed of SEEDS.slice(0, 12)) {
        const r = rng(seed);
        const t = new SlotTable();
        const model = new Map<string, string | Uint8Array>();
        for (let step = 0; step < 1500; step++) {
          const k = keyOf(r);
          const slot = t.find(k, hash(k));
          expect(slot >= 0).toBe(model.has(k));
          if (r.int(50) === 0) {
            // Room for a batch (as a move frame's receiver makes): a hint, nothing else changes.
            t.reserve(r.int(300), r.int(30_000));
          } else if (slot >= 0 && r.int(4) === 0) {
            t.remove(slot);
            model.delete(k);
          } else {
            const v = valueOf(r);
            const at = slot >= 0 ? slot : t.add(k, hash(k), utf8Bytes(k), size(v));
            t.setValue(at, v, size(v));
            model.set(k, v);
          }
          if (step % 250 === 0) agree(t, model, hash);
        }
        agree(t, model, hash);
      }
    });
  }

  test("overwrites with other sizes leave dead space; compaction bounds the arena", () => {
    const t = new SlotTable();
    const keys = Array.from({ length: 100 }, (_, i) => `key-${i}`);
    for (const k of keys) t.setValue(t.add(k, recordPartHash(k), k.length, 10), "0123456789", 10);
    for (let round = 1; round <= 50; round++) {
      const v = "v".repeat(10 + (round % 7) * 20);
      for (const k of keys) t.setValue(t.find(k, recordPartHash(k)), v, v.length);
    }
    // Live: 100 × (6 + 130) at most; the arena is never more than a small multiple of that.
    const live = keys.reduce((n, k) => n + k.length + t.valueLen[t.find(k, recordPartHash(k))]!, 0);
    expect(t.arenaBytes).toBeLessThanOrEqual(live * 3 + 1024);
    for (const k of keys) expect(t.value(t.find(k, recordPartHash(k)))).toBe("v".repeat(30));
  });

  test("removing most keys gives the arena back", () => {
    const t = new SlotTable();
    const v = "x".repeat(200);
    const keys = Array.from({ length: 2000 }, (_, i) => `key-${i}`);
    for (const k of keys) t.setValue(t.add(k, recordPartHash(k), k.length, 200), v, 200);
    const full = t.arenaBytes;
    for (const k of keys.slice(100)) t.remove(t.find(k, recordPartHash(k)));
    expect(t.arenaBytes).toBeLessThan(full / 4);
    expect(t.count).toBe(100);
    for (const k of keys.slice(0, 100)) expect(t.value(t.find(k, recordPartHash(k)))).toBe(v);
  });
});
