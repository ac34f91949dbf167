/**
 * Membership as the README describes it, with real processes: `--dead-after` taking a DOWN node
 * out of the ring and its data re-replicated (with the orchestrator alive, and with it dead and the
 * duty on the lowest-id node), a cluster with no orchestrator at all (nodes started with `--join`
 * only), `--advertise`, and the `/cluster/status` body (docs/protocol.md). Each test starts its own
 * small cluster (local preset), so each runs alone; everything is killed after each test.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { createConnection, createServer, type Server } from "node:net";
import {
  allUp,
  type Cluster,
  freePort,
  freePorts,
  http,
  launch,
  nodeCmd,
  PortTakenError,
  type Proc,
  ready,
  servesQuorum,
  spawnLogged,
  startCluster,
  startNode,
  stopAll,
  waitFor,
} from "../support/cluster.ts";
import { allData, listedAs, members, placementProblems, writeKeys } from "../support/inspect.ts";

afterEach(async () => {
  await stopAll();
});
afterAll(async () => {
  await stopAll();
});

const SIGSTOP = 19;
const SIGCONT = 18;
/** Short, so the tests need not wait the local preset's 10 s; anti-entropy off: moves only. */
const DEAD_AFTER = ["--dead-after", "2s"];
const NO_ANTI_ENTROPY = ["--anti-entropy-interval", "1h"];

/** Wait until each key is on exactly its replicas among `nodes`, as `observer` places them. */
async function placed(observer: Proc, nodes: Proc[], keys: ReadonlyMap<string, string>) {
  let problems: string[] = [];
  await waitFor("every key on exactly its replicas", async () => {
    problems = await placementProblems(observer, nodes, keys);
    return problems.length === 0;
  }, 30_000).catch(() => undefined);
  expect(problems.slice(0, 5)).toEqual([]);
}

describe("--dead-after", () => {
  test(
    "a node DOWN that long leaves the ring on every member, and its data is re-replicated",
    async () => {
      const c = await startCluster(4, {
        nodeArgs: [...DEAD_AFTER, ...NO_ANTI_ENTROPY],
        orchArgs: DEAD_AFTER,
      });
      const keys = await writeKeys(c.nodes[0]!, "dead", 40);
      const victim = c.nodes[3]!;
      const rest = c.nodes.slice(0, 3);
      const held = Object.keys(await allData(victim)).length;
      expect(held).toBeGreaterThan(0);
      victim.kill(9);
      const killedAt = Date.now();
      await waitFor(
        "every member to list the victim DOWN and out of the ring",
        () => listedAs([c.orchestrator, ...rest], victim.address, "DOWN", false),
        30_000,
      );
      console.log(
        `[membership] kill -9 → out of the ring everywhere in ${Date.now() - killedAt} ms`,
      );
      // The orchestrator holds the duty, and it took the victim out.
      expect(c.orchestrator.log()).toContain(
        `member ${victim.address} DOWN for 2000ms: out of the ring`,
      );
      // N = 3 on the three left: every key on all three (the moves brought what the victim held).
      await placed(rest[0]!, rest, keys);
    },
    90_000,
  );

  test(
    "with the orchestrator dead too, the lowest-id node takes a DOWN node out and data moves",
    async () => {
      const c = await startCluster(4, {
        nodeArgs: [...DEAD_AFTER, ...NO_ANTI_ENTROPY],
        orchArgs: DEAD_AFTER,
      });
      const keys = await writeKeys(c.nodes[0]!, "orphan", 40);
      c.orchestrator.kill(9);
      await c.orchestrator.exited;
      const byId = [...c.nodes].sort((a, b) => a.address < b.address ? -1 : 1);
      const lowest = byId[0]!;
      const victim = byId[3]!;
      const rest = byId.slice(0, 3);
      await waitFor("every node to hand the duty to the lowest-id node", async () => {
        for (const n of c.nodes) {
          const r = await http("GET", n.address, "/cluster/status");
          if (r.body.dutyHolder !== lowest.address || r.body.orchestrator?.state !== "DOWN") {
            return false;
          }
        }
        return true;
      }, 30_000);
      victim.kill(9);
      await waitFor(
        "every node to list the victim DOWN and out of the ring",
        () => listedAs(rest, victim.address, "DOWN", false),
        30_000,
      );
      expect(lowest.log()).toContain(`member ${victim.address} DOWN for 2000ms: out of the ring`);
      await placed(rest[0]!, rest, keys);
    },
    90_000,
  );
});

describe("no orchestrator at all", () => {
  /** The README's three nodes, each joining through the others; started again if a port was taken. */
  async function joinOnly(): Promise<Proc[]> {
    for (let attempt = 1;; attempt++) {
      const ports = freePorts(3);
      const at = ports.map((p) => `127.0.0.1:${p}`);
      const joins = [[at[1]!], [at[0]!], [at[0]!, at[1]!]];
      const nodes = ports.map((p, i) =>
        spawnLogged(`joinonly-${p}`, nodeCmd(p, 0, ["--join", joins[i]!.join(",")]), p)
      );
      try {
        for (const n of nodes) await ready(n);
        return nodes;
      } catch (e) {
        await stopAll();
        if (!(e instanceof PortTakenError) || attempt >= 5) throw e;
      }
    }
  }

  test(
    "three nodes started with --join only form one ring and serve every consistency level",
    async () => {
      const nodes = await joinOnly();
      const ids = nodes.map((n) => n.address);
      for (const n of nodes) {
        await waitFor(`${n.name} to list all three UP`, () => allUp(n.address, ids), 30_000);
      }
      for (const n of nodes) await servesQuorum(n);
      for (const n of nodes) {
        expect((await members(n.address)).filter((m) => m.role === "orchestrator")).toEqual([]);
      }
      const status = await http("GET", nodes[2]!.address, "/cluster/status");
      expect(status.body).toMatchObject({
        status: "SUCCESS",
        orchestrator: null,
        dutyHolder: [...ids].sort()[0],
        replicationFactor: 3,
        partitions: 256,
      });
      // consistency=all needs every replica: all three nodes are in the ring and reachable.
      const keys = new Map<string, string>();
      for (let i = 0; i < 20; i++) {
        const r = await http(
          "PUT",
          nodes[i % 3]!.address,
          `/kv/solo-${i}?consistency=all`,
          `v${i}`,
        );
        expect({ i, status: r.status }).toEqual({ i, status: 200 });
        keys.set(`solo-${i}`, `v${i}`);
      }
      for (const [k, v] of keys) {
        expect((await http("GET", nodes[1]!.address, `/kv/${k}?consistency=all`)).body.value).toBe(
          v,
        );
      }
      await placed(nodes[0]!, nodes, keys);
    },
    90_000,
  );
});

/** A TCP forwarder on loopback: its `port` → `target` (set before the first connection). */
interface Proxy {
  port: number;
  target: number;
  connections: number;
  close(): void;
}

async function tcpProxy(): Promise<Proxy> {
  for (let attempt = 1;; attempt++) {
    const state: Proxy = { port: freePort(), target: 0, connections: 0, close: () => {} };
    const server: Server = createServer((client) => {
      state.connections++;
      const upstream = createConnection({ host: "127.0.0.1", port: state.target });
      client.pipe(upstream).pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    });
    state.close = () => server.close();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(state.port, "127.0.0.1", () => resolve());
      });
      return state;
    } catch (e) {
      // Taken since it was probed: another port.
      if (attempt >= 5) throw e;
    }
  }
}

describe("--advertise", () => {
  test("peers dial the advertised address, and every member lists the node by it", async () => {
    const c = await startCluster(2);
    const proxy = await tcpProxy();
    try {
      const advertised = `127.0.0.1:${proxy.port}`;
      const node = await launch((port) => {
        proxy.target = port;
        return startNode(port, c.orchestrator.port, ["--advertise", advertised]);
      });
      expect(node.address).not.toBe(advertised);
      const everyone = [c.orchestrator, ...c.nodes, node];
      await waitFor(
        "every member to list the node UP by its advertised address",
        () => listedAs(everyone, advertised, "UP", true),
        30_000,
      );
      for (const m of everyone) {
        const rows = await members(m.address);
        expect(rows.find((r) => r.id === advertised)).toMatchObject({
          ip: "127.0.0.1",
          port: proxy.port,
        });
        expect(rows.some((r) => r.id === node.address || r.port === node.port)).toBe(false);
      }
      expect((await http("GET", node.address, "/health")).body.id).toBe(advertised);
      // Its peers reached it only through the proxy: nothing else knows its listening port.
      expect(proxy.connections).toBeGreaterThan(0);
      // consistency=all through another node needs the advertised node's own acknowledgement.
      const w = await http("PUT", c.nodes[0]!.address, "/kv/adv?consistency=all", "via proxy");
      expect(w.status).toBe(200);
      expect((await allData(node))["adv"]).toBe("via proxy");
      console.log(`[membership] ${proxy.connections} connections through the advertised address`);
    } finally {
      proxy.close();
    }
  }, 60_000);
});

describe("/cluster/status", () => {
  const n = expect.any(Number);
  /** "null or <type>" for a field that may be either (bun:test has no such matcher). */
  const orNull = (v: unknown, type: string) => v === null || typeof v === type ? `${type}?` : v;

  test("the documented fields, figures that add up, and an unreachable node marked", async () => {
    const c: Cluster = await startCluster(3);
    const keys = await writeKeys(c.nodes[0]!, "st", 30);
    expect((await http("DELETE", c.nodes[1]!.address, "/kv/st-0")).status).toBe(200);
    keys.delete("st-0");
    const at = c.nodes[1]!;
    // N = 3 on three nodes: each holds every key (the third copy may land a moment later).
    const status = await waitFor("every node to count 29 keys and 1 tombstone", async () => {
      const r = await http("GET", at.address, "/cluster/status");
      const rows = r.body.members.filter((m: { role: string }) => m.role === "node");
      return rows.every((m: { keys: number; tombstones: number }) =>
        m.keys === 29 && m.tombstones === 1
      ) && r;
    }, 30_000);
    expect(status.status).toBe(200);
    expect(status.body).toEqual({
      status: "SUCCESS",
      answeredBy: at.address,
      epoch: n,
      replicationFactor: 3,
      partitions: 256,
      orchestrator: { id: c.orchestrator.address, address: c.orchestrator.address, state: "UP" },
      dutyHolder: c.orchestrator.address,
      authRefused: 0,
      settingsMismatches: [],
      tokenRefused: 0,
      originRefused: 0,
      resp: null,
      routing: { coordinated: n, asReplica: n, replicaCalls: n },
      members: expect.any(Array),
    });
    const rows = status.body.members as Record<string, unknown>[];
    expect(rows.map((r) => r.id).sort()).toEqual(c.all().map((m) => m.address).sort());
    expect(rows.find((r) => r.role === "orchestrator")).toEqual({
      id: c.orchestrator.address,
      address: c.orchestrator.address,
      role: "orchestrator",
      state: "UP",
      inRing: false,
    });
    for (const node of c.nodes) {
      // deno-lint-ignore no-explicit-any
      const row = rows.find((r) => r.id === node.address) as any;
      const ae = row.antiEntropy, rb = row.rebalance;
      // Every field of docs/protocol.md's NodeStatus table, and the member's view of it.
      expect({
        ...row,
        antiEntropy: {
          ...ae,
          lastRoundAt: orNull(ae.lastRoundAt, "string"),
          lastRoundMs: orNull(ae.lastRoundMs, "number"),
        },
        rebalance: {
          ...rb,
          lastStartedAt: orNull(rb.lastStartedAt, "string"),
          lastFinishedAt: orNull(rb.lastFinishedAt, "string"),
          lastDurationMs: orNull(rb.lastDurationMs, "number"),
          lastStreamedAt: orNull(rb.lastStreamedAt, "string"),
          lastStreamMs: orNull(rb.lastStreamMs, "number"),
          lastStreamBytes: orNull(rb.lastStreamBytes, "number"),
        },
      }).toEqual({
        id: node.address,
        address: node.address,
        role: "node",
        state: "UP",
        inRing: true,
        leaving: false,
        partitionsOwned: 256,
        partitionsHeld: n,
        partitionsHeldNotOwned: 0,
        keys: 29,
        tombstones: 1,
        hintsPending: 0,
        hintsDropped: 0,
        hintsDelivered: n,
        hintsExpired: 0,
        movingIn: n,
        movingOut: n,
        readRepairs: n,
        readsHedged: n,
        readHedgeDelayMs: n,
        staleRingRetries: n,
        previousOwnerWrites: n,
        previousOwnerMisses: n,
        routing: { coordinated: n, asReplica: n, replicaCalls: n },
        clockSkewRefused: 0,
        storeBytes: n,
        storeFullRefused: 0,
        authRefused: 0,
        antiEntropy: {
          rounds: n,
          lastRoundAt: "string?",
          lastRoundMs: "number?",
          keysPulled: n,
          keysPushed: n,
        },
        rebalance: {
          running: expect.any(Boolean),
          partitionsSent: n,
          keysSent: n,
          bytesSent: n,
          partitionsDropped: n,
          lastStartedAt: "string?",
          lastFinishedAt: "string?",
          lastDurationMs: "number?",
          lastStreamedAt: "string?",
          lastStreamMs: "number?",
          lastStreamBytes: "number?",
        },
        tombstonesCollected: 0,
        gossip: {
          messagesSent: n,
          bytesSent: n,
          localHealth: n,
          incarnation: n,
          dutyHolder: c.orchestrator.address,
        },
      });
      expect(row.partitionsHeld).toBeGreaterThan(0);
    }

    // A node that does not answer is listed with the reason, the others with their figures.
    const stopped = c.nodes[2]!;
    stopped.kill(SIGSTOP);
    try {
      const r = await http("GET", c.nodes[0]!.address, "/cluster/status");
      expect(r.status).toBe(200);
      const row = r.body.members.find((m: { id: string }) => m.id === stopped.address);
      expect(row.error).toMatch(/^unreachable: /);
      expect(row.keys).toBeUndefined();
      const other = r.body.members.find((m: { id: string }) => m.id === c.nodes[1]!.address);
      expect(other.keys).toBe(29);
    } finally {
      stopped.kill(SIGCONT);
    }
  }, 60_000);
});
