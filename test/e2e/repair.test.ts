/**
 * Read repair and anti-entropy, each by itself, with real processes. Orchestrator + 3 nodes,
 * N=3 (every node is a replica of every key), --dead-after 60s (the paused replica stays in the
 * ring), hints off (--max-hints 0: a write for a DOWN replica is held for nobody). One replica
 * is paused (SIGSTOP) until every other member sees it DOWN, so no coordinator sends it the
 * writes that follow; then it is resumed. What it holds is read from the node itself
 * (POST /internal/v1/kv/read, no coordinator, so no read repair), before and after the one
 * mechanism under test runs, and the whole history goes through the checker at the end.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { type Cluster, type Proc, startCluster, waitFor } from "../support/cluster.ts";
import { deleteKeys, History, readKeys, verify, writeKeys } from "../support/history.ts";
import {
  addrs,
  differing,
  keysOf,
  own,
  pauseUntilDown,
  repairs,
  resumeAndStopAll,
  resumeUntilServing,
  versionsOf,
} from "../support/replicas.ts";

const NO_HINTS = ["--dead-after", "60s", "--max-hints", "0", "--hint-interval", "1h"];

let c: Cluster | undefined;
async function cleanup(): Promise<void> {
  const was = c;
  c = undefined;
  await resumeAndStopAll(was);
}
afterEach(cleanup);
afterAll(cleanup);

/**
 * Orchestrator + 3 nodes with `nodeArgs`; `keys` written (v1) and on all three replicas; then
 * the third node paused until DOWN everywhere.
 */
async function oneReplicaBehind(h: History, keys: readonly string[], nodeArgs: string[]) {
  c = await startCluster(3, { nodeArgs, orchArgs: ["--dead-after", "60s"] });
  const [a, b, lagging] = c.nodes as [Proc, Proc, Proc];
  const v1 = await writeKeys(h, keys, addrs(c.nodes), {
    value: (k) => `${k}-v1`,
    retryMs: 10_000,
  });
  expect(v1.length).toBe(keys.length);
  const first = versionsOf(v1);
  for (const n of c.nodes) {
    await waitFor(`${n.name} to hold every v1`, async () => {
      const copy = await own(n, keys);
      return differing(copy, keys, (k) => first.get(k)!).length === 0;
    });
  }
  await pauseUntilDown(lagging, [c.orchestrator, a, b]);
  return { a, b, lagging, first };
}

describe("repair, each mechanism by itself", () => {
  test(
    "read repair alone (anti-entropy and hints off): reads through the cluster bring a stale " +
      "replica's own copy up to date for exactly the keys read",
    async () => {
      const h = new History();
      const keys = keysOf("rr-", 60);
      const { a, b, lagging, first } = await oneReplicaBehind(h, keys, [
        ...NO_HINTS,
        "--anti-entropy-interval",
        "1h",
      ]);
      // New versions of every key while the replica is DOWN everywhere: it gets none of them.
      const v2 = await writeKeys(h, keys, addrs([a, b]), {
        value: (k) => `${k}-v2`,
        retryMs: 10_000,
      });
      expect(v2.length).toBe(keys.length);
      const newest = versionsOf(v2);
      await resumeUntilServing(lagging, [c!.orchestrator, a, b], c!.nodes);
      // Nothing has repaired it yet: no reads, no anti-entropy, no hints.
      expect(differing(await own(lagging, keys), keys, (k) => first.get(k)!)).toEqual([]);
      const before = await repairs(c!.nodes);

      // Read half the keys through the stale replica itself (its own answer is the first in,
      // and stale: the read must return the newest, and repair it).
      const read = keys.slice(0, 30);
      const unread = keys.slice(30);
      const reads = await readKeys(h, read, [lagging.address], { retryMs: 10_000 });
      expect(Object.fromEntries(reads.map((o) => [o.key, o.version])))
        .toEqual(Object.fromEntries(read.map((k) => [k, newest.get(k)])));
      await waitFor(
        "read repair to bring the keys read up to date on the stale replica",
        async () => differing(await own(lagging, read), read, (k) => newest.get(k)!).length === 0,
      );
      // ... and only those: the others are still as the pause left them.
      expect(differing(await own(lagging, unread), unread, (k) => first.get(k)!)).toEqual([]);
      const after = await repairs(c!.nodes);
      expect(after.readRepairs).toBeGreaterThanOrEqual(before.readRepairs + read.length);
      expect(after.antiEntropy).toBe(before.antiEntropy);
      expect(after.hintsDelivered).toBe(0);

      // Reading the rest through a healthy member at `all` repairs them too: the cluster
      // converges on reads alone, and the whole history passes the checker.
      await readKeys(h, unread, [a.address], { level: "all", retryMs: 10_000 });
      const violations = await verify(h, () => addrs(c!.nodes), () => [c!.orchestrator.address]);
      expect(violations.slice(0, 10)).toEqual([]);
    },
    90_000,
  );

  test(
    "anti-entropy alone (hints off, no reads): a stale replica's own copy gets every newer " +
      "write and every delete it missed",
    async () => {
      const h = new History();
      const keys = keysOf("ae-", 60);
      const { a, b, lagging } = await oneReplicaBehind(h, keys, NO_HINTS);
      // While it is DOWN everywhere: new versions of 40 keys, deletes of the other 20.
      const rewritten = keys.slice(0, 40);
      const deleted = keys.slice(40);
      const v2 = await writeKeys(h, rewritten, addrs([a, b]), {
        value: (k) => `${k}-v2`,
        retryMs: 10_000,
      });
      expect(v2.length).toBe(rewritten.length);
      expect(await deleteKeys(h, deleted, addrs([a, b]), 10_000)).toHaveLength(deleted.length);
      const want = versionsOf(v2);
      for (const k of deleted) want.set(k, "deleted");
      await resumeUntilServing(lagging, [c!.orchestrator, a, b], c!.nodes);
      // No client reads anything: anti-entropy must bring every key up to date by itself.
      let left: string[] = [];
      try {
        await waitFor("anti-entropy to bring the stale replica's own copy up to date", async () => {
          left = differing(await own(lagging, keys), keys, (k) => want.get(k)!);
          return left.length === 0;
        }, 30_000);
      } finally {
        expect(left).toEqual([]);
      }
      const done = await repairs(c!.nodes);
      expect(done.readRepairs).toBe(0);
      expect(done.hintsDelivered).toBe(0);
      expect(done.antiEntropy).toBeGreaterThanOrEqual(keys.length);
      const violations = await verify(h, () => addrs(c!.nodes), () => [c!.orchestrator.address]);
      expect(violations.slice(0, 10)).toEqual([]);
    },
    90_000,
  );
});
