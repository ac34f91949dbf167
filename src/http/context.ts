/** What the HTTP routes need from the member (node or orchestrator) that serves them. */
import type { Config } from "../config.ts";
import type { Progress } from "../core/progress.ts";
import type { Ring, View } from "../core/view.ts";
import type { Logger } from "../log.ts";
import type { Coordinator } from "../node/coordinator.ts";
import type { SettingsMismatch } from "../node/gossip-agent.ts";
import type { Scheduler } from "../core/scheduler.ts";
import type { ClusterAuth } from "../security/cluster-auth.ts";
import type { ClientTokens } from "../security/client-tokens.ts";
import type { Store } from "../node/store.ts";
import type { Metrics } from "./metrics.ts";
import type { NodeStatus, PeerClient } from "../transport/index.ts";

export interface MemberContext {
  readonly role: "orchestrator" | "node" | "gateway";
  readonly selfId: string;
  readonly advertise: string;
  /** This member's current incarnation (its gossip record's: it rises when it refutes). */
  incarnation(): number;
  readonly config: Config;
  readonly coordinator: Coordinator;
  readonly peers: PeerClient;
  /** Present on data nodes only. */
  readonly store?: Store;
  /** Whether this member holds partition p (data nodes; see DataNode.holdsPartition). */
  holds?(partition: number): boolean;
  readonly log: Logger;
  /** The current membership view, if any. */
  view(): View | undefined;
  /** The ring derived from the view (precomputed partition table). */
  ring(): Ring | undefined;
  /** This member's own figures for /cluster/status (data nodes). */
  status?(): NodeStatus;
  /** A graceful leave has started (data nodes): no longer ready for new client traffic. */
  leaving?(): boolean;
  /** The running rebalance round's progress, if any (data nodes; /metrics). */
  rebalanceProgress?(): Progress | undefined;
  /** Start a graceful leave (data nodes); the reason when it is refused. */
  leave?(): string | undefined;
  /** Members whose must-agree settings differ from this member's (src/core/agreed-settings.ts). */
  settingsMismatches?(): readonly SettingsMismatch[];
  /** Who holds the orchestrator's duty in this member's table. */
  dutyHolder?(): string | undefined;
  /** The cluster secret's signer and checker; undefined when no secret is set. */
  readonly auth?: ClusterAuth;
  /** Client tokens (--auth-token-file); undefined when the public API is open. */
  readonly tokens?: ClientTokens;
  /**
   * The RESP front's counters and per-command latencies (`resp` in /cluster/status), set by
   * main.ts when --resp-port is given.
   */
  respStatus?: () => unknown;
  /** This member's clock and timers (body read deadlines). */
  readonly sched: Scheduler;
  /** GET /metrics (metrics.ts); createApp makes one when the shell gave none. */
  readonly metrics?: Metrics;
}
