/**
 * Hinted handoff's limits with real processes: a node holds at most `--max-hint-bytes` of hints
 * (the rest are dropped and counted, the writes still succeed), and a hint not delivered within
 * half of `--tombstone-grace` expires (counted, logged). Orchestrator + 3 nodes, N = 3, so every
 * node is every key's replica and a write through a node hints nobody but the stopped replica.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import { http, startCluster, stopAll, waitFor } from "../support/cluster.ts";
import { figures, listedAs } from "../support/inspect.ts";

afterEach(async () => {
  await stopAll();
});
afterAll(async () => {
  await stopAll();
});

const SIGSTOP = 19;
const SIGCONT = 18;
const VALUE_BYTES = 500;
const HINT_BYTES_MAX = 2000;

test(
  "at most --max-hint-bytes of hints are held, the rest dropped; held ones expire after half --tombstone-grace",
  async () => {
    const c = await startCluster(3, {
      // Hints expire after 1 s; nobody is taken out of the ring during the test.
      nodeArgs: [
        "--max-hint-bytes",
        String(HINT_BYTES_MAX),
        "--tombstone-grace",
        "2s",
        "--dead-after",
        "5m",
      ],
      orchArgs: ["--dead-after", "5m"],
    });
    const [coordinator, other, stopped] = c.nodes as [
      typeof c.nodes[0],
      typeof c.nodes[0],
      typeof c.nodes[0],
    ];
    stopped.kill(SIGSTOP);
    try {
      await waitFor(
        "the stopped replica DOWN on the other nodes",
        () => listedAs([coordinator, other], stopped.address, "DOWN"),
        30_000,
      );
      // 30 writes at once through one node: two of three replicas acknowledge each, and each leaves
      // one hint for the stopped replica, held by the coordinator (no other node is a fallback).
      const value = "h".repeat(VALUE_BYTES);
      const writes = await Promise.all(
        Array.from(
          { length: 30 },
          (_, i) => http("PUT", coordinator.address, `/kv/hint-${i}`, value),
        ),
      );
      expect(writes.map((w) => w.status)).toEqual(Array(30).fill(200));

      const full = await figures(coordinator);
      console.log(
        `[hints] after the writes: pending ${full.hintsPending}, dropped ${full.hintsDropped}, ` +
          `expired ${full.hintsExpired}`,
      );
      expect(full.hintsDropped).toBeGreaterThan(0);
      expect(full.hintsPending * VALUE_BYTES).toBeLessThanOrEqual(HINT_BYTES_MAX);

      const done = await waitFor("every held hint to expire", async () => {
        const f = await figures(coordinator);
        return f.hintsPending === 0 && f;
      }, 30_000);
      // Each write's hint was either refused (store full) or held and expired; none delivered.
      expect({
        droppedPlusExpired: done.hintsDropped + done.hintsExpired,
        expired: done.hintsExpired > 0,
        delivered: done.hintsDelivered,
      }).toEqual({ droppedPlusExpired: 30, expired: true, delivered: 0 });
      expect(coordinator.log()).toContain("hints expired undelivered");
      expect((await figures(other)).hintsPending).toBe(0);
    } finally {
      stopped.kill(SIGCONT);
    }
  },
  60_000,
);
