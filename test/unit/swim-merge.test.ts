/** SWIM merge rule: incarnation, then state precedence, then the ring flag; refutation of self. */
import { describe, expect, test } from "bun:test";
import type { MemberState } from "../../src/core/membership.ts";
import {
  type Gossip,
  memberRecord,
  mergeMember,
  supersedes,
  type SwimMember,
} from "../../src/core/swim-merge.ts";
import { rng, SEEDS } from "./seeded.ts";

const rec = (
  incarnation: number,
  state: MemberState = "UP",
  inRing = true,
  id = "x",
): SwimMember => ({ id, address: `${id}:7946`, role: "node", incarnation, state, inRing });

describe("supersedes", () => {
  const cases: readonly [string, SwimMember, SwimMember, boolean][] = [
    ["higher incarnation wins over any state", rec(2, "UP"), rec(1, "LEFT"), true],
    ["lower incarnation never wins", rec(1, "LEFT"), rec(2, "UP"), false],
    ["SUSPECT beats UP at equal incarnation", rec(3, "SUSPECT"), rec(3, "UP"), true],
    ["DOWN beats SUSPECT", rec(3, "DOWN"), rec(3, "SUSPECT"), true],
    ["LEFT beats DOWN", rec(3, "LEFT"), rec(3, "DOWN"), true],
    ["UP does not beat SUSPECT", rec(3, "UP"), rec(3, "SUSPECT"), false],
    ["DOWN out of ring beats DOWN in ring", rec(3, "DOWN", false), rec(3, "DOWN", true), true],
    ["DOWN in ring does not beat DOWN out", rec(3, "DOWN", true), rec(3, "DOWN", false), false],
    ["a stronger state beats the ring flag", rec(3, "LEFT", true), rec(3, "DOWN", false), true],
    ["identical records: not newer", rec(3, "DOWN"), rec(3, "DOWN"), false],
  ];
  for (const [name, a, b, want] of cases) {
    test(name, () => expect(supersedes(a, b)).toBe(want));
  }
});

describe("the peer link port is the member's own word", () => {
  const withPort = (r: SwimMember, linkPort: number): SwimMember => ({ ...r, linkPort });
  test("a record keeps its link port; one without stays without", () => {
    expect(memberRecord({ ...withPort(rec(1), 9100), by: "y" } as Gossip)).toEqual(
      withPort(rec(1), 9100),
    );
    expect("linkPort" in memberRecord(rec(1))).toBe(false);
  });
  test("it comes with a new incarnation, never with news at the same one", () => {
    const r = mergeMember(withPort(rec(1), 9100), withPort(rec(2), 9200), "self");
    expect(r.kind === "replaced" && r.next.linkPort).toBe(9200);
    const gone = mergeMember(withPort(rec(1), 9100), rec(2), "self");
    expect(gone.kind === "replaced" && "linkPort" in gone.next).toBe(false);
    // A suspicion at the same incarnation that carries another port (or none) keeps ours.
    const s1 = mergeMember(withPort(rec(2), 9100), withPort(rec(2, "SUSPECT"), 9999), "self");
    expect(s1).toEqual({
      kind: "replaced",
      prev: withPort(rec(2), 9100),
      next: withPort(rec(2, "SUSPECT"), 9100),
    });
    const s2 = mergeMember(withPort(rec(2), 9100), rec(2, "DOWN"), "self");
    expect(s2.kind === "replaced" && s2.next.linkPort).toBe(9100);
    const s3 = mergeMember(rec(2), withPort(rec(2, "DOWN"), 9100), "self");
    expect(s3.kind === "replaced" && "linkPort" in s3.next).toBe(false);
  });
});

describe("mergeMember about another member", () => {
  test("an unknown member is added, without the gossip's author", () => {
    const update: Gossip = { ...rec(4, "SUSPECT"), by: "y" };
    const r = mergeMember(undefined, update, "self");
    expect(r).toEqual({ kind: "added", next: rec(4, "SUSPECT") });
  });

  const table: readonly [string, SwimMember, SwimMember, "replaced" | "stale"][] = [
    ["newer incarnation (a refutation)", rec(1, "SUSPECT"), rec(2, "UP"), "replaced"],
    ["older incarnation", rec(2, "UP"), rec(1, "DOWN"), "stale"],
    ["same incarnation, SUSPECT over UP", rec(2, "UP"), rec(2, "SUSPECT"), "replaced"],
    ["same incarnation, UP under SUSPECT", rec(2, "SUSPECT"), rec(2, "UP"), "stale"],
    ["same incarnation, DOWN over SUSPECT", rec(2, "SUSPECT"), rec(2, "DOWN"), "replaced"],
    ["same incarnation, LEFT over DOWN", rec(2, "DOWN"), rec(2, "LEFT"), "replaced"],
    ["same DOWN, taken out of the ring", rec(2, "DOWN", true), rec(2, "DOWN", false), "replaced"],
    ["same DOWN, back in the ring: no", rec(2, "DOWN", false), rec(2, "DOWN", true), "stale"],
    ["the very same record", rec(2, "DOWN"), rec(2, "DOWN"), "stale"],
  ];
  for (const [name, local, update, kind] of table) {
    test(`${name}: ${kind}`, () => {
      const r = mergeMember(local, update, "self");
      expect(r.kind).toBe(kind);
      if (r.kind === "replaced") expect(r.next).toEqual(update);
    });
  }

  test("a new address only comes with a new incarnation", () => {
    const moved = { ...rec(2), address: "10.9.9.9:7946" };
    expect(mergeMember(rec(2), moved, "self").kind).toBe("stale");
    const restarted = { ...rec(3), address: "10.9.9.9:7946" };
    const r = mergeMember(rec(2), restarted, "self");
    expect(r.kind === "replaced" && r.next.address).toBe("10.9.9.9:7946");
  });

  test("news at the same incarnation changes state and ring flag, never address or role", () => {
    const forged: SwimMember = {
      ...rec(2, "DOWN", false),
      address: "10.9.9.9:7946",
      role: "orchestrator",
    };
    const r = mergeMember(rec(2), forged, "self");
    expect(r.kind === "replaced" && r.next).toEqual(rec(2, "DOWN", false));
  });
});

describe("mergeMember about ourselves", () => {
  const me = (incarnation: number, state: MemberState = "UP") =>
    rec(incarnation, state, true, "me");

  const refuted: readonly [string, SwimMember, SwimMember, number][] = [
    ["SUSPECT at our incarnation", me(5), me(5, "SUSPECT"), 6],
    ["DOWN at our incarnation", me(5), me(5, "DOWN"), 6],
    ["DOWN above our incarnation (news from before a restart)", me(5), me(9, "DOWN"), 10],
    ["UP above our incarnation", me(5), me(7, "UP"), 8],
    ["LEFT while we are not leaving", me(5), me(5, "LEFT"), 6],
  ];
  for (const [name, local, update, inc] of refuted) {
    test(`${name}: refuted with incarnation ${inc}, still UP`, () => {
      const r = mergeMember(local, update, "me");
      expect(r).toEqual({ kind: "refute", prev: local, next: { ...local, incarnation: inc } });
    });
  }

  const ignored: readonly [string, SwimMember, SwimMember][] = [
    ["UP at our incarnation", me(5), me(5, "UP")],
    ["SUSPECT at an older incarnation (already refuted)", me(5), me(4, "SUSPECT")],
    ["LEFT at our incarnation while we are leaving", me(5, "LEFT"), me(5, "LEFT")],
    ["SUSPECT while we are leaving (LEFT is stronger)", me(5, "LEFT"), me(5, "SUSPECT")],
  ];
  for (const [name, local, update] of ignored) {
    test(`${name}: stale`, () => expect(mergeMember(local, update, "me").kind).toBe("stale"));
  }

  test("a leaving member re-asserts LEFT above newer news", () => {
    const r = mergeMember(me(5, "LEFT"), me(6, "DOWN"), "me");
    expect(r.kind === "refute" && r.next).toEqual({ ...me(7, "LEFT") });
  });

  test("our own record must be known", () => {
    expect(() => mergeMember(undefined, me(1), "me")).toThrow(/own record/);
  });
});

describe("merge is order-independent (every member ends with the same record)", () => {
  const states: MemberState[] = ["UP", "SUSPECT", "DOWN", "LEFT"];
  const apply = (updates: readonly SwimMember[]): SwimMember | undefined => {
    let local: SwimMember | undefined;
    for (const u of updates) {
      const r = mergeMember(local, u, "self");
      if (r.kind === "added" || r.kind === "replaced") local = r.next;
    }
    return local;
  };

  test("any permutation of the same updates gives the same result", () => {
    for (const seed of SEEDS) {
      const r = rng(seed);
      const updates = Array.from(
        { length: 1 + r.int(8) },
        () => rec(r.int(3), r.pick(states), r.next() < 0.5),
      );
      const want = apply(updates);
      for (let i = 0; i < 5; i++) {
        expect({ seed, got: apply(r.shuffle(updates)) }).toEqual({ seed, got: want });
      }
      // The winner is one of the updates and no update supersedes it.
      expect(updates.some((u) => supersedes(u, want!))).toBe(false);
    }
  });

  test("memberRecord drops extra fields", () => {
    const g = { ...rec(1), by: "y", extra: 1 };
    expect(memberRecord(g)).toEqual(rec(1));
  });
});
