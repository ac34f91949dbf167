/**
 * Self-healing with real processes: hinted handoff, read repair, anti-entropy, rebalancing and
 * graceful leave, each checked by the history checker while writers run throughout. Every
 * scenario gets a fresh cluster (orchestrator + 5 nodes, N=3, local timers) and must end with
 * zero acknowledged writes lost and every key on exactly its replicas.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import {
  allUp,
  type Cluster,
  freePorts,
  http,
  type Proc,
  startCluster,
  startNode,
  stopAll,
  waitFor,
} from "../support/cluster.ts";
import {
  deleteKeys,
  History,
  startWriters,
  verifyPlacement,
  verifyReads,
  writeKeys,
} from "../support/history.ts";

afterEach(async () => {
  await stopAll();
});
afterAll(async () => {
  await stopAll();
});

const SETTLE_MS = 30_000;

/**
 * Wait until placement is exact (checked from /kv/all-data, so only hints, anti-entropy and
 * rebalancing can have done it), then demand that quorum reads return every acknowledged write.
 */
async function settled(h: History, members: () => string[], nodes: () => string[]): Promise<void> {
  let last: string[] = [];
  try {
    await waitFor("exact placement with the newest values", async () => {
      const v = await verifyPlacement(h, members()[0]!, nodes());
      last = v.problems;
      return v.ok;
    }, SETTLE_MS);
  } catch {
    // Fall through to a readable assertion.
  }
  expect(last.slice(0, 10)).toEqual([]);
  expect((await verifyReads(h, members())).problems.slice(0, 10)).toEqual([]);
  expect(h.okWrites).toBeGreaterThan(100);
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
      // Cold keys, written once before the fault and never again: only anti-entropy can refill
      // them on the restarted node. Writers (no reads, so no read repair) run throughout.
      const cold = Array.from({ length: 150 }, (_, i) => `s1-cold-${i}`);
      await writeKeys(h, cold, addrs(c.nodes));
      const w = startWriters(h, {
        targets: () => addrs(running(c, gone)),
        writers: 8,
        keysPerWriter: 25,
        prefix: "s1",
        readFraction: 0,
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
      await settled(h, () => addrs(c.all()), () => addrs(c.nodes));
      const s = await http("GET", c.nodes[2]!.address, "/internal/v1/status");
      expect(s.body.keys).toBeGreaterThan(0);
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
      await waitFor("writes after the join", () => h.okWrites > at + 200);
      await w.stop();
      // Reads during the move found every acknowledged write (previous owners are asked too).
      expect(h.staleReads.slice(0, 5)).toEqual([]);
      expect(h.okReads).toBeGreaterThan(20);
      await settled(h, () => addrs(c.all()), () => addrs(c.nodes));
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
    await settled(h, () => addrs([c.orchestrator, ...rest]), () => addrs(rest));
  }, 90_000);

  test("4. delete keys while a replica is down, restart it: the keys stay deleted", async () => {
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
    // Keys the victim holds: it will miss their deletes.
    const victimKeys = Object.keys((await http("GET", victim.address, "/kv/all-data")).body).filter(
      (k) => k.startsWith("s4-"),
    );
    expect(victimKeys.length).toBeGreaterThan(10);
    victim.kill(9);
    gone.add(victim);
    await victim.exited;
    const deleted = await deleteKeys(h, victimKeys.slice(0, 20), addrs(running(c, gone)));
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
    await settled(h, () => addrs(c.all()), () => addrs(c.nodes));
    // The tombstones reached the restarted replica too.
    for (const key of deleted.slice(0, 5)) {
      const r = await http("GET", c.nodes[3]!.address, `/kv/${key}?consistency=all`);
      expect(r.status).toBe(404);
    }
  }, 90_000);

  test(
    "5. a replica paused with SIGSTOP diverges; after SIGCONT read repair and anti-entropy fix it",
    async () => {
      const c = await startCluster(5);
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
      const at = h.okWrites;
      await waitFor("writes while it is paused", () => h.okWrites > at + 200, 20_000);
      paused.kill(18); // SIGCONT
      gone.delete(paused);
      await waitFor(
        "the paused node UP again",
        () => allUp(c.orchestrator.address, addrs(c.nodes)),
      );
      const after = h.okWrites;
      await waitFor("writes after the resume", () => h.okWrites > after + 100);
      await w.stop();
      await settled(h, () => addrs(c.all()), () => addrs(c.nodes));
      const s = await http("GET", paused.address, "/internal/v1/status");
      expect(s.body.antiEntropy.rounds).toBeGreaterThan(0);
      const repaired = await Promise.all(
        addrs(c.nodes).map((a) => http("GET", a, "/internal/v1/status")),
      );
      const fixes = repaired.reduce(
        (n, r) =>
          n + r.body.readRepairs + r.body.antiEntropy.keysPulled + r.body.antiEntropy.keysPushed +
          r.body.hintsDelivered,
        0,
      );
      expect(fixes).toBeGreaterThan(0);
    },
    90_000,
  );
});
