/** Paxos acceptor and proposer helpers (src/core/paxos.ts): promises, accepts, floor, bounds. */
import { describe, expect, test } from "bun:test";
import type { Version } from "../../src/core/hlc.ts";
import {
  Acceptor,
  applyMutation,
  backoffMs,
  holds,
  inProgress,
  loggedEntry,
  LoggedPaxosState,
  MemoryPaxosState,
  type PaxosEntry,
  RECENT_COMMITS,
  replayChange,
  settledBy,
} from "../../src/core/paxos.ts";
import type { KvRecord } from "../../src/core/record.ts";
import { EntryWriter, scanFile } from "../../src/core/wal-format.ts";
import { rng } from "./seeded.ts";

const b = (wallMs: number, counter = 0, nodeId = "a"): Version => ({ wallMs, counter, nodeId });
const rec = (value: string, v: Version, extra: Partial<KvRecord> = {}): KvRecord => ({
  key: "k",
  value,
  version: v,
  tombstone: false,
  ...extra,
});
const acceptor = (keysMax = 100, floor = b(0, 0, "")) =>
  new Acceptor(new MemoryPaxosState(floor), keysMax);

describe("acceptor", () => {
  test("promises only ballots above every earlier promise", () => {
    const a = acceptor();
    expect(a.prepare("k", b(10)).ok).toBe(true);
    expect(a.prepare("k", b(10))).toMatchObject({ ok: false, higher: b(10) });
    expect(a.prepare("k", b(9, 5))).toMatchObject({ ok: false, higher: b(10) });
    expect(a.prepare("k", b(10, 0, "b")).ok).toBe(true); // same time, higher node id
    expect(a.prepare("other", b(1)).ok).toBe(true); // per key
  });

  test("accepts at or above the promise, refuses below it", () => {
    const a = acceptor();
    a.prepare("k", b(10));
    a.prepare("k", b(20));
    expect(a.propose("k", b(10), rec("x", b(10)))).toEqual({ ok: false, higher: b(20) });
    expect(a.propose("k", b(20), rec("y", b(21)))).toEqual({ ok: true });
    // The accepted proposal comes back with the next promise.
    const p = a.prepare("k", b(30));
    expect(p).toMatchObject({ ok: true, accepted: { ballot: b(20), record: rec("y", b(21)) } });
  });

  test("commit forgets the accepted proposal at or below it and reports the commit", () => {
    const a = acceptor();
    a.prepare("k", b(10));
    a.propose("k", b(10), rec("x", b(11)));
    a.commit("k", b(10), b(11));
    expect(a.prepare("k", b(12))).toEqual({
      ok: true,
      committed: b(10),
      recent: [{ ballot: b(10), version: b(11) }],
      forgotten: b(0, 0, ""),
    });
    // An older commit arriving late does not forget a newer accepted proposal.
    a.propose("k", b(12), rec("y", b(13)));
    a.commit("k", b(5), b(5));
    const p = a.prepare("k", b(14));
    expect(p.ok && p.accepted?.ballot).toEqual(b(12));
  });

  test("bounded: collection raises the floor, so a forgotten promise still bars older ballots", () => {
    const a = acceptor(2);
    a.prepare("k1", b(10));
    a.propose("k1", b(10), rec("x", b(10)));
    a.commit("k1", b(10), b(10));
    a.prepare("k2", b(20));
    // k3 needs room: k1 (settled, oldest) is collected, the floor rises to its ballot.
    expect(a.prepare("k3", b(30)).ok).toBe(true);
    expect(a.state.get("k1")).toBeUndefined();
    expect(a.state.size).toBe(2);
    expect(a.state.floor()).toEqual(b(10));
    // A proposer that had k1's promise at 10 is refused now (it retries higher).
    expect(a.propose("k1", b(10), rec("z", b(10))).ok).toBe(false);
    expect(a.prepare("k1", b(9)).ok).toBe(false);
  });

  test("a key with a proposal in progress is never collected; a full acceptor refuses new keys", () => {
    const a = acceptor(1);
    a.prepare("k1", b(10));
    a.propose("k1", b(10), rec("x", b(10)));
    const p = a.prepare("k2", b(20));
    expect(p).toEqual({ ok: false, higher: b(0, 0, ""), busy: true });
    expect(a.busyRefusals).toBe(1);
    expect(a.state.get("k1")?.accepted?.record.value).toBe("x");
  });

  test("the floor at start bars ballots from before it (state lost with a restart)", () => {
    const a = acceptor(10, b(1000, 0, ""));
    expect(a.prepare("k", b(999, 7, "z")).ok).toBe(false);
    expect(a.propose("k", b(999), rec("x", b(999))).ok).toBe(false);
    expect(a.prepare("k", b(1000, 0, "a")).ok).toBe(true);
  });
});

describe("proposer helpers", () => {
  test("settledBy: a pending proposal is chosen, open, or unknown once commits were forgotten", () => {
    const a = acceptor();
    const mine = { ballot: b(10), record: rec("x", b(11)) };
    a.prepare("k", b(10));
    const before = a.prepare("k", b(12));
    expect(before.ok && settledBy([before], mine)).toBe("open");
    // Another proposer finished ours (same record, its own ballot).
    a.commit("k", b(12), b(11));
    const after = a.prepare("k", b(13));
    expect(after.ok && settledBy([after], mine)).toBe("chosen");
    // Another record committed above its ballot, and not it: it can never be finished.
    const other = acceptor();
    other.prepare("k", b(10));
    other.commit("k", b(12), b(12));
    const p2 = other.prepare("k", b(13));
    expect(p2.ok && settledBy([p2], mine)).toBe("dead");
    // More commits than RECENT_COMMITS: ours is forgotten, and the answer is "unknown".
    for (let i = 0; i < RECENT_COMMITS; i++) a.commit("k", b(20 + i), b(20 + i));
    const late = a.prepare("k", b(100));
    expect(late.ok && late.recent!.length).toBe(RECENT_COMMITS);
    expect(late.ok && settledBy([late], mine)).toBe("unknown");
  });

  test("recent commits stay by ballot ascending when commits arrive out of order", () => {
    const r = rng(11);
    const a = acceptor();
    a.prepare("k", b(1));
    const ballots = Array.from({ length: RECENT_COMMITS + 40 }, (_, i) => 10 + i);
    for (let i = ballots.length - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [ballots[i], ballots[j]] = [ballots[j]!, ballots[i]!];
    }
    for (const w of ballots) a.commit("k", b(w), b(w, 1));
    const p = a.prepare("k", b(100_000));
    if (!p.ok) throw new Error("promised");
    const got = p.recent!.map((c) => c.ballot.wallMs);
    expect(got).toEqual([...got].sort((x, y) => x - y));
    expect(got.length).toBe(RECENT_COMMITS);
  });

  test("prepare with `since`: only commits at or above it, and the same fate for proposals there", () => {
    const fates = new Set<string>();
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const r = rng(seed);
      const a = acceptor();
      a.prepare("k", b(1)); // an acceptor keeps commits only of keys it has state for
      // Commits under random ballots (some the same record finished again under a higher one),
      // more than RECENT_COMMITS of them in some runs.
      const commits: { ballot: Version; version: Version }[] = [];
      const n = 1 + r.int(RECENT_COMMITS * 2);
      for (let i = 0; i < n; i++) {
        const again = commits.length > 0 && r.next() < 0.2 ? r.pick(commits) : undefined;
        const ballot = b(10 + i);
        const version = again?.version ?? b(10 + i, 1);
        a.commit("k", ballot, version);
        commits.push({ ballot, version });
      }
      for (let q = 0; q < 20; q++) {
        const since = b(10 + r.int(n + 5));
        const full = a.prepare("k", b(10_000 + q * 2));
        const part = a.prepare("k", b(10_000 + q * 2 + 1), since);
        if (!full.ok || !part.ok) throw new Error("both promised");
        const want = (full.recent ?? []).filter((c) => c.ballot.wallMs >= since.wallMs);
        expect(part.recent ?? []).toEqual(want);
        expect(part.forgotten).toEqual(full.forgotten);
        // Any proposal at or above `since`: the same fate from either answer. A proposal is
        // committed under its own ballot or a higher one: its record is one committed at or
        // above its ballot, or one never committed.
        for (let k = 0; k < 5; k++) {
          const ballot = b(since.wallMs + r.int(5));
          // (by the ballot a record was first committed under: finishing it again keeps that)
          const later = commits.filter((c) =>
            commits.find((x) => x.version === c.version)!.ballot.wallMs >= ballot.wallMs
          );
          const record = later.length > 0 && r.next() < 0.5
            ? rec("x", r.pick(later).version)
            : rec("x", b(99_999));
          const mine = { ballot, record };
          expect(settledBy([part], mine)).toBe(settledBy([full], mine));
          fates.add(settledBy([full], mine));
        }
      }
    }
    // The runs reached every fate a proposal can have.
    expect([...fates].sort()).toEqual(["chosen", "dead", "open", "unknown"]);
  });

  test("inProgress: the highest accepted ballot above every reported commit", () => {
    const p1 = { ballot: b(10), record: rec("x", b(10)) };
    const p2 = { ballot: b(12), record: rec("y", b(12)) };
    expect(inProgress([{}, {}])).toBeUndefined();
    expect(inProgress([{ accepted: p1 }, { accepted: p2 }])).toBe(p2);
    expect(inProgress([{ accepted: p2 }, { committed: b(12) }])).toBeUndefined();
    expect(inProgress([{ accepted: p2 }, { committed: b(11) }])).toBe(p2);
  });

  test("conditions", () => {
    const r = rec("v", b(5));
    const cases: [Parameters<typeof holds>[0], KvRecord | undefined, boolean][] = [
      [{ kind: "always" }, undefined, true],
      [{ kind: "absent" }, undefined, true],
      [{ kind: "absent" }, r, false],
      [{ kind: "absent" }, { ...r, tombstone: true }, true],
      [{ kind: "absent" }, { ...r, expiresAt: 50 }, true], // expired at now = 100
      [{ kind: "present" }, r, true],
      [{ kind: "present" }, undefined, false],
      [{ kind: "version", version: b(5) }, r, true],
      [{ kind: "version", version: b(5, 1) }, r, false],
      [{ kind: "version", version: b(5) }, undefined, false],
    ];
    for (const [c, cur, want] of cases) expect(holds(c, cur, 100)).toBe(want);
  });

  test("incr: starts at 0, negative steps, keeps the expiry, refuses non-integers", () => {
    expect(applyMutation({ kind: "incr", by: 1 }, undefined, 0)).toEqual({
      ok: true,
      value: "1",
      tombstone: false,
    });
    expect(applyMutation({ kind: "incr", by: -5 }, rec("3", b(1), { expiresAt: 99 }), 0))
      .toEqual({ ok: true, value: "-2", tombstone: false, expiresAt: 99 });
    for (const bad of ["x", "1.5", "", "01", " 1", String(2 ** 60)]) {
      expect(applyMutation({ kind: "incr", by: 1 }, rec(bad, b(1)), 0).ok).toBe(false);
    }
    expect(applyMutation({ kind: "incr", by: 1 }, rec(String(2 ** 53 - 1), b(1)), 0).ok).toBe(
      false,
    );
    // A tombstone counts as absent.
    expect(applyMutation({ kind: "incr", by: 2 }, rec("x", b(1), { tombstone: true }), 0))
      .toMatchObject({ ok: true, value: "2" });
  });

  test("append: text to text, bytes to text stays canonical", () => {
    expect(applyMutation({ kind: "append", value: "b", bytesMax: 10 }, rec("a", b(1)), 0))
      .toMatchObject({
        value: "ab",
      });
    expect(applyMutation({ kind: "append", value: "b", bytesMax: 10 }, undefined, 0)).toMatchObject(
      {
        value: "b",
      },
    );
    const bin = new Uint8Array([0xff]);
    const out = applyMutation({ kind: "append", value: bin, bytesMax: 10 }, rec("a", b(1)), 0);
    expect(out.ok && out.value).toEqual(new Uint8Array([0x61, 0xff]));
    expect(applyMutation({ kind: "append", value: "bc", bytesMax: 2 }, rec("a", b(1)), 0))
      .toMatchObject({ ok: false, tooLarge: true });
  });

  test("backoff grows, is capped and jittered", () => {
    expect(backoffMs(1, 0)).toBe(1);
    expect(backoffMs(1, 0.999)).toBe(2);
    expect(backoffMs(4, 0.999)).toBe(16);
    expect(backoffMs(30, 0.999)).toBe(50);
  });
});

describe("durable acceptor state (--data-dir)", () => {
  /**
   * Random acceptor traffic over a few keys (a small keysMax, so keys are collected and the floor
   * rises), every change logged through the real on-disk format. A power cut after any answer
   * keeps the log up to it (the answer waited for it): replaying that prefix must give back the
   * state as logged, and the restored acceptor must refuse every ballot a promise or an accept
   * answered before the cut was for, and report every proposal accepted and not yet committed.
   */
  const SEED = Number(process.env.FC_SEED ?? Date.now() % 1_000_000);
  test(`a power cut after any answer loses no promise or accept (seed ${SEED}; FC_SEED replays)`, () => {
    const r = rng(SEED);
    for (let run = 0; run < 60; run++) {
      const w = new EntryWriter();
      w.header("log");
      let bytes = new Uint8Array(0);
      const flush = () => {
        const more = w.take();
        const next = new Uint8Array(bytes.length + more.length);
        next.set(bytes);
        next.set(more, bytes.length);
        bytes = next;
      };
      const mem = new MemoryPaxosState(b(0, 0, ""));
      const logged = new LoggedPaxosState(mem, (change) => w.entry({ type: "paxos", change }));
      const a = new Acceptor(logged, 3);
      const keys = ["k0", "k1", "k2", "k3", "k4"];
      let clock = 1;
      /** After each op: the log's length, the state as logged, and the ballots answered so far. */
      const points: {
        bytes: number;
        state: Map<string, PaxosEntry | undefined>;
        floor: Version;
        answered: { key: string; ballot: Version }[];
      }[] = [];
      const answered: { key: string; ballot: Version }[] = [];
      for (let i = 0; i < 60; i++) {
        const key = r.pick(keys);
        clock += r.int(3);
        const ballot = b(clock, r.int(3), r.pick(["n1", "n2", "n3"]));
        const op = r.int(3);
        if (op === 0 && a.prepare(key, ballot).ok) answered.push({ key, ballot });
        else if (op === 1 && a.propose(key, ballot, { ...rec(`v${i}`, ballot), key }).ok) {
          answered.push({ key, ballot });
        } else if (op === 2) a.commit(key, ballot, ballot);
        flush();
        const state = new Map<string, PaxosEntry | undefined>();
        for (const k of mem.keys()) state.set(k, loggedEntry(mem.get(k)!));
        points.push({ bytes: bytes.length, state, floor: mem.floor(), answered: [...answered] });
      }
      // A power cut after op `cut`: the log keeps everything up to it (its answer waited for
      // that), and maybe a torn part of the next entry.
      const cut = r.pick(points);
      const nextLen = cut.bytes + 12 <= bytes.length
        ? new DataView(bytes.buffer, bytes.byteOffset + cut.bytes).getUint32(0, true) + 12
        : 0;
      const kept = bytes.subarray(0, cut.bytes + (nextLen > 0 ? r.int(nextLen) : 0));
      const restored = new MemoryPaxosState(b(0, 0, ""));
      const s = scanFile(kept, "log", (e) => {
        if (e.type === "paxos") replayChange(restored, e.change);
      });
      expect(s.problem === undefined || s.problem.kind === "torn").toBe(true);
      // The state as logged at the cut, key by key, and the floor.
      expect(new Map([...restored.keys()].map((k) => [k, restored.get(k)]))).toEqual(cut.state);
      expect(restored.floor()).toEqual(cut.floor);
      // Safety: no ballot at or below one answered before the cut is promised or accepted again.
      const again = new Acceptor(restored, 3);
      for (const x of cut.answered) {
        expect(again.prepare(x.key, x.ballot).ok).toBe(false);
        expect(again.propose(x.key, b(x.ballot.wallMs - 1), rec("late", b(0))).ok).toBe(false);
      }
    }
  });

  test("what is logged of an entry: everything but recent commits, which it says it forgot", () => {
    const e = {
      promised: b(9),
      committed: b(8),
      recent: [{ ballot: b(5), version: b(5) }, { ballot: b(8), version: b(8) }],
      forgotten: b(2),
    };
    expect(loggedEntry(e)).toEqual({ promised: b(9), committed: b(8), forgotten: b(8) });
    expect(loggedEntry({ promised: b(3) })).toEqual({ promised: b(3) });
    // A restored entry answers "unknown" for a proposal at or below its last commit.
    const restored = [{ ...loggedEntry(e) }];
    expect(settledBy(restored, { ballot: b(6), record: rec("x", b(6, 1)) })).toBe("unknown");
  });
});
