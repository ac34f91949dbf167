/**
 * Command-line and environment configuration. Every flag `--some-flag` can also be given as
 * `DKV_SOME_FLAG`; the flag wins. Everything is validated by one zod schema, and the first
 * problem becomes one line naming the flag (exit code 2 in main.ts).
 */
import { parseArgs } from "node:util";
import { COMMAND_USAGE } from "./cli/index.ts";
import { z } from "zod";
import { hostPortPort, isHostPort } from "./core/address.ts";
import { parseDurationMs } from "./core/duration.ts";
import type { ReadHedgePolicy } from "./core/read-hedge.ts";
import { SWIM_LAN, SWIM_LOCAL, type SwimConfig } from "./core/swim-config.ts";

/** The entries of `o` that are not undefined. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export const VERSION = "0.1.0";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";

/** Intervals and timeouts, all in milliseconds. */
export interface Timers {
  /** DOWN for this long: out of the ring (its partitions get new owners). */
  deadAfterMs: number;
  /** The orchestrator pushes its full member table to every member at least this often. */
  viewPushIntervalMs: number;
  /**
   * A node that heard nothing from its --orchestrator for this long offers it the full table
   * (so a restarted orchestrator, which knows nobody, has the whole cluster back at once).
   */
  viewStaleMs: number;
  /** Timeout of one peer data call (replica read or write). */
  requestTimeoutMs: number;
  /** Replicas compare partition digests this often. */
  antiEntropyIntervalMs: number;
  /** Held hints are offered to their (UP) targets this often. */
  hintIntervalMs: number;
  /**
   * Tombstones older than this are removed. Long enough that hints and anti-entropy carried the
   * delete everywhere; hints expire at half of it, so no hint can outlive a tombstone it predates.
   */
  tombstoneGraceMs: number;
  /** A graceful leave gives up handing data off after this, and exits anyway. */
  leaveTimeoutMs: number;
  /**
   * A remote version whose wall time is more than this ahead of this member's clock is refused
   * (not stored, not observed): one fast clock or forged record cannot drag every clock forward,
   * and a tombstone is stamped at most this far in the future (collected this much late).
   */
  maxClockSkewMs: number;
  /**
   * A member out of the ring (LEFT, or DOWN and taken out) this long is dropped from the member
   * table, so departed and forged members cannot fill --max-members for good.
   */
  forgetAfterMs: number;
  /**
   * A request body must arrive whole within this of the first read, or the request is refused
   * (408) and its body abandoned: a slow sender holds a handler and its buffer this long at most.
   */
  bodyReadTimeoutMs: number;
  /**
   * A connection that sends nothing (headers or body) for this long is closed by the server
   * (Bun's idleTimeout, whole seconds, at most 255 s): slow-header senders are cut off.
   */
  idleTimeoutMs: number;
  /** While a rebalance or an anti-entropy round runs, a progress line this often. */
  progressIntervalMs: number;
}

/** `lan`: production defaults. `local`: fast timers for tests on one machine. */
export const PRESETS: Record<"lan" | "local", Timers> = {
  lan: {
    deadAfterMs: 30_000,
    viewPushIntervalMs: 2000,
    viewStaleMs: 5000, // 2.5 push periods
    requestTimeoutMs: 2000,
    antiEntropyIntervalMs: 10_000,
    hintIntervalMs: 1000,
    tombstoneGraceMs: 3_600_000, // 1 h: many anti-entropy rounds, well past any hint's life
    leaveTimeoutMs: 60_000,
    maxClockSkewMs: 60_000, // NTP keeps clocks within milliseconds; a minute is a broken clock
    forgetAfterMs: 86_400_000, // a day: long after any news of the member stopped travelling
    bodyReadTimeoutMs: 30_000, // a 1 MiB value at 35 KB/s; internal batches come much faster
    idleTimeoutMs: 30_000, // keep-alive connections between peers idle up to this long
    progressIntervalMs: 5000, // a long move says how far it is without flooding the log
  },
  local: {
    deadAfterMs: 10_000,
    viewPushIntervalMs: 500,
    viewStaleMs: 1500,
    requestTimeoutMs: 1000,
    antiEntropyIntervalMs: 1000,
    hintIntervalMs: 200,
    tombstoneGraceMs: 60_000,
    leaveTimeoutMs: 20_000,
    maxClockSkewMs: 60_000,
    forgetAfterMs: 86_400_000,
    bodyReadTimeoutMs: 30_000,
    idleTimeoutMs: 30_000,
    progressIntervalMs: 1000,
  },
};

export interface Config {
  role: "orchestrator" | "node" | "gateway";
  host: string;
  port: number;
  /** host:port that peers dial. */
  advertise: string;
  /** Stable member id (defaults to the advertised address). */
  nodeId: string;
  orchestrator?: string;
  /** Members to join through (any live member), besides the orchestrator. */
  join: string[];
  /** SWIM membership timing (src/core/swim-config.ts), from the preset and the gossip flags. */
  swim: SwimConfig;
  replicationFactor: number;
  partitions: number;
  valueBytesMax: number;
  keyBytesMax: number;
  /** Longest `?ttl=` a write may set (ms). */
  ttlMsMax: number;
  /** Most keys one listing page (`GET /kv?prefix=`) answers. */
  listKeysMax: number;
  /** Most ops in one `POST /kv/_batch`. */
  batchOpsMax: number;
  /** Watches (`?watch=true`) one member serves at once; more is a 503. */
  watchersMax: number;
  /** Bytes of events a watcher may leave unread before it gets `overflow` and is closed. */
  watchBufferBytes: number;
  /** Client writes a data node keeps for watchers to poll (change-log.ts). */
  watchLogEntries: number;
  /** Keys with Paxos state (conditional writes) a data node keeps at once (src/core/paxos.ts). */
  paxosKeysMax: number;
  membersMax: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  timers: Timers;
  /** Hints held for down replicas: at most this many, and this many bytes. */
  hintsMax: number;
  hintBytesMax: number;
  /**
   * Dynamo's sloppy quorum (opt-in): a hint held by a distinct live fallback member counts toward
   * W for `one` and `quorum`. Off by default: then only replicas count.
   */
  sloppyQuorum: boolean;
  /**
   * Hedged reads (src/core/read-hedge.ts): a read still short of its answers after this delay
   * asks one more replica. Default: the 99th percentile of observed peer read latency, 2-100 ms.
   */
  readHedge: ReadHedgePolicy;
  /** Rebalance and anti-entropy batches: at most this many keys and bytes per message. */
  batchKeysMax: number;
  batchBytesMax: number;
  /** Partitions streamed at once during a rebalance. */
  rebalanceConcurrency: number;
  /** Rebalance throttle in bytes per second (0 = unthrottled). */
  rebalanceRateBytes: number;
  /** Keys one anti-entropy exchange lists per partition. */
  antiEntropyKeysMax: number;
  /**
   * The cluster secret file (docs/security.md): when set, every internal call and its answer is
   * signed and checked. main.ts reads it; parsing the flags never touches the disk.
   */
  clusterSecretFile?: string;
  /**
   * The client token file (docs/security.md): when set, the public API needs
   * `Authorization: Bearer TOKEN` with a role that allows the route. main.ts reads it.
   */
  authTokenFile?: string;
  /** Run on a non-loopback address without a secret or tokens (protected mode off). */
  insecure: boolean;
  /**
   * Origins (besides the member's own) whose browser requests are served; a request with any
   * other `Origin` header is refused (403). Normalized as URL.origin: `http://host:port`.
   */
  allowOrigins: string[];
  /**
   * Client writes that would take the store's keys and values past this many UTF-8 bytes are
   * refused (507); undefined = unlimited.
   */
  storeBytesMax?: number;
  /** TLS on the member's port and between peers (docs/security.md#tls); main.ts reads the files. */
  tls?: TlsFiles;
  /**
   * Where a node keeps its write-ahead log and snapshots (src/node/data-dir.ts); undefined =
   * in memory only, as before.
   */
  dataDir?: string;
  /** When a logged write counts as done: after fdatasync (always), a group's (batch), or never. */
  fsync: "always" | "batch" | "never";
  /** --fsync batch: the first write of a group waits at most this long for others to join. */
  fsyncIntervalMs: number;
  /** A snapshot is taken when the log passes this many bytes and the last snapshot's size. */
  snapshotLogBytes: number;
  /** Recovery keeps the valid prefix of a damaged log instead of refusing to start. */
  repairWal: boolean;
  /** The cluster's name: a --data-dir written under another name is refused. */
  clusterName: string;
  /** The RESP (Redis protocol) listener's port; undefined: none (src/resp). */
  respPort?: number;
  /**
   * A node's TCP peer link port (src/http/peer-tcp-server.ts): peers' calls as frames;
   * advertised in its gossip record, so peers call it there instead of over HTTP. 0: one the OS
   * picks (the default for a node, --peer-port auto; main.ts puts the port it got here before
   * the member is built). undefined: none (--peer-port off, and always on an orchestrator).
   */
  peerPort?: number;
  /** RESP connections (and, apart, TCP peer link connections) one member serves at once. */
  maxConnections: number;
  /**
   * Unanswered bytes per RESP connection: input not yet run and answers not yet taken by the
   * client. Past it the member stops reading from the connection until it catches up; one
   * request larger than it is a protocol error.
   */
  respBufferBytes: number;
}

/** The TLS flags: where the PEM files are. Every member of a cluster needs TLS, or none. */
export interface TlsFiles {
  /** This member's certificate chain: served to clients and peers, shown as its client cert. */
  certFile: string;
  keyFile: string;
  /** The CA peers' certificates must chain to; without it, the system's roots. */
  caFile?: string;
  /** Require a client certificate signed by `caFile` on every connection (mutual TLS). */
  clientAuth: boolean;
}

interface FlagSpec {
  readonly help: string;
  readonly arg?: string;
  /** A one-letter alias (`-h`). */
  readonly short?: string;
}

/** Every flag, its help line, in --help order. */
const FLAGS = {
  role: {
    arg: "orchestrator|node|gateway",
    help: "what this process is (required; gateway: routes requests, holds no data)",
  },
  port: { arg: "N", help: "port to listen on (orchestrator 7000, node 8080)" },
  host: { arg: "ADDR", help: "address to bind (127.0.0.1)" },
  advertise: { arg: "HOST:PORT", help: "address peers dial (host:port)" },
  "node-id": { arg: "ID", help: "stable member id (the advertised address)" },
  orchestrator: { arg: "HOST:PORT", help: "orchestrator to join through" },
  join: {
    arg: "HOST:PORT[,...]",
    help: "members to join through (a node needs this or --orchestrator)",
  },
  "replication-factor": {
    arg: "N",
    help: "copies of each key; the orchestrator's wins, else a node's own (3)",
  },
  partitions: {
    arg: "N",
    help: "partitions in the ring; the orchestrator's wins, else a node's own (256)",
  },
  "max-value-bytes": { arg: "N", help: "largest value accepted (1048576)" },
  "max-key-bytes": { arg: "N", help: "largest key accepted, UTF-8 bytes (1024)" },
  "max-ttl": { arg: "DUR", help: "longest ?ttl= a write may set (365d)" },
  "max-list-keys": { arg: "N", help: "most keys in one listing page (1000)" },
  "max-batch-ops": { arg: "N", help: "most ops in one POST /kv/_batch (1000)" },
  "max-watchers": { arg: "N", help: "watches one member serves at once (1000)" },
  "watch-buffer-bytes": {
    arg: "N",
    help: "unread event bytes a watcher may have before it is closed (1048576)",
  },
  "watch-log": { arg: "N", help: "recent writes a node keeps for watchers (100000)" },
  "paxos-keys": {
    arg: "N",
    help: "keys with conditional-write (Paxos) state a node keeps at once (100000)",
  },
  "max-members": { arg: "N", help: "largest membership a member keeps (1024)" },
  "max-hints": { arg: "N", help: "hints held for down replicas, at most (100000)" },
  "max-hint-bytes": { arg: "N", help: "bytes of hints held, at most (67108864)" },
  "sloppy-quorum": {
    arg: "true|false",
    help: "a hint held by a distinct live fallback node counts toward W for one/quorum (false)",
  },
  "read-hedge": {
    arg: "pNN|DUR|off",
    help: "a read short of answers after this asks one more replica: a percentile of peer " +
      "read latency, a fixed delay, or off (p99)",
  },
  "read-hedge-min": { arg: "DUR", help: "lower bound of a percentile --read-hedge (2ms)" },
  "read-hedge-max": { arg: "DUR", help: "upper bound of a percentile --read-hedge (100ms)" },
  "batch-keys": { arg: "N", help: "keys per rebalance / anti-entropy batch (1000)" },
  "batch-bytes": { arg: "N", help: "bytes per rebalance / anti-entropy batch (1048576)" },
  "rebalance-concurrency": { arg: "N", help: "partitions streamed at once (4)" },
  "rebalance-rate": { arg: "BYTES/S", help: "rebalance throttle, 0 = none (104857600)" },
  "anti-entropy-keys": { arg: "N", help: "keys listed per partition per exchange (10000)" },
  preset: { arg: "lan|local", help: "timer and gossip defaults: lan, or local for tests (lan)" },
  "dead-after": { arg: "DUR", help: "DOWN for this long: out of the ring (30s)" },
  "view-push-interval": { arg: "DUR", help: "orchestrator re-pushes the view this often (2s)" },
  "view-stale": {
    arg: "DUR",
    help: "re-offer the table to a silent orchestrator, and warn while not joined, this often (5s)",
  },
  "request-timeout": { arg: "DUR", help: "timeout of one peer data call (2s)" },
  "anti-entropy-interval": { arg: "DUR", help: "replicas compare digests this often (10s)" },
  "hint-interval": { arg: "DUR", help: "hints are offered to their targets this often (1s)" },
  "tombstone-grace": { arg: "DUR", help: "tombstones are removed after this (1h)" },
  "leave-timeout": { arg: "DUR", help: "a graceful leave exits anyway after this (60s)" },
  "max-clock-skew": {
    arg: "DUR",
    help: "remote versions (and signed calls) further off this clock are refused (60s)",
  },
  "forget-after": { arg: "DUR", help: "members out of the ring this long are forgotten (24h)" },
  "cluster-secret-file": {
    arg: "PATH",
    help: "sign and check every internal call with this secret (docs/security.md)",
  },
  "tls-cert": { arg: "FILE", help: "serve HTTPS with this PEM certificate (needs --tls-key)" },
  "tls-key": { arg: "FILE", help: "the certificate's PEM private key" },
  "tls-ca": { arg: "FILE", help: "PEM CA that peers' certificates must chain to" },
  "tls-client-auth": {
    help: "require client certificates signed by --tls-ca (mutual TLS; env true|false)",
  },
  "auth-token-file": {
    arg: "PATH",
    help: "client tokens, TOKEN ROLE per line; the public API then needs one",
  },
  insecure: { help: "allow a non-loopback --host without a secret and tokens" },
  "allow-origin": {
    arg: "ORIGIN",
    help: "also serve browser requests from this origin (repeatable)",
  },
  "max-store-bytes": { arg: "N", help: "refuse writes past this many stored bytes (unlimited)" },
  "data-dir": {
    arg: "DIR",
    help: "keep a write-ahead log and snapshots here; the orchestrator its ring (in memory only)",
  },
  fsync: {
    arg: "always|batch|never",
    help: "a logged write is answered after its fsync / its group's fsync / never syncs (batch)",
  },
  "fsync-interval": { arg: "DUR", help: "--fsync batch: a group waits at most this long (5ms)" },
  "snapshot-log-bytes": {
    arg: "N",
    help: "snapshot once the log passes this and the last snapshot's size (67108864)",
  },
  "repair-wal": { help: "start from the valid prefix of a damaged log, dropping the rest" },
  "cluster-name": { arg: "NAME", help: "a --data-dir of another cluster name is refused (dkv)" },
  "resp-port": { arg: "N", help: "also speak the Redis protocol (RESP2/3) on this port (off)" },
  "peer-port": {
    arg: "N",
    help: "node: answer peers' calls over a TCP link on this port (auto: the OS picks; off)",
  },
  "max-connections": {
    arg: "N",
    help: "RESP connections served at once, and peer link ones apart (10000)",
  },
  "resp-buffer-bytes": {
    arg: "N",
    help: "unanswered bytes per RESP connection before reading pauses (67108864)",
  },
  "body-read-timeout": { arg: "DUR", help: "a request body must arrive within this (30s)" },
  "idle-timeout": { arg: "DUR", help: "close a connection silent this long, at most 255s (30s)" },
  "probe-interval-ms": { arg: "MS", help: "gossip: one member probed per period (200)" },
  "probe-timeout-ms": { arg: "MS", help: "gossip: direct probe timeout before helpers try (100)" },
  "indirect-checks": { arg: "N", help: "gossip: helpers asked to probe a silent member (3)" },
  "suspicion-mult": {
    arg: "N",
    help: "gossip: suspicion minimum, in probe periods × log10(n) (2)",
  },
  "suspicion-max-mult": { arg: "N", help: "gossip: suspicion maximum, times the minimum (6)" },
  "push-pull-interval-ms": { arg: "MS", help: "gossip: full-table exchange period (5000)" },
  "log-level": { arg: "debug|info|warn|error", help: "log verbosity (info)" },
  "log-format": { arg: "text|json", help: "log lines for people, or one JSON object each (text)" },
  "progress-interval": {
    arg: "DUR",
    help: "rebalance / anti-entropy progress line this often while they run (5s)",
  },
  help: { short: "h", help: "print this help and exit" },
  version: { short: "v", help: "print the version and exit" },
} satisfies Record<string, FlagSpec>;

type FlagName = keyof typeof FLAGS;
const DURATION_FLAGS: Record<string, keyof Timers> = {
  "dead-after": "deadAfterMs",
  "view-push-interval": "viewPushIntervalMs",
  "view-stale": "viewStaleMs",
  "request-timeout": "requestTimeoutMs",
  "anti-entropy-interval": "antiEntropyIntervalMs",
  "hint-interval": "hintIntervalMs",
  "tombstone-grace": "tombstoneGraceMs",
  "leave-timeout": "leaveTimeoutMs",
  "max-clock-skew": "maxClockSkewMs",
  "forget-after": "forgetAfterMs",
  "body-read-timeout": "bodyReadTimeoutMs",
  "idle-timeout": "idleTimeoutMs",
  "progress-interval": "progressIntervalMs",
};

export function helpText(): string {
  const lines = [
    `dkv ${VERSION} — a distributed key-value store`,
    "",
    "Usage:",
    "  dkv --role orchestrator [--port 7000]",
    "  dkv --role node --orchestrator=127.0.0.1:7000 [--port 8080]",
    "  dkv --role node --join=127.0.0.1:8080 [--port 8085]      (through any member)",
    "  dkv --role gateway --orchestrator=127.0.0.1:7000 [--port 9000]",
    "",
    "Client commands (talk to a running cluster):",
    ...COMMAND_USAGE,
    "",
    "Flags (each also as an environment variable DKV_<FLAG>, e.g. DKV_PORT=8081):",
  ];
  for (const [name, spec] of Object.entries(FLAGS) as [FlagName, FlagSpec][]) {
    const long = spec.arg ? `--${name} ${spec.arg}` : `--${name}`;
    const left = spec.short === undefined ? long : `-${spec.short}, ${long}`;
    lines.push(`  ${left.padEnd(40)} ${spec.help}`);
  }
  lines.push("", "Durations take a unit: 500ms, 2s, 1m, 1h, 1d.");
  return lines.join("\n");
}

const intIn = (min: number, max: number) =>
  z.string().regex(/^\d+$/, { error: "must be a whole number" }).transform(Number).pipe(
    z.number().min(min, { error: `must be at least ${min}` }).max(max, {
      error: `must be at most ${max}`,
    }),
  );

const hostPort = z.string().refine((s) => hostPortPort(s) !== undefined, {
  error: "must be host:port, e.g. 127.0.0.1:7000",
  abort: true,
}).refine(isHostPort, { error: "port must be 1-65535" });

const duration = z.string().transform((s, ctx) => {
  const ms = parseDurationMs(s);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({
      code: "custom",
      message: "must be a positive duration with a unit, e.g. 500ms or 2s",
    });
    return z.NEVER;
  }
  return ms;
});

/** Per-flag schemas for the raw strings (flag or env). */
const SCHEMAS = {
  role: z.enum(["orchestrator", "node", "gateway"], {
    error: "must be orchestrator, node or gateway",
  }),
  port: intIn(1, 65535),
  host: z.string().min(1, { error: "must not be empty" }),
  advertise: hostPort,
  "node-id": z.string().min(1, { error: "must not be empty" }).max(256, {
    error: "must be at most 256 characters",
  }),
  orchestrator: hostPort,
  join: z.string().transform((s) => s.split(",").map((x) => x.trim()).filter((x) => x.length > 0))
    .pipe(z.array(hostPort).min(1, { error: "must list at least one host:port" }).max(64)),
  "probe-interval-ms": intIn(10, 600_000),
  "probe-timeout-ms": intIn(1, 600_000),
  "indirect-checks": intIn(0, 16),
  "suspicion-mult": intIn(1, 100),
  "suspicion-max-mult": intIn(1, 100),
  "push-pull-interval-ms": intIn(100, 3_600_000),
  "replication-factor": intIn(1, 15),
  partitions: intIn(1, 65536),
  "max-value-bytes": intIn(0, 512 * 1024 * 1024),
  "max-key-bytes": intIn(1, 65536),
  "max-ttl": duration,
  "max-list-keys": intIn(1, 100_000),
  "max-batch-ops": intIn(1, 100_000),
  "max-watchers": intIn(0, 1_000_000),
  "watch-buffer-bytes": intIn(1024, 1024 * 1024 * 1024),
  "watch-log": intIn(1, 100_000_000),
  "paxos-keys": intIn(1, 100_000_000),
  "max-members": intIn(1, 100_000),
  "max-hints": intIn(0, 100_000_000),
  "max-hint-bytes": intIn(0, 64 * 1024 * 1024 * 1024),
  "sloppy-quorum": z.enum(["true", "false"], { error: "must be true or false" }).transform((v) =>
    v === "true"
  ),
  "batch-keys": intIn(1, 10_000),
  "batch-bytes": intIn(1024, 256 * 1024 * 1024),
  "rebalance-concurrency": intIn(1, 256),
  "rebalance-rate": intIn(0, 100 * 1024 * 1024 * 1024),
  "anti-entropy-keys": intIn(1, 10_000_000),
  preset: z.enum(["lan", "local"], { error: "must be lan or local" }),
  "cluster-secret-file": z.string().min(1, { error: "must not be empty" }),
  "tls-cert": z.string().min(1, { error: "must not be empty" }),
  "tls-key": z.string().min(1, { error: "must not be empty" }),
  "tls-ca": z.string().min(1, { error: "must not be empty" }),
  "tls-client-auth": z.enum(["true", "false"], { error: "must be true or false" }).transform((
    v,
  ) => v === "true"),
  "auth-token-file": z.string().min(1, { error: "must not be empty" }),
  "max-store-bytes": intIn(1, 2 ** 50),
  "data-dir": z.string().min(1, { error: "must not be empty" }).max(4096, {
    error: "must be at most 4096 characters",
  }),
  fsync: z.enum(["always", "batch", "never"], { error: "must be always, batch or never" }),
  "fsync-interval": duration.pipe(
    z.number().max(1000, { error: "must be at most 1s (every write in a group waits for it)" }),
  ),
  "snapshot-log-bytes": intIn(4096, 2 ** 40),
  "cluster-name": z.string().min(1, { error: "must not be empty" }).max(256, {
    error: "must be at most 256 characters",
  }),
  "resp-port": intIn(1, 65535),
  "peer-port": z.union([z.enum(["off", "auto"]), intIn(0, 65535)], {
    error: "must be a port (1-65535), auto (or 0: one the OS picks) or off",
  }).transform((v) => (v === "auto" ? 0 : v)),
  "max-connections": intIn(1, 1_000_000),
  "resp-buffer-bytes": intIn(64 * 1024, 4 * 1024 * 1024 * 1024),
  "log-level": z.enum(["debug", "info", "warn", "error"], {
    error: "must be debug, info, warn or error",
  }),
  "log-format": z.enum(["text", "json"], { error: "must be text or json" }),
} as const;

/**
 * An origin as browsers send it (`http://host[:port]`, https too), normalized as URL.origin
 * (lower case, default port dropped); anything with a path, query, user or fragment is refused.
 */
export const originSchema = z.string().transform((s, ctx) => {
  let url: URL | undefined;
  try {
    url = new URL(s);
  } catch {
    url = undefined;
  }
  const bare = url !== undefined && (url.protocol === "http:" || url.protocol === "https:") &&
    url.username === "" && url.password === "" && url.search === "" && url.hash === "" &&
    url.pathname === "/" && !s.endsWith("/");
  if (url === undefined || !bare) {
    ctx.addIssue({
      code: "custom",
      message: "must be an origin: http(s)://host[:port], no path",
    });
    return z.NEVER;
  }
  return url.origin;
});

/** Addresses that only this machine can reach: binding them needs no protection. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === "localhost" || h === "::1" || h === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Bind addresses meaning "every interface": they name no address peers could dial. */
function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "[::]";
}

/**
 * The address peers dial when --advertise is not given: the bind address (an IPv6 address in
 * brackets), which must then be a valid host:port. A wildcard bind (0.0.0.0, ::) has no such
 * address and needs --advertise.
 */
function defaultAdvertise(host: string, port: number): string {
  if (isWildcardHost(host)) {
    throw new FlagError(
      `--host: ${host} listens on every interface, so it is no address peers can dial; ` +
        `add --advertise HOST:PORT (an address of this machine the other members reach)`,
    );
  }
  const h = host.includes(":") ? `[${host}]` : host;
  const address = `${h}:${port}`;
  if (!isHostPort(address)) {
    throw new FlagError(
      `--host: '${host}' cannot be advertised to peers as host:port; give --advertise HOST:PORT`,
    );
  }
  return address;
}

export type ParseResult =
  | { kind: "config"; config: Config }
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "error"; message: string }
  /** No flags and no DKV_ROLE at all: the message, then the usage, on stderr (exit code 2). */
  | { kind: "usage"; message: string };

/** A bad flag: its message is the one line printed. */
class FlagError extends Error {}

/** Parse argv (without the program name) and the environment. Never throws, never exits. */
export function parseConfig(
  argv: readonly string[],
  env: Record<string, string | undefined>,
): ParseResult {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const [name, spec] of Object.entries(FLAGS) as [FlagName, FlagSpec][]) {
    options[name] = {
      type: spec.arg ? "string" : "boolean",
      ...(spec.short === undefined ? {} : { short: spec.short }),
    };
  }
  options["allow-origin"] = { type: "string", multiple: true } as never;
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    const parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  } catch (e) {
    return { kind: "error", message: cleanParseArgsError(e) };
  }
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };

  const raw = (name: FlagName): { value: string; from: string } | undefined => {
    const v = values[name];
    if (typeof v === "string") return { value: v, from: `--${name}` };
    const envName = `DKV_${name.toUpperCase().replaceAll("-", "_")}`;
    const e = env[envName];
    if (e !== undefined && e !== "") return { value: e, from: envName };
    return undefined;
  };

  const get = <K extends keyof typeof SCHEMAS>(
    name: K,
  ): z.output<(typeof SCHEMAS)[K]> | undefined => {
    const r = raw(name);
    if (r === undefined) return undefined;
    const out = SCHEMAS[name].safeParse(r.value);
    if (!out.success) {
      throw new FlagError(
        `${r.from}: ${out.error.issues[0]?.message ?? "invalid"} (got '${r.value}')`,
      );
    }
    return out.data as z.output<(typeof SCHEMAS)[K]>;
  };

  try {
    const role = get("role");
    if (role === undefined) {
      const message = "--role: required (orchestrator, node or gateway)";
      if (argv.length === 0) return { kind: "usage", message };
      throw new FlagError(message);
    }
    const host = get("host") ?? "127.0.0.1";
    const port = get("port") ?? (role === "orchestrator" ? 7000 : role === "gateway" ? 9000 : 8080);
    const secretFile = get("cluster-secret-file");
    const tokenFile = get("auth-token-file");
    const insecure = values.insecure === true || insecureEnv(env.DKV_INSECURE);
    if (!isLoopbackHost(host) && !insecure) {
      const missing = [
        ...(secretFile === undefined ? ["--cluster-secret-file"] : []),
        ...(tokenFile === undefined ? ["--auth-token-file"] : []),
      ];
      if (missing.length > 0) {
        throw new FlagError(
          `--host: ${host} is not a loopback address, so anyone who reaches it could use the ` +
            `cluster: add ${missing.join(" and ")} (docs/security.md), or --insecure to run ` +
            `unprotected`,
        );
      }
    }
    const advertise = get("advertise") ?? defaultAdvertise(host, port);
    const orchestrator = get("orchestrator");
    const join = get("join") ?? [];
    if (role !== "orchestrator" && orchestrator === undefined && join.length === 0) {
      throw new FlagError(
        `--orchestrator: a ${role} needs --orchestrator or --join (host:port of a member to join ` +
          `through)`,
      );
    }
    const preset = get("preset") ?? "lan";
    const timers: Timers = { ...PRESETS[preset] };
    for (const [flag, key] of Object.entries(DURATION_FLAGS)) {
      const r = raw(flag as FlagName);
      if (r === undefined) continue;
      const out = duration.safeParse(r.value);
      if (!out.success) {
        throw new FlagError(
          `${r.from}: ${out.error.issues[0]?.message ?? "invalid"} (got '${r.value}')`,
        );
      }
      timers[key] = out.data;
    }
    if (timers.idleTimeoutMs > 255_000) {
      throw new FlagError(
        `--idle-timeout: must be at most 255s (got '${raw("idle-timeout")?.value}')`,
      );
    }
    const ms = (n: number) => `${n}ms`;
    const swim: SwimConfig = {
      ...(preset === "local" ? SWIM_LOCAL : SWIM_LAN),
      forgetAfterMs: timers.forgetAfterMs,
      ...defined({
        probeIntervalMs: get("probe-interval-ms"),
        probeTimeoutMs: get("probe-timeout-ms"),
        indirectChecks: get("indirect-checks"),
        suspicionMult: get("suspicion-mult"),
        suspicionMaxMult: get("suspicion-max-mult"),
        pushPullIntervalMs: get("push-pull-interval-ms"),
      }),
    };
    if (swim.probeTimeoutMs >= swim.probeIntervalMs) {
      throw new FlagError(
        `--probe-timeout-ms: ${swim.probeTimeoutMs} must be shorter than --probe-interval-ms ` +
          `(${swim.probeIntervalMs}); set both`,
      );
    }
    if (timers.viewStaleMs <= timers.viewPushIntervalMs) {
      throw new FlagError(
        `--view-stale: ${ms(timers.viewStaleMs)} must be longer than --view-push-interval ` +
          `(${ms(timers.viewPushIntervalMs)}); set both`,
      );
    }
    const readHedge = readHedgePolicy(
      raw("read-hedge"),
      raw("read-hedge-min"),
      raw("read-hedge-max"),
    );
    const config: Config = {
      role,
      host,
      port,
      advertise,
      nodeId: get("node-id") ?? advertise,
      replicationFactor: get("replication-factor") ?? 3,
      partitions: get("partitions") ?? 256,
      valueBytesMax: get("max-value-bytes") ?? 1024 * 1024,
      keyBytesMax: get("max-key-bytes") ?? 1024,
      ttlMsMax: get("max-ttl") ?? 365 * 86_400_000,
      listKeysMax: get("max-list-keys") ?? 1000,
      batchOpsMax: get("max-batch-ops") ?? 1000,
      watchersMax: get("max-watchers") ?? 1000,
      watchBufferBytes: get("watch-buffer-bytes") ?? 1024 * 1024,
      watchLogEntries: get("watch-log") ?? 100_000,
      paxosKeysMax: get("paxos-keys") ?? 100_000,
      membersMax: get("max-members") ?? 1024,
      join,
      swim: { ...swim, membersMax: get("max-members") ?? swim.membersMax },
      logLevel: get("log-level") ?? "info",
      logFormat: get("log-format") ?? "text",
      timers,
      hintsMax: get("max-hints") ?? 100_000,
      hintBytesMax: get("max-hint-bytes") ?? 64 * 1024 * 1024,
      sloppyQuorum: get("sloppy-quorum") ?? false,
      readHedge,
      batchKeysMax: get("batch-keys") ?? 1000,
      batchBytesMax: get("batch-bytes") ?? 1024 * 1024,
      rebalanceConcurrency: get("rebalance-concurrency") ?? 4,
      rebalanceRateBytes: get("rebalance-rate") ?? 100 * 1024 * 1024,
      antiEntropyKeysMax: get("anti-entropy-keys") ?? 10_000,
      insecure,
      allowOrigins: allowOrigins(values["allow-origin"], env.DKV_ALLOW_ORIGIN),
      fsync: get("fsync") ?? "batch",
      fsyncIntervalMs: get("fsync-interval") ?? 5,
      snapshotLogBytes: get("snapshot-log-bytes") ?? 64 * 1024 * 1024,
      repairWal: values["repair-wal"] === true || boolEnv("DKV_REPAIR_WAL", env.DKV_REPAIR_WAL),
      clusterName: get("cluster-name") ?? "dkv",
      maxConnections: get("max-connections") ?? 10_000,
      respBufferBytes: get("resp-buffer-bytes") ?? 64 * 1024 * 1024,
    };
    const dataDir = get("data-dir");
    if (dataDir !== undefined) {
      if (role === "gateway") {
        throw new FlagError(
          "--data-dir: a gateway keeps nothing (nodes keep their data, the orchestrator its ring)",
        );
      }
      config.dataDir = dataDir;
    }
    const respPort = get("resp-port");
    if (respPort !== undefined) {
      if (respPort === port) {
        throw new FlagError(`--resp-port: ${respPort} is the HTTP --port too; give another`);
      }
      config.respPort = respPort;
    }
    const peerPort = get("peer-port");
    // An orchestrator has no link: off, auto and 0 (a shared setting) are taken and mean none.
    if (typeof peerPort === "number" && peerPort !== 0 && role !== "node") {
      throw new FlagError("--peer-port: only a node answers peers' calls (leave it off here)");
    }
    if (typeof peerPort === "number" && peerPort !== 0) {
      if (peerPort === port || peerPort === config.respPort) {
        throw new FlagError(`--peer-port: ${peerPort} is already this member's HTTP or RESP port`);
      }
    }
    if (role === "node" && peerPort !== "off") config.peerPort = peerPort ?? 0;
    if (orchestrator !== undefined) config.orchestrator = orchestrator;
    if (secretFile !== undefined) config.clusterSecretFile = secretFile;
    const tls = tlsFiles(get, values["tls-client-auth"] === true);
    if (tls !== undefined) config.tls = tls;
    if (tls !== undefined && config.respPort !== undefined && !insecure) {
      throw new FlagError(
        "--resp-port: the Redis protocol listener has no TLS yet, so with --tls-cert it would " +
          "carry keys, values and tokens in clear: leave it off, or add --insecure",
      );
    }
    if (tokenFile !== undefined) config.authTokenFile = tokenFile;
    const storeBytesMax = get("max-store-bytes");
    if (storeBytesMax !== undefined) config.storeBytesMax = storeBytesMax;
    return { kind: "config", config };
  } catch (e) {
    if (e instanceof FlagError) return { kind: "error", message: e.message };
    throw e;
  }
}

/** Defaults of --read-hedge: p99 of observed peer read latency, bounded to 2-100 ms. */
const READ_HEDGE_DEFAULT = { percentile: 99, minMs: 2, maxMs: 100 } as const;
/** Upper bound of every --read-hedge duration (a hedge is meant to come soon). */
const READ_HEDGE_MS_MAX = 60_000;

/**
 * --read-hedge (pNN with 50 ≤ NN < 100, e.g. p99 or p99.9; a duration; or off) and the bounds
 * of a percentile delay, --read-hedge-min ≤ --read-hedge-max.
 */
function readHedgePolicy(
  hedge: { value: string; from: string } | undefined,
  min: { value: string; from: string } | undefined,
  max: { value: string; from: string } | undefined,
): ReadHedgePolicy {
  const ms = (r: { value: string; from: string } | undefined, dflt: number): number => {
    if (r === undefined) return dflt;
    const v = parseDurationMs(r.value);
    if (v === undefined || v <= 0 || v > READ_HEDGE_MS_MAX) {
      throw new FlagError(
        `${r.from}: must be a positive duration up to 60s with a unit, e.g. 5ms (got '${r.value}')`,
      );
    }
    return v;
  };
  const minMs = ms(min, READ_HEDGE_DEFAULT.minMs);
  const maxMs = ms(max, READ_HEDGE_DEFAULT.maxMs);
  if (minMs > maxMs) {
    throw new FlagError(
      `${min?.from ?? "--read-hedge-min"}: ${minMs}ms is more than ` +
        `${max?.from ?? "--read-hedge-max"} (${maxMs}ms)`,
    );
  }
  const text = hedge?.value.trim().toLowerCase();
  if (text === undefined) return { kind: "percentile", ...READ_HEDGE_DEFAULT, minMs, maxMs };
  if (text === "off") return { kind: "off" };
  const pct = /^p(\d{2}(?:\.\d{1,3})?)$/.exec(text);
  if (pct !== null) {
    const percentile = Number(pct[1]);
    if (percentile >= 50 && percentile < 100) {
      return { kind: "percentile", percentile, minMs, maxMs };
    }
  }
  const fixed = parseDurationMs(text);
  if (pct === null && fixed !== undefined && fixed > 0 && fixed <= READ_HEDGE_MS_MAX) {
    return { kind: "fixed", delayMs: fixed };
  }
  throw new FlagError(
    `${hedge!.from}: must be a percentile p50-p99.999 (e.g. p99), a duration up to 60s ` +
      `(e.g. 20ms), or off (got '${hedge!.value}')`,
  );
}

/**
 * The TLS flags, checked together: a certificate needs its key (and the other way round), a CA
 * or client authentication needs this member to serve TLS, and client authentication needs the
 * CA that signs the client certificates. The files themselves are read by main.ts.
 */
function tlsFiles(
  get: <K extends keyof typeof SCHEMAS>(name: K) => z.output<(typeof SCHEMAS)[K]> | undefined,
  clientAuthFlag: boolean,
): TlsFiles | undefined {
  const certFile = get("tls-cert");
  const keyFile = get("tls-key");
  const caFile = get("tls-ca");
  const clientAuth = clientAuthFlag || (get("tls-client-auth") ?? false);
  if (certFile !== undefined && keyFile === undefined) {
    throw new FlagError("--tls-cert: needs --tls-key too (the certificate's private key)");
  }
  if (keyFile !== undefined && certFile === undefined) {
    throw new FlagError("--tls-key: needs --tls-cert too (the certificate it belongs to)");
  }
  if (certFile === undefined || keyFile === undefined) {
    if (caFile !== undefined) {
      throw new FlagError("--tls-ca: needs --tls-cert and --tls-key (peers dial https only then)");
    }
    if (clientAuth) throw new FlagError("--tls-client-auth: needs --tls-cert, --tls-key, --tls-ca");
    return undefined;
  }
  if (clientAuth && caFile === undefined) {
    throw new FlagError(
      "--tls-client-auth: needs --tls-ca (the CA that signs client certificates)",
    );
  }
  return { certFile, keyFile, clientAuth, ...(caFile === undefined ? {} : { caFile }) };
}

/** A boolean flag's environment variable: true or false (1 or 0); anything else is a bad flag. */
function boolEnv(name: string, v: string | undefined): boolean {
  if (v === undefined || v === "") return false;
  const out = z.enum(["true", "false", "1", "0"]).safeParse(v);
  if (!out.success) throw new FlagError(`${name}: must be true or false (got '${v}')`);
  return out.data === "true" || out.data === "1";
}

/** DKV_INSECURE: true or false (1 or 0); anything else is a bad flag. */
function insecureEnv(v: string | undefined): boolean {
  if (v === undefined || v === "") return false;
  const out = z.enum(["true", "false", "1", "0"]).safeParse(v);
  if (!out.success) throw new FlagError(`DKV_INSECURE: must be true or false (got '${v}')`);
  return out.data === "true" || out.data === "1";
}

/** --allow-origin (repeatable) or DKV_ALLOW_ORIGIN (comma-separated), normalized. */
function allowOrigins(flag: unknown, env: string | undefined): string[] {
  const given = Array.isArray(flag) ? flag as string[] : undefined;
  const list = given ?? (env ? env.split(",").map((x) => x.trim()).filter((x) => x) : []);
  const from = given ? "--allow-origin" : "DKV_ALLOW_ORIGIN";
  if (list.length > 64) throw new FlagError(`${from}: at most 64 origins`);
  return list.map((o) => {
    const out = originSchema.safeParse(o);
    if (!out.success) {
      throw new FlagError(`${from}: ${out.error.issues[0]?.message ?? "invalid"} (got '${o}')`);
    }
    return out.data;
  });
}

function cleanParseArgsError(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const unknown = /Unknown option '([^']+)'/.exec(msg);
  if (unknown) return `${unknown[1]}: unknown flag (see --help)`;
  const missing = /Option '(?:-\w, )?(--[\w-]+)[^']*' argument missing/.exec(msg);
  if (missing) return `${missing[1]}: needs a value`;
  const ambiguous = /Option '(?:-\w, )?(--[\w-]+)[^']*' argument is ambiguous/.exec(msg);
  if (ambiguous) return `${ambiguous[1]}: value looks like a flag; write ${ambiguous[1]}=VALUE`;
  const noArg = /Option '(?:-\w, )?(--[\w-]+)' does not take an argument/.exec(msg);
  if (noArg) return `${noArg[1]}: takes no value`;
  const positional = /Unexpected argument '([^']+)'/.exec(msg);
  if (positional) return `'${positional[1]}': unexpected argument (flags look like --name value)`;
  return msg.split("\n")[0] ?? msg;
}
