/** Hinted handoff bounds and tombstone collection, in memory with a manual clock. */
import { afterEach, describe, expect, test } from "bun:test";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

let c: MemoryCluster | undefined;
afterEach(() => c?.stop());

const post = (c: MemoryCluster, i: number, path: string, body?: string) =>
  c.nodes[i]!.app.request(path, { method: "POST", body });

describe("hinted handoff", () => {
  test("a write for a down replica is held as a hint and delivered when it is back", async () => {
    c = await memoryCluster(4);
    const down = "mem:8083";
    c.net.down.add(down);
    for (let i = 0; i < 40; i++) expect((await post(c, 0, `/kv/h-${i}`, `v${i}`)).status).toBe(200);
    const held = c.nodes.reduce((n, node) => n + node.hints.count, 0);
    expect(held).toBeGreaterThan(0);
    expect(c.nodes[3]!.store.size).toBe(0);
    c.net.down.clear();
    for (const n of c.nodes) await n.hintDelivery.round();
    expect(c.nodes.reduce((n, node) => n + node.hints.count, 0)).toBe(0);
    // Everything the down replica owns arrived.
    const returned = c.nodes[3]!;
    let owned = 0;
    for (let i = 0; i < 40; i++) {
      const owners = await (await c.nodes[0]!.app.request(`/all-nodes/h-${i}`)).json();
      if (owners.allNodes.some((m: { id: string }) => m.id === down)) {
        owned++;
        expect(returned.store.get(`h-${i}`)?.value).toBe(`v${i}`);
      }
    }
    expect(owned).toBeGreaterThan(0);
  });

  test("a full hint store refuses hints, counts them, and writes still succeed", async () => {
    c = await memoryCluster(4, ["--max-hints", "3"]);
    c.net.down.add("mem:8083");
    for (let i = 0; i < 60; i++) expect((await post(c, 0, `/kv/f-${i}`, "v")).status).toBe(200);
    const total = c.nodes.reduce((n, node) => n + node.hints.count, 0);
    const dropped = c.nodes.reduce((n, node) => n + node.hints.dropped, 0);
    expect(total).toBeLessThanOrEqual(3 * 3);
    expect(dropped).toBeGreaterThan(0);
    const status = await (await c.nodes[0]!.app.request("/internal/v1/status")).json();
    expect(status.hintsDropped).toBe(c.nodes[0]!.hints.dropped);
  });

  test("with sloppy quorum off, a hint does not count toward W", async () => {
    c = await memoryCluster(3, ["--sloppy-quorum", "false"]);
    c.net.down.add("mem:8081");
    c.net.down.add("mem:8082");
    const r = await post(c, 0, "/kv/strict", "v");
    expect(r.status).toBe(503);
    expect(c.nodes[0]!.hints.count).toBeGreaterThan(0); // still held, for delivery later
  });
});

describe("tombstone collection", () => {
  test("tombstones older than the grace are removed; newer ones and live keys stay", async () => {
    let t = 1_000_000;
    c = await memoryCluster(3, ["--tombstone-grace", "10s"], () => t);
    await post(c, 0, "/kv/old?consistency=all", "v");
    expect((await c.nodes[0]!.app.request("/kv/old?consistency=all", { method: "DELETE" })).status)
      .toBe(200);
    t += 5_000;
    await post(c, 0, "/kv/young?consistency=all", "v");
    expect(
      (await c.nodes[0]!.app.request("/kv/young?consistency=all", { method: "DELETE" })).status,
    ).toBe(200);
    await post(c, 0, "/kv/alive?consistency=all", "v");
    t += 6_000; // "old" is 11 s old, "young" 6 s
    for (const n of c.nodes) expect(n.collectTombstones()).toBe(1);
    for (const n of c.nodes) {
      expect(n.store.get("old")).toBeUndefined();
      expect(n.store.get("young")?.tombstone).toBe(true);
      expect(n.store.get("alive")?.value).toBe("v");
    }
    expect((await c.nodes[1]!.app.request("/kv/old")).status).toBe(404);
  });
});
