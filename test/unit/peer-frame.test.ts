/**
 * Frames of the TCP peer link (src/core/peer-frame.ts): every frame comes back as sent, however
 * the stream is cut into chunks; a bad length (below 5, over the limit) or a stream that ends
 * inside a frame is an error message, never a throw, and a broken reader stays broken.
 */
import { describe, expect, test } from "bun:test";
import {
  encodeFrame,
  encodeTextFrame,
  type Frame,
  FRAME_HEADER_BYTES,
  FrameCork,
  FrameKind,
  FrameReader,
} from "../../src/core/peer-frame.ts";
import { rng, SEEDS } from "./seeded.ts";

const text = new TextDecoder();
const bytes = (s: string) => new TextEncoder().encode(s);
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
};
/** Frames as plain values (payloads copied: a frame's view lasts until the next push). */
const plain = (fs: Frame[]) =>
  fs.map((f) => ({ id: f.id, kind: f.kind, payload: text.decode(f.payload) }));

describe("peer frames", () => {
  test("layout: u32 length (after itself) | u32 id | u8 kind | payload, big-endian", () => {
    const f = encodeFrame(0x01020304, FrameKind.write, bytes("ab"));
    expect([...f]).toEqual([0, 0, 0, 7, 1, 2, 3, 4, 2, 0x61, 0x62]);
    expect(f.length).toBe(FRAME_HEADER_BYTES + 2);
    expect([...encodeTextFrame(0x01020304, FrameKind.write, "ab")]).toEqual([...f]);
    // Text frames are UTF-8, cut to what was written.
    const t = encodeTextFrame(7, FrameKind.ok, "é€𝄞");
    expect(t.length).toBe(FRAME_HEADER_BYTES + 2 + 3 + 4);
    const got = new FrameReader(1024).push(t) as Frame[];
    expect(plain(got)).toEqual([{ id: 7, kind: FrameKind.ok, payload: "é€𝄞" }]);
  });

  test("frames come back whole and in order, in chunks of any size", () => {
    for (const seed of SEEDS.slice(0, 20)) {
      const r = rng(seed);
      const sent = Array.from({ length: 1 + r.int(30) }, (_, i) => ({
        id: r.int(0xffff_ffff),
        kind: r.pick([FrameKind.read, FrameKind.write, FrameKind.ok, FrameKind.error]),
        payload: "x".repeat(r.int(i % 5 === 0 ? 5000 : 40)) + `#${i}`,
      }));
      const stream = concat(sent.map((s) => encodeTextFrame(s.id, s.kind, s.payload)));
      const reader = new FrameReader(10_000);
      const got: ReturnType<typeof plain> = [];
      for (let off = 0; off < stream.length;) {
        const n = 1 + r.int(r.int(2) === 0 ? 8 : 3000);
        const out = reader.push(stream.slice(off, off + n));
        if (typeof out === "string") throw new Error(out);
        got.push(...plain(out));
        off += n;
      }
      expect(got).toEqual(sent);
      expect(reader.end()).toBeUndefined();
      expect(reader.pending).toBe(0);
    }
  });

  test("an empty payload is a frame", () => {
    const out = new FrameReader(10).push(encodeFrame(1, FrameKind.hello, new Uint8Array(0)));
    expect(plain(out as Frame[])).toEqual([{ id: 1, kind: 0, payload: "" }]);
  });

  test("a length below 5 is an error, and the reader stays broken", () => {
    const reader = new FrameReader(100);
    const bad = new Uint8Array([0, 0, 0, 4, 0, 0, 0, 1]);
    expect(reader.push(bad)).toBe("frame length 4 is below 5");
    // Even a good frame after it is not read.
    expect(reader.push(encodeFrame(1, 1, bytes("a")))).toBe("frame length 4 is below 5");
    expect(reader.end()).toBe("frame length 4 is below 5");
    expect(new FrameReader(100).push(new Uint8Array([0, 0, 0, 0]))).toMatch(/below 5/);
  });

  test("an oversize frame is refused from its length alone, before its payload comes", () => {
    const reader = new FrameReader(16);
    expect(plain(reader.push(encodeFrame(1, 1, new Uint8Array(16))) as Frame[])).toHaveLength(1);
    const big = encodeFrame(2, 1, new Uint8Array(17));
    expect(reader.push(big.subarray(0, 4))).toBe("frame of 17 bytes; the limit is 16");
    // A length of 2^32 - 1 (a random or hostile stream).
    expect(new FrameReader(1 << 20).push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 9])))
      .toMatch(/the limit is/);
  });

  test("a stream that ends inside a frame is truncated; between frames it is not", () => {
    const f = encodeFrame(3, FrameKind.read, bytes("hello"));
    for (let cut = 1; cut < f.length; cut++) {
      const reader = new FrameReader(100);
      expect(reader.push(f.subarray(0, cut))).toEqual([]);
      expect(reader.end()).toBe(`truncated frame: the stream ended ${cut} bytes into it`);
    }
    const reader = new FrameReader(100);
    expect(reader.push(concat([f, f]))).toHaveLength(2);
    expect(reader.end()).toBeUndefined();
  });

  test("random bytes never throw: frames, or an error", () => {
    for (const seed of SEEDS.slice(0, 50)) {
      const r = rng(seed);
      const reader = new FrameReader(64);
      for (let i = 0; i < 20; i++) {
        const chunk = new Uint8Array(r.int(40)).map(() => r.int(256));
        // Small lengths now and then, so some random frames are whole.
        if (chunk.length > 4 && r.int(2) === 0) chunk.set([0, 0, 0, 5 + r.int(10)]);
        const out = reader.push(chunk);
        if (typeof out === "string") {
          expect(out).toMatch(/below 5|the limit is/);
          break;
        }
        for (const f of out) expect(f.payload.length).toBeLessThanOrEqual(64);
      }
      const end = reader.end();
      expect(end === undefined || typeof end === "string").toBe(true);
    }
  });

  test("a cork writes the frames of one task once, in order", () => {
    const writes: Uint8Array[] = [];
    const scheduled: (() => void)[] = [];
    const cork = new FrameCork((b) => writes.push(b.slice()), (fn) => scheduled.push(fn));
    const a = encodeFrame(1, FrameKind.ok, bytes("a"));
    const b = encodeFrame(2, FrameKind.ok, bytes("bb"));
    cork.push(a);
    cork.push(b);
    expect(scheduled).toHaveLength(1);
    expect(writes).toHaveLength(0);
    scheduled.shift()!();
    expect(writes).toEqual([concat([a, b])]);
    // One frame alone goes as it is; an empty flush writes nothing.
    cork.push(a);
    scheduled.shift()!();
    cork.flush();
    expect(writes).toHaveLength(2);
    expect(writes[1]).toEqual(a);
    const out = new FrameReader(100).push(concat(writes)) as Frame[];
    expect(out.map((f) => f.id)).toEqual([1, 2, 1]);
  });
});
