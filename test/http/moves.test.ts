/**
 * Reads while a partition moves: the new owner does not have the data yet (its incoming stream
 * is blocked), so only asking the previous owner finds the key.
 */
import { afterEach, expect, test } from "bun:test";
import { Ring, type View } from "../../src/core/view.ts";
import { member, type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

let c: MemoryCluster | undefined;
afterEach(() => c?.stop());

test("a key whose partition is moving is still found on its previous owner", async () => {
  c = await memoryCluster(3, ["--replication-factor", "1"]);
  const newcomer = c.newNode(8090);

  // Rebalance streams to the newcomer never arrive.
  c.net.drop = (address, path) =>
    address === "mem:8090" && path === "/internal/v1/rebalance/records";
  // Keys now, before it joins; find one whose partition the newcomer will take.
  const keys = Array.from({ length: 200 }, (_, i) => `move-${i}`);
  for (const k of keys) {
    expect((await c.nodes[0]!.app.request(`/kv/${k}`, { method: "POST", body: k })).status).toBe(
      200,
    );
  }
  const view = { ...c.view, epoch: 2, members: [...c.view.members, member("mem:8090")] };
  c.nodes.push(newcomer);
  c.setView(view);
  const moved = keys.filter((k) => ownerOf(view, k) === "mem:8090");
  expect(moved.length).toBeGreaterThan(5);
  for (const k of moved) {
    const r = await c.nodes[1]!.app.request(`/kv/${k}`);
    expect({ k, status: r.status }).toEqual({ k, status: 200 });
    expect((await r.json()).value).toBe(k);
  }
  expect(newcomer.store.size).toBe(0); // it really had none of them
});

test("a write through the new ring reaches the previous owner, which members on the old ring still read", async () => {
  c = await memoryCluster(3, ["--replication-factor", "1"]);
  const newcomer = c.newNode(8090);
  c.nodes.push(newcomer); // stopped with the others
  const old = c.nodes.slice(0, 3);
  const keys = Array.from({ length: 200 }, (_, i) => `gap-${i}`);
  for (const k of keys) {
    const r = await old[0]!.app.request(`/kv/${k}`, { method: "POST", body: "before" });
    expect(r.status).toBe(200);
  }
  // Only the newcomer adopts the ring with it; the others have not heard of it yet (simulator
  // seed 562: gossip had not reached them).
  const view = { ...c.view, epoch: 2, members: [...c.view.members, member("mem:8090")] };
  newcomer.useView(view);
  const moved = keys.filter((k) => ownerOf(view, k) === "mem:8090");
  expect(moved.length).toBeGreaterThan(5);
  for (const k of moved) {
    const r = await newcomer.app.request(`/kv/${k}`, { method: "POST", body: "after" });
    expect({ k, status: r.status }).toEqual({ k, status: 200 });
  }
  // Acknowledged through the new ring: a read through the old ring must not answer the older value.
  for (const k of moved) {
    const r = await old[1]!.app.request(`/kv/${k}`);
    expect({ k, status: r.status, value: (await r.json()).value }).toEqual({
      k,
      status: 200,
      value: "after",
    });
  }
  expect(newcomer.coordinator.previousOwnerWrites).toBe(moved.length);
});

test("a conditional write through the new ring reaches the previous owner too", async () => {
  c = await memoryCluster(3, ["--replication-factor", "1"]);
  const newcomer = c.newNode(8090);
  c.nodes.push(newcomer);
  const old = c.nodes.slice(0, 3);
  const keys = Array.from({ length: 200 }, (_, i) => `count-${i}`);
  for (const k of keys) {
    expect((await old[0]!.app.request(`/kv/${k}?op=incr`, { method: "POST" })).status).toBe(200);
  }
  const view = { ...c.view, epoch: 2, members: [...c.view.members, member("mem:8090")] };
  newcomer.useView(view);
  // As if its partitions had arrived: the newcomer may accept proposals for them (a conditional
  // write reads the previous owners' records too, so it still starts from theirs).
  newcomer.rebalancer.movingIn.clear();
  const moved = keys.filter((k) => ownerOf(view, k) === "mem:8090");
  expect(moved.length).toBeGreaterThan(5);
  for (const k of moved) {
    const r = await newcomer.app.request(`/kv/${k}?op=incr`, { method: "POST" });
    expect({ k, status: r.status, value: (await r.json()).value }).toEqual({
      k,
      status: 200,
      value: "2",
    });
  }
  // Committed through the new ring: a read through the old ring must not answer 1.
  for (const k of moved) {
    const r = await old[1]!.app.request(`/kv/${k}`);
    expect({ k, value: (await r.json()).value }).toEqual({ k, value: "2" });
  }
});

function ownerOf(view: View, key: string): string {
  return new Ring(view).replicas(key)[0]!.id;
}
