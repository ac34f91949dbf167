/**
 * A node's first view comes from a whole member table, never from the few records a probe
 * carries (src/node/gossip-agent.ts, `joined`). A node restarted empty is probed by peers that
 * still have its address: built from that first ping, its first ring held itself alone, so it
 * owned every partition "before" the real ring arrived, moved none of its partitions in, and
 * answered for them holding nothing (simulator seed 140 with --faults crash,join,partition).
 */
import { afterEach, expect, test } from "bun:test";
import { testConfig } from "./memory-cluster.ts";
import { DataNode } from "../../src/node/data-node.ts";
import { silentLogger } from "../../src/log.ts";
import { createPeerClient, type GossipEnvelope, MemoryNetwork } from "../../src/transport/index.ts";

const SELF = "mem:9100";
const PEERS = ["mem:9101", "mem:9102", "mem:9103"];
const CLUSTER = { replicationFactor: 3, partitions: 8, source: "orchestrator" as const };
const record = (id: string) => ({
  id,
  address: id,
  role: "node" as const,
  incarnation: 1,
  state: "UP" as const,
  inRing: true,
});

let node: DataNode | undefined;
afterEach(() => node?.stop());

test("a probe names too few members for a first view; the first whole table does", () => {
  const config = testConfig([
    ...["--role", "node", "--host", "mem", "--port", "9100", "--join", PEERS[0]!],
    ...["--partitions", "8", "--replication-factor", "3"],
  ]);
  node = new DataNode(config, createPeerClient(new MemoryNetwork().fetch), silentLogger);
  node.start();
  const ping: GossipEnvelope = {
    msg: {
      type: "ping",
      from: PEERS[0]!,
      fromAddress: PEERS[0]!,
      seq: 1,
      target: SELF,
      updates: [{ ...record(PEERS[0]!), by: PEERS[0]! }],
    },
    cluster: CLUSTER,
  };
  node.agent.receive(ping);
  // Before the fix: a view of this node and the pinger, a ring of two that owned everything.
  expect(node.view).toBeUndefined();
  expect(node.agent.joined).toBe(false);
  const table: GossipEnvelope = {
    msg: {
      type: "push-pull",
      from: PEERS[0]!,
      fromAddress: PEERS[0]!,
      reply: true,
      members: [...PEERS, SELF].map(record),
    },
    cluster: CLUSTER,
  };
  node.agent.receive(table);
  expect(node.agent.joined).toBe(true);
  const ring = node.ctx.ring()!;
  expect(ring.ids.length).toBe(4);
  // Restarted empty into a ring of four: every partition it owns is moving in, none is held.
  const owned = ring.partitionsOf(SELF);
  expect(owned.length).toBeGreaterThan(0);
  for (const p of owned) expect(node.holdsPartition(p)).toBe(false);
  expect(node.rebalancer.movingIn.size).toBe(owned.length);
});
