/**
 * Deletes against a replica that kept an old copy, with real processes: a replica is paused
 * (SIGSTOP) until every other member sees it DOWN, keys it holds are deleted through the
 * others, and it is resumed with its live copies. No deleted key may come back: not in any
 * node's own copy (POST /internal/v1/kv/read and /kv/all-data), not in a read through any
 * member. Every member runs with --dead-after 60s, so the paused replica stays in the ring.
 * Nothing reads a deleted key before the verdict's snapshot is taken: a read would repair the
 * stale replica and hide whether hints and anti-entropy carried the delete.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { type Cluster, http, type Proc, startCluster, waitFor } from "../support/cluster.ts";
import {
  deleteKeys,
  History,
  readKeys,
  startWriters,
  verify,
  writeKeys,
} from "../support/history.ts";
import {
  addrs,
  differing,
  keysOf,
  keysOn,
  own,
  pauseUntilDown,
  repairs,
  resumeAndStopAll,
  resumeUntilServing,
  versionsOf,
} from "../support/replicas.ts";

let c: Cluster | undefined;
async function cleanup(): Promise<void> {
  const was = c;
  c = undefined;
  await resumeAndStopAll(was);
}
afterEach(cleanup);
afterAll(cleanup);

/** No node's /kv/all-data lists any of `keys`, and a `one` read of each through every member is 404. */
async function goneEverywhere(h: History, keys: readonly string[], members: readonly Proc[]) {
  for (const n of members) {
    const data = (await http("GET", n.address, "/kv/all-data")).body as Record<string, string>;
    expect(keys.filter((k) => Object.hasOwn(data, k)).map((k) => `${n.name}: ${k}`)).toEqual([]);
    const reads = await readKeys(h, keys, [n.address], { level: "one", retryMs: 10_000 });
    expect(
      reads.filter((o) => o.status !== 404).map((o) => `${o.key} via ${o.member}: ${o.status}`),
    )
      .toEqual([]);
  }
}

describe("deletes against a stale replica", () => {
  test(
    "a replica paused until DOWN everywhere while keys it holds are deleted (writers running, " +
      "hints and anti-entropy on): after SIGCONT no deleted key comes back",
    async () => {
      c = await startCluster(5, {
        nodeArgs: ["--dead-after", "60s"],
        orchArgs: ["--dead-after", "60s"],
      });
      const h = new History();
      const victim = c.nodes[1]!;
      const others = c.all().filter((p) => p !== victim);
      const paused = new Set<Proc>();
      const w = startWriters(h, {
        targets: () => addrs(c!.all().filter((p) => !paused.has(p))),
        writers: 6,
        keysPerWriter: 20,
        prefix: "ra",
        deleteFraction: 0.15,
      });
      // Keys written once, deleted while the victim is away, read by nobody until the verdict.
      const doomed = keysOf("ra-doomed-", 100);
      expect(await writeKeys(h, doomed, addrs(c.all()), { retryMs: 10_000 }))
        .toHaveLength(doomed.length);
      const onVictim = await keysOn(c.orchestrator, victim, doomed);
      expect(onVictim.length).toBeGreaterThan(20);
      await waitFor("the victim to hold every doomed key it is a replica of", async () => {
        const copy = await own(victim, onVictim);
        return onVictim.every((k) => copy[k] && !copy[k].tombstone);
      });
      paused.add(victim);
      await pauseUntilDown(victim, others);
      const deleted = await deleteKeys(h, onVictim, addrs(others), 10_000);
      expect(deleted).toHaveLength(onVictim.length);
      const at = h.okWrites;
      await waitFor("writes while the victim is paused", () => h.okWrites > at + 100);
      await resumeUntilServing(victim, others, c.nodes);
      paused.delete(victim);
      const after = h.okWrites;
      await waitFor("writes after the resume", () => h.okWrites > after + 100);
      await w.stop();

      // The verdict: each node's own copy first (nothing read the doomed keys yet), then reads
      // at quorum through every member; the whole history through the checker.
      const violations = await verify(h, () => addrs(c!.nodes), () => [c!.orchestrator.address]);
      expect(violations.slice(0, 10)).toEqual([]);
      expect(h.okReads).toBeGreaterThan(50);
      await goneEverywhere(h, deleted, c.all());
    },
    90_000,
  );

  test(
    "deletes a replica missed while paused win everywhere, carried by anti-entropy alone " +
      "(hints off), across a tombstone collection round",
    async () => {
      // Hints off: only the other replicas' tombstones can carry the deletes to the stale one.
      // A short --tombstone-grace makes collection rounds frequent (every grace/4): one runs on
      // both healthy replicas while the stale one is away, and must not collect tombstones
      // younger than the grace (else its old copies would come back).
      const args = ["--dead-after", "60s", "--max-hints", "0", "--tombstone-grace", "30s"];
      c = await startCluster(3, { nodeArgs: args, orchArgs: ["--dead-after", "60s"] });
      const [a, b, stale] = c.nodes as [Proc, Proc, Proc];
      const h = new History();
      const keys = keysOf("dd-", 60);
      const v1 = await writeKeys(h, keys, addrs(c.nodes), { retryMs: 10_000 });
      expect(v1).toHaveLength(keys.length);
      const first = versionsOf(v1);
      await waitFor(
        "the third replica to hold every key",
        async () => differing(await own(stale, keys), keys, (k) => first.get(k)!).length === 0,
      );
      await pauseUntilDown(stale, [c.orchestrator, a, b]);
      // While it is away: 40 keys deleted, 10 rewritten, 10 left alone.
      const deleted = keys.slice(0, 40);
      const rewritten = keys.slice(40, 50);
      expect(await deleteKeys(h, deleted, addrs([a, b]), 10_000)).toHaveLength(deleted.length);
      const v2 = await writeKeys(h, rewritten, addrs([a, b]), {
        value: (k) => `${k}-v2`,
        retryMs: 10_000,
      });
      expect(v2).toHaveLength(rewritten.length);
      await collectionRound([a, b]);
      await resumeUntilServing(stale, [c.orchestrator, a, b], c.nodes);

      const violations = await verify(h, () => addrs(c!.nodes), () => [c!.orchestrator.address]);
      expect(violations.slice(0, 10)).toEqual([]);
      const want = new Map([...first, ...versionsOf(v2)]);
      for (const k of deleted) want.set(k, "deleted");
      expect(differing(await own(stale, keys), keys, (k) => want.get(k)!)).toEqual([]);
      expect((await repairs(c.nodes)).hintsDelivered).toBe(0);
      await goneEverywhere(h, deleted, c.all());
    },
    90_000,
  );
});

/**
 * Wait until a tombstone collection round has run on every one of `nodes`: plant on each a
 * tombstone of a key no test uses, dated an hour back (so any round collects it), and wait for
 * its collected count to go up.
 */
async function collectionRound(nodes: readonly Proc[]): Promise<void> {
  const status = (n: Proc) => http("GET", n.address, "/internal/v1/status");
  const before = await Promise.all(
    nodes.map(async (n) => (await status(n)).body.tombstonesCollected),
  );
  const old = {
    k: "canary-collected",
    v: "",
    t: Date.now() - 3_600_000,
    c: 0,
    n: "canary",
    d: true,
  };
  for (const n of nodes) {
    const body = JSON.stringify({ to: n.address, records: [old] });
    const r = await http("POST", n.address, "/internal/v1/kv/write", body, {
      "content-type": "application/json",
    });
    expect(r.status).toBe(200);
  }
  await waitFor(
    `a tombstone collection round on ${nodes.map((n) => n.name).join(", ")}`,
    async () => {
      const now = await Promise.all(
        nodes.map(async (n) => (await status(n)).body.tombstonesCollected),
      );
      return now.every((x, i) => x > before[i]);
    },
    30_000,
  );
}
