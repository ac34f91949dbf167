/** The move planner: who streams which partition to whom after a ring change, and who drops. */
import { describe, expect, test } from "bun:test";
import {
  incoming,
  mergedFrom,
  type MovePlan,
  type MoveTask,
  planMoves,
  sourcesNeeded,
  tablesDiffer,
} from "../../src/core/move-planner.ts";
import { buildPartitionTable } from "../../src/core/placement.ts";

type Table = readonly (readonly string[])[];

const P = 256;
const N = 3;
const FIVE = ["n1", "n2", "n3", "n4", "n5"];
const SIX = [...FIVE, "n6"];
const OLD5 = buildPartitionTable(FIVE, P, N);
const NEW6 = buildPartitionTable(SIX, P, N);

interface Options {
  /** Partitions `self` holds data for; default: those it owned in the old table. */
  held?: (self: string, p: number) => boolean;
  dead?: readonly string[];
}

function plan(
  self: string,
  oldTable: Table | undefined,
  newTable: Table,
  o: Options = {},
): MovePlan {
  const dead = new Set(o.dead ?? []);
  return planMoves({
    self,
    oldTable,
    newTable,
    held: (p) => (o.held ?? ((s, q) => oldTable?.[q]?.includes(s) ?? false))(self, p),
    alive: (id) => !dead.has(id),
  });
}

/** Plans of every live node, and the senders of each partition across them. */
function simulate(
  nodes: readonly string[],
  oldTable: Table | undefined,
  newTable: Table,
  o: Options = {},
) {
  const dead = new Set(o.dead ?? []);
  const plans = new Map<string, MovePlan>();
  const senders = new Map<number, { node: string; task: MoveTask }[]>();
  for (const node of nodes) {
    if (dead.has(node)) continue;
    const pl = plan(node, oldTable, newTable, o);
    plans.set(node, pl);
    for (const task of pl.tasks) {
      const list = senders.get(task.partition) ?? [];
      list.push({ node, task });
      senders.set(task.partition, list);
    }
  }
  return { plans, senders };
}

const minus = (a: readonly string[], b: readonly string[]): string[] =>
  a.filter((x) => !b.includes(x));
const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && minus(a, b).length === 0;
const partitions = (pred: (p: number) => boolean): number[] =>
  Array.from({ length: P }, (_, p) => p).filter(pred);
/** Partitions whose replica set changed between the tables. */
const changedIn = (oldTable: Table, newTable: Table): number[] =>
  partitions((p) => !sameSet(oldTable[p]!, newTable[p]!));
/** Partitions where `id` is newly an owner. */
const gainedBy = (id: string, oldTable: Table, newTable: Table): number[] =>
  partitions((p) => newTable[p]!.includes(id) && !oldTable[p]!.includes(id));

describe("hand-written tables", () => {
  const cases: readonly {
    name: string;
    self: string;
    old: Table | undefined;
    now: Table;
    held?: number[];
    dead?: string[];
    tasks: MoveTask[];
    movingIn: number[];
  }[] = [
    {
      name: "displaced owner streams to the added owner and drops",
      self: "c",
      old: [["a", "b", "c"], ["b", "c", "d"]],
      now: [["a", "b", "d"], ["b", "c", "d"]],
      tasks: [{ partition: 0, targets: ["d"], drop: true }],
      movingIn: [],
    },
    {
      name: "continuing owner stays quiet while the displaced owner is alive",
      self: "a",
      old: [["a", "b", "c"]],
      now: [["a", "b", "d"]],
      tasks: [],
      movingIn: [],
    },
    {
      name: "added owner: moving in",
      self: "d",
      old: [["a", "b", "c"]],
      now: [["a", "b", "d"]],
      held: [],
      tasks: [],
      movingIn: [0],
    },
    {
      name: "displaced owner dead: the first continuing owner streams and keeps its copy",
      self: "a",
      old: [["a", "b", "c"]],
      now: [["a", "b", "d"]],
      dead: ["c"],
      tasks: [{ partition: 0, targets: ["d"], drop: false }],
      movingIn: [],
    },
    {
      name: "displaced and first continuing owner dead: the second continuing owner streams",
      self: "b",
      old: [["a", "b", "c"]],
      now: [["a", "b", "d"]],
      dead: ["c", "a"],
      tasks: [{ partition: 0, targets: ["d"], drop: false }],
      movingIn: [],
    },
    {
      name: "preference order in the new table decides the continuing sender",
      self: "b",
      old: [["a", "b", "c"]],
      now: [["b", "d", "a"]],
      dead: ["c"],
      tasks: [{ partition: 0, targets: ["d"], drop: false }],
      movingIn: [],
    },
    {
      name: "designated continuing owner that holds nothing sends an empty task (done)",
      self: "a",
      old: [["a", "b", "c"]],
      now: [["a", "b", "d"]],
      held: [],
      dead: ["c"],
      tasks: [{ partition: 0, targets: ["d"], drop: false }],
      movingIn: [],
    },
    {
      name: "the last node leaving: no owner left, nothing planned (the data stays)",
      self: "a",
      old: [["a"]],
      now: [[]],
      held: [0],
      tasks: [],
      movingIn: [],
    },
    {
      name: "a displaced owner holding nothing still says done to the added owner",
      self: "c",
      old: [["a", "b", "c"], ["c", "a", "b"]],
      now: [["a", "b", "d"], ["c", "a", "b"]],
      held: [],
      tasks: [{ partition: 0, targets: ["d"], drop: true }],
      movingIn: [],
    },
    {
      name: "growth without displacement: the first continuing owner streams",
      self: "a",
      old: [["a", "b"]],
      now: [["a", "b", "c"]],
      tasks: [{ partition: 0, targets: ["c"], drop: false }],
      movingIn: [],
    },
    {
      name: "growth without displacement: the second continuing owner does not",
      self: "b",
      old: [["a", "b"]],
      now: [["a", "b", "c"]],
      tasks: [],
      movingIn: [],
    },
    {
      name: "stray holder (owner elsewhere, never of p) streams to every new owner and drops",
      self: "e",
      old: [["a", "b", "c"], ["e", "a", "b"]],
      now: [["a", "b", "d"], ["e", "a", "b"]],
      held: [0],
      tasks: [{ partition: 0, targets: ["a", "b", "d"], drop: true }],
      movingIn: [],
    },
    {
      name: "non-owner that holds nothing does nothing",
      self: "e",
      old: [["a", "b", "c"]],
      now: [["a", "b", "d"]],
      held: [],
      tasks: [],
      movingIn: [],
    },
    {
      name: "displaced from one partition, still owner of another: only the added owners",
      self: "c",
      old: [["a", "b", "c"], ["c", "a", "b"]],
      now: [["a", "b", "d"], ["c", "a", "b"]],
      held: [0, 1],
      tasks: [{ partition: 0, targets: ["d"], drop: true }],
      movingIn: [],
    },
    {
      name: "leaving the ring: every held partition to all its new owners",
      self: "c",
      old: [["a", "b", "c"], ["c", "a", "b"]],
      now: [["a", "b", "d"], ["a", "b", "d"]],
      held: [0, 1],
      tasks: [
        { partition: 0, targets: ["a", "b", "d"], drop: true },
        { partition: 1, targets: ["a", "b", "d"], drop: true },
      ],
      movingIn: [],
    },
    {
      name: "reordered replicas, same set: nothing moves",
      self: "c",
      old: [["a", "b", "c"]],
      now: [["c", "b", "a"]],
      dead: ["a"],
      tasks: [],
      movingIn: [],
    },
    {
      name: "no old table: an owner neither sends nor moves in",
      self: "a",
      old: undefined,
      now: [["a", "b", "d"]],
      held: [0],
      dead: ["c"],
      tasks: [],
      movingIn: [],
    },
    {
      name: "no old table: a non-owner holding data hands it to every owner",
      self: "c",
      old: undefined,
      now: [["a", "b", "d"]],
      held: [0],
      tasks: [{ partition: 0, targets: ["a", "b", "d"], drop: true }],
      movingIn: [],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = plan(c.self, c.old, c.now, {
        held: c.held === undefined ? undefined : (_, p) => c.held!.includes(p),
        dead: c.dead,
      });
      expect(got).toEqual({ tasks: c.tasks, movingIn: c.movingIn });
    });
  }
});

describe("join: 5 nodes → 6 (P=256, N=3)", () => {
  const changed = changedIn(OLD5, NEW6);

  test("the join changes some partitions but not all", () => {
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.length).toBeLessThan(P);
  });

  test("every changed partition has exactly one sender: the displaced owner, to the added one", () => {
    const { senders } = simulate(SIX, OLD5, NEW6);
    expect([...senders.keys()].sort((a, b) => a - b)).toEqual(changed);
    for (const p of changed) {
      const displaced = minus(OLD5[p]!, NEW6[p]!);
      const added = minus(NEW6[p]!, OLD5[p]!);
      expect(displaced).toHaveLength(1);
      expect(added).toEqual(["n6"]);
      expect(senders.get(p)).toEqual([
        { node: displaced[0]!, task: { partition: p, targets: added, drop: true } },
      ]);
    }
  });

  test("movingIn lists exactly the partitions each node newly owns", () => {
    const { plans } = simulate(SIX, OLD5, NEW6);
    for (const node of SIX) {
      expect({ node, movingIn: plans.get(node)!.movingIn }).toEqual({
        node,
        movingIn: gainedBy(node, OLD5, NEW6),
      });
    }
    expect(plans.get("n6")!.movingIn).toEqual(changed);
  });

  // Dead sets chosen so that some partition falls through to its second continuing owner.
  const deadSets: readonly string[][] = [["n1"], ["n3"], ["n1", "n2"], ["n2", "n4"], [
    "n1",
    "n3",
    "n5",
  ]];
  for (const dead of deadSets) {
    test(`dead ${dead.join(", ")}: one live sender per changed partition, by the rules`, () => {
      const { senders } = simulate(SIX, OLD5, NEW6, { dead });
      const isAlive = (id: string) => !dead.includes(id);
      let fellThrough = 0;
      for (let p = 0; p < P; p++) {
        const got = senders.get(p) ?? [];
        if (!changed.includes(p)) {
          expect(got).toEqual([]);
          continue;
        }
        const displaced = minus(OLD5[p]!, NEW6[p]!)[0]!;
        const continuing = NEW6[p]!.filter((id) => OLD5[p]!.includes(id));
        const firstLive = continuing.find(isAlive);
        if (isAlive(displaced)) {
          expect(got).toEqual([
            { node: displaced, task: { partition: p, targets: ["n6"], drop: true } },
          ]);
        } else if (firstLive !== undefined) {
          if (firstLive !== continuing[0]) fellThrough++;
          expect(got).toEqual([
            { node: firstLive, task: { partition: p, targets: ["n6"], drop: false } },
          ]);
        } else {
          expect(got).toEqual([]); // nobody alive holds it
        }
      }
      if (dead.length >= 2) expect(fellThrough).toBeGreaterThan(0);
    });
  }

  for (const node of FIVE) {
    test(`${node} holding every partition: drop tasks wherever it is not an owner`, () => {
      const { tasks } = plan(node, OLD5, NEW6, { held: () => true });
      const want: MoveTask[] = [];
      for (let p = 0; p < P; p++) {
        const before = OLD5[p]!, now = NEW6[p]!;
        if (now.includes(node)) continue;
        want.push({
          partition: p,
          targets: before.includes(node) ? minus(now, before) : [...now],
          drop: true,
        });
      }
      expect(want.some((t) => t.targets.length === N)).toBe(true); // strays exercised
      expect(tasks).toEqual(want);
    });
  }
});

describe("leave: 5 nodes → 4", () => {
  for (const leaving of FIVE) {
    const rest = FIVE.filter((id) => id !== leaving);
    const new4 = buildPartitionTable(rest, P, N);

    test(`${leaving} leaving: every held partition to all its new owners, then dropped`, () => {
      const owned = partitions((p) => OLD5[p]!.includes(leaving));
      expect(owned.length).toBeGreaterThan(0);
      const got = plan(leaving, OLD5, new4);
      expect(got.movingIn).toEqual([]);
      expect(got.tasks).toEqual(
        owned.map((p) => ({ partition: p, targets: [...new4[p]!], drop: true })),
      );
      const stray = plan(leaving, OLD5, new4, { held: () => true });
      expect(stray.tasks).toEqual(
        partitions(() => true).map((p) => ({ partition: p, targets: [...new4[p]!], drop: true })),
      );
    });

    test(`${leaving} leaving, still alive: only it sends; the others move in what they gain`, () => {
      const { plans, senders } = simulate(FIVE, OLD5, new4);
      const changed = changedIn(OLD5, new4);
      expect([...senders.keys()].sort((a, b) => a - b)).toEqual(changed);
      for (const p of changed) expect(senders.get(p)!.map((s) => s.node)).toEqual([leaving]);
      for (const node of rest) {
        expect(plans.get(node)!.movingIn).toEqual(gainedBy(node, OLD5, new4));
      }
    });
  }
});

describe("no old table (the node just started)", () => {
  for (const node of SIX) {
    test(`${node}: no movingIn and no continuing-owner tasks`, () => {
      for (const dead of [[], ["n1", "n2"]]) {
        const owning = plan(node, undefined, NEW6, {
          held: (s, p) => NEW6[p]!.includes(s),
          dead,
        });
        expect(owning).toEqual({ tasks: [], movingIn: [] });
        const everything = plan(node, undefined, NEW6, { held: () => true, dead });
        expect(everything.movingIn).toEqual([]);
        expect(everything.tasks).toEqual(
          partitions((p) => !NEW6[p]!.includes(node)).map((p) => ({
            partition: p,
            targets: [...NEW6[p]!],
            drop: true,
          })),
        );
      }
    });
  }
});

describe("tablesDiffer", () => {
  const t: Table = [["a", "b", "c"], ["b", "c", "d"]];
  const cases: readonly [string, Table | undefined, Table, boolean][] = [
    ["no old table", undefined, t, true],
    ["same object", t, t, false],
    ["equal copy", t, t.map((r) => [...r]), false],
    ["both empty", [], [], false],
    ["different partition count", t, [...t, ["a", "b", "c"]], true],
    ["one replica replaced", t, [["a", "b", "c"], ["b", "c", "e"]], true],
    ["same set, different order", t, [["a", "b", "c"], ["c", "b", "d"]], true],
    ["fewer replicas", t, [["a", "b"], ["b", "c", "d"]], true],
    ["more replicas", t, [["a", "b", "c", "d"], ["b", "c", "d"]], true],
    ["5 → 6 node tables", OLD5, NEW6, true],
    ["5-node table rebuilt", OLD5, buildPartitionTable([...FIVE].reverse(), P, N), false],
  ];
  for (const [name, a, b, want] of cases) {
    test(name, () => {
      expect(tablesDiffer(a, b)).toBe(want);
    });
  }
});

describe("sourcesNeeded", () => {
  // Enough previous owners to meet every quorum of them: n − ⌊n/2⌋.
  const cases: readonly [number, number][] = [[0, 0], [1, 1], [2, 1], [3, 2], [4, 2], [5, 3]];
  for (const [n, want] of cases) {
    test(`${n} previous owners → ${want}`, () => {
      expect(sourcesNeeded(n)).toBe(want);
    });
  }
});

describe("mergedFrom (a new owner's copy of a partition is complete)", () => {
  const known = () => true;
  test("sim seed 11: in sync with one continuing owner that missed writes is not enough", () => {
    // Old owners n1, n4, n3; n6 joined in n3's place while n1 and n3 were cut off from it. n4 had
    // missed the increments a quorum (n1, n3) took: n6 filled from n4 alone held a stale counter.
    const x = incoming(["n1", "n4", "n3"]);
    expect(mergedFrom(x, "n4", known)).toBe(false);
    expect(mergedFrom(x, "n4", known)).toBe(false); // the same one again counts once
    expect(mergedFrom(x, "n3", known)).toBe(true);
  });
  test("a member that was no previous owner counts for nothing", () => {
    const x = incoming(["a", "b", "c"]);
    expect(mergedFrom(x, "d", known)).toBe(false);
    expect(mergedFrom(x, "e", known)).toBe(false);
    expect(mergedFrom(x, "a", known)).toBe(false);
    expect(mergedFrom(x, "b", known)).toBe(true);
  });
  test("previous owners forgotten by the view count as merged", () => {
    const x = incoming(["a", "b", "c"]);
    expect(mergedFrom(x, "a", (id) => id !== "c")).toBe(true);
    expect(mergedFrom(incoming(["a", "b", "c"]), "d", (id) => id === "d")).toBe(true);
  });
  test("two old owners (N grows from 2): one is enough; an explicit need overrides", () => {
    expect(mergedFrom(incoming(["a", "b"]), "b", known)).toBe(true);
    expect(mergedFrom(incoming(["a", "b", "c", "d"], 1), "c", known)).toBe(true);
  });
});
