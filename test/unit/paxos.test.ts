/** Paxos acceptor and proposer helpers (src/core/paxos.ts): promises, accepts, floor, bounds. */
import { describe, expect, test } from "bun:test";
import type { Version } from "../../src/core/hlc.ts";
import {
  Acceptor,
  applyMutation,
  backoffMs,
  holds,
  inProgress,
  MemoryPaxosState,
  RECENT_COMMITS,
  settledBy,
} from "../../src/core/paxos.ts";
import type { KvRecord } from "../../src/core/record.ts";

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
