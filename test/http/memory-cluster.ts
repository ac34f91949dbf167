/** An in-process cluster over the in-memory transport: an orchestrator and data nodes. */
import { type Config, parseConfig } from "../../src/config.ts";
import { silentLogger } from "../../src/log.ts";
import { DataNode } from "../../src/node/data-node.ts";
import { Orchestrator } from "../../src/orchestrator/orchestrator.ts";
import { createPeerClient, MemoryNetwork } from "../../src/transport/index.ts";

export function testConfig(args: string[]): Config {
  const r = parseConfig([...args, "--preset", "local"], {});
  if (r.kind !== "config") throw new Error(`bad test config: ${JSON.stringify(r)}`);
  return r.config;
}

export interface MemoryCluster {
  net: MemoryNetwork;
  orchestrator: Orchestrator;
  nodes: DataNode[];
  stop(): void;
}

/** Orchestrator at mem:7000 and `n` nodes at mem:8080.., registered (no timers running). */
export async function memoryCluster(
  n: number,
  args: string[] = [],
  now: () => number = Date.now,
): Promise<MemoryCluster> {
  const net = new MemoryNetwork();
  const peers = createPeerClient(net.fetch);
  const orchestrator = new Orchestrator(
    testConfig(["--role", "orchestrator", "--host", "mem", "--port", "7000", ...args]),
    peers,
    silentLogger,
    "test-instance",
    now,
  );
  net.servers.set("mem:7000", orchestrator.app);
  const nodes: DataNode[] = [];
  for (let i = 0; i < n; i++) {
    const node = new DataNode(
      testConfig([
        "--role",
        "node",
        "--host",
        "mem",
        "--port",
        String(8080 + i),
        "--orchestrator",
        "mem:7000",
        ...args,
      ]),
      peers,
      silentLogger,
      now,
    );
    net.servers.set(`mem:${8080 + i}`, node.app);
    nodes.push(node);
  }
  // Register every node, then hand each the final view (what the periodic push would do).
  for (const node of nodes) {
    const res = await peers.register("mem:7000", {
      self: {
        id: node.config.nodeId,
        address: node.config.advertise,
        inRing: true,
        incarnation: node.incarnation,
      },
      known: [],
    }, 1000);
    node.adoptView(res.view, "register");
  }
  for (const node of nodes) node.adoptView(orchestrator.view, "push");
  return {
    net,
    orchestrator,
    nodes,
    stop: () => [orchestrator, ...nodes].forEach((m) => m.stop()),
  };
}
