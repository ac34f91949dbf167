/** Ring: the partition table, preference orders and liveness a node derives from a view. */
import { describe, expect, test } from "bun:test";
import type { MemberState, Role } from "../../src/core/membership.ts";
import { buildPartitionTable, partitionOf } from "../../src/core/placement.ts";
import { Ring, type View, type ViewMember } from "../../src/core/view.ts";

const P = 64;

function member(
  id: string,
  state: MemberState = "UP",
  inRing = true,
  role: Role = "node",
): ViewMember {
  return { id, address: `http://${id}`, role, state, inRing, incarnation: 1 };
}

function view(members: ViewMember[], replicationFactor = 3, partitions = P): View {
  return { instance: "i1", epoch: 1, replicationFactor, partitions, members };
}

const ids = (ms: readonly ViewMember[]): string[] => ms.map((m) => m.id);

/** Views with their in-ring node members, in several shapes. */
const VIEWS: readonly [string, View, string[]][] = [
  [
    "five nodes",
    view(["n1", "n2", "n3", "n4", "n5"].map((id) => member(id))),
    ["n1", "n2", "n3", "n4", "n5"],
  ],
  [
    "orchestrator and a joining node excluded",
    view([
      member("orch", "UP", true, "orchestrator"),
      member("n1"),
      member("n2", "SUSPECT"),
      member("n3", "DOWN"),
      member("n4"),
      member("joining", "UP", false),
      member("orch2", "UP", false, "orchestrator"),
    ]),
    ["n1", "n2", "n3", "n4"],
  ],
  [
    "members listed out of order",
    view(["n5", "n3", "n1", "n4", "n2", "n6"].map((id) => member(id))),
    ["n1", "n2", "n3", "n4", "n5", "n6"],
  ],
  ["two nodes, N=3 capped to 2", view([member("a"), member("b")]), ["a", "b"]],
  ["one node", view([member("solo"), member("o", "UP", true, "orchestrator")]), ["solo"]],
  ["N=1", view(["a", "b", "c"].map((id) => member(id)), 1), ["a", "b", "c"]],
  ["no ring members", view([member("o", "UP", true, "orchestrator")]), []],
];

describe("Ring from a View", () => {
  for (const [name, v, ring] of VIEWS) {
    describe(name, () => {
      const r = new Ring(v);
      const n = Math.min(v.replicationFactor, ring.length);

      test("table equals buildPartitionTable over the in-ring node members", () => {
        expect(r.table).toEqual(buildPartitionTable(ring, v.partitions, v.replicationFactor));
        expect(r.table).toHaveLength(v.partitions);
        expect(r.n).toBe(v.partitions > 0 ? n : 0);
        for (const row of r.table) for (const id of row) expect(ring).toContain(id);
      });

      test("order[p] starts with table[p] and holds every ring member once", () => {
        expect(r.order).toHaveLength(v.partitions);
        for (let p = 0; p < v.partitions; p++) {
          const order = r.order[p]!;
          expect(order.slice(0, n)).toEqual(r.table[p]!);
          expect([...order].sort()).toEqual([...ring].sort());
        }
      });

      test("fallbacksOf(p) is the order minus the replicas", () => {
        for (let p = 0; p < v.partitions; p++) {
          const replicas = r.table[p]!;
          expect(ids(r.fallbacksOf(p))).toEqual(r.order[p]!.filter((id) => !replicas.includes(id)));
          expect(ids(r.replicasOf(p))).toEqual(replicas);
          for (const m of [...r.fallbacksOf(p), ...r.replicasOf(p)]) {
            expect(m).toBe(r.byId.get(m.id)!);
          }
        }
        expect(r.fallbacksOf(v.partitions)).toEqual([]);
        expect(r.replicasOf(v.partitions)).toEqual([]);
      });

      test("partitionsOf(id) lists exactly the partitions whose table holds id", () => {
        let slots = 0;
        for (const id of [...ring, "orch", "joining", "unknown"]) {
          const got = r.partitionsOf(id);
          slots += got.length;
          const want = r.table.flatMap((row, p) => (row.includes(id) ? [p] : []));
          expect(got).toEqual(want);
          if (!ring.includes(id)) expect(got).toEqual([]);
        }
        expect(slots).toBe(v.partitions * n);
      });

      test("replicas(key) is replicasOf(partitionOf(key))", () => {
        for (const key of ["a", "b", "hello", "ключ", ""]) {
          expect(r.partition(key)).toBe(partitionOf(key, v.partitions));
          expect(r.replicas(key)).toEqual(r.replicasOf(r.partition(key)));
        }
      });
    });
  }

  test("every member is in byId, in-ring or not", () => {
    const v = VIEWS[1]![1];
    const r = new Ring(v);
    expect([...r.byId.keys()].sort()).toEqual(ids(v.members).sort());
  });

  test("out-of-ring members never appear in any order", () => {
    const r = new Ring(VIEWS[1]![1]);
    for (const order of r.order) {
      for (const id of ["orch", "orch2", "joining"]) expect(order).not.toContain(id);
    }
  });
});

describe("isAlive", () => {
  const r = new Ring(
    view([
      member("up", "UP"),
      member("suspect", "SUSPECT"),
      member("down", "DOWN"),
      member("left", "LEFT"),
      member("out-up", "UP", false),
      member("orch", "UP", true, "orchestrator"),
    ]),
  );
  const cases: readonly [string, boolean][] = [
    ["up", true],
    ["suspect", true],
    ["down", false],
    ["left", false],
    ["out-up", true],
    ["orch", true],
    ["unknown", false],
  ];
  for (const [id, alive] of cases) {
    test(`${id} → ${alive}`, () => {
      expect(r.isAlive(id)).toBe(alive);
    });
  }

  test("a DOWN member in the ring keeps its replica slots", () => {
    const all = new Ring(view(["a", "b", "c", "d"].map((id) => member(id))));
    const oneDown = new Ring(
      view(["a", "b", "c", "d"].map((id) => member(id, id === "c" ? "DOWN" : "UP"))),
    );
    expect(oneDown.table).toEqual(all.table);
    expect(oneDown.isAlive("c")).toBe(false);
  });
});

describe("without, ids, majorityAlive", () => {
  test("the ring before a member joined: same view, that member out of the ring", () => {
    const ring = new Ring(view([member("a"), member("b"), member("c")]));
    expect(ring.ids).toEqual(["a", "b", "c"]);
    const before = ring.without("c")!;
    expect(before.ids).toEqual(["a", "b"]);
    expect(before.table).toEqual(new Ring(view([member("a"), member("b")])).table);
    expect(ring.without("x")).toBeUndefined(); // not in the ring
    expect(new Ring(view([member("a")])).without("a")).toBeUndefined(); // nobody else
  });

  test("a strict majority of the ring members UP; SUSPECT does not count", () => {
    const three = (s: MemberState) => [member("a"), member("b", s), member("c", s)];
    expect(new Ring(view([member("a"), member("b"), member("c", "DOWN")])).majorityAlive).toBe(
      true,
    );
    expect(new Ring(view(three("DOWN"))).majorityAlive).toBe(false);
    expect(new Ring(view(three("SUSPECT"))).majorityAlive).toBe(false);
  });
});
