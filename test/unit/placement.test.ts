/** Placement: rendezvous replica sets, their balance and churn, and the ack counts. */
import { describe, expect, test } from "bun:test";
import {
  buildPartitionTable,
  type Consistency,
  preferenceOrder,
  rendezvousWeight,
  requiredAcks,
} from "../../src/core/placement.ts";

const P = 256;
const N = 3;
const FIVE = [0, 1, 2, 3, 4].map((i) => `127.0.0.1:${8080 + i}`);
const SIXTH = "127.0.0.1:8085";

/** Id sets with different shapes, so balance is not an accident of one naming scheme. */
const ID_SETS: Record<string, string[]> = {
  "loopback ports": FIVE,
  "hosts": [1, 2, 3, 4, 5].map((i) => `10.0.0.${i}:8080`),
  "names": ["node-a", "node-b", "node-c", "node-d", "node-e"],
};

function countBy(values: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return m;
}

/** (partition, id) memberships in `after` that were not in `before`. */
function gained(before: string[][], after: string[][]): { p: number; id: string }[] {
  const out: { p: number; id: string }[] = [];
  after.forEach((ids, p) => {
    const old = new Set(before[p]);
    for (const id of ids) if (!old.has(id)) out.push({ p, id });
  });
  return out;
}

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const a = [...xs];
  let s = seed >>> 0;
  for (let i = a.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe("buildPartitionTable over 5 members, P=256, N=3", () => {
  for (const [name, ids] of Object.entries(ID_SETS)) {
    describe(name, () => {
      const table = buildPartitionTable(ids, P, N);

      test("one entry per partition, each with N distinct known replicas", () => {
        expect(table.length).toBe(P);
        for (const replicas of table) {
          expect(replicas.length).toBe(N);
          expect(new Set(replicas).size).toBe(N);
          for (const id of replicas) expect(ids).toContain(id);
        }
      });

      test("no node holds more than 1.3× its fair share of replica slots", () => {
        const fair = (P * N) / ids.length; // 153.6
        const counts = countBy(table.flat());
        expect(counts.size).toBe(ids.length);
        for (const [, c] of counts) expect(c).toBeLessThanOrEqual(1.3 * fair);
      });

      test("no node is primary (first replica) for more than 1.3× its fair share", () => {
        const fair = P / ids.length; // 51.2
        const counts = countBy(table.map((r) => r[0]!));
        expect(counts.size).toBe(ids.length);
        for (const [, c] of counts) expect(c).toBeLessThanOrEqual(1.3 * fair);
      });

      test("each replica list is the head of the partition's preference order", () => {
        for (let p = 0; p < P; p++) {
          expect(table[p]).toEqual(preferenceOrder(p, ids).slice(0, N));
        }
      });
    });
  }
});

describe("golden replica sets (every node must compute the same table)", () => {
  const golden: readonly [partition: number, replicas: string[]][] = [
    [0, ["127.0.0.1:8082", "127.0.0.1:8084", "127.0.0.1:8080"]],
    [1, ["127.0.0.1:8080", "127.0.0.1:8084", "127.0.0.1:8083"]],
    [2, ["127.0.0.1:8082", "127.0.0.1:8080", "127.0.0.1:8084"]],
    [100, ["127.0.0.1:8080", "127.0.0.1:8083", "127.0.0.1:8084"]],
    [255, ["127.0.0.1:8080", "127.0.0.1:8083", "127.0.0.1:8084"]],
  ];
  const table = buildPartitionTable(FIVE, P, N);
  for (const [p, replicas] of golden) {
    test(`partition ${p} → ${replicas.join(", ")}`, () => {
      expect(table[p]).toEqual(replicas);
    });
  }
});

describe("churn", () => {
  for (const [name, ids] of Object.entries(ID_SETS)) {
    test(`${name}: adding a 6th member moves ≤ 1.5/6 of memberships, all to the new node`, () => {
      const newcomer = `${ids[0]}-new`;
      const before = buildPartitionTable(ids, P, N);
      const after = buildPartitionTable([...ids, newcomer], P, N);
      const moved = gained(before, after);
      // Expected N/(n+1) of partitions gain it, i.e. 1/6 of all (partition, slot) memberships.
      expect(moved.length).toBeGreaterThan(0);
      expect(moved.length / (P * N)).toBeLessThanOrEqual(1.5 / 6);
      for (const m of moved) expect(m.id).toBe(newcomer);
      // Each touched partition lost exactly one old member (the one the newcomer displaced)
      // and the survivors keep their relative order.
      for (let p = 0; p < P; p++) {
        const b = before[p]!;
        const a = after[p]!;
        if (!a.includes(newcomer)) {
          expect(a).toEqual(b);
          continue;
        }
        const dropped = b.filter((id) => !a.includes(id));
        expect(dropped).toEqual([b[N - 1]!]);
        expect(a.filter((id) => id !== newcomer)).toEqual(b.slice(0, N - 1));
      }
    });
  }

  test("the exact 6th-member case on loopback ports", () => {
    const before = buildPartitionTable(FIVE, P, N);
    const after = buildPartitionTable([...FIVE, SIXTH], P, N);
    const moved = gained(before, after);
    expect(moved.every((m) => m.id === SIXTH)).toBe(true);
    expect(moved.length / (P * N)).toBeLessThanOrEqual(1.5 / 6);
  });

  for (const leaving of FIVE) {
    test(`removing ${leaving} only changes partitions that contained it`, () => {
      const before = buildPartitionTable(FIVE, P, N);
      const after = buildPartitionTable(FIVE.filter((id) => id !== leaving), P, N);
      let changed = 0;
      for (let p = 0; p < P; p++) {
        const b = before[p]!;
        const a = after[p]!;
        expect(a).not.toContain(leaving);
        if (!b.includes(leaving)) {
          expect(a).toEqual(b);
        } else {
          changed++;
          // The survivors stay, in order; one new member fills the freed slot at the end.
          expect(a.slice(0, N - 1)).toEqual(b.filter((id) => id !== leaving));
          expect(b).not.toContain(a[N - 1]!);
        }
      }
      expect(changed).toBe(before.filter((r) => r.includes(leaving)).length);
      expect(changed).toBeGreaterThan(0);
    });
  }
});

describe("replication factor cap and edge sizes", () => {
  const cases: readonly [members: number, rf: number, want: number][] = [
    [1, 3, 1],
    [2, 3, 2],
    [3, 3, 3],
    [5, 3, 3],
    [2, 1, 1],
    [4, 15, 4],
    [0, 3, 0],
  ];
  for (const [members, rf, want] of cases) {
    test(`${members} members, N=${rf} → ${want} replicas per partition`, () => {
      const ids = FIVE.slice(0, members);
      const table = buildPartitionTable(ids, 16, rf);
      expect(table.length).toBe(16);
      for (const r of table) {
        expect(r.length).toBe(want);
        expect(new Set(r).size).toBe(want);
      }
    });
  }
});

describe("determinism", () => {
  test("the table does not depend on the order members are given in", () => {
    const ref = buildPartitionTable(FIVE, P, N);
    for (let seed = 1; seed <= 20; seed++) {
      expect(buildPartitionTable(shuffled(FIVE, seed), P, N)).toEqual(ref);
    }
    expect(buildPartitionTable([...FIVE].reverse(), P, N)).toEqual(ref);
  });

  test("repeated builds are identical", () => {
    expect(buildPartitionTable(FIVE, P, N)).toEqual(buildPartitionTable(FIVE, P, N));
  });

  test("rendezvous weight depends on both partition and member", () => {
    const w = rendezvousWeight(7, FIVE[0]!);
    expect(rendezvousWeight(7, FIVE[0]!)).toBe(w);
    expect(rendezvousWeight(8, FIVE[0]!)).not.toBe(w);
    expect(rendezvousWeight(7, FIVE[1]!)).not.toBe(w);
  });

  test("preferenceOrder is a permutation sorted by descending weight", () => {
    for (let p = 0; p < 32; p++) {
      const order = preferenceOrder(p, FIVE);
      expect([...order].sort()).toEqual([...FIVE].sort());
      for (let i = 1; i < order.length; i++) {
        expect(rendezvousWeight(p, order[i - 1]!)).toBeGreaterThanOrEqual(
          rendezvousWeight(p, order[i]!),
        );
      }
    }
  });
});

describe("requiredAcks", () => {
  const table: readonly [c: Consistency, n: number, want: number][] = [
    ["one", 1, 1],
    ["one", 2, 1],
    ["one", 3, 1],
    ["one", 4, 1],
    ["one", 5, 1],
    ["quorum", 1, 1],
    ["quorum", 2, 2],
    ["quorum", 3, 2],
    ["quorum", 4, 3],
    ["quorum", 5, 3],
    ["all", 1, 1],
    ["all", 2, 2],
    ["all", 3, 3],
    ["all", 4, 4],
    ["all", 5, 5],
    // No replicas at all: still ask for one ack, so the request fails instead of "succeeding".
    ["one", 0, 1],
    ["quorum", 0, 1],
    ["all", 0, 1],
  ];
  for (const [c, n, want] of table) {
    test(`${c} of ${n} → ${want}`, () => {
      expect(requiredAcks(c, n)).toBe(want);
    });
  }

  test("W + R > N for quorum writes and reads (read-your-writes overlap)", () => {
    for (let n = 1; n <= 5; n++) {
      expect(2 * requiredAcks("quorum", n)).toBeGreaterThan(n);
    }
  });
});
