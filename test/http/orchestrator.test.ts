/** Orchestrator membership over the in-memory transport: probes, states, ring changes, restarts. */
import { afterEach, describe, expect, test } from "bun:test";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

let c: MemoryCluster | undefined;
afterEach(() => c?.stop());

const stateOf = (c: MemoryCluster, id: string) => c.orchestrator.table.get(id);

describe("orchestrator health checks", () => {
  test("one failed probe suspects a node but keeps it in the ring; a good probe restores it", async () => {
    c = await memoryCluster(3);
    const epoch = c.orchestrator.view.epoch;
    c.net.down.add("mem:8081");
    await c.orchestrator.healthRound();
    expect(stateOf(c, "mem:8081")).toMatchObject({ state: "SUSPECT", inRing: true });
    expect(c.orchestrator.view.epoch).toBe(epoch + 1);
    c.net.down.clear();
    await c.orchestrator.healthRound();
    expect(stateOf(c, "mem:8081")).toMatchObject({ state: "UP", inRing: true });
  });

  test("a view change is pushed to every node", async () => {
    c = await memoryCluster(3);
    c.net.down.add("mem:8082");
    await c.orchestrator.healthRound();
    await Bun.sleep(0); // pushes are fire-and-forget; let them run
    const epoch = c.orchestrator.view.epoch;
    await waitUntil(() => c!.nodes[0]!.view?.epoch === epoch && c!.nodes[1]!.view?.epoch === epoch);
    const seen = c.nodes[0]!.view!.members.find((m) => m.id === "mem:8082");
    expect(seen?.state).toBe("SUSPECT");
  });

  test("a registration from an unknown node adds it; `known` members rebuild a restarted view", async () => {
    c = await memoryCluster(2);
    const before = c.orchestrator.view.members.filter((m) => m.role === "node").map((m) => m.id);
    expect(before).toEqual(["mem:8080", "mem:8081"]);
    const res = await c.orchestrator.app.request("/internal/v1/register", {
      method: "POST",
      body: JSON.stringify({
        self: { id: "mem:9000", address: "mem:9000", inRing: true, incarnation: 1 },
        known: [{ id: "mem:9001", address: "mem:9001", inRing: true, incarnation: 1 }, {
          id: "mem:9002",
          address: "mem:9002",
          inRing: false,
          incarnation: 1,
        }],
      }),
    });
    expect(res.status).toBe(200);
    const view = (await res.json()).view;
    const ids = view.members.filter((m: { role: string }) => m.role === "node").map((
      m: { id: string },
    ) => m.id);
    expect(ids).toEqual(["mem:8080", "mem:8081", "mem:9000", "mem:9001"]);
  });

  test("--max-members bounds the table: a registration past it is a 503", async () => {
    c = await memoryCluster(2, ["--max-members", "2"]);
    const res = await c.orchestrator.app.request("/internal/v1/register", {
      method: "POST",
      body: JSON.stringify({
        self: { id: "mem:9000", address: "mem:9000", inRing: true, incarnation: 1 },
        known: [],
      }),
    });
    expect(res.status).toBe(503);
    expect((await res.json()).error.errorMessage).toMatch(/membership is full/);
  });
});

async function waitUntil(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(5);
  }
}
