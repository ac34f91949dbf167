/**
 * The whole-cluster simulation (cluster-sim.ts) in CI: a fixed seed set, a replayed seed that
 * must produce the same history bit for bit, the known-bad mutations that the checker must
 * catch, and hand-built histories that show each checker rule firing.
 * A failing seed prints its replay command: `npm run sim -- --seed N`.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { type Mutation, resetMutations } from "../../src/core/mutations.ts";
import {
  check,
  checkListings,
  type FinalState,
  type Listing,
  type ListPage,
  type NodeState,
  type Op,
} from "../support/checker.ts";
import { DEFAULT_FAULTS, type FaultKind, runSeed } from "./cluster-sim.ts";
import { simTcpStats } from "./sim-tcp.ts";

/**
 * Seeds that fail today for a reason written down in docs/testing.md ("Open findings"), left out of
 * the CI set until it is fixed. None now: seed 11 (rule lin) was fixed (docs/testing.md, "What it
 * found (issue 12)").
 */
const OPEN_FINDINGS: readonly number[] = [];

/**
 * Seeds past the CI range that found a bug once, each run as well (docs/testing.md, "What it found
 * (issue 12)"): 129 (a replica behind its restart gate promised and committed a CAS), 176 (Paxos
 * state not kept by --data-dir: a power cut lost an accepted increment a 412 had already shown),
 * 658 (an anti-entropy merge counted before it was durable), 1495 (a LEFT previous owner cut off
 * one way, still handing off, counted merged by fill as if it had exited: a CAS lost an increment),
 * 1514 (N = 1: a member that left just before a power cut, brought back DOWN in the ring by a
 * member that had not heard the leave, so its partitions' new owners waited for it for good), 163
 * and 166 (rule list: a listing counted an old owner that had not taken a write to a partition
 * still moving in as covering it, and skipped the key or listed a stale value), 562 (N = 1: a
 * member not yet on the ring with a new node read the old owner, which a write through the new
 * ring had skipped: rule list with plain writes, rule lin once they reached it and CAS commits
 * did not).
 */
const REGRESSION_SEEDS: readonly number[] = [129, 163, 166, 176, 562, 658, 1495, 1514];

/** Seeds every CI run checks (about 15 s on a 2-core machine). */
const CI_SEEDS: readonly number[] = [
  ...Array.from({ length: 120 }, (_, i) => i + 1).filter((s) => !OPEN_FINDINGS.includes(s)),
  ...REGRESSION_SEEDS,
];

/**
 * The whole-cluster power cuts with data dirs that the 10,000-seed run found (issue 10): a ring
 * formed while every member of the old one was away (docs/testing.md, "Open findings").
 */
const POWER_CUT_SEEDS: readonly number[] = [
  1213,
  1497,
  1928,
  2428,
  5082,
  6659,
  7720,
  8399,
  9150,
  9213,
  9579,
];

interface MutationCase {
  readonly faults: readonly FaultKind[];
  readonly seeds: readonly number[];
  /** Run without ttl keys (SimOptions.ttlKeys): the histories its seeds were found on. */
  readonly ttlKeys?: boolean;
}

/**
 * Where each known-bad switch is looked for. Dropping a partition right after streaming it loses
 * only the writes that reach the mover while it streams, so it needs leaves and joins under
 * load: a seed range whose draws have them (seed 174 catches it today).
 */
const MUTATION_CASES: Record<Mutation, MutationCase> = {
  countHints: { faults: DEFAULT_FAULTS, seeds: CI_SEEDS },
  noRepair: { faults: DEFAULT_FAULTS, seeds: CI_SEEDS },
  dropRightAfterStream: {
    faults: ["join", "leave", "delay"],
    seeds: [362, 377, 599],
    // Caught on about 1 seed in 200 (362, 377 and 599 of 100..699 since writes reach a moving
    // partition's previous owners, which hid it on 723; 723 before; 158 and 188 before issue
    // 12's fixes): with ttl keys in the traffic, none of 150..649 caught it, so it runs on the
    // histories without them.
    ttlKeys: false,
  },
  paxosNoBallots: { faults: ["delay"], seeds: Array.from({ length: 40 }, (_, i) => 300 + i) },
};

afterEach(() => resetMutations());

async function failures(
  seeds: readonly number[],
  mutation?: Mutation,
  stopAtFirst = false,
  secret = false,
  transport: "http" | "link" | "tcp" = "http",
) {
  const out: string[] = [];
  for (const seed of seeds) {
    const r = await runSeed({ seed, secret, transport, ...(mutation ? { mutation } : {}) });
    if (r.violations.length === 0) continue;
    const v = r.violations[0]!;
    const flag = (mutation ? ` --mutation ${mutation}` : "") + (secret ? " --secret" : "") +
      (transport === "http" ? "" : ` --transport ${transport}`);
    out.push(
      `seed ${seed}: (${v.rule}) ${v.message}\n  replay: npm run sim -- --seed ${seed}${flag}`,
    );
    if (stopAtFirst) break;
  }
  return out;
}

describe("cluster simulation", () => {
  test("the CI seed set has no violations", async () => {
    expect(await failures(CI_SEEDS)).toEqual([]);
  }, 120_000);

  test("the whole-cluster power-cut seeds have no violations", async () => {
    expect(await failures(POWER_CUT_SEEDS)).toEqual([]);
  }, 60_000);

  test(
    "with a cluster secret (every call signed and checked), 20 seeds have no violations",
    async () => {
      expect(await failures(CI_SEEDS.slice(0, 20), undefined, false, true)).toEqual([]);
    },
    60_000,
  );

  test(
    "over the TCP peer link on simulated connections (test/sim/sim-tcp.ts), 30 seeds have no violations",
    async () => {
      const before = { ...simTcpStats };
      expect(await failures(CI_SEEDS.slice(0, 30), undefined, false, false, "tcp")).toEqual([]);
      // The calls did go over links: connections opened, thousands of writes a seed delivered.
      expect(simTcpStats.connections - before.connections).toBeGreaterThan(30 * 5);
      expect(simTcpStats.delivered - before.delivered).toBeGreaterThan(30 * 1000);
    },
    120_000,
  );

  test(
    "over the link with a cluster secret (signed hellos), 10 seeds have no violations",
    async () => {
      const before = simTcpStats.delivered;
      expect(await failures(CI_SEEDS.slice(0, 10), undefined, false, true, "tcp")).toEqual([]);
      expect(simTcpStats.delivered - before).toBeGreaterThan(10 * 1000);
    },
    60_000,
  );

  test("a replayed seed produces the same history bit for bit", async () => {
    const a = await runSeed({ seed: 7 });
    const b = await runSeed({ seed: 7 });
    expect(a.history.length).toBeGreaterThan(50);
    expect(JSON.stringify(b.history)).toBe(JSON.stringify(a.history));
    expect(JSON.stringify(b.final)).toBe(JSON.stringify(a.final));
    expect(b.events).toEqual(a.events);
    expect(b.eventsRun).toBe(a.eventsRun);
  }, 30_000);

  // Each mutation must produce a violation on a seed that is clean without it (so the catch is
  // the mutation's, not one of today's open findings).
  for (const [m, c] of Object.entries(MUTATION_CASES) as [Mutation, MutationCase][]) {
    test(`the checker catches the ${m} mutation`, async () => {
      let caught: string | undefined;
      for (const seed of c.seeds) {
        const ttlKeys = c.ttlKeys ?? true;
        const withIt = await runSeed({ seed, faults: c.faults, mutation: m, ttlKeys });
        if (withIt.violations.length === 0) continue;
        if ((await runSeed({ seed, faults: c.faults, ttlKeys })).violations.length > 0) continue;
        caught = `seed ${seed}: ${withIt.violations[0]!.message}`;
        break;
      }
      expect(caught).toBeDefined();
      console.log(`${m} caught: ${caught}`);
    }, 120_000);
  }
});

// ---- the checker on hand-built histories -----------------------------------------------------

const T0 = 1_700_000_000_000;
let nextId = 1;
function op(o: Partial<Op> & Pick<Op, "kind" | "invokeMs" | "completeMs">): Op {
  return {
    id: nextId++,
    client: "c0",
    key: "k",
    level: "quorum",
    member: "n1",
    outcome: "ok",
    status: 200,
    ...o,
  };
}
const ver = (ms: number, node = "n1") => `${T0 + ms}.0@${node}`;
const put = (value: string, at: number, done: number, o: Partial<Op> = {}) =>
  op({ kind: "put", value, version: ver(at), invokeMs: at, completeMs: done, ...o });
const get = (value: string | undefined, at: number, done: number, o: Partial<Op> = {}) =>
  op({
    kind: "get",
    invokeMs: at,
    completeMs: done,
    ...(value === undefined ? { status: 404 } : { value }),
    ...o,
  });
const del = (at: number, done: number, o: Partial<Op> = {}) =>
  op({ kind: "del", invokeMs: at, completeMs: done, ...o });

/** A stored copy: a value written at `at`, or (value null) a tombstone written at `at`. */
type Rec = { value: string | null; at: number } | null;
function node(id: string, rec: Rec, o: Partial<NodeState> = {}) {
  return {
    id,
    ring: "n1,n2,n3",
    heldNotOwned: 0,
    hintsPending: 0,
    records: {
      k: rec && { value: rec.value ?? "", version: ver(rec.at), tombstone: rec.value === null },
    },
    ...o,
  };
}
/** A healthy final state in which all three replicas hold `rec`. */
function final(rec: Rec, o: Partial<FinalState> = {}): FinalState {
  return {
    nodes: ["n1", "n2", "n3"].map((id) => node(id, rec)),
    otherRings: { orch: "n1,n2,n3" },
    replicas: { k: ["n1", "n2", "n3"] },
    errors: [],
    ...o,
  };
}
const finalReads = (value: string | undefined, version?: string) =>
  ["n1", "n2", "n3"].map((m) =>
    get(value, 30_000, 30_010, { member: m, final: true, ...(version ? { version } : {}) })
  );
const rules = (h: Op[], f: FinalState) => check(h, f).map((v) => v.rule);

describe("checker", () => {
  test("a consistent history passes", () => {
    const h = [put("a", 100, 110), get("a", 200, 210, { version: ver(100) })];
    expect(check([...h, ...finalReads("a", ver(100))], final({ value: "a", at: 100 })))
      .toEqual([]);
  });

  test("(ttl) a write with a ttl may vanish, but its value is not read well after it ran out", () => {
    const ttl = put("a", 100, 110, { ttlMs: 1000 });
    // Absent after the ttl, in reads and in the final state (collected: nothing held): allowed.
    const gone = [ttl, get(undefined, 2_000, 2_010), ...finalReads(undefined)];
    expect(rules(gone, final(null))).toEqual([]);
    // The same without a ttl is a lost write.
    expect(rules([put("a", 100, 110), get(undefined, 2_000, 2_010)], final(null))).toContain("ii");
    // Read within ttl + slack: fine; well after: the (ttl) rule.
    expect(rules([ttl, get("a", 4_000, 4_010, { version: ver(100) })], final(null))).toEqual([]);
    expect(rules([ttl, get("a", 6_000, 6_010, { version: ver(100) })], final(null))).toContain(
      "ttl",
    );
  });

  test("(i) an acknowledged write missing after quiescence", () => {
    const h = [put("a", 100, 110), ...finalReads(undefined)];
    expect(rules(h, final(null))).toContain("ii");
    // held by only two of the three replicas, and by a non-replica
    const f = final({ value: "a", at: 100 }, {
      nodes: [
        node("n1", { value: "a", at: 100 }),
        node("n2", { value: "a", at: 100 }),
        node("n3", null),
        node("n4", { value: "a", at: 100 }),
      ],
    });
    const v = check([put("a", 100, 110), ...finalReads("a", ver(100))], f);
    expect(v.filter((x) => x.rule === "i").length).toBe(2);
    // a member cannot read it
    const failed = get(undefined, 30_000, 34_000, { final: true, outcome: "timeout" });
    expect(rules([put("a", 100, 110), failed], final({ value: "a", at: 100 }))).toContain("i");
  });

  test("(i) every acknowledged write is checked against each replica's own copy", () => {
    // The last write of the key is missing from every replica: the first is still there.
    const h = [put("a", 100, 110), put("b", 200, 210)];
    const lost = check(h, final({ value: "a", at: 100 }));
    expect(lost.map((v) => v.rule)).toEqual(["i"]);
    expect(lost[0]!.message).toContain("lost write: put#");
    // An overwritten write that was lost is caught by a read between it and the next write.
    const overwritten = [
      put("a", 100, 110),
      get(undefined, 150, 160),
      put("b", 200, 210),
      ...finalReads("b", ver(200)),
    ];
    expect(rules(overwritten, final({ value: "b", at: 200 }))).toEqual(["ii"]);
    // A replica that missed the last write is found even when a quorum read would repair it.
    const f = final(null, {
      nodes: [
        node("n1", { value: "b", at: 200 }),
        node("n2", { value: "b", at: 200 }),
        node("n3", { value: "a", at: 100 }),
      ],
    });
    const stale = check([...h, ...finalReads("b", ver(200))], f);
    expect(stale.map((v) => v.message)).toEqual([
      expect.stringContaining("replica n3 holds 'a'"),
    ]);
    // A final read that does not return the newest copy.
    const reads = [...h, ...finalReads("b", ver(200))];
    reads[reads.length - 1] = get("a", 30_000, 30_010, { final: true, version: ver(100) });
    expect(rules(reads, final({ value: "b", at: 200 }))).toContain("i");
  });

  test("(i) a deleted key live again in the final state, or under a tombstone", () => {
    const h = [put("a", 100, 110), del(200, 210)];
    // Two replicas collected the tombstone; the third never got it and still holds the value.
    const back = final(null, {
      nodes: [node("n1", null), node("n2", null), node("n3", { value: "a", at: 100 })],
    });
    const v = check(h, back);
    expect(v.map((x) => x.rule)).toContain("i");
    expect(v.map((x) => x.message).join("\n")).toContain("deleted key live again");
    // The others hold the tombstone: n3's live copy is stale.
    const under = final(null, {
      nodes: [
        node("n1", { value: null, at: 200 }),
        node("n2", { value: null, at: 200 }),
        node("n3", { value: "a", at: 100 }),
      ],
    });
    expect(check(h, under).map((x) => x.message)).toEqual([
      expect.stringContaining("replica n3 holds 'a'"),
    ]);
    // A delete that failed may not have landed: the value may stay.
    const failed = [put("a", 100, 110), del(200, 210, { outcome: "fail", status: 503 })];
    expect(rules(failed, final({ value: "a", at: 100 }))).toEqual([]);
  });

  test("(ii) a quorum read after an acknowledged quorum write returns an older one", () => {
    const h = [
      put("a", 100, 110),
      put("b", 200, 210),
      get("a", 300, 310, { version: ver(100) }),
    ];
    expect(rules(h, final({ value: "b", at: 200 }))).toEqual(["ii"]);
    // ... but a `one` read may, and a read that started before the ack may
    const ok = [
      put("a", 100, 110),
      put("b", 200, 210),
      get("a", 300, 310, { version: ver(100), level: "one" }),
      get("a", 205, 310, { version: ver(100) }),
    ];
    expect(rules(ok, final({ value: "b", at: 200 }))).toEqual([]);
    // not found after a write is a lost write, unless a delete may be newer
    expect(rules([put("a", 100, 110), get(undefined, 300, 310)], final({ value: "a", at: 100 })))
      .toEqual(["ii"]);
    const concurrentDelete = [put("a", 100, 110), del(105, 400), get(undefined, 300, 310)];
    expect(rules(concurrentDelete, final({ value: "a", at: 100 }))).toEqual([]);
  });

  test("(iii) a deleted key read live again", () => {
    const h = [put("a", 100, 110), del(200, 210), get("a", 300, 310, { version: ver(100) })];
    expect(rules(h, final(null))).toEqual(["iii"]);
    // a write concurrent with the delete may win (last writer wins)
    const concurrent = [
      put("a", 195, 250, { version: ver(195) }),
      del(200, 210),
      get("a", 300, 310, { version: ver(195) }),
    ];
    expect(rules(concurrent, final(null))).toEqual([]);
  });

  test("(iv) a read returns a value never written", () => {
    const h = [put("a", 100, 110), get("zzz", 300, 310, { version: ver(100), level: "one" })];
    expect(rules(h, final({ value: "a", at: 100 }))).toEqual(["iv"]);
  });

  test("(v) rings differ, a partition held outside the ring, hints left", () => {
    const f = final(null, {
      nodes: [
        node("n1", null, { ring: "other" }),
        node("n2", null, { heldNotOwned: 1 }),
        node("n3", null, { hintsPending: 2 }),
      ],
    });
    expect(rules([], f)).toEqual(["v", "v", "v"]);
  });

  test("(err) a 500 answer or a callback that threw", () => {
    expect(rules([get(undefined, 1, 2, { outcome: "fail", status: 500 })], final(null)))
      .toEqual(["err"]);
    expect(rules([], final(null, { errors: ["boom"] }))).toEqual(["err"]);
  });

  test("(list) a listing skips a key, lists one twice or out of order, or answers it stale", () => {
    const page = (
      at: number,
      keys: string[],
      next: string | null,
      o: Partial<ListPage> = {},
    ): ListPage => ({
      member: "n1",
      invokeMs: at,
      completeMs: at + 10,
      status: 200,
      items: keys.map((key) => ({ key, version: ver(100) })),
      next,
      ...o,
    });
    const listing = (pages: ListPage[], o: Partial<Listing> = {}): Listing => ({
      id: 1,
      client: "l0",
      prefix: "",
      level: "quorum",
      limit: 2,
      pages,
      ...o,
    });
    const at = (key: string, o: Partial<Op>) => ({ key, ...o });
    const h = [
      put("a", 100, 110, at("k1", {})),
      put("b", 100, 110, at("k2", {})),
      put("c", 100, 110, at("k3", {})),
    ];
    const list = (l: Listing) => checkListings(h, [l]).map((v) => v.rule);
    // Every key, once, in order: fine.
    expect(list(listing([page(200, ["k1", "k2"], "k2"), page(220, ["k3"], null)]))).toEqual([]);
    // A 200 page that ends early (cursor null) without k3: skipped.
    expect(list(listing([page(200, ["k1", "k2"], null)]))).toEqual(["list"]);
    // A key skipped between two pages (k2 is at most the first page's cursor).
    expect(list(listing([page(200, ["k1"], "k2"), page(220, ["k3"], null)]))).toEqual(["list"]);
    // A page that answered 503: what it would have covered is not judged.
    expect(list(listing([page(200, ["k1"], "k1"), page(220, [], null, { status: 503 })])))
      .toEqual([]);
    // Twice, or out of order.
    expect(list(listing([page(200, ["k1", "k2"], "k2"), page(220, ["k2", "k3"], null)])))
      .toEqual(["list"]);
    expect(list(listing([page(200, ["k2", "k1"], "k1"), page(220, ["k3"], null)])))
      .toEqual(["list"]);
    // At `one`, a skipped key is allowed (the order is still checked).
    expect(list(listing([page(200, ["k1"], null)], { level: "one" }))).toEqual([]);
    // A write acknowledged after the listing started, or a delete that may be newer: allowed.
    const late = [...h, put("d", 300, 310, at("k4", {}))];
    expect(checkListings(late, [listing([page(200, ["k1", "k2"], "k2"), page(320, ["k3"], null)])]))
      .toEqual([]);
    const deleted = [...h, del(150, 400, at("k3", {}))];
    expect(checkListings(deleted, [listing([page(200, ["k1", "k2"], null)])])).toEqual([]);
    // A version older than a write acknowledged before the listing: stale.
    const newer = [...h, put("e", 150, 160, at("k1", { version: ver(150) }))];
    expect(
      checkListings(newer, [listing([page(200, ["k1", "k2"], "k2"), page(220, ["k3"], null)])])
        .map((v) => v.rule),
    ).toEqual(["list"]);
  });
});
