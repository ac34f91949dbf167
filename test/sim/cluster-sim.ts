/**
 * Deterministic whole-cluster simulation: an orchestrator and 3–6 data nodes (the real
 * `Orchestrator` and `DataNode`: gossip, coordinator, replication, hints, read repair,
 * anti-entropy, rebalancing, leave, tombstone GC) in one process, on the simulated clock and
 * network of sim-scheduler.ts and sim-network.ts, with faults and concurrent clients drawn from
 * one seed. `runSeed` returns the client history, the final state and the checker's verdict.
 *
 * Timeline (simulated): members start at 0; clients run from WARM_MS to FAULTS_END_MS while
 * faults come and go; at FAULTS_END_MS every fault is healed (crashed members restart, paused
 * ones resume, links and weather return to calm); the cluster quiesces until QUIET_END_MS; then
 * each node's own copy of every key is taken, every member reads every key at quorum, and the
 * checker (test/support/checker.ts) judges.
 * Not a test file itself (no `.test.` in the name).
 */
import { Buffer } from "node:buffer";
import type { Config } from "../../src/config.ts";
import { parseConfig } from "../../src/config.ts";
import { type Mutation, mutations, resetMutations } from "../../src/core/mutations.ts";
import { formatVersion } from "../../src/core/hlc.ts";
import { sleep, timeoutSignal } from "../../src/core/scheduler.ts";
import type { Ring } from "../../src/core/view.ts";
import { Ring as RingOf } from "../../src/core/view.ts";
import { parseConsistency } from "../../src/http/validate.ts";
import { silentLogger } from "../../src/log.ts";
import { DataNode } from "../../src/node/data-node.ts";
import { Orchestrator } from "../../src/orchestrator/orchestrator.ts";
import { ClusterAuth } from "../../src/security/cluster-auth.ts";
import { createPeerClient } from "../../src/transport/index.ts";
import { simLinkPeers, simLinkServer } from "./sim-link.ts";
import { SimTcp } from "./sim-tcp.ts";
import { tcpPeerClient } from "../../src/transport/peer-tcp.ts";
import { listenPeerTcp } from "../../src/http/peer-tcp-server.ts";

/** The largest link frame in the simulator (its members' internal body limit is larger). */
const LINK_FRAME_BYTES = 64 * 1024 * 1024;
import type { Rng } from "../unit/seeded.ts";
import {
  answered,
  check,
  checkListings,
  type FinalState,
  type Listing,
  type ListPage,
  type NodeState,
  type Op,
  unanswered,
  valueText,
  type Violation,
} from "../support/checker.ts";
import { CALM, SimNetwork, type Weather } from "./sim-network.ts";
import { checkLinearizable, type LinEntry } from "../support/linearizability.ts";
import { SimProc, SimWorld, stream } from "./sim-scheduler.ts";
import { SimDisk } from "./sim-disk.ts";
import { DataDir } from "../../src/node/data-dir.ts";

export const FAULT_KINDS = [
  "crash", // a node crashes and restarts empty (same id and address)
  "pause", // a member stops (SIGSTOP) and resumes
  "partition", // symmetric cut between two random groups
  "oneway", // one group cannot reach another, the other way works
  "isolate", // one member cut off from everyone
  "split", // majority/minority split of the nodes
  "drop", // messages lost at random
  "dup", // requests delivered twice
  "delay", // long random delays (reordering)
  "skew", // every member's clock off by up to ±2 s
  "farskew", // one node's clock a day ahead
  "join", // new nodes join
  "leave", // a node leaves gracefully
  "orch", // the orchestrator crashes and restarts
] as const;
export type FaultKind = typeof FAULT_KINDS[number];

/** Every kind. */
export const DEFAULT_FAULTS: readonly FaultKind[] = FAULT_KINDS;

export interface SimOptions {
  readonly seed: number;
  readonly faults?: readonly FaultKind[];
  readonly mutation?: Mutation;
  /** Extra flags for every member (experiments: e.g. `--sloppy-quorum false`). */
  readonly memberArgs?: readonly string[];
  /**
   * Every member signs and checks its internal calls with one cluster secret (as with
   * --cluster-secret-file). A member whose clock is more than --max-clock-skew off is then shut
   * out altogether, so `farskew` is left out of such runs.
   */
  readonly secret?: boolean;
  /**
   * Clients also use ttl keys (`t…`, most puts with a short ttl): on by default. Off replays the
   * histories of before ttls existed (seed for seed), which the dropRightAfterStream mutation's
   * seed set was found on: that mutation is caught on few seeds, and any change to the traffic
   * reshuffles which ones.
   */
  readonly ttlKeys?: boolean;
  /**
   * Listers page through every key (`GET /kv?prefix=`) during the run, judged by rule (list):
   * on by default. Their messages draw from a random stream of their own, so a seed's other
   * messages see the same delays and drops with or without them.
   */
  readonly listings?: boolean;
  /**
   * How members call each other: `http` (the default: the HTTP routes, as in-memory requests) or
   * `link` (the TCP peer link's frames and dispatch, carried as the same network's messages:
   * test/sim/sim-link.ts). Both see the same faults.
   */
  readonly transport?: "http" | "link" | "tcp";
}

/** The simulated cluster's secret (any 32 bytes: nothing outside the simulation sees it). */
const SIM_SECRET = new TextEncoder().encode("simulated cluster secret, 32+ bytes");

export interface SimResult {
  readonly seed: number;
  readonly history: Op[];
  readonly final: FinalState;
  readonly violations: Violation[];
  /** The conditional writes and incrs, as the linearizability checker took them. */
  readonly linHistory: readonly LinEntry[];
  /** The listers' paged listings, as rule (list) judged them. */
  readonly listings: readonly Listing[];
  /** What happened, in order (faults, joins, leaves), for a failure report. */
  readonly events: string[];
  readonly eventsRun: number;
  readonly messages: number;
}

const WARM_MS = 2_000;
const FAULTS_END_MS = 16_000;
const QUIET_END_MS = 30_000;
const FINAL_END_MS = 33_000;
/** A client gives up on a request after this (the member's own bound is --request-timeout). */
const CLIENT_TIMEOUT_MS = 4_000;
const NODES_MAX = 6;
/** Clients of conditional writes and incrs (their own random streams: the rest of a seed's run is drawn as before). */
const CAS_CLIENTS = 2;
/** Clients that page through every key (their own random streams too). */
const LISTERS = 2;
/**
 * Longest ttl a client sets. Every ttl has run out well before the final state is taken (the
 * checker counts every record with a ttl as expired there): the last write is acknowledged by
 * FAULTS_END_MS + CLIENT_TIMEOUT_MS, its expiry on a clock skewed by up to 2 s follows.
 */
const TTL_MAX_MS = 3_000;

/** A value that is not valid UTF-8 (0xff never is), unique as its text. */
function binaryValue(text: string): Uint8Array {
  const t = new TextEncoder().encode(text);
  const out = new Uint8Array(t.length + 2);
  out[0] = 0xff;
  out.set(t, 1);
  out[t.length + 1] = 0x80;
  return out;
}
const ORCH = "orch:7000";

/** Levels the public API accepts (`any` once it exists). */
export const LEVELS: readonly string[] = ["one", "quorum", "all", "any"].filter((l) => {
  try {
    parseConsistency(l);
    return true;
  } catch {
    return false;
  }
});

/**
 * Flags of every member: the local preset, short timers so 30 simulated seconds see it all, and
 * gossip at half the local rate (gossip is most of the messages, so most of the run time).
 */
const COMMON = [
  "--preset",
  "local",
  "--probe-interval-ms",
  "200",
  "--probe-timeout-ms",
  "100",
  "--push-pull-interval-ms",
  "2000",
  "--dead-after",
  "5s",
  "--tombstone-grace",
  "15s",
  "--leave-timeout",
  "15s",
];

function config(args: string[], extra: readonly string[]): Config {
  const r = parseConfig([...args, ...COMMON, "--insecure", ...extra], {});
  if (r.kind !== "config") throw new Error(`bad sim config: ${JSON.stringify(r)}`);
  return r.config;
}

interface Member {
  readonly address: string;
  readonly role: "node" | "orchestrator";
  proc: SimProc;
  node?: DataNode;
  orch?: Orchestrator;
  state: "up" | "crashed" | "leaving" | "left";
  generation: number;
  skewMs: number;
  /** The orchestrator's generation when this node crashed (see `restart`). */
  orchGenerationAtCrash?: number;
  /** Its disk, in a seed with --data-dir: it survives crashes (minus what was not synced). */
  disk?: SimDisk;
  /** A node started with --orchestrator only, no --join (as the e2e tests start theirs). */
  orchestratorOnly?: boolean;
}

/** One simulated cluster (exported for debugging scripts; tests use `runSeed`). */
export class ClusterSim {
  readonly world: SimWorld;
  readonly net: SimNetwork;
  /** TCP connections on the simulated clock (the peer link, `--transport tcp`). */
  readonly tcp: SimTcp;
  readonly rng: Rng;
  readonly members = new Map<string, Member>();
  readonly history: Op[] = [];
  /** The final state, taken after quiescence and before the final reads. */
  quiesced: FinalState | undefined;
  readonly events: string[] = [];
  readonly faults: ReadonlySet<FaultKind>;
  /** Cut links per active partition fault. */
  readonly #cuts = new Map<number, [string, string][]>();
  #nextCut = 1;
  #nextOp = 1;
  #nextPort = 8080;
  /** Clients, keys and pace: drawn per seed (many clients on few keys: contention). */
  load = { clients: 3, keys: 6, thinkMinMs: 20, thinkSpreadMs: 200 };
  /** N: mostly 3; sometimes 2 or 1, where a partition move has no other replica to fall back on. */
  replicationFactor = 3;
  /** A node crashed or restarted empty less than this long ago: no other crash meanwhile. */
  #crashQuietUntilMs = 0;
  /** Whether this seed's members have skewed clocks (±2 s). */
  #skewed = false;
  /**
   * In about half the seeds whose faults include `crash`, every node runs with a data dir (on a SimDisk) and this --fsync
   * mode: a crash is then a power cut (each disk keeps what was synced and a random part of the
   * rest) and the node restarts from its disk, not empty. Drawn from its own stream, so the
   * seeds without a disk replay exactly as before.
   */
  readonly fsync: "always" | "batch" | undefined;

  constructor(
    readonly seed: number,
    faults: readonly FaultKind[],
    readonly memberArgs: readonly string[],
    readonly secret = false,
    readonly ttlKeys = true,
    readonly listings = true,
    readonly transport: "http" | "link" | "tcp" = "http",
  ) {
    this.world = new SimWorld(seed);
    this.net = new SimNetwork(this.world, stream(seed, "network"), stream(seed, "network lists"));
    this.tcp = new SimTcp(this.world, this.net, stream(seed, "tcp"));
    this.rng = stream(seed, "plan");
    this.faults = new Set(faults);
    // Only runs that crash nodes have a use for a disk: the others replay exactly as before.
    const d = stream(seed, "disk");
    this.fsync = !this.faults.has("crash") || d.next() < 0.5
      ? undefined
      : d.next() < 0.5
      ? "always"
      : "batch";
  }

  log(msg: string): void {
    this.events.push(`${this.world.elapsedMs}ms ${msg}`);
  }

  #proc(m: { address: string; generation: number; skewMs: number }): SimProc {
    const name = `${m.address}#${m.generation}`;
    return new SimProc(this.world, name, stream(this.seed, name), m.skewMs);
  }

  #boot(m: Member): void {
    m.proc = this.#proc(m);
    const [host, port] = m.address.split(":") as [string, string];
    const proc = m.proc;
    const auth = this.secret
      ? new ClusterAuth([SIM_SECRET], {
        selfId: m.address, // the sim's members are named by their address
        windowMs: 60_000,
        now: () => proc.now(),
        random: () => proc.random(),
        warn: () => {},
      })
      : undefined;
    const fetchFn = this.net.fetchFrom(m.address, m.proc);
    const httpPeers = createPeerClient(fetchFn, m.proc, auth === undefined ? {} : { auth });
    const peers = this.transport === "http" ? httpPeers : this.transport === "link"
      ? simLinkPeers(
        httpPeers,
        fetchFn,
        m.proc,
        m.address,
        (a) => this.members.get(a)?.role === "node",
      )
      : tcpPeerClient(httpPeers, {
        // The port each member's gossip record advertises, as main.ts reads it from the view.
        linkPort: (a) => {
          const view = m.node?.ctx.view() ?? m.orch?.ctx.view();
          const r = view?.members.find((x) => x.address === a);
          return r === undefined || r.state === "LEFT" ? undefined : r.linkPort;
        },
        maxFrameBytes: LINK_FRAME_BYTES,
        dial: (h, p, handlers) => this.tcp.dial(m.address, proc, h, p, handlers),
        now: () => proc.now(),
        timers: proc,
        ...(auth === undefined ? {} : { auth }),
      });
    if (m.role === "orchestrator") {
      const cfg = config(
        [
          ...["--role", "orchestrator", "--host", host, "--port", port, "--partitions", "16"],
          ...["--replication-factor", String(this.replicationFactor)],
        ],
        this.memberArgs,
      );
      const up = (orch: Orchestrator) => {
        m.orch = orch;
        this.net.listen(m.address, m.proc, orch.app);
        orch.start();
      };
      if (this.fsync === undefined) {
        up(new Orchestrator(cfg, peers, silentLogger, m.proc, auth));
      } else {
        // With data dirs the orchestrator keeps one too (its ring, incarnation and clock), so a
        // power cut of every member does not leave it knowing nobody.
        void (async () => {
          const dir = await this.#openDir(m, cfg, proc);
          const orch = new Orchestrator(
            cfg,
            peers,
            silentLogger,
            proc,
            auth,
            undefined,
            undefined,
            dir,
          );
          await dir.start(orch.durabilitySource());
          if (m.proc === proc && m.state === "up") up(orch);
        })().catch((e) => this.world.errors.push(`${m.address} data dir: ${e}`));
      }
    } else {
      const others = [...this.members.values()]
        .filter((o) => o.role === "node" && o.address !== m.address && o.state === "up")
        .slice(0, 2).map((o) => o.address);
      const join = others.length > 0 && m.orchestratorOnly !== true
        ? ["--join", others.join(",")]
        : [];
      const link = this.transport === "tcp" ? ["--peer-port", String(Number(port) + 1000)] : [];
      const cfg = config(
        [
          ...["--role", "node", "--host", host, "--port", port, "--orchestrator", ORCH],
          ...join,
          ...link,
        ],
        this.memberArgs,
      );
      const up = (node: DataNode) => {
        m.node = node;
        node.onLeft = (ok) => {
          this.log(`${m.address} left (${ok ? "handed off" : "leave timed out"})`);
          this.#kill(m);
          m.state = "left";
        };
        this.net.listen(
          m.address,
          m.proc,
          this.transport === "link"
            ? simLinkServer(node.app, node.peerCalls, silentLogger)
            : node.app,
        );
        if (this.transport === "tcp") {
          listenPeerTcp(() => node.peerCalls, {
            host,
            port: cfg.peerPort!,
            maxFrameBytes: LINK_FRAME_BYTES,
            log: silentLogger,
            ...(auth === undefined ? {} : { auth }),
            listen: (h, p, handlers) => this.tcp.listen(m.address, proc, h, p, handlers),
            now: () => proc.now(),
          });
        }
        node.start();
      };
      if (this.fsync === undefined) up(new DataNode(cfg, peers, silentLogger, m.proc, auth));
      else {
        void (async () => {
          const dir = await this.#openDir(m, cfg, proc);
          const node = new DataNode(cfg, peers, silentLogger, proc, auth, undefined, dir);
          await dir.start(node.durabilitySource());
          if (m.proc === proc && m.state === "up") up(node);
        })().catch((e) => this.world.errors.push(`${m.address} data dir: ${e}`));
      }
    }
    m.state = "up";
  }

  /** Open the member's data dir on its SimDisk (made at its first start). */
  #openDir(m: Member, cfg: Config, proc: SimProc): Promise<DataDir> {
    // The disk answers at once (promises only), so this is done before the next event.
    if (m.disk === undefined) {
      const rnd = stream(this.seed, `disk ${m.address}`);
      m.disk = new SimDisk(() => rnd.next());
    }
    const disk = m.disk;
    const lag = stream(this.seed, `sync ${m.address}#${m.generation}`);
    disk.syncDelay = () => sleep(proc, 2 + lag.int(20));
    return DataDir.open(
      disk,
      { nodeId: cfg.nodeId, cluster: cfg.clusterName },
      { fsync: this.fsync!, fsyncIntervalMs: 5, snapshotLogBytes: 16_384, repair: false },
      proc,
      silentLogger,
    );
  }

  #kill(m: Member): void {
    m.proc.kill();
    this.tcp.crash(m.proc);
    m.node?.stop();
    m.orch?.stop();
    this.net.close(m.address);
  }

  addMember(role: "node" | "orchestrator", skewMs: number, orchestratorOnly = false): Member {
    const address = role === "orchestrator"
      ? ORCH
      : `n${this.#nextPort - 8079}:${this.#nextPort++}`;
    const m: Member = {
      address,
      role,
      proc: undefined as unknown as SimProc,
      state: "up",
      generation: 0,
      skewMs,
      ...(orchestratorOnly ? { orchestratorOnly } : {}),
    };
    this.members.set(address, m);
    this.#boot(m);
    return m;
  }

  nodes(state?: Member["state"]): Member[] {
    return [...this.members.values()].filter((m) =>
      m.role === "node" && (state === undefined || m.state === state)
    );
  }

  // ---- faults -------------------------------------------------------------------------------

  crash(m: Member, forMs: number): void {
    this.#kill(m);
    m.disk?.crash(); // a power cut: what was not synced may be lost, or torn
    m.state = "crashed";
    m.orchGenerationAtCrash = this.members.get(ORCH)!.generation;
    this.log(`crash ${m.address} for ${forMs}ms`);
    this.world.at(forMs, () => this.restart(m));
  }

  /**
   * Restart a crashed member empty. Out of the model: a node restarting empty while the
   * orchestrator also lost its memory (crashed, or restarted empty since) and a partition is on.
   * Both would know only each other and, without durable state, form a cluster of their own on
   * their side (docs/testing.md, "Out of the model"). Such a restart waits for the cut to heal.
   */
  restart(m: Member): void {
    if (m.state !== "crashed") return;
    const orch = this.members.get(ORCH)!;
    if (
      m.role === "node" && this.#cuts.size > 0 &&
      (orch.state === "crashed" || orch.generation !== m.orchGenerationAtCrash)
    ) {
      this.world.at(500, () => this.restart(m));
      return;
    }
    m.generation++;
    this.#boot(m);
    this.log(`restart ${m.address} ${m.disk === undefined ? "empty" : "from its disk"}`);
  }

  pause(m: Member, forMs: number): void {
    if (m.proc.paused || m.state !== "up") return;
    m.proc.pause();
    const proc = m.proc;
    this.log(`pause ${m.address} for ${forMs}ms`);
    this.world.at(forMs, () => {
      proc.resume();
      this.log(`resume ${m.address}`);
    });
  }

  cut(links: [string, string][], forMs: number, what: string): void {
    const id = this.#nextCut++;
    this.#cuts.set(id, links);
    this.#applyCuts();
    this.log(`${what} for ${forMs}ms`);
    this.world.at(forMs, () => {
      this.#cuts.delete(id);
      this.#applyCuts();
      this.log(`heal ${what}`);
    });
  }

  #applyCuts(): void {
    this.net.healLinks();
    for (const links of this.#cuts.values()) for (const [a, b] of links) this.net.cut(a, b);
  }

  weather(change: Partial<Weather>, forMs: number, what: string): void {
    this.net.weather = { ...this.net.weather, ...change };
    this.log(`${what} for ${forMs}ms`);
    this.world.at(forMs, () => {
      const calm: Partial<Weather> = {};
      if ("dropRate" in change) calm.dropRate = CALM.dropRate;
      if ("dupRate" in change) calm.dupRate = CALM.dupRate;
      if ("delayMaxMs" in change) calm.delayMaxMs = CALM.delayMaxMs;
      this.net.weather = { ...this.net.weather, ...calm };
    });
  }

  /** Apply one fault of `kind` now, if the cluster can take it. */
  fault(kind: FaultKind): void {
    const r = this.rng;
    const forMs = 500 + r.int(6_000);
    const up = this.nodes("up");
    const all = [...this.members.values()].filter((m) => m.state === "up");
    const addrs = all.map((m) => m.address);
    const both = (a: string[], b: string[]): [string, string][] =>
      a.flatMap((x) => b.flatMap((y): [string, string][] => [[x, y], [y, x]]));
    const oneWay = (a: string[], b: string[]): [string, string][] =>
      a.flatMap((x) => b.map((y): [string, string] => [x, y]));
    const groups = () => {
      const s = r.shuffle(addrs);
      const k = 1 + r.int(s.length - 1);
      return [s.slice(0, k), s.slice(k)] as const;
    };
    // A cut needs two members up to cut between: with fewer (a whole-cluster power cut) it would
    // cut nothing, yet hold every restart back as if a partition were on (seed 13 --secret drew
    // "isolate undefined" that way).
    const cuts = kind === "partition" || kind === "oneway" || kind === "isolate" ||
      kind === "split";
    if (cuts && addrs.length < 2) return;
    switch (kind) {
      case "crash": {
        // Restart-empty loses data: one at a time, and time to refill before the next; never
        // with N = 1 (the only copy).
        if (this.replicationFactor === 1) return;
        if (this.world.elapsedMs < this.#crashQuietUntilMs || up.length === 0) return;
        if (this.nodes("leaving").length > 0) return;
        this.#crashQuietUntilMs = this.world.elapsedMs + forMs + 5_000;
        return this.crash(r.pick(up), forMs);
      }
      case "pause":
        return all.length > 0 ? this.pause(r.pick(all), forMs) : undefined;
      case "partition": {
        const [a, b] = groups();
        return this.cut(both(a, b), forMs, `partition {${a}} | {${b}}`);
      }
      case "oneway": {
        const [a, b] = groups();
        return this.cut(oneWay(a, b), forMs, `one-way cut {${a}} -> {${b}}`);
      }
      case "isolate": {
        const x = r.pick(addrs);
        const rest = addrs.filter((a) => a !== x);
        return this.cut(both([x], rest), forMs, `isolate ${x}`);
      }
      case "split": {
        const s = r.shuffle(up.map((m) => m.address));
        const minority = s.slice(0, Math.floor((s.length - 1) / 2));
        if (minority.length === 0) return;
        const side = r.next() < 0.5 ? minority : s.slice(minority.length);
        const a = [...side, ORCH];
        const b = addrs.filter((x) => !a.includes(x));
        return this.cut(both(a, b), forMs, `split {${a}} | {${b}}`);
      }
      case "drop":
        return this.weather({ dropRate: 0.05 + r.next() * 0.25 }, forMs, "message drops");
      case "dup":
        return this.weather({ dupRate: 0.1 + r.next() * 0.4 }, forMs, "duplicate requests");
      case "delay":
        return this.weather({ delayMaxMs: 20 + r.int(300) }, forMs, "long delays");
      case "join": {
        if (this.nodes().filter((m) => m.state !== "left").length >= NODES_MAX) return;
        // Out of the model (docs/testing.md): a node joining while no node is up. The orchestrator
        // keeps no member table, so after a whole-cluster power cut it knows only the newcomer and
        // gives it every key: a cluster of one, empty, beside the data of the members still down.
        if (this.nodes("up").length === 0) return;
        const m = this.addMember("node", this.#skew());
        return this.log(`join ${m.address}`);
      }
      case "leave": {
        // N = 3: keep at least three nodes in the ring; no leave while a crashed node refills.
        if (up.length <= 3 || this.nodes("leaving").length > 0) return;
        if (this.world.elapsedMs < this.#crashQuietUntilMs) return;
        const m = r.pick(up);
        // A node that sees no other live node refuses to leave and keeps serving (the last node
        // must not drop its data): it stays "up", so the final checks judge its copy. Marked
        // "leaving" it was left out of them (seed 373).
        const refused = m.node!.leaveRefusal();
        if (refused !== undefined) return this.log(`leave ${m.address} refused: ${refused}`);
        m.state = "leaving";
        this.#crashQuietUntilMs = Math.max(this.#crashQuietUntilMs, this.world.elapsedMs + 5_000);
        this.log(`leave ${m.address}`);
        void m.node!.leave();
        return;
      }
      case "orch": {
        const o = this.members.get(ORCH)!;
        if (o.state !== "up") return;
        return this.crash(o, forMs);
      }
      case "skew":
      case "farskew":
        return; // set when members start
    }
  }

  #skew(): number {
    return this.#skewed ? this.rng.int(4_001) - 2_000 : 0;
  }

  /** Heal everything: restart the crashed, resume the paused, calm links and weather. */
  healAll(): void {
    for (const m of this.members.values()) {
      if (m.state === "crashed") this.restart(m);
      m.proc.resume();
    }
    this.#cuts.clear();
    this.#applyCuts();
    this.net.weather = CALM;
    this.log("heal all");
  }

  // ---- clients ------------------------------------------------------------------------------

  async request(
    proc: SimProc,
    client: string,
    kind: Op["kind"],
    key: string,
    level: string,
    member: string,
    value: string | Uint8Array | undefined,
    final = false,
    ttlMs?: number,
  ): Promise<Op> {
    const method = kind === "get" ? "GET" : kind === "put" ? "PUT" : "DELETE";
    const init: RequestInit = { method };
    if (value !== undefined) init.body = value as BodyInit;
    // The history names a binary value by its checker text (base64:...), as answers are read.
    const text = value === undefined ? undefined : valueText(value);
    const timer = timeoutSignal(proc, CLIENT_TIMEOUT_MS);
    init.signal = timer.signal;
    const id = this.#nextOp++;
    const invokeMs = this.world.elapsedMs;
    const base = {
      id,
      client,
      kind,
      key,
      level,
      member,
      invokeMs,
      ...(final ? { final } : {}),
      ...(ttlMs === undefined ? {} : { ttlMs }),
    };
    let op: Op;
    try {
      const ttl = ttlMs === undefined ? "" : `&ttl=${ttlMs}ms`;
      const url = `http://${member}/kv/${key}?consistency=${level}${ttl}`;
      const res = await this.net.send(client, proc, url, init, false);
      const body = await res.json() as { value?: string; version?: string; encoding?: string };
      if (body.encoding === "base64") body.value = `base64:${body.value}`;
      op = answered(base, text, res.status, body, this.world.elapsedMs);
    } catch (e) {
      op = unanswered(base, text, e, this.world.elapsedMs);
    } finally {
      timer.done();
    }
    this.history.push(op);
    return op;
  }

  /** Conditional writes and incrs (issue 12), on keys of their own, for the linearizability checker. */
  readonly linHistory: LinEntry[] = [];

  /** One call of a CAS client: the answer's status and JSON body, or undefined (no answer). */
  async #casCall(
    proc: SimProc,
    client: string,
    url: string,
    init: RequestInit,
  ): Promise<{ status: number; body: Record<string, unknown>; etag: string | null } | undefined> {
    const timer = timeoutSignal(proc, CLIENT_TIMEOUT_MS);
    try {
      const res = await this.net.send(client, proc, url, { ...init, signal: timer.signal }, false);
      return {
        status: res.status,
        body: await res.json() as Record<string, unknown>,
        etag: res.headers.get("etag"),
      };
    } catch {
      return undefined;
    } finally {
      timer.done();
    }
  }

  /**
   * A client of counters `x0`, `x1`: `?op=incr`, or a CAS increment (a quorum read, then
   * a PUT with If-Match on the version read, If-None-Match: * when absent).
   */
  async casClient(i: number): Promise<void> {
    const name = `x${i}`;
    const proc = new SimProc(this.world, name, stream(this.seed, name));
    const r = proc.rng;
    await sleep(proc, WARM_MS + r.int(200));
    while (this.world.elapsedMs < FAULTS_END_MS) {
      const key = `x${r.int(2)}`;
      const targets = [...this.members.values()].filter((m) => m.state !== "left");
      const member = r.pick(targets).address;
      const invokeMs = this.world.elapsedMs;
      if (r.next() < 0.5) {
        // By 1: incrs of unknown outcome (an outage makes dozens) are then interchangeable, which
        // keeps the checker's search small; other steps are covered by the unit tests.
        const by = 1;
        const a = await this.#casCall(proc, name, `http://${member}/kv/${key}?op=incr&by=${by}`, {
          method: "POST",
        });
        const completeMs = this.world.elapsedMs;
        if (a?.status === 200) {
          const op = { kind: "incr" as const, by, value: Number(a.body.value) };
          this.linHistory.push({ key, op, invokeMs, completeMs });
        } else if (a === undefined || a.status >= 500) {
          // No answer or a 503: it may have been applied.
          const op = { kind: "incr" as const, by };
          this.linHistory.push({ key, op, invokeMs, completeMs: Infinity });
        }
      } else {
        const read = await this.#casCall(proc, name, `http://${member}/kv/${key}`, {
          method: "GET",
        });
        if (read !== undefined && (read.status === 200 || read.status === 404)) {
          const from = read.status === 404 ? null : String(read.body.value);
          const to = String((from === null ? 0 : Number(from)) + 1);
          const headers: Record<string, string> = read.status === 404
            ? { "if-none-match": "*" }
            : { "if-match": read.etag ?? "" };
          const casAt = this.world.elapsedMs;
          const a = await this.#casCall(proc, name, `http://${member}/kv/${key}`, {
            method: "PUT",
            body: to,
            headers,
          });
          const completeMs = this.world.elapsedMs;
          if (a?.status === 200) {
            this.linHistory.push({
              key,
              op: { kind: "cas", from, to },
              invokeMs: casAt,
              completeMs,
            });
          } else if (a?.status === 412) {
            const cur = a.body.current as { value?: string } | null;
            const saw = cur === null ? null : String(cur.value);
            const op = { kind: "cas-fail" as const, from, saw };
            this.linHistory.push({ key, op, invokeMs: casAt, completeMs });
          } else if (a === undefined || a.status >= 500) {
            const op = { kind: "cas" as const, from, to };
            this.linHistory.push({ key, op, invokeMs: casAt, completeMs: Infinity });
          }
        }
      }
      await sleep(proc, this.load.thinkMinMs + r.int(this.load.thinkSpreadMs));
    }
  }

  /** The listers' listings, judged by rule (list) (test/support/checker.ts). */
  readonly listingHistory: Listing[] = [];
  #nextListing = 1;

  /**
   * A lister: pages through every key (`prefix=`: the plain, ttl and CAS keys) a few keys a
   * page, each page through a random member (coordinators on different views), mostly at
   * quorum, until the end or a page that does not answer 200 (then it starts over).
   */
  async lister(i: number): Promise<void> {
    const name = `l${i}`;
    const proc = new SimProc(this.world, name, stream(this.seed, name));
    const r = proc.rng;
    await sleep(proc, WARM_MS + r.int(500));
    while (this.world.elapsedMs < FAULTS_END_MS) {
      const x = r.next();
      const level = x < 0.7 ? "quorum" : x < 0.85 ? "all" : "one";
      const limit = 1 + r.int(4);
      const pages: ListPage[] = [];
      const listing: Listing = {
        id: this.#nextListing++,
        client: name,
        prefix: "",
        level,
        limit,
        pages,
      };
      this.listingHistory.push(listing);
      let cursor: string | null = null;
      for (;;) {
        const targets = [...this.members.values()].filter((m) => m.state !== "left");
        const member = r.pick(targets).address;
        const q = cursor === null ? "" : `&cursor=${cursor}`;
        const page = await this.#listPage(
          proc,
          name,
          member,
          `prefix=&limit=${limit}&consistency=${level}${q}`,
        );
        pages.push(page.page);
        if (page.page.status !== 200 || page.cursor === null) break;
        cursor = page.cursor;
        await sleep(proc, r.int(60));
      }
      await sleep(proc, this.load.thinkMinMs + r.int(this.load.thinkSpreadMs));
    }
  }

  async #listPage(
    proc: SimProc,
    client: string,
    member: string,
    query: string,
  ): Promise<{ page: ListPage; cursor: string | null }> {
    const timer = timeoutSignal(proc, CLIENT_TIMEOUT_MS);
    const invokeMs = this.world.elapsedMs;
    try {
      const res = await this.net.send(client, proc, `http://${member}/kv?${query}`, {
        method: "GET",
        signal: timer.signal,
      }, false);
      const body = await res.json() as {
        items?: { key: string; version: string }[];
        cursor?: string | null;
      };
      const completeMs = this.world.elapsedMs;
      if (res.status !== 200) {
        return {
          page: { member, invokeMs, completeMs, status: res.status, items: [] },
          cursor: null,
        };
      }
      const cursor = body.cursor ?? null;
      const next = cursor === null ? null : Buffer.from(cursor, "base64url").toString("utf8");
      const items = (body.items ?? []).map((it) => ({ key: it.key, version: it.version }));
      return { page: { member, invokeMs, completeMs, status: 200, items, next }, cursor };
    } catch {
      return {
        page: { member, invokeMs, completeMs: this.world.elapsedMs, items: [] },
        cursor: null,
      };
    } finally {
      timer.done();
    }
  }

  async client(i: number): Promise<void> {
    const name = `c${i}`;
    const proc = new SimProc(this.world, name, stream(this.seed, name));
    const r = proc.rng;
    // The data API's draws (ttl keys, binary values, ttls) come from a stream of their own, so
    // adding them shifted none of the draws above: a seed replays the same keys, levels, members
    // and timings as before they existed.
    const d = stream(this.seed, `${name}-data`);
    let n = 0;
    await sleep(proc, WARM_MS + r.int(200));
    while (this.world.elapsedMs < FAULTS_END_MS) {
      // One request in five is on a ttl key (`t…`): most of their puts set a short ttl, so expiry
      // (and the checker's allowance for it) stays on those keys and every other key keeps the
      // full rules.
      const ttlKey = d.next() < 0.2 && this.ttlKeys;
      const key = `${ttlKey ? "t" : "k"}${r.int(this.load.keys)}`;
      const level = r.pick(LEVELS);
      const targets = [...this.members.values()].filter((m) => m.state !== "left");
      const member = r.pick(targets).address;
      const x = r.next();
      if (x < 0.45) {
        // Some values are bytes that are not UTF-8 (binary on every path); some carry a short
        // ttl, so expiry (and its collection) happens within the run.
        const text = `${name}-${++n}`;
        const value = d.next() < 0.2 ? binaryValue(text) : text;
        const ttlMs = ttlKey && d.next() < 0.7 ? 50 + d.int(TTL_MAX_MS - 50) : undefined;
        await this.request(proc, name, "put", key, level, member, value, false, ttlMs);
      } else if (x < 0.85) {
        await this.request(proc, name, "get", key, level, member, undefined);
      } else {
        await this.request(proc, name, "del", key, level, member, undefined);
      }
      await sleep(proc, this.load.thinkMinMs + r.int(this.load.thinkSpreadMs));
    }
  }

  /** Every running member reads every key at quorum. */
  async finalReads(): Promise<void> {
    const proc = new SimProc(this.world, "final", stream(this.seed, "final"));
    const keys = [...new Set(this.history.map((o) => o.key))].sort();
    const readers = [...this.members.values()].filter((m) => m.state === "up");
    await Promise.all(readers.map(async (m) => {
      for (const key of keys) {
        await this.request(proc, "final", "get", key, "quorum", m.address, undefined, true);
      }
    }));
  }

  finalState(): FinalState {
    const keys = [...new Set(this.history.map((o) => o.key))].sort();
    const ringText = (ring: Ring | undefined) =>
      ring === undefined ? "none" : ring.table.map((ids) => ids.join(",")).join(";");
    const nodes: NodeState[] = [];
    const otherRings: Record<string, string> = {};
    let first: Ring | undefined;
    for (const m of this.members.values()) {
      if (m.state !== "up") continue;
      if (m.orch) {
        otherRings[m.address] = ringText(m.orch.view && new RingOf(m.orch.view));
        continue;
      }
      const node = m.node!;
      const view = node.view;
      const ring = view && new RingOf(view);
      const inRing = view?.members.some((x) => x.id === node.config.nodeId && x.inRing) ?? false;
      if (!inRing) {
        otherRings[m.address] = ringText(ring);
        continue;
      }
      first ??= ring;
      const owned = new Set(ring ? ring.partitionsOf(node.config.nodeId) : []);
      const heldNotOwned: number[] = [];
      for (let p = 0; p < node.store.partitionCount; p++) {
        if (node.store.partitionSize(p) > 0 && !owned.has(p)) heldNotOwned.push(p);
      }
      const records: NodeState["records"] = Object.fromEntries(keys.map((k) => {
        const r = node.store.get(k);
        return [
          k,
          r === undefined ? null : {
            value: valueText(r.value),
            version: formatVersion(r.version),
            tombstone: r.tombstone,
            ...(r.expiresAt === undefined ? {} : { expires: true }),
          },
        ];
      }));
      nodes.push({
        id: node.config.nodeId,
        ring: ringText(ring),
        heldNotOwned: heldNotOwned.length,
        heldNotOwnedList: heldNotOwned,
        hintsPending: node.hints.count,
        records,
      });
    }
    const replicas = Object.fromEntries(
      keys.map((k) => [k, first ? first.replicas(k).map((x) => x.id) : []]),
    );
    return { nodes, otherRings, replicas, errors: [...this.world.errors] };
  }

  async run(): Promise<void> {
    const r = this.rng;
    const w = this.world;
    const nodesAtStart = 3 + r.int(3);
    const n = r.next();
    this.replicationFactor = n < 0.7 ? 3 : n < 0.85 ? 2 : 1;
    this.load = {
      clients: 2 + r.int(4),
      keys: 4 + r.int(13),
      thinkMinMs: r.pick([5, 20, 50]),
      thinkSpreadMs: r.pick([30, 100, 200]),
    };
    const l = this.load;
    this.log(
      `N=${this.replicationFactor}, ${nodesAtStart} nodes, ${l.clients} clients on ${l.keys} keys, ` +
        `${l.thinkMinMs}+${l.thinkSpreadMs}ms between requests`,
    );
    // Clock faults are drawn per seed like the others: a third of the seeds with `farskew`
    // enabled have a node a day ahead, half of those with `skew` have skewed clocks.
    const farAhead = this.faults.has("farskew") && r.next() < 1 / 3 ? 1 + r.int(nodesAtStart) : -1;
    this.#skewed = this.faults.has("skew") && r.next() < 0.5;
    w.at(0, () => {
      this.addMember("orchestrator", this.#skew());
      for (let i = 1; i <= nodesAtStart; i++) {
        this.addMember("node", i === farAhead ? 86_400_000 : this.#skew());
      }
      if (farAhead > 0) this.log(`clock of n${farAhead} a day ahead`);
      if (this.fsync !== undefined) this.log(`nodes keep a data dir (--fsync ${this.fsync})`);
    });
    if (this.fsync !== undefined && this.faults.has("crash")) {
      // A power cut of the whole cluster, once: every member at once, each back a while later
      // from its disk. Only a log that kept every acknowledged write passes the checker then.
      const d = stream(this.seed, "power cut");
      const at = WARM_MS + d.int(FAULTS_END_MS - WARM_MS - 4_000);
      w.at(at, () => {
        this.log("power cut: every member crashes");
        for (const m of this.members.values()) {
          if (m.state === "up") this.crash(m, 300 + d.int(3_000));
        }
      });
    }
    const kinds = [...this.faults].filter((k) => k !== "skew" && k !== "farskew");
    const count = kinds.length === 0 ? 0 : 2 + r.int(5);
    for (let i = 0; i < count; i++) {
      const kind = r.pick(kinds);
      const at = WARM_MS + r.int(FAULTS_END_MS - WARM_MS - 1_000);
      w.at(at, () => this.fault(kind));
    }
    w.at(0, () => {
      for (let i = 0; i < this.load.clients; i++) void this.client(i);
      for (let i = 0; i < CAS_CLIENTS; i++) void this.casClient(i);
      if (this.listings) { for (let i = 0; i < LISTERS; i++) void this.lister(i); }
    });
    await w.runUntil(FAULTS_END_MS);
    // Let in-flight client requests finish or time out before healing.
    await w.runUntil(FAULTS_END_MS + CLIENT_TIMEOUT_MS);
    w.at(0, () => this.healAll());
    await w.runUntil(QUIET_END_MS);
    // Each node's own copy first: the final reads repair what they read.
    w.at(0, () => {
      this.quiesced = this.finalState();
      void this.finalReads();
    });
    await w.runUntil(FINAL_END_MS);
  }

  stop(): void {
    for (const m of this.members.values()) if (m.state !== "left") this.#kill(m);
  }
}

/** The CAS and incr history judged by the linearizability checker (per key, time-bounded). */
function linViolations(history: readonly LinEntry[]): Violation[] {
  const v = checkLinearizable(history, { timeBudgetMs: 20_000 });
  return v.badKeys.map((key, i) => ({ rule: "lin" as const, key, message: v.detail[i]! }));
}

/** Run one seed; mutations are reset afterwards, even when the run throws. */
export async function runSeed(opts: SimOptions): Promise<SimResult> {
  resetMutations();
  if (opts.mutation) mutations[opts.mutation] = true;
  const faults = (opts.faults ?? DEFAULT_FAULTS).filter((f) => !opts.secret || f !== "farskew");
  const sim = new ClusterSim(
    opts.seed,
    faults,
    opts.memberArgs ?? [],
    opts.secret ?? false,
    opts.ttlKeys ?? true,
    opts.listings ?? true,
    opts.transport ?? "http",
  );
  try {
    await sim.run();
    const history = [...sim.history].sort((a, b) => a.id - b.id);
    if (sim.quiesced === undefined) throw new Error("the run ended before quiescence");
    const final = { ...sim.quiesced, errors: [...sim.world.errors] };
    return {
      seed: opts.seed,
      history,
      final,
      violations: [
        ...check(history, final),
        ...linViolations(sim.linHistory),
        ...checkListings(history, sim.listingHistory),
      ],
      linHistory: sim.linHistory,
      listings: sim.listingHistory,
      events: sim.events,
      eventsRun: sim.world.eventsRun,
      messages: sim.net.sent,
    };
  } finally {
    sim.stop();
    resetMutations();
  }
}
