/**
 * No single point of failure, with real processes: membership is gossip among all members, so
 * the cluster keeps serving and keeps changing membership while the orchestrator is down, and
 * a restarted orchestrator gets the whole view back from the nodes. Scenarios run in order on
 * one cluster (orchestrator + 5 nodes, local timers).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  type Cluster,
  freePorts,
  http,
  type Proc,
  startCluster,
  startNode,
  startOrchestrator,
  stopAll,
  waitFor,
} from "../support/cluster.ts";

let c: Cluster;
beforeAll(async () => {
  c = await startCluster(5);
}, 60_000);
afterAll(async () => {
  await stopAll();
});

/** A member's view: id → status, for every member it lists. */
async function states(address: string): Promise<Map<string, string>> {
  const r = await http("GET", address, "/all-nodes");
  return new Map(
    (r.body.allNodes as { id: string; status: string }[]).map((m) => [m.id, m.status]),
  );
}

const live = (ps: Proc[]) =>
  ps.filter((p) => p.proc.exitCode === null && p.proc.signalCode === null);

describe("gossip membership", () => {
  test(
    "1. kill -9 the orchestrator: 1,000 mixed reads and writes across all nodes all succeed",
    async () => {
      c.orchestrator.kill(9);
      await c.orchestrator.exited;
      let failures = 0;
      const samples: string[] = [];
      const ops = Array.from({ length: 1000 }, (_, i) => i);
      const workers = Array.from({ length: 8 }, async (_, w) => {
        for (let i = w; i < ops.length; i += 8) {
          const at = c.nodes[i % c.nodes.length]!.address;
          const key = `g1-${i % 100}`;
          const r = i < 100 || i % 3 === 0
            ? await http("POST", at, `/kv/${key}`, `v${i}`)
            : await http("GET", at, `/kv/${key}`);
          if (r.status !== 200) {
            failures++;
            if (samples.length < 5) {
              samples.push(`${key} at ${at}: ${r.status} ${JSON.stringify(r.body)}`);
            }
          }
        }
      });
      await Promise.all(workers);
      expect(samples).toEqual([]);
      expect(failures).toBe(0);
      // The nodes see the orchestrator DOWN and one of them holds its duty.
      const view = await states(c.nodes[0]!.address);
      await waitFor(
        "the nodes to see the orchestrator DOWN",
        async () => (await states(c.nodes[2]!.address)).get(c.orchestrator.address) === "DOWN",
      );
      const status = await http("GET", c.nodes[1]!.address, "/cluster/status");
      const lowest = c.nodes.map((n) => n.address).sort()[0];
      await waitFor(
        "duty with the lowest-id node",
        async () =>
          (await http("GET", c.nodes[1]!.address, "/cluster/status")).body.dutyHolder === lowest,
      );
      expect(view.size).toBe(6);
      expect(status.status).toBe(200);
    },
    60_000,
  );

  test(
    "2. with the orchestrator still down, a new node joins through any node: all list it UP",
    async () => {
      const [port] = freePorts(1);
      const joiner = spawnJoiner(port!, c.nodes[3]!.address);
      c.nodes.push(joiner);
      const started = Date.now();
      await waitFor("every node to list the newcomer UP", async () => {
        for (const n of c.nodes) {
          if ((await states(n.address)).get(joiner.address) !== "UP") return false;
        }
        return true;
      }, 15_000);
      console.log(
        `join visible on all ${c.nodes.length} nodes ${Date.now() - started} ms after its start`,
      );
      // It serves data: a write through it reads back everywhere.
      expect((await http("POST", joiner.address, "/kv/g2", "joined")).status).toBe(200);
      for (const n of c.nodes) {
        expect((await http("GET", n.address, "/kv/g2")).body.value).toBe(
          "joined",
        );
      }
    },
    60_000,
  );

  test("3. kill -9 a node: every other member marks it DOWN within the bound", async () => {
    const victim = c.nodes[1]!;
    victim.kill(9);
    const killedAt = Date.now();
    await victim.exited;
    const others = live(c.nodes).filter((n) => n !== victim);
    // Bound (local preset): a full probe round over n members (n · 100 ms), the probe timeout and
    // indirect round, the maximum suspicion (4 · 2 · 100 ms), and gossip spread: well under 5 s.
    const BOUND_MS = 5000;
    await waitFor("every other node to mark the victim DOWN", async () => {
      for (const n of others) {
        if ((await states(n.address)).get(victim.address) !== "DOWN") return false;
      }
      return true;
    }, BOUND_MS);
    console.log(
      `kill -9 → DOWN on all ${others.length} other nodes in ${Date.now() - killedAt} ms`,
    );
    c.nodes = c.nodes.filter((n) => n !== victim);
  }, 60_000);

  test(
    "4. SIGSTOP a node for 3 s, then SIGCONT: it is UP again, nothing lost, nobody else flapped",
    async () => {
      for (let i = 0; i < 50; i++) {
        expect(
          (await http("POST", c.nodes[0]!.address, `/kv/g4-${i}`, `v${i}`)).status,
        ).toBe(200);
      }
      const paused = c.nodes[2]!;
      const others = c.nodes.filter((n) => n !== paused);
      const flaps: string[] = [];
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          for (const n of others) {
            const s = await states(n.address).catch(() => undefined);
            for (const [id, st] of s ?? []) {
              if (
                st === "DOWN" && id !== paused.address && others.some((o) => o.address === id)
              ) flaps.push(`${n.address} saw ${id} DOWN`);
            }
          }
          await Bun.sleep(100);
        }
      })();
      paused.kill(19);
      await waitFor(
        "the others to mark the paused node DOWN",
        async () => (await states(others[0]!.address)).get(paused.address) === "DOWN",
        10_000,
      );
      const stoppedAt = Date.now();
      while (Date.now() - stoppedAt < 3000) {
        await Bun.sleep(100); // keep it paused for 3 s in all
      }
      paused.kill(18);
      await waitFor("every node to list the resumed node UP", async () => {
        for (const n of c.nodes) {
          if ((await states(n.address)).get(paused.address) !== "UP") return false;
        }
        return true;
      }, 15_000);
      // Let the resumed node's own timers run a few probe periods before judging flaps.
      const resumedAt = Date.now();
      while (Date.now() - resumedAt < 1500) await Bun.sleep(100);
      watching = false;
      await watcher;
      expect(flaps).toEqual([]);
      for (let i = 0; i < 50; i++) {
        const r = await http("GET", paused.address, `/kv/g4-${i}`);
        expect({ i, status: r.status, value: r.body.value }).toEqual({
          i,
          status: 200,
          value: `v${i}`,
        });
      }
    },
    60_000,
  );

  test(
    "5. restart the orchestrator: its /all-nodes lists every member, with no ring change",
    async () => {
      const sample = ["g1-1", "g1-2", "g2", "g4-7"];
      const before = await Promise.all(
        sample.map(async (k) =>
          (await http("GET", c.nodes[0]!.address, `/all-nodes/${k}`)).body.allNodes.map((
            m: { id: string },
          ) => m.id)
        ),
      );
      c.orchestrator = startOrchestrator(
        c.orchestrator.port,
        [],
        `orch-${c.orchestrator.port}-back`,
      );
      const started = Date.now();
      await waitFor("the new orchestrator to list every live node UP", async () => {
        const s = await states(c.orchestrator.address);
        return c.nodes.every((n) => s.get(n.address) === "UP");
      }, 15_000);
      console.log(
        `restarted orchestrator has the whole view ${Date.now() - started} ms after its start`,
      );
      const after = await Promise.all(
        sample.map(async (k) =>
          (await http("GET", c.orchestrator.address, `/all-nodes/${k}`)).body.allNodes.map((
            m: { id: string },
          ) => m.id)
        ),
      );
      expect(after).toEqual(before);
      // The duty is handed back to it.
      await waitFor(
        "the duty back with the orchestrator",
        async () =>
          (await http("GET", c.nodes[0]!.address, "/cluster/status")).body.dutyHolder ===
            c.orchestrator.address,
      );
    },
    60_000,
  );
});

describe("member identity", () => {
  test(
    "6. a node restarted on a new port keeps its --node-id; a new node may reuse the old port",
    async () => {
      const [oldPort, newPort] = freePorts(2);
      const first = startNode(
        oldPort!,
        c.orchestrator.port,
        ["--node-id", "stable-node"],
        `stable-${oldPort}`,
      );
      const listed = async (id: string, address: string, status: string) => {
        for (const m of [c.orchestrator, ...c.nodes]) {
          const r = await http("GET", m.address, "/all-nodes");
          const me = (r.body.allNodes as { id: string; ip: string; port: number; status: string }[])
            .find((x) => x.id === id);
          if (
            me === undefined || `${me.ip}:${me.port}` !== address || me.status !== status
          ) return false;
        }
        return true;
      };
      await waitFor(
        "stable-node UP at its first address",
        () => listed("stable-node", first.address, "UP"),
      );
      first.kill(9);
      await first.exited;
      const moved = startNode(
        newPort!,
        c.orchestrator.port,
        ["--node-id", "stable-node"],
        `stable-${newPort}`,
      );
      await waitFor(
        "stable-node UP at its new address, everywhere",
        () => listed("stable-node", moved.address, "UP"),
        15_000,
      );
      // A different node takes the old address: a separate member, and stable-node stays UP.
      const reuser = startNode(oldPort!, c.orchestrator.port, [], `reuser-${oldPort}`);
      await waitFor(
        "the reusing node UP under its own id",
        () => listed(reuser.address, reuser.address, "UP"),
        15_000,
      );
      expect(await listed("stable-node", moved.address, "UP")).toBe(true);
    },
    60_000,
  );
});

function spawnJoiner(port: number, via: string): Proc {
  // A node that knows no orchestrator at all: only --join.
  return startNode(port, 0, ["--join", via], `joiner-${port}`);
}
