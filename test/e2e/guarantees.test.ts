/**
 * The consistency guarantees with real processes (issue 8, "Real processes"): a quorum write is
 * acknowledged only by distinct replicas (a hint never counts), `one` and `any` still succeed with
 * one replica up, a member cut off from every peer never acknowledges a quorum write, and a
 * replica cut off while hundreds of writes are acknowledged gets every one of them once it is back.
 * Each scenario gets a fresh cluster: orchestrator + 3 nodes, N=3 (every node is every key's
 * replica), local timers.
 *
 * Every member runs with --dead-after 60s: a member DOWN for longer than --dead-after leaves the
 * ring (10 s in the local preset), which would change the replica sets under the test (with one
 * node left in the ring, N=3 shrinks to one replica and a quorum of it is 1).
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import {
  allUp,
  type Cluster,
  freePorts,
  http,
  nodeStates,
  PEER_TRANSPORT,
  PortTakenError,
  type Proc,
  ready,
  servesQuorum,
  startCluster,
  stopAll,
  waitFor,
} from "../support/cluster.ts";
import { cut, healAll, partitionsUsable, spawnAs } from "../support/partition.ts";

const ARGS = ["--dead-after", "60s"];
const SIGSTOP = 19;
const SIGCONT = 18;

/** Everything started is continued (a stopped process takes no SIGTERM), then killed. */
async function cleanup(c: Cluster | undefined): Promise<void> {
  healAll();
  for (const p of c?.all() ?? []) p.kill(SIGCONT);
  await stopAll();
}

let c: Cluster | undefined;
afterEach(async () => {
  await cleanup(c);
  c = undefined;
});
afterAll(async () => {
  await cleanup(c);
});

const addrs = (ps: Proc[]) => ps.map((p) => p.address);

/**
 * Cut `victim` off from `peers`: a real partition (iptables, both directions, every process
 * running) where usable, else SIGSTOP of `pauseInstead` (the side that need not keep serving).
 * Returns the heal.
 */
function isolate(victim: Proc, peers: Proc[], pauseInstead: Proc[]): () => void {
  if (partitionsUsable()) return cut(victim, peers);
  for (const p of pauseInstead) p.kill(SIGSTOP);
  return () => {
    for (const p of pauseInstead) p.kill(SIGCONT);
  };
}

/**
 * Orchestrator + 3 nodes. With iptables usable each runs under its own uid so `cut()` can
 * partition it; otherwise plain processes (the tests then pause members with SIGSTOP instead).
 */
async function startThree(): Promise<Cluster> {
  if (!partitionsUsable()) return await startCluster(3, { nodeArgs: ARGS, orchArgs: ARGS });
  for (let attempt = 1;; attempt++) {
    const cluster = spawnThree();
    try {
      for (const m of cluster.all()) await ready(m);
    } catch (e) {
      // A port taken since it was probed: start again on fresh ones.
      await stopAll();
      if (!(e instanceof PortTakenError) || attempt >= 5) throw e;
      continue;
    }
    for (const m of cluster.all()) {
      await waitFor(
        `${m.name} to list 3 nodes UP`,
        () => allUp(m.address, addrs(cluster.nodes)),
        30_000,
      );
    }
    // As startCluster: a member that has just seen a majority arrive refuses quorum for a moment.
    for (const m of cluster.all()) await servesQuorum(m);
    return cluster;
  }
}

function spawnThree(): Cluster {
  const [orchPort, ...ports] = freePorts(7);
  const orchestrator = spawnAs(
    `orch-${orchPort}`,
    ["--role", "orchestrator", "--port", String(orchPort), "--preset", "local", ...ARGS],
    orchPort!,
  );
  // Each node's TCP peer link on a port of its own, known here, so a cut drops it too.
  const http = PEER_TRANSPORT === "http";
  const nodes = [0, 1, 2].map((i) => {
    const port = ports[i]!;
    const linkPort = ports[i + 3]!;
    return spawnAs(
      `node-${port}`,
      [
        "--role",
        "node",
        "--port",
        String(port),
        `--orchestrator=127.0.0.1:${orchPort}`,
        "--preset",
        "local",
        "--peer-port",
        http ? "off" : String(linkPort),
        ...ARGS,
      ],
      port,
      http ? [] : [linkPort],
    );
  });
  return { orchestrator, nodes, all: () => [orchestrator, ...nodes] };
}

/** Wait until `observer` lists every one of `ids` with `status`. */
async function seen(observer: Proc, ids: string[], status: string, timeoutMs = 30_000) {
  await waitFor(`${observer.name} to see ${ids.join(", ")} ${status}`, async () => {
    const s = await nodeStates(observer.address);
    return ids.every((id) => s.get(id) === status);
  }, timeoutMs);
}

/** The members' own stores (GET /kv/all-data lists only what that node itself holds). */
async function holds(node: Proc): Promise<Record<string, string>> {
  return (await http("GET", node.address, "/kv/all-data")).body;
}

describe("guarantees", () => {
  test(
    "1. two of three replicas stopped: quorum PUT 503, one 200, any 200; after SIGCONT the one " +
      "write reaches all three",
    async () => {
      c = await startCluster(3, { nodeArgs: ARGS, orchArgs: ARGS });
      const [live, ...stopped] = c.nodes as [Proc, Proc, Proc];
      for (const p of stopped) p.kill(SIGSTOP);
      await seen(live, addrs(stopped), "DOWN");

      const put = (key: string, level: string) =>
        http("PUT", live.address, `/kv/${key}?consistency=${level}`, `${key}-value`);
      const quorum = await put("k", "quorum");
      // The very next quorum read of k, through the same node.
      const next = await http("GET", live.address, "/kv/k?consistency=quorum");
      const one = await put("k2", "one");
      const any = await put("k3", "any");
      const seenStatuses = {
        quorumPut: quorum.status,
        nextQuorumGet: next.status,
        onePut: one.status,
        anyPut: any.status,
      };
      console.log(`[guarantees] 2 of 3 stopped: ${JSON.stringify(seenStatuses)}`);
      console.log(`[guarantees] quorum PUT answered ${JSON.stringify(quorum.body)}`);
      // The next quorum GET answers 503 (no quorum to read from) or 404: never the pattern of a
      // write acknowledged (200) and then unreadable (503), which is a write on one machine only.
      const nextIs503or404 = next.status === 503 || next.status === 404;
      expect({ ...seenStatuses, nextIs503or404, quorumBody: quorum.body }).toMatchObject({
        quorumPut: 503,
        nextIs503or404: true,
        onePut: 200,
        anyPut: 200,
        quorumBody: {
          status: "FAILED",
          // It names how many replicas answered (e.g. "only 1 of 3 replicas acknowledged").
          error: { errorMessage: expect.stringMatching(/\b\d+ of \d+\b/), errorSystemCode: 503 },
        },
      });

      for (const p of stopped) p.kill(SIGCONT);
      const continuedAt = Date.now();
      const missing = async () => {
        const out: string[] = [];
        for (const n of c!.nodes) {
          if ((await holds(n))["k2"] !== "k2-value") out.push(n.address);
        }
        return out;
      };
      let lacking: string[] = [];
      await waitFor("k2 (written with one) on all three replicas", async () => {
        lacking = await missing();
        return lacking.length === 0;
      }, 30_000).catch(() => undefined);
      console.log(
        `[guarantees] k2 (one) on all three replicas ${Date.now() - continuedAt} ms after SIGCONT` +
          (lacking.length ? ` (still missing on ${lacking.join(", ")})` : ""),
      );
      expect({ k2MissingOn: lacking }).toEqual({ k2MissingOn: [] });
    },
    120_000,
  );

  test(
    "2. a node whose peers are all unreachable acknowledges none of 100 quorum writes",
    async () => {
      c = await startThree();
      const [alone, ...others] = c.nodes as [Proc, Proc, Proc];
      const peers = [c.orchestrator, ...others];
      // Without iptables (not root, no owner match) every peer is paused instead.
      isolate(alone, peers, peers);
      await seen(alone, addrs(others), "DOWN");
      const statuses = new Map<number, number>();
      let acked = 0;
      const samples: string[] = [];
      for (let batch = 0; batch < 10; batch++) {
        await Promise.all(Array.from({ length: 10 }, async (_, i) => {
          const key = `p2-${batch * 10 + i}`;
          const r = await http("PUT", alone.address, `/kv/${key}?consistency=quorum`, key)
            .catch((e: Error) => ({ status: 0, body: e.message }));
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          if (r.status >= 200 && r.status < 300) {
            acked++;
            if (samples.length < 3) samples.push(`${key}: ${r.status} ${JSON.stringify(r.body)}`);
          }
        }));
      }
      console.log(
        `[guarantees] isolated node (${partitionsUsable() ? "iptables" : "SIGSTOP"}): ` +
          `statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
      );
      expect({ acknowledged: acked, samples }).toEqual({ acknowledged: 0, samples: [] });
    },
    90_000,
  );

  test(
    "3. a node cut off while hundreds of quorum writes are acknowledged gets every one of them " +
      "once it is back",
    async () => {
      c = await startThree();
      const [victim, ...rest] = c.nodes as [Proc, Proc, Proc];
      const peers = [c.orchestrator, ...rest];
      const targets = addrs(peers); // the orchestrator coordinates writes too
      // Without iptables the victim is paused instead: a paused process is unreachable too.
      const heal = isolate(victim, peers, [victim]);
      const cutAt = Date.now();
      const acked = new Map<string, string>();
      let ackedWhileDown = 0;
      let victimDown = false;
      const failed: string[] = [];
      let writing = true;
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; writing; i++) {
          const key = `c3-w${w}-${i}`;
          const at = targets[i % targets.length]!;
          const r = await http("PUT", at, `/kv/${key}?consistency=quorum`, `${key}-v`)
            .catch((e: Error) => ({ status: 0, body: e.message }));
          if (r.status === 200) {
            acked.set(key, `${key}-v`);
            if (victimDown) ackedWhileDown++;
          } else if (failed.length < 5) {
            failed.push(`${key} at ${at}: ${r.status} ${JSON.stringify(r.body)}`);
          }
          // Paced (a few thousand writes in the cut), so the hints held for the victim stay far
          // below --max-hints and the test measures catching up, not a flood.
          await Bun.sleep(10);
        }
      });
      await seen(rest[0]!, [victim.address], "DOWN");
      victimDown = true;
      // The cut lasts until 300 more writes were acknowledged with the victim DOWN (hints held
      // for it, nothing it can learn by gossip), however fast this machine is.
      await waitFor(
        "300 writes acknowledged with the victim DOWN",
        () => ackedWhileDown >= 300,
        60_000,
      );
      writing = false;
      await Promise.all(writers);
      const cutMs = Date.now() - cutAt;
      // Two of three replicas were up throughout: every quorum write must have been acknowledged.
      expect(failed).toEqual([]);
      expect(acked.size).toBeGreaterThan(300);

      heal();
      const healedAt = Date.now();
      let missing: string[] = [];
      // The deadline only bounds the test (timings belong in the benchmarks): the time it took is
      // printed for the record.
      await waitFor("every write acknowledged during the cut on the victim", async () => {
        const held = await holds(victim);
        missing = [...acked].filter(([k, v]) => held[k] !== v).map(([k]) => k);
        return missing.length === 0;
      }, 60_000).catch(() => undefined);
      const tookMs = Date.now() - healedAt;
      console.log(
        `[guarantees] ${acked.size} writes during a ${
          partitionsUsable() ? "partition (iptables)" : "SIGSTOP"
        } of ${cutMs} ms; ` + (missing.length === 0
          ? `caught up in ${tookMs} ms`
          : `${missing.length} still missing after ${tookMs} ms`),
      );
      expect({ missing: missing.length, sample: missing.slice(0, 5) }).toEqual({
        missing: 0,
        sample: [],
      });
    },
    150_000,
  );
});
