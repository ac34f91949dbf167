/** MemberTable: the orchestrator's membership rules with time passed in by hand. */
import { describe, expect, test } from "bun:test";
import { type MemberSummary, MemberTable } from "../../src/core/membership.ts";

const TIMERS = { downAfterMs: 3000, deadAfterMs: 30_000 };
const T0 = 1_000_000;

const summary = (id: string, incarnation = 1, inRing = true): MemberSummary => ({
  id,
  address: id,
  inRing,
  incarnation,
});

/** A table with members a, b, c registered at T0. */
function threeMembers(membersMax = 16): MemberTable {
  const t = new MemberTable(TIMERS, membersMax);
  for (const id of ["a", "b", "c"]) expect(t.register(summary(id), [], T0)).toBe(true);
  return t;
}

describe("register", () => {
  test("a new member is UP and in the ring, with its times set", () => {
    const t = new MemberTable(TIMERS, 16);
    expect(t.register(summary("n1", 7), [], T0)).toBe(true);
    expect(t.get("n1")).toEqual({
      id: "n1",
      address: "n1",
      state: "UP",
      inRing: true,
      incarnation: 7,
      stateSinceMs: T0,
      lastSeenMs: T0,
    });
    expect(t.size).toBe(1);
    expect(t.ringIds()).toEqual(["n1"]);
  });

  test("registering again with nothing new returns false but refreshes lastSeen", () => {
    const t = threeMembers();
    expect(t.register(summary("a"), [], T0 + 500)).toBe(false);
    expect(t.get("a")!.lastSeenMs).toBe(T0 + 500);
  });

  const changes: readonly [name: string, again: MemberSummary][] = [
    ["a new address", { id: "a", address: "10.0.0.9:8080", inRing: true, incarnation: 1 }],
    ["a higher incarnation (restart)", summary("a", 2)],
  ];
  for (const [name, again] of changes) {
    test(`registering again with ${name} returns true`, () => {
      const t = threeMembers();
      expect(t.register(again, [], T0 + 100)).toBe(true);
      expect(t.get("a")!.address).toBe(again.address);
      expect(t.get("a")!.incarnation).toBe(again.incarnation);
    });
  }

  test("a DOWN member that registers again is UP and back in the ring", () => {
    const t = threeMembers();
    t.probeResult("a", false, T0 + 1000);
    t.tick(T0 + 3000);
    t.tick(T0 + 3000 + 30_000);
    expect(t.get("a")).toMatchObject({ state: "DOWN", inRing: false });
    expect(t.register(summary("a", 2), [], T0 + 40_000)).toBe(true);
    expect(t.get("a")).toMatchObject({ state: "UP", inRing: true, stateSinceMs: T0 + 40_000 });
    expect(t.ringIds()).toEqual(["a", "b", "c"]);
  });

  test("`known` members in the ring are added (orchestrator restart rebuilds the view)", () => {
    const t = new MemberTable(TIMERS, 16);
    const known = [summary("b", 3), summary("c", 4), summary("a")];
    expect(t.register(summary("a"), known, T0)).toBe(true);
    expect(t.ringIds()).toEqual(["a", "b", "c"]);
    expect(t.get("b")).toMatchObject({ state: "UP", inRing: true, incarnation: 3 });
    expect(t.get("c")).toMatchObject({ state: "UP", inRing: true, incarnation: 4 });
  });

  test("`known` members marked inRing:false are not added", () => {
    const t = new MemberTable(TIMERS, 16);
    expect(t.register(summary("a"), [summary("b"), summary("dead", 1, false)], T0)).toBe(true);
    expect(t.get("dead")).toBeUndefined();
    expect(t.ringIds()).toEqual(["a", "b"]);
  });

  test("`known` never overrides what the table already knows first-hand", () => {
    const t = threeMembers();
    t.probeResult("b", false, T0 + 1000); // b is SUSPECT here
    const stale = { id: "b", address: "elsewhere:1", inRing: true, incarnation: 9 };
    expect(t.register(summary("a"), [stale], T0 + 1500)).toBe(false);
    expect(t.get("b")).toMatchObject({ state: "SUSPECT", address: "b", incarnation: 1 });
  });

  test("registering an existing member with only already-known `known` returns false", () => {
    const t = threeMembers();
    expect(t.register(summary("a"), [summary("b"), summary("c")], T0 + 10)).toBe(false);
  });

  test("an existing member whose `known` adds someone new returns true", () => {
    const t = threeMembers();
    expect(t.register(summary("a"), [summary("d")], T0 + 10)).toBe(true);
    expect(t.ringIds()).toEqual(["a", "b", "c", "d"]);
  });
});

describe("membersMax", () => {
  test("a new member beyond the bound gets 'full' and is not added", () => {
    const t = new MemberTable(TIMERS, 2);
    expect(t.register(summary("a"), [], T0)).toBe(true);
    expect(t.register(summary("b"), [], T0)).toBe(true);
    expect(t.register(summary("c"), [], T0)).toBe("full");
    expect(t.size).toBe(2);
    expect(t.get("c")).toBeUndefined();
  });

  test("an existing member can still re-register when the table is full", () => {
    const t = new MemberTable(TIMERS, 2);
    t.register(summary("a"), [], T0);
    t.register(summary("b"), [], T0);
    expect(t.register(summary("a", 2), [], T0 + 1)).toBe(true);
    expect(t.register(summary("b"), [], T0 + 1)).toBe(false);
  });

  test("`known` members are added only up to the bound", () => {
    const t = new MemberTable(TIMERS, 3);
    const known = ["b", "c", "d", "e"].map((id) => summary(id));
    expect(t.register(summary("a"), known, T0)).toBe(true);
    expect(t.size).toBe(3);
    expect(t.ringIds()).toEqual(["a", "b", "c"]);
  });
});

describe("health transitions", () => {
  test("one failed probe: SUSPECT, still in the ring", () => {
    const t = threeMembers();
    expect(t.probeResult("a", false, T0 + 1000)).toBe(true);
    expect(t.get("a")).toMatchObject({ state: "SUSPECT", inRing: true, stateSinceMs: T0 + 1000 });
    expect(t.ringIds()).toEqual(["a", "b", "c"]);
  });

  test("a second failed probe before downAfterMs changes nothing", () => {
    const t = threeMembers();
    t.probeResult("a", false, T0 + 1000);
    expect(t.probeResult("a", false, T0 + 2000)).toBe(false);
    expect(t.get("a")!.state).toBe("SUSPECT");
  });

  test("no good probe for downAfterMs: DOWN (measured from the last good contact)", () => {
    const t = threeMembers();
    t.probeResult("a", false, T0 + 1000);
    expect(t.tick(T0 + 2999)).toBe(false);
    expect(t.get("a")!.state).toBe("SUSPECT");
    expect(t.tick(T0 + 3000)).toBe(true);
    expect(t.get("a")).toMatchObject({ state: "DOWN", inRing: true, stateSinceMs: T0 + 3000 });
    expect(t.ringIds()).toEqual(["a", "b", "c"]);
  });

  test("a failed probe past downAfterMs takes a SUSPECT member DOWN directly", () => {
    const t = threeMembers();
    t.probeResult("a", false, T0 + 1000);
    expect(t.probeResult("a", false, T0 + 3000)).toBe(true);
    expect(t.get("a")!.state).toBe("DOWN");
  });

  test("DOWN for deadAfterMs: out of the ring but still listed", () => {
    const t = threeMembers();
    t.probeResult("a", false, T0 + 1000);
    t.tick(T0 + 3000); // DOWN since T0+3000
    expect(t.tick(T0 + 3000 + 29_999)).toBe(false);
    expect(t.get("a")!.inRing).toBe(true);
    expect(t.tick(T0 + 3000 + 30_000)).toBe(true);
    expect(t.get("a")).toMatchObject({ state: "DOWN", inRing: false });
    expect(t.ringIds()).toEqual(["b", "c"]);
    expect(t.list().map((m) => m.id)).toEqual(["a", "b", "c"]);
    // Nothing further happens to a dead member.
    expect(t.tick(T0 + 1_000_000)).toBe(false);
    expect(t.probeResult("a", false, T0 + 1_000_000)).toBe(false);
  });

  test("a good probe brings a SUSPECT member back UP", () => {
    const t = threeMembers();
    t.probeResult("a", false, T0 + 1000);
    expect(t.probeResult("a", true, T0 + 2000)).toBe(true);
    expect(t.get("a")).toMatchObject({
      state: "UP",
      inRing: true,
      stateSinceMs: T0 + 2000,
      lastSeenMs: T0 + 2000,
    });
    // The good probe reset the down timer.
    expect(t.tick(T0 + 4000)).toBe(false);
  });

  test("a good probe brings a dead member back UP and into the ring", () => {
    const t = threeMembers();
    t.probeResult("a", false, T0 + 1000);
    t.tick(T0 + 3000);
    t.tick(T0 + 33_000);
    expect(t.ringIds()).toEqual(["b", "c"]);
    expect(t.probeResult("a", true, T0 + 40_000)).toBe(true);
    expect(t.get("a")).toMatchObject({ state: "UP", inRing: true });
    expect(t.ringIds()).toEqual(["a", "b", "c"]);
  });

  test("a repeated good probe of an UP member returns false", () => {
    const t = threeMembers();
    expect(t.probeResult("a", true, T0 + 1000)).toBe(false);
    expect(t.probeResult("a", true, T0 + 2000)).toBe(false);
    expect(t.get("a")!.lastSeenMs).toBe(T0 + 2000);
  });

  test("a good probe records a higher incarnation, never a lower one", () => {
    const t = threeMembers();
    t.probeResult("a", true, T0 + 1000, 5);
    expect(t.get("a")!.incarnation).toBe(5);
    t.probeResult("a", true, T0 + 2000, 3);
    expect(t.get("a")!.incarnation).toBe(5);
  });

  test("probing an unknown member changes nothing", () => {
    const t = threeMembers();
    expect(t.probeResult("zz", true, T0)).toBe(false);
    expect(t.probeResult("zz", false, T0)).toBe(false);
    expect(t.get("zz")).toBeUndefined();
  });

  test("tick on a healthy table changes nothing, however late", () => {
    const t = threeMembers();
    expect(t.tick(T0 + 10_000_000)).toBe(false);
    expect(t.list().every((m) => m.state === "UP" && m.inRing)).toBe(true);
  });

  test("tick reports a change when any one member changes", () => {
    const t = threeMembers();
    t.probeResult("c", false, T0 + 1000);
    expect(t.tick(T0 + 3000)).toBe(true);
    expect(t.list().map((m) => m.state)).toEqual(["UP", "UP", "DOWN"]);
  });
});

describe("leave", () => {
  test("a leaving member is out of the ring at once and listed LEFT", () => {
    const t = threeMembers();
    expect(t.leave("b", T0 + 100)).toBe(true);
    expect(t.get("b")).toMatchObject({ state: "LEFT", inRing: false, stateSinceMs: T0 + 100 });
    expect(t.ringIds()).toEqual(["a", "c"]);
    expect(t.size).toBe(3);
  });

  test("a member that left stays LEFT and out of the ring whatever probes say", () => {
    const t = threeMembers();
    t.leave("b", T0 + 100);
    expect(t.probeResult("b", true, T0 + 200)).toBe(false);
    expect(t.probeResult("b", false, T0 + 300)).toBe(false);
    expect(t.tick(T0 + 1_000_000)).toBe(false);
    expect(t.get("b")).toMatchObject({ state: "LEFT", inRing: false });
  });

  test("a good probe that raises the incarnation is a change; a stale registration is not", () => {
    const t = threeMembers();
    const inc = t.get("a")!.incarnation;
    expect(t.probeResult("a", true, T0 + 10, inc + 1)).toBe(true);
    expect(
      t.register(
        { id: "a", address: t.get("a")!.address, inRing: true, incarnation: inc },
        [],
        T0 + 20,
      ),
    )
      .toBe(false);
    expect(t.get("a")!.incarnation).toBe(inc + 1);
  });

  test("leaving twice returns false the second time", () => {
    const t = threeMembers();
    t.leave("b", T0 + 100);
    expect(t.leave("b", T0 + 200)).toBe(false);
  });

  test("leave of an unknown member returns false", () => {
    const t = threeMembers();
    expect(t.leave("zz", T0)).toBe(false);
    expect(t.size).toBe(3);
  });

  test("a member that left can register again", () => {
    const t = threeMembers();
    t.leave("b", T0 + 100);
    expect(t.register(summary("b", 2), [], T0 + 200)).toBe(true);
    expect(t.ringIds()).toEqual(["a", "b", "c"]);
  });
});

describe("list and ringIds", () => {
  test("are sorted by id whatever the registration order", () => {
    const t = new MemberTable(TIMERS, 16);
    for (const id of ["m", "b", "z", "a"]) t.register(summary(id), [], T0);
    expect(t.list().map((m) => m.id)).toEqual(["a", "b", "m", "z"]);
    expect(t.ringIds()).toEqual(["a", "b", "m", "z"]);
  });
});
