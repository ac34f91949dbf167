/**
 * The move frame (src/core/move-frame.ts): every record comes back exactly as it was sent (text,
 * bytes, tombstones, expiries, keys with lone surrogates, the HLC's extreme versions), and any
 * malformed or truncated frame is a reason, never a throw or a partial batch.
 */
import { Buffer } from "node:buffer";
import { describe, expect, test } from "bun:test";
import { COUNTER_MAX, WALL_MS_MAX } from "../../src/core/hlc.ts";
import {
  decodeMoveFrame,
  decodeWriteFrame,
  encodeMoveFrame,
  encodeWriteFrame,
  MOVE_RECORDS_MAX,
} from "../../src/core/move-frame.ts";
import type { KvRecord } from "../../src/core/record.ts";
import { del, put, type Rng, rng, SEEDS, ver } from "./seeded.ts";

const roundTrip = (to: string, records: KvRecord[]) =>
  decodeMoveFrame(encodeMoveFrame(to, records));

/** A random record: text of any script, bytes that are not UTF-8, tombstones, expiries. */
function randomRecord(r: Rng, i: number): KvRecord {
  const chars = ["a", "Z", "0", "/", "é", "€", "𝄞", "\u{10FFFF}", "\uFEFF", " ", "\u0000"];
  const text = (n: number) => Array.from({ length: n }, () => r.pick(chars)).join("");
  let key = `${i}:${text(1 + r.int(12))}`;
  if (r.int(10) === 0) key += "\uD800"; // a lone surrogate: no UTF-8 for it
  const version = ver(
    r.int(3) === 0 ? WALL_MS_MAX : r.int(2 ** 40),
    r.pick([0, 7, COUNTER_MAX]),
    r.pick(["n1", "node-é", "\uDC00x"]),
  );
  if (r.int(6) === 0) return del(key, version);
  const value = r.int(5) === 0
    ? Uint8Array.from({ length: 1 + r.int(40) }, (_, j) => (j === 0 ? 0xff : r.int(256)))
    : text(r.int(200));
  const rec = put(key, "", version);
  const out = { ...rec, value };
  return r.int(4) === 0 ? { ...out, expiresAt: r.int(2 ** 45) } : out;
}

describe("move frame", () => {
  test("every record comes back as it was sent, in order", () => {
    for (const seed of SEEDS.slice(0, 50)) {
      const r = rng(seed);
      const records = Array.from({ length: r.int(60) }, (_, i) => randomRecord(r, i));
      const out = roundTrip("mem:8081", records);
      expect({ seed, out }).toEqual({ seed, out: { to: "mem:8081", records } });
    }
  });

  test("a batch of text only (one string encoded at once), ASCII or not, comes back exactly", () => {
    for (const seed of SEEDS.slice(0, 50)) {
      const r = rng(seed);
      const records = Array.from({ length: 1 + r.int(40) }, (_, i) => randomRecord(r, i))
        .map((x) => (typeof x.value === "string" ? x : { ...x, value: "was bytes" }))
        .map((x) => (r.int(2) === 0 ? { ...x, key: `ascii-${x.key.length}-${seed}` } : x));
      expect({ seed, out: roundTrip("n", records) }).toEqual({ seed, out: { to: "n", records } });
    }
    const ascii = [put("a", "plain", ver(1)), put("b", "", ver(2))];
    expect(roundTrip("n", ascii)).toEqual({ to: "n", records: ascii });
    // No UTF-8 carries a lone surrogate in a value (canonical values never have one).
    expect(() => encodeMoveFrame("n", [put("k", "bad\uD800", ver(1))])).toThrow(/well-formed/);
  });

  test("a value that is bytes stays bytes; bytes that are UTF-8 come back as their text", () => {
    const bytes = Uint8Array.from([0xc3, 0x28, 0x00]);
    const out = roundTrip("x", [put("b", "", ver(1)), { ...put("t", "", ver(1)), value: bytes }]);
    expect(out).toEqual({
      to: "x",
      records: [put("b", "", ver(1)), { ...put("t", "", ver(1)), value: bytes }],
    });
    // Bytes sent as bytes that happen to be valid UTF-8: canonical form is the text (record.ts).
    const utf8 = new TextEncoder().encode("héllo");
    const canon = roundTrip("x", [{ ...put("u", "", ver(1)), value: utf8 }]);
    expect(canon).toEqual({ to: "x", records: [put("u", "héllo", ver(1))] });
  });

  test("an empty batch, and the largest one", () => {
    expect(roundTrip("x", [])).toEqual({ to: "x", records: [] });
    const many = Array.from({ length: MOVE_RECORDS_MAX }, (_, i) => put(`k${i}`, "v", ver(i)));
    expect(roundTrip("x", many)).toEqual({ to: "x", records: many });
    expect(() => encodeMoveFrame("x", [...many, put("one", "more", ver(1))])).toThrow();
  });

  test("every truncation of a frame is refused with a reason", () => {
    const frame = encodeMoveFrame("mem:8081", [
      put("a", "text", ver(5, 1, "n1")),
      { ...put("b", "", ver(6, 0, "n2")), value: Uint8Array.from([0xff]), expiresAt: 99 },
      del("c\uD800", ver(7, 2, "n1")),
    ]);
    for (let n = 0; n < frame.length; n++) {
      const out = decodeMoveFrame(frame.subarray(0, n));
      expect({ n, kind: typeof out }).toEqual({ n, kind: "string" });
    }
    // One byte too many is refused too.
    const longer = new Uint8Array(frame.length + 1);
    longer.set(frame);
    expect(decodeMoveFrame(longer)).toBe("1 bytes after the last record");
  });

  test("malformed frames: each is a reason, none throws", () => {
    const good = encodeMoveFrame("to", [put("k", "v", ver(1, 0, "n"))]);
    const at = (mutate: (b: Uint8Array, v: DataView) => void) => {
      const b = good.slice();
      mutate(b, new DataView(b.buffer));
      return decodeMoveFrame(b);
    };
    // Layout: magic @0 | to: u16 @4 + "to" @6 | ids: u16 @10, u16 @12 + "n" @14 | count u32 @16 |
    // row @20: flags @20, key bytes @21, value bytes @25, wallMs @29, counter @37, node @41,
    // expiresAt @43 | data @51: "k" @51, "v" @52.
    expect(at((b) => (b[0] = 0x58))).toBe("not a move frame (magic)");
    expect(at((_, v) => v.setUint16(4, 0, true))).toBe("bad member id (to)");
    expect(at((_, v) => v.setUint32(16, MOVE_RECORDS_MAX + 1, true))).toBe(
      `${MOVE_RECORDS_MAX + 1} records; at most ${MOVE_RECORDS_MAX}`,
    );
    expect(at((b) => (b[20] = 0x80))).toBe("record 0: unknown flags 128");
    expect(at((b) => (b[51] = 0xff))).toBe("record 0: key is not valid UTF-8");
    expect(at((_, v) => v.setUint32(21, 0, true))).toMatch(/^record 0: /);
    expect(at((b) => (b[52] = 0xc3))).toBe("record 0: value of key 'k' is not valid UTF-8");
    expect(at((_, v) => v.setFloat64(29, 1.5, true))).toBe("record 0: bad wallMs");
    expect(at((_, v) => v.setFloat64(29, -1, true))).toBe("record 0: bad wallMs");
    expect(at((_, v) => v.setFloat64(29, WALL_MS_MAX + 2, true))).toBe("record 0: bad wallMs");
    expect(at((_, v) => v.setUint16(41, 1, true))).toBe(
      "record 0: node id 1 not in the frame's table",
    );
    expect(at((b) => (b[20] = 8))).toBe("record 0: odd UTF-16 key length");
  });

  test("random bytes, and random damage to good frames, never throw", () => {
    for (const seed of SEEDS) {
      const r = rng(seed);
      const noise = Uint8Array.from({ length: r.int(300) }, () => r.int(256));
      if (r.int(2) === 0) noise.set([0x44, 0x4b, 0x4d, 0x31]);
      expect(() => decodeMoveFrame(noise)).not.toThrow();
      const frame = encodeMoveFrame("n", Array.from({ length: 5 }, (_, i) => randomRecord(r, i)));
      for (let k = 0; k < 3; k++) frame[r.int(frame.length)] = r.int(256);
      const out = (() => {
        try {
          return decodeMoveFrame(frame);
        } catch (e) {
          return e;
        }
      })();
      expect({ seed, thrown: out instanceof Error }).toEqual({ seed, thrown: false });
    }
  });
});

describe("write frame (the link's binary kv/write)", () => {
  test("records and their set fingerprints come back as sent; none stays none", () => {
    for (const seed of SEEDS.slice(0, 30)) {
      const r = rng(seed);
      const records = Array.from({ length: 1 + r.int(40) }, (_, i) => randomRecord(r, i));
      const sets = records.map(() => r.pick([-2, -1, 0, 7, 0xffff_ffff, r.int(2 ** 32)]));
      expect({ seed, out: decodeWriteFrame(encodeWriteFrame("n:1", records, sets)) })
        .toEqual({ seed, out: { to: "n:1", records, sets } });
      expect(decodeWriteFrame(encodeWriteFrame("n:1", records, undefined))).toEqual({
        to: "n:1",
        records,
      });
    }
  });

  test("bad fingerprints, a count that differs, truncation: a reason, never a throw", () => {
    const records = [put("a", "1", ver(1000, 0, "x")), put("b", "2", ver(1000, 0, "x"))];
    const good = encodeWriteFrame("n:1", records, [1, 2]);
    const withSet = (s: number) => {
      const b = good.slice();
      new DataView(b.buffer).setFloat64(4, s, true);
      return b;
    };
    expect(decodeWriteFrame(withSet(-3))).toBe("bad set fingerprint 0");
    expect(decodeWriteFrame(withSet(0.5))).toBe("bad set fingerprint 0");
    expect(decodeWriteFrame(withSet(2 ** 32))).toBe("bad set fingerprint 0");
    expect(decodeWriteFrame(withSet(NaN))).toBe("bad set fingerprint 0");
    const one = encodeWriteFrame("n:1", records.slice(0, 1), [1]);
    const mismatch = new Uint8Array([...one.subarray(0, 4 + 8), ...good.subarray(4 + 16)]);
    expect(decodeWriteFrame(mismatch)).toBe("1 set fingerprints for 2 records");
    for (let cut = 0; cut < good.length; cut++) {
      expect(typeof decodeWriteFrame(good.subarray(0, cut))).toBe("string");
    }
    expect(() => encodeWriteFrame("n:1", records, [1])).toThrow("one set fingerprint per record");
  });
});

test("a frame read from a Buffer (a socket's bytes) gives plain Uint8Array values, copied", () => {
  const bytes = new Uint8Array([0xff, 0, 1]);
  const rec = { ...put("k", "", ver(1000, 0, "x")), value: bytes };
  const frame = Buffer.from(encodeWriteFrame("n:1", [rec], undefined));
  const out = decodeWriteFrame(frame);
  if (typeof out === "string") throw new Error(out);
  const value = out.records[0]!.value as Uint8Array;
  expect(Object.getPrototypeOf(value)).toBe(Uint8Array.prototype);
  expect(value).toEqual(bytes);
  frame.fill(0);
  expect(value).toEqual(bytes);
});
