/**
 * An in-process cluster over the in-memory transport: an orchestrator and data nodes, handed one
 * membership view directly (no timers run; gossip is exercised in gossip.test.ts).
 */
import { type Config, parseConfig } from "../../src/config.ts";
import type { View, ViewMember } from "../../src/core/view.ts";
import { silentLogger } from "../../src/log.ts";
import type { Scheduler } from "../../src/core/scheduler.ts";
import { realScheduler } from "../../src/platform/scheduler.ts";
import { DataNode } from "../../src/node/data-node.ts";
import { Orchestrator } from "../../src/orchestrator/orchestrator.ts";
import { ClusterAuth } from "../../src/security/cluster-auth.ts";
import type { ClientTokens } from "../../src/security/client-tokens.ts";
import { createPeerClient, MemoryNetwork, type PeerClient } from "../../src/transport/index.ts";

export function testConfig(args: string[]): Config {
  // In-memory hosts ("mem") are no loopback address: these members are not exposed to anyone.
  const r = parseConfig([...args, "--preset", "local", "--insecure"], {});
  if (r.kind !== "config") throw new Error(`bad test config: ${JSON.stringify(r)}`);
  return r.config;
}

/** A member's signer for `secrets` (the cluster secret lines), on the given clock. */
export function memberAuth(
  id: string,
  secrets: readonly Uint8Array[],
  config: Config,
  sched: Scheduler = realScheduler,
): ClusterAuth {
  return new ClusterAuth(secrets, {
    selfId: id,
    windowMs: config.timers.maxClockSkewMs,
    now: () => sched.now(),
    random: () => sched.random(),
    warn: () => {},
  });
}

export interface MemoryClusterOptions {
  /** The cluster secret's lines: every member signs and checks internal calls with them. */
  readonly secrets?: readonly Uint8Array[];
  /** Client tokens: every member then asks clients for a bearer token. */
  readonly tokens?: ClientTokens;
}

export interface MemoryCluster {
  net: MemoryNetwork;
  /** An unsigned client (an outsider, when the cluster has a secret). */
  peers: PeerClient;
  orchestrator: Orchestrator;
  nodes: DataNode[];
  /** The view every member was given. */
  view: View;
  /** Hand a view to every member (and remember it). */
  setView(view: View): void;
  /** A node for `port` that is not in the view yet. */
  newNode(port: number, args?: string[]): DataNode;
  stop(): void;
}

export function member(id: string, role: "node" | "orchestrator" = "node"): ViewMember {
  return { id, address: id, role, state: "UP", inRing: role === "node", incarnation: 1 };
}

/** Orchestrator at mem:7000 and `n` nodes at mem:8080.., all UP in one view. */
export function memoryCluster(
  n: number,
  args: string[] = [],
  now: () => number = Date.now,
  opts: MemoryClusterOptions = {},
): Promise<MemoryCluster> {
  // Real timers (none run unless a test starts a member), this test's clock.
  const sched: Scheduler = { ...realScheduler, now };
  const net = new MemoryNetwork();
  const peers = createPeerClient(net.fetch);
  /** Each member signs as itself: its own signer and client (or the shared unsigned one). */
  const secured = (config: Config) => {
    if (opts.secrets === undefined) return { peers, auth: undefined };
    const auth = memberAuth(config.nodeId, opts.secrets, config, sched);
    return { peers: createPeerClient(net.fetch, undefined, { auth }), auth };
  };
  const orchConfig = testConfig([
    "--role",
    "orchestrator",
    "--host",
    "mem",
    "--port",
    "7000",
    ...args,
  ]);
  const orchSec = secured(orchConfig);
  const orchestrator = new Orchestrator(
    orchConfig,
    orchSec.peers,
    silentLogger,
    sched,
    orchSec.auth,
    opts.tokens,
  );
  net.servers.set("mem:7000", orchestrator.app);
  const newNode = (port: number, extra: string[] = args) => {
    const config = testConfig([
      "--role",
      "node",
      "--host",
      "mem",
      "--port",
      String(port),
      "--orchestrator",
      "mem:7000",
      ...extra,
    ]);
    const sec = secured(config);
    const node = new DataNode(config, sec.peers, silentLogger, sched, sec.auth, opts.tokens);
    net.servers.set(`mem:${port}`, node.app);
    return node;
  };
  const nodes = Array.from({ length: n }, (_, i) => newNode(8080 + i));
  const c: MemoryCluster = {
    net,
    peers,
    orchestrator,
    nodes,
    view: {
      instance: "test",
      epoch: 1,
      replicationFactor: orchConfig.replicationFactor,
      partitions: orchConfig.partitions,
      members: [member("mem:7000", "orchestrator"), ...nodes.map((x) => member(x.config.nodeId))],
    },
    setView(view) {
      c.view = view;
      orchestrator.useView(view);
      for (const x of c.nodes) x.useView(view);
    },
    newNode,
    stop: () => [orchestrator, ...c.nodes].forEach((m) => m.stop()),
  };
  c.setView(c.view);
  // Every node just started: its partitions are "moving in" until checked against the others.
  return Promise.all(c.nodes.map((x) => x.fill())).then(() => c);
}
