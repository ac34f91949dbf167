/**
 * MurmurHash3_x86_32 golden values. The published vectors pin the algorithm; the partitionOf
 * values pin the on-the-wire contract (key → partition must never change between releases).
 */
import { describe, expect, test } from "bun:test";
import { fmix32, murmur3, murmur3Bytes } from "../../src/core/hash.ts";
import { KEY_SEED, partitionOf } from "../../src/core/placement.ts";

const hex = (n: number): string => `0x${n.toString(16).padStart(8, "0")}`;
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("murmur3 — published MurmurHash3_x86_32 test vectors (strings)", () => {
  const vectors: readonly [text: string, seed: number, want: number][] = [
    ["", 0, 0],
    ["", 1, 0x514e28b7],
    ["", 0xffffffff, 0x81f16f39],
    ["test", 0, 0xba6bd213],
    ["hello", 0, 0x248bfa47],
    ["Hello, world!", 1234, 0xfaf6cdb3],
    ["Hello, world!", 4321, 0xbf505788],
    ["Hello, world!", 0x9747b28c, 0x24884cba],
    ["The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2fa826cd],
    ["abc", 0, 0xb3dd93fa],
    ["abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 0, 0xee925b90],
    ["a", 0x9747b28c, 0x7fa09ea6],
    ["ab", 0x9747b28c, 0x74875592],
    ["abc", 0x9747b28c, 0xc84a62dd],
    ["abcd", 0x9747b28c, 0xf0478627],
    ["aa", 0x9747b28c, 0x5d211726],
    ["aaa", 0x9747b28c, 0x283e0130],
    ["aaaa", 0x9747b28c, 0x5a97808a],
    ["a".repeat(256), 0x9747b28c, 0x37405bdc],
    // Non-Latin, multi-byte UTF-8 (8 × U+03C0 = 16 bytes).
    ["ππππππππ", 0x9747b28c, 0xd58063c1],
  ];
  for (const [text, seed, want] of vectors) {
    const label = text.length > 24 ? `${text.slice(0, 24)}…(${text.length})` : text;
    test(`${JSON.stringify(label)} seed ${hex(seed)} → ${hex(want)}`, () => {
      expect(hex(murmur3(text, seed))).toBe(hex(want));
    });
  }
});

describe("murmur3Bytes — published vectors (raw bytes, tails of 1/2/3 bytes)", () => {
  const vectors: readonly [bytes: number[], seed: number, want: number][] = [
    [[0x21, 0x43, 0x65, 0x87], 0, 0xf55b516b],
    [[0x21, 0x43, 0x65, 0x87], 0x5082edee, 0x2362f9de],
    [[0x21, 0x43, 0x65], 0, 0x7e4a8634], // tail 3
    [[0x21, 0x43], 0, 0xa0f7b07a], // tail 2
    [[0x21], 0, 0x72661cf4], // tail 1
    [[0, 0, 0, 0], 0, 0x2362f9de],
    [[0, 0, 0], 0, 0x85f0b427],
    [[0, 0], 0, 0x30f4c306],
    [[0], 0, 0x514e28b7],
    [[0xff, 0xff, 0xff, 0xff], 0, 0x76293b50],
  ];
  for (const [bytes, seed, want] of vectors) {
    test(`[${bytes.map((b) => b.toString(16)).join(" ")}] seed ${hex(seed)} → ${hex(want)}`, () => {
      expect(hex(murmur3Bytes(new Uint8Array(bytes), seed))).toBe(hex(want));
    });
  }
});

describe("murmur3 — tail lengths past one block and non-Latin text (pinned to this code)", () => {
  const pinned: readonly [text: string, seed: number, want: number][] = [
    ["a", 0, 0x3c2569b2], // tail 1
    ["ab", 0, 0x9bbfd75f], // tail 2
    ["abcd", 0, 0x43ed676a], // no tail
    ["abcde", 0, 0xe89b9af6], // block + tail 1
    ["abcdef", 0, 0x6181c085], // block + tail 2
    ["abcdefg", 0, 0x883c9b06], // block + tail 3
    ["abcde", 0x9747b28c, 0xe915b832],
    ["abcdef", 0x9747b28c, 0x53f930c5],
    ["abcdefg", 0x9747b28c, 0xbf71efb0],
    ["héllo", 0, 0xbc9fa068], // 6 bytes
    ["日本語", 0, 0xa5a47297], // 9 bytes: 2 blocks + tail 1
    ["🙂", 0, 0x3e226063], // one astral code point = 4 bytes (a surrogate pair in JS)
    ["Привет, мир", 0, 0xe87b792c],
    ["Привет, мир", 0x9747b28c, 0xbc5f2c25],
  ];
  for (const [text, seed, want] of pinned) {
    test(`${JSON.stringify(text)} seed ${hex(seed)} → ${hex(want)}`, () => {
      expect(hex(murmur3(text, seed))).toBe(hex(want));
      // The string form hashes exactly the UTF-8 bytes, nothing else (no UTF-16 units).
      expect(murmur3Bytes(utf8(text), seed)).toBe(murmur3(text, seed));
    });
  }

  test("UTF-8 bytes, not UTF-16 code units, are hashed", () => {
    const s = "日本語";
    expect(utf8(s).length).toBe(9);
    const utf16 = new Uint8Array(new Uint16Array([...s].map((c) => c.charCodeAt(0))).buffer);
    expect(murmur3(s)).not.toBe(murmur3Bytes(utf16));
  });

  test("seed defaults to 0 and is taken as unsigned 32-bit", () => {
    expect(murmur3("test")).toBe(murmur3("test", 0));
    expect(murmur3("", -1)).toBe(0x81f16f39);
    expect(murmur3Bytes(utf8("abc"))).toBe(0xb3dd93fa);
  });

  test("results are unsigned 32-bit integers", () => {
    for (let i = 0; i < 500; i++) {
      const h = murmur3(`key-${i}`, i * 7919);
      expect(Number.isInteger(h)).toBe(true);
      expect(h).toBeGreaterThanOrEqual(0);
      expect(h).toBeLessThanOrEqual(0xffffffff);
    }
  });

  test("a one-byte change changes the hash (no trivial collisions on similar keys)", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) seen.add(murmur3(`user:${i}`));
    expect(seen.size).toBe(1000);
  });
});

describe("fmix32", () => {
  const table: readonly [input: number, want: number][] = [
    [0, 0],
    // An empty input hashes to fmix32(seed), so the published empty-string vectors apply.
    [1, 0x514e28b7],
    [0xffffffff, 0x81f16f39],
    [-1, 0x81f16f39], // signed input is read as unsigned
    [0x80000000, 0x6d3c65a0],
  ];
  for (const [input, want] of table) {
    test(`fmix32(${input}) → ${hex(want)}`, () => {
      expect(hex(fmix32(input))).toBe(hex(want));
    });
  }

  test("is a bijection on a sample (distinct inputs give distinct outputs) and unsigned", () => {
    const out = new Set<number>();
    for (let i = 0; i < 4096; i++) {
      const h = fmix32(i);
      expect(h).toBeGreaterThanOrEqual(0);
      expect(h).toBeLessThanOrEqual(0xffffffff);
      out.add(h);
    }
    expect(out.size).toBe(4096);
  });

  test("avalanches: flipping one input bit flips many output bits", () => {
    const popcount = (x: number): number => {
      let n = 0;
      for (let v = x >>> 0; v !== 0; v >>>= 1) n += v & 1;
      return n;
    };
    let total = 0;
    for (let bit = 0; bit < 32; bit++) {
      total += popcount(fmix32(0x12345678) ^ fmix32(0x12345678 ^ (1 << bit)));
    }
    const mean = total / 32;
    expect(mean).toBeGreaterThan(12);
    expect(mean).toBeLessThan(20);
  });
});

describe("partitionOf — on-the-wire contract with P = 256", () => {
  test("KEY_SEED is 0", () => {
    expect(KEY_SEED).toBe(0);
  });

  const golden: readonly [key: string, partition: number][] = [
    ["", 0],
    ["a", 178],
    ["foo", 32],
    ["user:1", 63],
    ["user:42", 117],
    ["key-0", 191],
    ["all-data", 165],
    ["日本語", 151],
  ];
  for (const [key, partition] of golden) {
    test(`${JSON.stringify(key)} → partition ${partition}`, () => {
      expect(partitionOf(key, 256)).toBe(partition);
      expect(partitionOf(key, 256)).toBe(murmur3(key, KEY_SEED) % 256);
    });
  }

  test("always in [0, P) for several P", () => {
    for (const p of [1, 2, 3, 7, 256, 1000, 65536]) {
      for (let i = 0; i < 200; i++) {
        const part = partitionOf(`k${i}`, p);
        expect(Number.isInteger(part)).toBe(true);
        expect(part).toBeGreaterThanOrEqual(0);
        expect(part).toBeLessThan(p);
      }
    }
  });

  test("spreads keys over all partitions", () => {
    const counts = new Array<number>(256).fill(0);
    for (let i = 0; i < 25_600; i++) counts[partitionOf(`key-${i}`, 256)]!++;
    // Expected 100 per partition; a sound hash stays well inside these bounds.
    expect(Math.min(...counts)).toBeGreaterThan(50);
    expect(Math.max(...counts)).toBeLessThan(160);
  });
});
