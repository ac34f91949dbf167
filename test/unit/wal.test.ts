/**
 * The on-disk format (src/core/wal-format.ts) and the recovery rules (src/core/wal-recovery.ts):
 * entries round-trip, a log cut anywhere keeps exactly the entries before the cut, a flipped
 * byte in the middle is damage (refused, or under repair the valid prefix), and the file plan.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { type KvRecord, valueOf } from "../../src/core/record.ts";
import {
  crc32c,
  decodeRecord,
  encodeRecord,
  type Entry,
  EntryWriter,
  FRAME_BYTES,
  HEADER_BYTES,
  scanFile,
} from "../../src/core/wal-format.ts";
import { logName, plan, replay, snapshotName } from "../../src/core/wal-recovery.ts";
import { rng } from "./seeded.ts";

const SEED = Number(process.env.FC_SEED ?? Date.now() % 1_000_000);

const rec = (key: string, value: string, wallMs = 1, counter = 0, tombstone = false): KvRecord => ({
  key,
  value: tombstone ? "" : value,
  version: { wallMs, counter, nodeId: "n1" },
  tombstone,
});

/** A log file of `entries`: header, then each entry; returns the bytes and each entry's end. */
function logOf(entries: readonly Entry[]): { bytes: Uint8Array; ends: number[] } {
  const w = new EntryWriter();
  w.header("log");
  const ends: number[] = [];
  for (const e of entries) {
    w.entry(e);
    ends.push(w.byteLength);
  }
  return { bytes: w.take().slice(), ends };
}

const someEntries = (n: number, seed: number): Entry[] => {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i): Entry => {
    const k = r.int(10);
    if (k === 0) return { type: "drop", partition: r.int(256), partitionCount: 256 };
    if (k === 1) {
      return { type: "hint-add", target: "n2", record: rec(`h${i}`, "v"), storedAtMs: 5 + i };
    }
    return {
      type: "record",
      record: rec(`key-${i}-ü`, "x".repeat(r.int(200)), 1000 + i, r.int(3), r.int(8) === 0),
    };
  });
};

describe("CRC32C", () => {
  test("the standard check value", () => {
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  test("continues across pieces and matches a bit-by-bit reference", () => {
    const ref = (b: Uint8Array) => {
      let c = 0xffffffff;
      for (const x of b) {
        c ^= x;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return ~c >>> 0;
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), (b, cut) => {
        const at = Math.min(cut, b.length);
        expect(crc32c(b)).toBe(ref(b));
        expect(crc32c(b.subarray(at), crc32c(b.subarray(0, at)))).toBe(ref(b));
      }),
      { seed: SEED },
    );
  });
});

describe("entries", () => {
  const version = fc.record({
    wallMs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    counter: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    nodeId: fc.string({ minLength: 1, maxLength: 256, unit: "grapheme" }),
  });
  const record = fc.record({
    key: fc.string({ minLength: 1, maxLength: 100, unit: "grapheme" }),
    value: fc.string({ maxLength: 300, unit: "grapheme" }),
    version,
    tombstone: fc.boolean(),
  }).map((r) => (r.tombstone ? { ...r, value: "" } : r));

  test("a record round-trips (any UTF-8 text, any bounded version)", () => {
    fc.assert(
      fc.property(record, (r) => {
        expect(decodeRecord(encodeRecord(r))).toEqual(r);
      }),
      { seed: SEED },
    );
  });

  test("binary values and expiry times round-trip (issue 11's record shape)", () => {
    // Values in canonical form (src/core/record.ts): bytes that are not UTF-8 stay bytes.
    const binary = fc.uint8Array({ minLength: 1, maxLength: 300 }).map(valueOf);
    const shaped = fc.record({
      key: fc.string({ minLength: 1, maxLength: 100, unit: "grapheme" }),
      value: fc.oneof(binary, fc.string({ maxLength: 50 })),
      version,
      tombstone: fc.boolean(),
      expiresAt: fc.option(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), {
        nil: undefined,
      }),
    }).map((r) => {
      const { expiresAt, ...rest } = r.tombstone ? { ...r, value: "" } : r;
      return expiresAt === undefined ? rest : { ...rest, expiresAt };
    });
    let sawBinary = 0;
    fc.assert(
      fc.property(shaped, (r) => {
        if (typeof r.value !== "string") sawBinary++;
        expect(decodeRecord(encodeRecord(r))).toEqual(r);
      }),
      { seed: SEED },
    );
    expect(sawBinary).toBeGreaterThan(0);
    // A record written before binary values and expiry existed (flags 0 or 1) reads the same.
    const plain = {
      key: "k",
      value: "v",
      version: { wallMs: 5, counter: 1, nodeId: "n" },
      tombstone: false,
    };
    expect(encodeRecord(plain)[FRAME_BYTES + 1]).toBe(0); // after the entry type: the flags
  });

  test("every entry type round-trips through a log file", () => {
    const entries: Entry[] = [
      { type: "record", record: rec("a", "1") },
      { type: "record", record: rec("b", "", 2, 1, true) },
      { type: "drop", partition: 7, partitionCount: 256 },
      { type: "hint-add", target: "n3", record: rec("c", "3"), storedAtMs: 99 },
      { type: "hint-remove", target: "n3", record: rec("c", "", 1) },
      {
        type: "state",
        state: {
          nodeId: "n1",
          cluster: "dkv",
          partitions: 256,
          incarnation: 1234,
          hlc: { wallMs: 55, counter: 2 },
          // Format 3: each ring member's incarnation, and the members that left.
          ring: [
            { id: "n1", address: "h1:1", incarnation: 1234 },
            { id: "n2 ü", address: "h2:2", incarnation: 0 },
          ],
          left: [{ id: "n4", address: "h4:4", incarnation: 1_700_000_000_123 }],
        },
      },
      { type: "end", records: 2 },
      // Format 2: the Paxos acceptor's state.
      { type: "paxos", change: { kind: "floor", ballot: { wallMs: 5, counter: 0, nodeId: "" } } },
      {
        type: "paxos",
        change: {
          kind: "put",
          key: "x0",
          entry: { promised: { wallMs: 9, counter: 2, nodeId: "n2" } },
        },
      },
      {
        type: "paxos",
        change: {
          kind: "put",
          key: "x ü",
          entry: {
            promised: { wallMs: 12, counter: 0, nodeId: "n1" },
            accepted: { ballot: { wallMs: 12, counter: 0, nodeId: "n1" }, record: rec("x ü", "7") },
            committed: { wallMs: 10, counter: 1, nodeId: "n3" },
            forgotten: { wallMs: 8, counter: 0, nodeId: "n3" },
          },
        },
      },
      { type: "paxos", change: { kind: "drop", key: "x0" } },
    ];
    const s = scanFile(logOf(entries).bytes, "log");
    expect(s.problem).toBeUndefined();
    expect(s.entries).toEqual(entries);
  });

  test("a state entry of format 2 (no incarnations, no left members) still reads", () => {
    // Built by hand as a format 2 binary wrote it: the fields up to the ring, nothing after.
    const bytes: number[] = [];
    const u16 = (n: number) => bytes.push(n & 0xff, n >>> 8);
    const u32 = (n: number) => bytes.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
    const f64 = (n: number) => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, n, true);
      bytes.push(...b);
    };
    const str = (t: string) => {
      const b = new TextEncoder().encode(t);
      u16(b.length);
      bytes.push(...b);
    };
    bytes.push(5); // state
    str("n1");
    str("dkv");
    u32(16);
    f64(1234);
    f64(55);
    u32(2);
    u16(2);
    for (const id of ["n1", "n2"]) {
      str(id);
      str(`${id}:1`);
    }
    const payload = Uint8Array.from(bytes);
    const file = new Uint8Array(HEADER_BYTES + FRAME_BYTES + payload.length);
    const view = new DataView(file.buffer);
    file.set([0x44, 0x4b, 0x56, 0x4c]); // "DKVL"
    view.setUint32(4, 2, true);
    view.setUint32(HEADER_BYTES, payload.length, true);
    view.setUint32(HEADER_BYTES + 4, ~payload.length >>> 0, true);
    view.setUint32(HEADER_BYTES + 8, crc32c(payload), true);
    file.set(payload, HEADER_BYTES + FRAME_BYTES);
    const s = scanFile(file, "log");
    expect(s.problem).toBeUndefined();
    expect(s.entries).toEqual([{
      type: "state",
      state: {
        nodeId: "n1",
        cluster: "dkv",
        partitions: 16,
        incarnation: 1234,
        hlc: { wallMs: 55, counter: 2 },
        ring: [{ id: "n1", address: "n1:1" }, { id: "n2", address: "n2:1" }],
      },
    }]);
  });

  test("a file of another kind or format version is refused, not misread", () => {
    const { bytes } = logOf(someEntries(3, 1));
    expect(scanFile(bytes, "snapshot").problem?.reason).toContain("bad header");
    const v4 = bytes.slice();
    v4[4] = 4;
    expect(scanFile(v4, "log").problem).toMatchObject({
      kind: "corrupt",
      reason: "format version 4; this binary reads versions 1 to 3",
    });
    // Format 1 (before the Paxos entries) is still read.
    const v1 = bytes.slice();
    v1[4] = 1;
    expect(scanFile(v1, "log").problem).toBeUndefined();
  });
});

describe("a torn log", () => {
  const entries = someEntries(60, 7);
  const { bytes, ends } = logOf(entries);

  test("cut at 200 seeded random offsets: never throws, keeps exactly the entries before the cut", () => {
    const r = rng(SEED);
    for (let i = 0; i < 200; i++) {
      const cut = r.int(bytes.length + 1);
      const s = scanFile(bytes.subarray(0, cut), "log");
      const whole = ends.filter((e) => e <= cut).length;
      const where = `seed ${SEED}, cut at ${cut} of ${bytes.length}`;
      expect(s.entries.length, where).toBe(whole);
      expect(s.entries, where).toEqual(entries.slice(0, whole));
      const valid = whole === 0 ? (cut >= HEADER_BYTES ? HEADER_BYTES : 0) : ends[whole - 1]!;
      expect(s.validBytes, where).toBe(valid);
      if (cut === valid) expect(s.problem, where).toBeUndefined();
      else expect(s.problem?.kind, where).toBe("torn");
      // And recovery as a whole: it starts, keeps those entries, and cuts the rest off.
      const seen: Entry[] = [];
      const out = replay(plan([logName(1)]), undefined, [bytes.subarray(0, cut)], false, (e) => {
        seen.push(e);
      });
      expect(out.ok, where).toBe(true);
      expect(seen, where).toEqual(entries.slice(0, whole));
      if (out.ok) {
        expect(out.truncate, where).toEqual(cut === valid ? [] : [{ seq: 1, bytes: valid }]);
      }
    }
  });

  test("recovery cuts the torn tail and keeps what came before", () => {
    const cut = ends[29]! + 5;
    const p = plan([logName(1)]);
    const seen: Entry[] = [];
    const out = replay(p, undefined, [bytes.subarray(0, cut)], false, (e) => seen.push(e));
    expect(out).toEqual({
      ok: true,
      entries: 30,
      truncate: [{ seq: 1, bytes: ends[29]! }],
      dropLogs: [],
      tornBytes: 5,
      repairedBytes: 0,
    });
    expect(seen).toEqual(entries.slice(0, 30));
  });

  test("zeros after the last entry (space written ahead) end the log quietly: nothing lost", () => {
    const padded = new Uint8Array(bytes.length + 4096 + 5);
    padded.set(bytes);
    const s = scanFile(padded, "log");
    expect(s.problem).toBeUndefined();
    expect(s.entries.length).toBe(entries.length);
    expect(s.validBytes).toBe(bytes.length);
    expect(s.zeroTail).toBe(4096 + 5);
    // Recovery cuts the zeros off without calling them a torn tail.
    const seen: Entry[] = [];
    const out = replay(plan([logName(1)]), undefined, [padded], false, (e) => seen.push(e));
    expect(out.ok && out.tornBytes).toBe(0);
    expect(out.ok && out.truncate).toEqual([{ seq: 1, bytes: bytes.length }]);
    expect(seen.length).toBe(entries.length);
  });

  test("a power cut's hole (zeros, then blocks of later unsynced writes) is torn, not damage", () => {
    const r = rng(SEED + 7);
    for (let i = 0; i < 200; i++) {
      // Sectors from `hole` on were not written, while a later one was: whatever the hole cuts
      // (a frame, an entry, or nothing but the space between two), the entries whole before it
      // are kept and the rest is a torn tail.
      const hole = 512 * (1 + r.int(Math.floor(bytes.length / 512) - 1));
      const disk = bytes.slice();
      disk.fill(0, hole, hole + 512 * (1 + r.int(3)));
      const s = scanFile(disk, "log");
      const kept = ends.filter((e) => e <= hole).length;
      expect(s.problem?.kind).toBe("torn");
      expect(s.entries.length).toBe(kept);
      expect(s.validBytes).toBe(ends[kept - 1]!);
    }
  });
});

describe("a damaged log", () => {
  const entries = someEntries(40, 11);
  const { bytes, ends } = logOf(entries);

  test("any byte flipped in the middle is damage: never a silent loss of later entries", () => {
    const r = rng(SEED + 1);
    for (let i = 0; i < 200; i++) {
      const at = HEADER_BYTES + r.int(ends[ends.length - 2]! - HEADER_BYTES);
      const bad = bytes.slice();
      bad[at] = bad[at]! ^ (1 << r.int(8));
      const s = scanFile(bad, "log");
      const where = `seed ${SEED + 1}, flipped byte ${at}`;
      expect(s.problem?.kind, where).toBe("corrupt");
      // Exactly the entries wholly before the damaged one are kept.
      const kept = ends.filter((e) => e <= at).length;
      expect(s.entries, where).toEqual(entries.slice(0, kept));
    }
  });

  test("recovery refuses with one line naming file and offset; --repair-wal keeps the prefix", () => {
    const bad = bytes.slice();
    const at = ends[19]! + FRAME_BYTES + 3; // inside entry 21's payload
    bad[at] = bad[at]! ^ 0xff;
    const p = plan([logName(1), logName(2)]);
    const later = logOf(someEntries(5, 3)).bytes;
    const refused = replay(p, undefined, [bad, later], false, () => {});
    expect(refused.ok).toBe(false);
    const message = refused.ok ? "" : refused.message;
    expect(message).toBe(
      `${logName(1)} at byte ${ends[19]} of ${bytes.length}: checksum mismatch; start with ` +
        `--repair-wal to keep the ${ends[19]} valid bytes before it and drop the ` +
        `${bytes.length - ends[19]! + later.length} after`,
    );
    expect(message).not.toContain("\n");
    const seen: Entry[] = [];
    const repaired = replay(p, undefined, [bad, later], true, (e) => seen.push(e));
    expect(repaired).toMatchObject({
      ok: true,
      truncate: [{ seq: 1, bytes: ends[19] }],
      dropLogs: [2],
      repairedBytes: bytes.length - ends[19]! + later.length,
    });
    expect(seen).toEqual(entries.slice(0, 20));
  });
});

describe("the file plan", () => {
  test("newest snapshot, logs from its seq on; older files and .tmp are leftovers", () => {
    const p = plan([
      "IDENTITY",
      "LOCK",
      logName(3),
      snapshotName(3),
      logName(4),
      logName(2),
      snapshotName(2),
      `${snapshotName(4)}.tmp`,
    ]);
    expect(p.snapshot).toBe(3);
    expect(p.logs).toEqual([3, 4]);
    expect(p.leftovers.sort()).toEqual([logName(2), snapshotName(2), `${snapshotName(4)}.tmp`]);
    expect(p.gap).toBeUndefined();
  });

  test("a missing log is damage", () => {
    expect(plan([logName(1), logName(3)]).gap).toContain(`${logName(2)} is missing`);
    const out = replay(plan([logName(1), logName(3)]), undefined, [], false, () => {});
    expect(out.ok).toBe(false);
  });

  test("a snapshot without its end entry (or with a wrong count) is refused", () => {
    const w = new EntryWriter();
    w.header("snapshot");
    w.entry({ type: "record", record: rec("a", "1") });
    const noEnd = w.take().slice();
    const p = plan([snapshotName(1), logName(1)]);
    const log = logOf([]).bytes;
    const out = replay(p, noEnd, [log], false, () => {});
    expect(out).toEqual({
      ok: false,
      message: `${snapshotName(1)}: incomplete snapshot (no end entry)`,
    });
    const w2 = new EntryWriter();
    w2.header("snapshot");
    w2.entry({ type: "record", record: rec("a", "1") });
    w2.entry({ type: "end", records: 1 });
    const seen: Entry[] = [];
    expect(replay(p, w2.take(), [log], false, (e) => seen.push(e)).ok).toBe(true);
    expect(seen).toEqual([{ type: "record", record: rec("a", "1") }]);
  });
});
