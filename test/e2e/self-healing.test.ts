/**
 * Self-healing with real processes: hinted handoff, read repair, anti-entropy, rebalancing and
 * graceful leave, each checked by the history checker (test/support/history.ts) while writers
 * run throughout, reading, writing and deleting. Every scenario gets a fresh cluster
 * (orchestrator + 5 nodes, N=3, local timers) and must end with no acknowledged write lost, no
 * stale read, no deleted key back, and every key's newest copy on exactly its replicas.
 * Each mechanism by itself (read repair alone, anti-entropy alone, deletes against a stale
 * replica) is proved in repair.test.ts and deletes.test.ts.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import {
  allUp,
  type Cluster,
  freePorts,
  http,
  nodeStates,
  type Proc,
  startCluster,
  startNode,
  stopAll,
  waitFor,
} from "../support/cluster.ts";
import { deleteKeys, History, startWriters, verify, writeKeys } from "../support/history.ts";

afterEach(async () => {
  await stopAll();
});
afterAll(async () => {
  await stopAll();
});

/** How long the cluster gets to converge after the writers stop. */
const SETTLE_MS = 30_000;

/**
 * The verdict (test/support/history.ts): wait until each node's own copy of every key is
 * exact (taken without reads, so only hints, anti-entropy and rebalancing can have done it),
 * then every member reads every key at quorum, and every rule of the checker must hold over
 * the whole history: no acknowledged write lost, no stale read, no deleted key back. A checker
 * that cannot take its snapshot throws, and the test fails.
 */
async function settled(h: History, nodes: () => string[], others: () => string[]): Promise<void> {
  expect((await verify(h, nodes, others, SETTLE_MS)).slice(0, 10)).toEqual([]);
  expect(h.okWrites).toBeGreaterThan(100);
  expect(h.okReads).toBeGreaterThan(50);
}

const running = (c: Cluster, gone: Set<Proc>) => c.nodes.filter((n) => !gone.has(n));
const addrs = (ps: Proc[]) => ps.map((p) => p.address);

async function nodeStatus(address: string, id: string) {
  const r = await http("GET", address, "/cluster/status");
  return (r.body.members as { id: string }[]).find((m) => m.id === id) as
    | Record<string, unknown>
    | undefined;
}

describe("self-healing", () => {
  test(
    "1. kill -9 a node, keep writing, restart it empty: hints and anti-entropy refill it",
    async () => {
      const c = await startCluster(5);
      const gone = new Set<Proc>();
      const h = new History();
      // Cold keys, written once before the fault and never read before the verdict's snapshot:
      // no hint was ever held for them, so only anti-entropy can refill them on the restarted
      // node. Writers (reading, writing and deleting their own keys) run throughout.
      const cold = Array.from({ length: 150 }, (_, i) => `s1-cold-${i}`);
      await writeKeys(h, cold, addrs(c.nodes));
      const w = startWriters(h, {
        targets: () => addrs(running(c, gone)),
        writers: 8,
        keysPerWriter: 25,
        prefix: "s1",
      });
      await waitFor("writers under way before the fault", () => h.okWrites > cold.length + 200);
      const victim = c.nodes[2]!;
      victim.kill(9);
      gone.add(victim);
      await victim.exited;
      await waitFor("the orchestrator to mark the victim DOWN", async () => {
        const s = await nodeStatus(c.orchestrator.address, victim.address);
        return s?.state === "DOWN";
      });
      const hintsBefore = h.okWrites;
      await waitFor("writes while the victim is down", () => h.okWrites > hintsBefore + 150);
      // Keys written only while it is down: hints (or anti-entropy) must bring them to it.
      const whileDown = Array.from({ length: 100 }, (_, i) => `s1-down-${i}`);
      await writeKeys(h, whileDown, addrs(running(c, gone)));
      // Hints are held for it somewhere.
      const held = await Promise.all(
        addrs(running(c, gone)).map((a) => http("GET", a, "/internal/v1/status")),
      );
      expect(held.reduce((n, r) => n + r.body.hintsPending, 0)).toBeGreaterThan(0);
      c.nodes[2] = startNode(victim.port, c.orchestrator.port, [], `${victim.name}-restarted`);
      gone.delete(victim);
      await waitFor(
        "the restarted node UP everywhere",
        () => allUp(c.orchestrator.address, addrs(c.nodes)),
      );
      const after = h.okWrites;
      await waitFor("writes after the restart", () => h.okWrites > after + 100);
      await w.stop();
      await settled(h, () => addrs(c.nodes), () => [c.orchestrator.address]);
      const statuses = await Promise.all(
        addrs(c.nodes).map((a) => http("GET", a, "/internal/v1/status")),
      );
      // Both mechanisms named did work: hints were delivered, and anti-entropy moved keys.
      expect(statuses.reduce((n, r) => n + r.body.hintsDelivered, 0)).toBeGreaterThan(0);
      expect(statuses[2]!.body.keys).toBeGreaterThan(0);
    },
    90_000,
  );

  test(
    "2. add a sixth node: partitions move to it, old owners drop them, nothing lost",
    async () => {
      const c = await startCluster(5);
      const h = new History();
      const w = startWriters(h, {
        targets: () => addrs(c.all()),
        writers: 8,
        keysPerWriter: 30,
        prefix: "s2",
      });
      await waitFor("some writes before the join", () => h.okWrites > 300);
      const [port] = freePorts(1);
      const sixth = startNode(port!, c.orchestrator.port);
      c.nodes.push(sixth);
      await waitFor("six nodes UP", () => allUp(c.orchestrator.address, addrs(c.nodes)));
      const at = h.okWrites;
      const readsAt = h.okReads;
      // Reads during the move must find every acknowledged write (previous owners are asked
      // too): the checker's stale-read rule judges each of them.
      await waitFor(
        "writes and reads after the join",
        () => h.okWrites > at + 200 && h.okReads > readsAt + 50,
      );
      await w.stop();
      await settled(h, () => addrs(c.nodes), () => [c.orchestrator.address]);
      const s = await http("GET", sixth.address, "/internal/v1/status");
      expect(s.body.partitionsOwned).toBeGreaterThan(0);
      expect(s.body.partitionsHeld).toBeGreaterThan(0);
      expect(s.body.partitionsHeldNotOwned).toBe(0);
      // Old owners streamed and dropped what moved.
      const statuses = await Promise.all(
        addrs(c.nodes.slice(0, 5)).map((a) => http("GET", a, "/internal/v1/status")),
      );
      expect(statuses.reduce((n, r) => n + r.body.rebalance.partitionsDropped, 0)).toBeGreaterThan(
        0,
      );
      for (const r of statuses) expect(r.body.partitionsHeldNotOwned).toBe(0);
    },
    90_000,
  );

  test("3. SIGTERM a node: it hands off, leaves the ring and exits; nothing lost", async () => {
    const c = await startCluster(5);
    const gone = new Set<Proc>();
    const h = new History();
    const w = startWriters(h, {
      targets: () => addrs([c.orchestrator, ...running(c, gone)]),
      writers: 8,
      keysPerWriter: 30,
      prefix: "s3",
    });
    await waitFor("some writes before the leave", () => h.okWrites > 300);
    const leaver = c.nodes[1]!;
    gone.add(leaver); // clients stop using it; it still finishes requests in flight
    leaver.kill(15);
    expect(await leaver.exited).toBe(0);
    const at = h.okWrites;
    await waitFor("writes after the leave", () => h.okWrites > at + 200);
    await w.stop();
    const rest = running(c, gone);
    for (const m of [c.orchestrator, ...rest]) {
      const r = await http("GET", m.address, "/all-nodes");
      const me = (r.body.allNodes as { id: string; status: string; inRing: boolean }[]).find((x) =>
        x.id === leaver.address
      );
      expect(me).toMatchObject({ status: "LEFT", inRing: false });
    }
    for (const key of ["s3-w0-k0", "s3-w3-k7"]) {
      const r = await http("GET", c.orchestrator.address, `/all-nodes/${key}`);
      expect((r.body.allNodes as { id: string }[]).map((m) => m.id)).not.toContain(leaver.address);
    }
    await settled(h, () => addrs(rest), () => [c.orchestrator.address]);
  }, 90_000);

  test(
    "4. delete keys while a replica is down, restart it empty: the keys stay deleted",
    async () => {
      const c = await startCluster(5);
      const gone = new Set<Proc>();
      const h = new History();
      const w = startWriters(h, {
        targets: () => addrs(running(c, gone)),
        writers: 6,
        keysPerWriter: 20,
        prefix: "s4",
      });
      await waitFor("some writes", () => h.okWrites > 300);
      await w.stop();
      const victim = c.nodes[3]!;
      // Keys the victim holds: it will miss their deletes. (It comes back empty, so it cannot
      // bring them back; a replica that keeps its copy is deletes.test.ts.)
      const victimKeys = Object.keys((await http("GET", victim.address, "/kv/all-data")).body)
        .filter((k) => k.startsWith("s4-"));
      expect(victimKeys.length).toBeGreaterThan(10);
      victim.kill(9);
      gone.add(victim);
      await victim.exited;
      const deleted = await deleteKeys(
        h,
        victimKeys.slice(0, 20),
        addrs(running(c, gone)),
        15_000,
      );
      expect(deleted.length).toBe(Math.min(20, victimKeys.length));
      const w2 = startWriters(h, {
        targets: () => addrs(running(c, gone)),
        writers: 4,
        keysPerWriter: 10,
        prefix: "s4b",
      });
      c.nodes[3] = startNode(victim.port, c.orchestrator.port, [], `${victim.name}-restarted`);
      gone.delete(victim);
      await waitFor(
        "the restarted node UP everywhere",
        () => allUp(c.orchestrator.address, addrs(c.nodes)),
      );
      const after = h.okWrites;
      await waitFor("writes after the restart", () => h.okWrites > after + 50);
      await w2.stop();
      await settled(h, () => addrs(c.nodes), () => [c.orchestrator.address]);
      // The tombstones reached the restarted replica too.
      for (const key of deleted.slice(0, 5)) {
        const r = await http("GET", c.nodes[3]!.address, `/kv/${key}?consistency=all`);
        expect(r.status).toBe(404);
      }
    },
    90_000,
  );

  test(
    "5. a replica paused with SIGSTOP misses writes; with hints off, read repair and " +
      "anti-entropy bring it up to date after SIGCONT",
    async () => {
      // No hints (--max-hints 0): a write for a DOWN replica is not held for it, so only read
      // repair and anti-entropy can bring the paused node up to date. Each by itself is proved
      // in repair.test.ts.
      const c = await startCluster(5, { nodeArgs: ["--max-hints", "0"] });
      const gone = new Set<Proc>();
      const h = new History();
      const w = startWriters(h, {
        targets: () => addrs(running(c, gone)),
        writers: 8,
        keysPerWriter: 25,
        prefix: "s5",
      });
      await waitFor("some writes", () => h.okWrites > 300);
      const paused = c.nodes[0]!;
      gone.add(paused);
      paused.kill(19); // SIGSTOP: its peers' calls to it hang until they time out
      const others = c.all().filter((p) => p !== paused);
      await waitFor("the paused node DOWN on every other member", async () => {
        for (const m of others) {
          if ((await nodeStates(m.address)).get(paused.address) !== "DOWN") return false;
        }
        return true;
      });
      // From now on no coordinator sends it anything: every write acknowledged now, of a key
      // it is a replica of, is one it misses.
      const downAtMs = h.now();
      const at = h.okWrites;
      await waitFor("writes while it is DOWN everywhere", () => h.okWrites > at + 200);
      const resumeAtMs = h.now();
      paused.kill(18); // SIGCONT
      gone.delete(paused);
      await waitFor(
        "the paused node UP again",
        () => allUp(c.orchestrator.address, addrs(c.nodes)),
      );
      const after = h.okWrites;
      await waitFor("writes after the resume", () => h.okWrites > after + 100);
      await w.stop();
      const missedKeys = new Set(
        h.acked("put").filter((o) => o.invokeMs > downAtMs && o.completeMs < resumeAtMs).map((o) =>
          o.key
        ),
      );
      let missed = 0;
      for (const key of missedKeys) {
        const r = await http("GET", c.orchestrator.address, `/all-nodes/${key}`);
        if ((r.body.allNodes as { id: string }[]).some((m) => m.id === paused.address)) missed++;
      }
      expect(missed).toBeGreaterThan(10);
      await settled(h, () => addrs(c.nodes), () => [c.orchestrator.address]);
      const statuses = await Promise.all(
        addrs(c.nodes).map((a) => http("GET", a, "/internal/v1/status")),
      );
      for (const r of statuses) expect(r.body.hintsDelivered).toBe(0);
    },
    90_000,
  );
});
