/** UTF-8 sizes without encoding (src/core/utf8.ts) agree with TextEncoder. */
import { describe, expect, test } from "bun:test";
import { utf8AtMost, utf8Bytes } from "../../src/core/utf8.ts";
import { rng, SEEDS } from "./seeded.ts";

const enc = new TextEncoder();
const SAMPLES = ["", "a", "é", "€", "😀", "a😀b", "\ud800", "x\udc00y", "\ud83d", "ключ", "日本語"];

describe("utf8Bytes", () => {
  for (const s of SAMPLES) {
    test(`${JSON.stringify(s)}: as TextEncoder`, () => {
      expect(utf8Bytes(s)).toBe(enc.encode(s).length);
    });
  }

  test("random strings of every kind of code unit", () => {
    for (const seed of SEEDS.slice(0, 50)) {
      const r = rng(seed);
      const units = Array.from(
        { length: r.int(40) },
        () => r.pick([0x41, 0x7f, 0x80, 0x7ff, 0x800, 0xd83d, 0xde00, 0xdc00, 0xffff, 0x20ac]),
      );
      const s = String.fromCharCode(...units);
      expect(utf8Bytes(s)).toBe(enc.encode(s).length);
      const max = r.int(120);
      expect(utf8AtMost(s, max)).toBe(enc.encode(s).length <= max);
    }
  });
});
