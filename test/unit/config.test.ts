/** CLI flags and environment: defaults, precedence, and one clear error per bad input. */
import { describe, expect, test } from "bun:test";
import { type Config, helpText, parseConfig, PRESETS, VERSION } from "../../src/config.ts";
import { parseDurationMs } from "../../src/core/duration.ts";
import { SWIM_LAN, SWIM_LOCAL, type SwimConfig } from "../../src/core/swim-config.ts";

type Env = Record<string, string | undefined>;
const NODE = ["--role", "node", "--orchestrator", "127.0.0.1:7000"];
/** A node that joins through members only, with no orchestrator. */
const JOINER = ["--role", "node", "--join", "127.0.0.1:8081"];
const ORCH = ["--role", "orchestrator"];

/** Parse and insist on a config; a test that expected success fails with the error text. */
function config(argv: readonly string[], env: Env = {}): Config {
  const r = parseConfig(argv, env);
  if (r.kind !== "config") throw new Error(`expected a config, got ${JSON.stringify(r)}`);
  return r.config;
}

/** Parse and insist on an error; returns its message. */
function error(argv: readonly string[], env: Env = {}): string {
  const r = parseConfig(argv, env);
  if (r.kind !== "error") throw new Error(`expected an error, got ${JSON.stringify(r)}`);
  return r.message;
}

/** n distinct host:port entries, comma-separated. */
function list(n: number): string {
  return Array.from({ length: n }, (_, i) => `h${i}.lan:${8000 + i}`).join(",");
}

describe("defaults", () => {
  test("orchestrator", () => {
    expect(config(ORCH)).toEqual({
      role: "orchestrator",
      host: "127.0.0.1",
      port: 7000,
      advertise: "127.0.0.1:7000",
      nodeId: "127.0.0.1:7000",
      replicationFactor: 3,
      partitions: 256,
      valueBytesMax: 1024 * 1024,
      keyBytesMax: 1024,
      ttlMsMax: 365 * 86_400_000,
      listKeysMax: 1000,
      batchOpsMax: 1000,
      watchersMax: 1000,
      watchBufferBytes: 1024 * 1024,
      watchLogEntries: 100_000,
      paxosKeysMax: 100_000,
      membersMax: 1024,
      join: [],
      swim: SWIM_LAN,
      logLevel: "info",
      logFormat: "text",
      timers: PRESETS.lan,
      hintsMax: 100_000,
      hintBytesMax: 64 * 1024 * 1024,
      sloppyQuorum: false,
      readHedge: { kind: "percentile", percentile: 99, minMs: 2, maxMs: 100 },
      batchKeysMax: 1000,
      batchBytesMax: 1024 * 1024,
      rebalanceConcurrency: 4,
      rebalanceRateBytes: 100 * 1024 * 1024,
      antiEntropyKeysMax: 10_000,
      insecure: false,
      allowOrigins: [],
      fsync: "batch",
      fsyncIntervalMs: 5,
      snapshotLogBytes: 64 * 1024 * 1024,
      repairWal: false,
      clusterName: "dkv",
      maxConnections: 10_000,
      respBufferBytes: 64 * 1024 * 1024,
    });
  });

  test("--resp-port and its limits", () => {
    const c = config([...NODE, "--resp-port", "6380", "--max-connections", "5"]);
    expect(c.respPort).toBe(6380);
    expect(c.maxConnections).toBe(5);
    expect(config(NODE).respPort).toBeUndefined();
    expect(config(NODE, { DKV_RESP_PORT: "6390", DKV_MAX_CONNECTIONS: "7" })).toMatchObject({
      respPort: 6390,
      maxConnections: 7,
    });
    expect(error([...NODE, "--resp-port", "8080"])).toBe(
      "--resp-port: 8080 is the HTTP --port too; give another",
    );
    expect(error([...NODE, "--resp-port", "0"])).toBe("--resp-port: must be at least 1 (got '0')");
    const tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
    expect(error([...NODE, ...tls, "--resp-port", "6380"])).toContain(
      "--resp-port: the Redis protocol listener has no TLS yet",
    );
    expect(config([...NODE, ...tls, "--resp-port", "6380", "--insecure"]).respPort).toBe(6380);
  });

  test("--peer-port: a node's TCP peer link; absent, auto or 0 is one the OS picks; off is none", () => {
    expect(config([...NODE, "--peer-port", "9100"]).peerPort).toBe(9100);
    expect(config(NODE, { DKV_PEER_PORT: "9101" }).peerPort).toBe(9101);
    expect(config(NODE).peerPort).toBe(0);
    expect(config([...NODE, "--peer-port", "0"]).peerPort).toBe(0);
    expect(config([...NODE, "--peer-port", "auto"]).peerPort).toBe(0);
    expect(config([...NODE, "--peer-port", "off"]).peerPort).toBeUndefined();
    expect(config(NODE, { DKV_PEER_PORT: "off" }).peerPort).toBeUndefined();
    // An orchestrator has no link, and may say so.
    expect(config(ORCH).peerPort).toBeUndefined();
    expect(config([...ORCH, "--peer-port", "off"]).peerPort).toBeUndefined();
    expect(config([...ORCH, "--peer-port", "auto"]).peerPort).toBeUndefined();
    expect(config(ORCH, { DKV_PEER_PORT: "0" }).peerPort).toBeUndefined();
    expect(error([...NODE, "--peer-port", "65536"])).toContain(
      "--peer-port: must be at most 65535",
    );
    for (const bad of ["--peer-port=-1", "--peer-port=on", "--peer-port="]) {
      expect(error([...NODE, bad])).toContain(
        "--peer-port: must be a port (1-65535), auto (or 0: one the OS picks) or off",
      );
    }
    expect(error([...NODE, "--peer-port", "8080"])).toBe(
      "--peer-port: 8080 is already this member's HTTP or RESP port",
    );
    expect(error([...NODE, "--resp-port", "6380", "--peer-port", "6380"])).toContain(
      "already this member's HTTP or RESP port",
    );
    expect(error([...ORCH, "--peer-port", "9100"])).toContain(
      "--peer-port: only a node answers peers' calls",
    );
    // With a cluster secret the link signs its hellos; with TLS it is over TLS.
    const secret = ["--cluster-secret-file", "s.txt"];
    expect(config([...NODE, ...secret, "--peer-port", "9100"]).peerPort).toBe(9100);
    const tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
    expect(config([...NODE, ...tls, "--peer-port", "9100"]).peerPort).toBe(9100);
  });

  test("node", () => {
    const c = config(NODE);
    expect(c.role).toBe("node");
    expect(c.port).toBe(8080);
    expect(c.advertise).toBe("127.0.0.1:8080");
    expect(c.nodeId).toBe("127.0.0.1:8080");
    expect(c.orchestrator).toBe("127.0.0.1:7000");
    expect(c.replicationFactor).toBe(3);
    expect(c.partitions).toBe(256);
    expect(c.valueBytesMax).toBe(1_048_576);
    expect(c.timers).toEqual(PRESETS.lan);
    expect(c.join).toEqual([]);
    expect(c.swim).toEqual(SWIM_LAN);
  });

  test("an orchestrator without --orchestrator has no orchestrator field", () => {
    expect("orchestrator" in config(ORCH)).toBe(false);
  });

  test("preset timers are self-consistent (view stale > push interval)", () => {
    for (const t of Object.values(PRESETS)) {
      expect(t.viewStaleMs).toBeGreaterThan(t.viewPushIntervalMs);
    }
  });

  test("both gossip presets pass the probe-timeout < probe-interval cross-check", () => {
    for (const s of [SWIM_LAN, SWIM_LOCAL]) {
      expect(s.probeTimeoutMs).toBeLessThan(s.probeIntervalMs);
    }
  });

  test("the removed health-probe timers are gone from Timers", () => {
    for (const t of [...Object.values(PRESETS), config(ORCH).timers]) {
      for (const key of ["healthIntervalMs", "probeTimeoutMs", "downAfterMs"]) {
        expect(key in t).toBe(false);
      }
    }
  });
});

describe("flags", () => {
  const cases: readonly [name: string, argv: string[], want: Partial<Config>][] = [
    ["--port", [...ORCH, "--port", "7100"], { port: 7100, advertise: "127.0.0.1:7100" }],
    ["--port=", [...NODE, "--port=8181"], { port: 8181, nodeId: "127.0.0.1:8181" }],
    ["--host", [...ORCH, "--host", "10.1.2.3", "--insecure"], {
      host: "10.1.2.3",
      advertise: "10.1.2.3:7000",
      insecure: true,
    }],
    ["--host 0.0.0.0 with --advertise", [
      ...ORCH,
      "--host",
      "0.0.0.0",
      "--advertise",
      "10.1.2.3:7000",
      "--insecure",
    ], { host: "0.0.0.0", advertise: "10.1.2.3:7000" }],
    ["--advertise", [...NODE, "--advertise", "node1.lan:9000"], {
      advertise: "node1.lan:9000",
      nodeId: "node1.lan:9000",
      port: 8080,
    }],
    ["--node-id", [...NODE, "--node-id", "n-1"], { nodeId: "n-1", advertise: "127.0.0.1:8080" }],
    ["--replication-factor", [...ORCH, "--replication-factor", "5"], { replicationFactor: 5 }],
    ["--partitions", [...ORCH, "--partitions", "1024"], { partitions: 1024 }],
    ["--max-value-bytes", [...ORCH, "--max-value-bytes", "0"], { valueBytesMax: 0 }],
    ["--max-key-bytes", [...ORCH, "--max-key-bytes", "64"], { keyBytesMax: 64 }],
    ["--max-members", [...ORCH, "--max-members", "3"], { membersMax: 3 }],
    ["--log-level", [...ORCH, "--log-level", "debug"], { logLevel: "debug" }],
    ["--preset local", [...ORCH, "--preset", "local"], { timers: PRESETS.local }],
  ];
  for (const [name, argv, want] of cases) {
    test(name, () => {
      expect(config(argv)).toMatchObject(want);
    });
  }

  const durations: readonly [
    flag: string,
    text: string,
    key: keyof Config["timers"],
    ms: number,
  ][] = [
    ["--dead-after", "1m", "deadAfterMs", 60_000],
    ["--view-push-interval", "1s", "viewPushIntervalMs", 1000],
    ["--view-stale", "1h", "viewStaleMs", 3_600_000],
    ["--request-timeout", "2.5s", "requestTimeoutMs", 2500],
    ["--anti-entropy-interval", "30s", "antiEntropyIntervalMs", 30_000],
    ["--hint-interval", "250ms", "hintIntervalMs", 250],
    ["--tombstone-grace", "2h", "tombstoneGraceMs", 7_200_000],
    ["--leave-timeout", "5m", "leaveTimeoutMs", 300_000],
    ["--max-clock-skew", "5s", "maxClockSkewMs", 5000],
    ["--max-clock-skew", "2m", "maxClockSkewMs", 120_000],
  ];
  for (const [flag, text, key, ms] of durations) {
    test(`${flag} ${text} → ${key} = ${ms}`, () => {
      const c = config([...ORCH, flag, text]);
      expect(c.timers[key]).toBe(ms);
      // Only that timer moved; the others keep the preset.
      expect({ ...c.timers, [key]: PRESETS.lan[key] }).toEqual(PRESETS.lan);
    });
  }

  test("a duration flag overrides the chosen preset", () => {
    const c = config([...ORCH, "--preset", "local", "--dead-after", "2s"]);
    expect(c.timers).toEqual({ ...PRESETS.local, deadAfterMs: 2000 });
  });

  test("overriding timers never mutates the shared presets", () => {
    const before = structuredClone(PRESETS);
    config([...ORCH, "--dead-after", "7s", "--request-timeout", "9s"]);
    expect(PRESETS).toEqual(before);
  });

  test("--view-stale may shrink when --view-push-interval shrinks with it", () => {
    const c = config([...ORCH, "--view-push-interval", "100ms", "--view-stale", "200ms"]);
    expect(c.timers.viewPushIntervalMs).toBe(100);
    expect(c.timers.viewStaleMs).toBe(200);
  });

  test("timer flags leave the gossip config alone", () => {
    expect(config([...ORCH, "--dead-after", "1m", "--view-stale", "1h"]).swim).toEqual(SWIM_LAN);
  });
});

describe("--join", () => {
  const good: readonly [name: string, value: string, want: string[]][] = [
    ["one member", "10.0.0.2:8080", ["10.0.0.2:8080"]],
    ["several members, in order", "b.lan:2,a.lan:1,c.lan:3", ["b.lan:2", "a.lan:1", "c.lan:3"]],
    ["whitespace around entries is trimmed", " a:1 ,  b:2 ", ["a:1", "b:2"]],
    ["empty entries are skipped", "a:1,,b:2,", ["a:1", "b:2"]],
    ["a leading comma is skipped", ",a:1", ["a:1"]],
    ["duplicates are kept as given", "a:1,a:1", ["a:1", "a:1"]],
    ["port 65535", "h:65535", ["h:65535"]],
    ["64 members (the most)", list(64), list(64).split(",")],
  ];
  for (const [name, value, want] of good) {
    test(`${name}: ${value.length > 40 ? value.slice(0, 40) + "…" : value}`, () => {
      expect(config(["--role", "node", "--join", value]).join).toEqual(want);
      expect(config(["--role", "node", `--join=${value}`]).join).toEqual(want);
    });
  }

  const bad: readonly [name: string, value: string][] = [
    ["empty", ""],
    ["only commas", ",,"],
    ["only whitespace and a comma", " , "],
    ["an entry without a port", "a:1,b"],
    ["an entry without a host", "a:1,:2"],
    ["an entry with port 0", "a:1,h:0"],
    ["an entry with port 70000", "h:70000,a:1"],
    ["an entry with a scheme", "http://h:1"],
    ["an entry with a space inside", "a b:1"],
    ["an entry with two colons", "h:1:2"],
    ["a semicolon instead of a comma", "a:1;b:2"],
    ["65 members (one too many)", list(65)],
  ];
  for (const [name, value] of bad) {
    test(`${name} → error naming --join`, () => {
      const msg = error(["--role", "node", `--join=${value}`]);
      expect(msg).toStartWith("--join:");
      expect(msg).toContain(`(got '${value}')`);
      expect(msg).not.toContain("\n");
    });
  }

  test("an empty list says what it wants", () => {
    expect(error(["--role", "node", "--join="])).toBe(
      "--join: must list at least one host:port (got '')",
    );
    expect(error(["--role", "node", "--join", ","])).toBe(
      "--join: must list at least one host:port (got ',')",
    );
  });

  test("a bad entry says host:port", () => {
    expect(error(["--role", "node", "--join", "a:1,b"])).toBe(
      "--join: must be host:port, e.g. 127.0.0.1:7000 (got 'a:1,b')",
    );
  });

  test("an empty --join is an error even next to --orchestrator", () => {
    expect(error([...NODE, "--join="])).toStartWith("--join:");
  });

  test("an orchestrator may be given --join too", () => {
    expect(config([...ORCH, "--join", "a:1"]).join).toEqual(["a:1"]);
  });
});

describe("a node needs --orchestrator or --join", () => {
  test("neither: one error naming both flags", () => {
    const msg = error(["--role", "node"]);
    expect(msg).toStartWith("--orchestrator: a node needs --orchestrator or --join");
    expect(msg).not.toContain("\n");
  });

  test("neither, with other settings given: still the error", () => {
    expect(error(["--role", "node", "--port", "8081", "--preset", "local"])).toStartWith(
      "--orchestrator:",
    );
  });

  test("--join alone is enough, and there is no orchestrator field", () => {
    const c = config(JOINER);
    expect(c.join).toEqual(["127.0.0.1:8081"]);
    expect("orchestrator" in c).toBe(false);
  });

  test("--orchestrator alone is enough, with an empty join list", () => {
    const c = config(NODE);
    expect(c.orchestrator).toBe("127.0.0.1:7000");
    expect(c.join).toEqual([]);
  });

  test("both together keep both", () => {
    const c = config([...NODE, "--join", "a:1,b:2"]);
    expect(c.orchestrator).toBe("127.0.0.1:7000");
    expect(c.join).toEqual(["a:1", "b:2"]);
  });

  test("an orchestrator needs neither", () => {
    const c = config(ORCH);
    expect(c.join).toEqual([]);
    expect("orchestrator" in c).toBe(false);
  });

  test("either may come from the environment", () => {
    expect(config(["--role", "node"], { DKV_JOIN: "a:1" }).join).toEqual(["a:1"]);
    expect(config(["--role", "node"], { DKV_ORCHESTRATOR: "o:7000" }).orchestrator).toBe(
      "o:7000",
    );
  });

  test("an empty DKV_JOIN counts as unset, so the node still needs one", () => {
    expect(error(["--role", "node"], { DKV_JOIN: "" })).toStartWith("--orchestrator:");
  });

  test("a bad --orchestrator is reported as such, not as a missing one", () => {
    expect(error(["--role", "node", "--orchestrator", "nope"])).toStartWith(
      "--orchestrator: must be host:port",
    );
  });
});

describe("gossip flags", () => {
  const good: readonly [flag: string, value: string, key: keyof SwimConfig, want: number][] = [
    ["--probe-interval-ms", "1000", "probeIntervalMs", 1000],
    ["--probe-interval-ms", "600000", "probeIntervalMs", 600_000],
    ["--probe-timeout-ms", "1", "probeTimeoutMs", 1],
    ["--probe-timeout-ms", "199", "probeTimeoutMs", 199],
    ["--indirect-checks", "0", "indirectChecks", 0],
    ["--indirect-checks", "16", "indirectChecks", 16],
    ["--suspicion-mult", "1", "suspicionMult", 1],
    ["--suspicion-mult", "100", "suspicionMult", 100],
    ["--suspicion-max-mult", "1", "suspicionMaxMult", 1],
    ["--suspicion-max-mult", "100", "suspicionMaxMult", 100],
    ["--push-pull-interval-ms", "100", "pushPullIntervalMs", 100],
    ["--push-pull-interval-ms", "3600000", "pushPullIntervalMs", 3_600_000],
  ];
  for (const [flag, value, key, want] of good) {
    test(`${flag} ${value} → swim.${key} = ${want}`, () => {
      const c = config([...JOINER, flag, value]);
      expect(c.swim[key]).toBe(want);
      // Only that setting moved; the rest keep the lan preset.
      expect({ ...c.swim, [key]: SWIM_LAN[key] }).toEqual(SWIM_LAN);
      // Gossip flags are not timers.
      expect(c.timers).toEqual(PRESETS.lan);
    });
  }

  const bad: readonly [flag: string, value: string, why: string][] = [
    ["--probe-interval-ms", "9", "must be at least 10"],
    ["--probe-interval-ms", "600001", "must be at most 600000"],
    ["--probe-interval-ms", "1s", "must be a whole number"],
    ["--probe-interval-ms", "1.5", "must be a whole number"],
    ["--probe-interval-ms", "-200", "must be a whole number"],
    ["--probe-interval-ms", "", "must be a whole number"],
    ["--probe-timeout-ms", "0", "must be at least 1"],
    ["--probe-timeout-ms", "600001", "must be at most 600000"],
    ["--probe-timeout-ms", "100ms", "must be a whole number"],
    ["--indirect-checks", "17", "must be at most 16"],
    ["--indirect-checks", "-1", "must be a whole number"],
    ["--indirect-checks", "three", "must be a whole number"],
    ["--suspicion-mult", "0", "must be at least 1"],
    ["--suspicion-mult", "101", "must be at most 100"],
    ["--suspicion-mult", "2.5", "must be a whole number"],
    ["--suspicion-max-mult", "0", "must be at least 1"],
    ["--suspicion-max-mult", "101", "must be at most 100"],
    ["--push-pull-interval-ms", "99", "must be at least 100"],
    ["--push-pull-interval-ms", "3600001", "must be at most 3600000"],
    ["--push-pull-interval-ms", "5s", "must be a whole number"],
  ];
  for (const [flag, value, why] of bad) {
    test(`${flag} ${JSON.stringify(value)} → ${why}`, () => {
      expect(error([...JOINER, `${flag}=${value}`])).toBe(`${flag}: ${why} (got '${value}')`);
    });
  }

  test("all gossip flags together", () => {
    const c = config([
      ...JOINER,
      "--probe-interval-ms=500",
      "--probe-timeout-ms=300",
      "--indirect-checks=5",
      "--suspicion-mult=4",
      "--suspicion-max-mult=3",
      "--push-pull-interval-ms=20000",
    ]);
    expect(c.swim).toEqual({
      ...SWIM_LAN,
      probeIntervalMs: 500,
      probeTimeoutMs: 300,
      indirectChecks: 5,
      suspicionMult: 4,
      suspicionMaxMult: 3,
      pushPullIntervalMs: 20_000,
    });
  });

  test("swim.membersMax follows --max-members", () => {
    const c = config([...JOINER, "--max-members", "50"]);
    expect(c.membersMax).toBe(50);
    expect(c.swim).toEqual({ ...SWIM_LAN, membersMax: 50 });
    expect(config([...JOINER, "--preset", "local", "--max-members", "7"]).swim).toEqual({
      ...SWIM_LOCAL,
      membersMax: 7,
    });
    expect(config(JOINER, { DKV_MAX_MEMBERS: "9" }).swim.membersMax).toBe(9);
  });

  test("overriding gossip settings never mutates the shared presets", () => {
    const lan = structuredClone(SWIM_LAN);
    const local = structuredClone(SWIM_LOCAL);
    config([...JOINER, "--probe-interval-ms", "900", "--max-members", "3"]);
    config([...JOINER, "--preset", "local", "--indirect-checks", "9", "--max-members", "4"]);
    expect(SWIM_LAN).toEqual(lan);
    expect(SWIM_LOCAL).toEqual(local);
  });

  test("the removed health-probe flags are unknown now", () => {
    for (const flag of ["--health-interval", "--probe-timeout", "--down-after"]) {
      expect(error([...JOINER, flag, "1s"])).toBe(`${flag}: unknown flag (see --help)`);
    }
  });
});

describe("--preset picks the gossip preset", () => {
  test("lan (the default) → SWIM_LAN", () => {
    expect(config(JOINER).swim).toEqual(SWIM_LAN);
    expect(config([...JOINER, "--preset", "lan"]).swim).toEqual(SWIM_LAN);
  });

  test("local → SWIM_LOCAL, alongside the local timers", () => {
    const c = config([...JOINER, "--preset", "local"]);
    expect(c.swim).toEqual(SWIM_LOCAL);
    expect(c.timers).toEqual(PRESETS.local);
  });

  test("DKV_PRESET=local → SWIM_LOCAL", () => {
    expect(config(JOINER, { DKV_PRESET: "local" }).swim).toEqual(SWIM_LOCAL);
  });

  test("a gossip flag overrides the chosen preset", () => {
    expect(config([...JOINER, "--preset", "local", "--push-pull-interval-ms", "2500"]).swim)
      .toEqual({ ...SWIM_LOCAL, pushPullIntervalMs: 2500 });
  });

  test("the flags apply on top of the preset, whatever their order", () => {
    expect(config([...JOINER, "--suspicion-mult", "3", "--preset", "local"]).swim).toEqual({
      ...SWIM_LOCAL,
      suspicionMult: 3,
    });
  });
});

describe("--probe-timeout-ms must be shorter than --probe-interval-ms", () => {
  test("equal → error naming --probe-timeout-ms, with both values", () => {
    expect(error([...JOINER, "--probe-interval-ms", "300", "--probe-timeout-ms", "300"])).toBe(
      "--probe-timeout-ms: 300 must be shorter than --probe-interval-ms (300); set both",
    );
  });

  test("longer → error", () => {
    expect(error([...JOINER, "--probe-timeout-ms", "250"])).toBe(
      "--probe-timeout-ms: 250 must be shorter than --probe-interval-ms (200); set both",
    );
  });

  test("one below → fine", () => {
    const c = config([...JOINER, "--probe-interval-ms", "300", "--probe-timeout-ms", "299"]);
    expect(c.swim.probeIntervalMs).toBe(300);
    expect(c.swim.probeTimeoutMs).toBe(299);
  });

  test("lowering only the interval below the preset's timeout → error naming the timeout", () => {
    expect(error([...JOINER, "--probe-interval-ms", "100"])).toBe(
      "--probe-timeout-ms: 100 must be shorter than --probe-interval-ms (100); set both",
    );
  });

  test("...which setting both fixes", () => {
    const c = config([...JOINER, "--probe-interval-ms", "10", "--probe-timeout-ms", "5"]);
    expect(c.swim.probeIntervalMs).toBe(10);
    expect(c.swim.probeTimeoutMs).toBe(5);
  });

  test("the check uses the chosen preset's values", () => {
    // 100 ms is fine under lan (interval 200) but not under local (interval 100).
    expect(config([...JOINER, "--probe-timeout-ms", "100", "--preset", "lan"]).swim.probeTimeoutMs)
      .toBe(100);
    expect(error([...JOINER, "--probe-timeout-ms", "100", "--preset", "local"])).toStartWith(
      "--probe-timeout-ms:",
    );
    // A 60 ms interval is fine under local (timeout 50) but not under lan (timeout 100).
    expect(config([...JOINER, "--probe-interval-ms", "60", "--preset", "local"]).swim)
      .toEqual({ ...SWIM_LOCAL, probeIntervalMs: 60 });
    expect(error([...JOINER, "--probe-interval-ms", "60"])).toStartWith("--probe-timeout-ms:");
  });

  test("values from the environment are checked the same way", () => {
    expect(error(JOINER, { DKV_PROBE_INTERVAL_MS: "80" })).toStartWith("--probe-timeout-ms:");
    expect(error(JOINER, { DKV_PROBE_TIMEOUT_MS: "200" })).toStartWith("--probe-timeout-ms:");
  });

  test("a bad value is reported before the cross-check", () => {
    expect(error([...JOINER, "--probe-interval-ms", "5"])).toStartWith(
      "--probe-interval-ms: must be at least 10",
    );
  });

  test("--view-stale is still checked against --view-push-interval", () => {
    expect(error([...JOINER, "--view-push-interval", "6s"])).toBe(
      "--view-stale: 5000ms must be longer than --view-push-interval (6000ms); set both",
    );
  });
});

describe("environment", () => {
  test("DKV_PORT applies", () => {
    expect(config(ORCH, { DKV_PORT: "7300" }).port).toBe(7300);
  });

  test("the flag wins over the environment", () => {
    expect(config([...ORCH, "--port", "7400"], { DKV_PORT: "7300" }).port).toBe(7400);
    expect(config([...ORCH, "--preset", "lan"], { DKV_PRESET: "local" }).timers).toEqual(
      PRESETS.lan,
    );
  });

  test("a good flag shadows a bad environment value", () => {
    expect(config([...ORCH, "--port", "7400"], { DKV_PORT: "nope" }).port).toBe(7400);
  });

  test("--max-clock-skew: 60s by default in both presets, DKV_MAX_CLOCK_SKEW applies, the flag wins", () => {
    expect(config(ORCH).timers.maxClockSkewMs).toBe(60_000);
    expect(config([...ORCH, "--preset", "local"]).timers.maxClockSkewMs).toBe(60_000);
    expect(config(ORCH, { DKV_MAX_CLOCK_SKEW: "10s" }).timers.maxClockSkewMs).toBe(10_000);
    expect(
      config([...ORCH, "--max-clock-skew", "3s"], { DKV_MAX_CLOCK_SKEW: "10s" }).timers
        .maxClockSkewMs,
    ).toBe(3000);
  });

  test("--max-clock-skew must be a positive duration with a unit", () => {
    for (const bad of ["60", "0s", "soon"]) {
      expect(error([...ORCH, "--max-clock-skew", bad])).toBe(
        `--max-clock-skew: must be a positive duration with a unit, e.g. 500ms or 2s (got '${bad}')`,
      );
    }
    expect(error(ORCH, { DKV_MAX_CLOCK_SKEW: "1" })).toStartWith("DKV_MAX_CLOCK_SKEW:");
    expect(helpText()).toContain("--max-clock-skew DUR");
  });

  test("a duration too large to be a whole number of ms is refused, not rounded (fuzz finding)", () => {
    expect(error([...ORCH, "--request-timeout", "5000000000h"])).toBe(
      "--request-timeout: must be a positive duration with a unit, e.g. 500ms or 2s (got '5000000000h')",
    );
    expect(error([...ORCH, "--dead-after", `${"9".repeat(400)}ms`])).toStartWith("--dead-after:");
    expect(config([...ORCH, "--leave-timeout", "1000h"]).timers.leaveTimeoutMs).toBe(3_600_000_000);
  });

  test("--forget-after: 24h by default in both presets, reaches the gossip config, env and flag", () => {
    expect(config(ORCH).timers.forgetAfterMs).toBe(86_400_000);
    expect(config([...ORCH, "--preset", "local"]).swim.forgetAfterMs).toBe(86_400_000);
    expect(config(ORCH, { DKV_FORGET_AFTER: "1h" }).swim.forgetAfterMs).toBe(3_600_000);
    expect(config([...ORCH, "--forget-after", "30s"]).swim.forgetAfterMs).toBe(30_000);
    expect(error([...ORCH, "--forget-after", "0s"])).toStartWith(
      "--forget-after: must be a positive",
    );
    expect(helpText()).toContain("--forget-after DUR");
  });

  test("--cluster-secret-file: kept as a path (read by main.ts), from the flag or DKV_CLUSTER_SECRET_FILE", () => {
    expect(config(ORCH).clusterSecretFile).toBeUndefined();
    expect(config([...ORCH, "--cluster-secret-file", "/etc/dkv/s"]).clusterSecretFile).toBe(
      "/etc/dkv/s",
    );
    expect(config(ORCH, { DKV_CLUSTER_SECRET_FILE: "s.txt" }).clusterSecretFile).toBe("s.txt");
    expect(error([...ORCH, "--cluster-secret-file="])).toBe(
      "--cluster-secret-file: must not be empty (got '')",
    );
    expect(helpText()).toContain("--cluster-secret-file PATH");
  });

  test("--tls-*: paths kept together (read by main.ts); a half-given set is one line", () => {
    expect(config(ORCH).tls).toBeUndefined();
    const pair = ["--tls-cert", "m.crt", "--tls-key", "m.key"];
    expect(config([...ORCH, ...pair]).tls).toEqual({
      certFile: "m.crt",
      keyFile: "m.key",
      clientAuth: false,
    });
    expect(config([...ORCH, ...pair, "--tls-ca", "ca.crt", "--tls-client-auth"]).tls).toEqual({
      certFile: "m.crt",
      keyFile: "m.key",
      caFile: "ca.crt",
      clientAuth: true,
    });
    const env = {
      DKV_TLS_CERT: "e.crt",
      DKV_TLS_KEY: "e.key",
      DKV_TLS_CA: "ca.crt",
      DKV_TLS_CLIENT_AUTH: "true",
    };
    expect(config(ORCH, env).tls).toEqual({
      certFile: "e.crt",
      keyFile: "e.key",
      caFile: "ca.crt",
      clientAuth: true,
    });
    expect(error([...ORCH, "--tls-cert", "m.crt"])).toBe(
      "--tls-cert: needs --tls-key too (the certificate's private key)",
    );
    expect(error([...ORCH, "--tls-key", "m.key"])).toBe(
      "--tls-key: needs --tls-cert too (the certificate it belongs to)",
    );
    expect(error([...ORCH, "--tls-ca", "ca.crt"])).toStartWith("--tls-ca: needs --tls-cert");
    expect(error([...ORCH, "--tls-client-auth"])).toStartWith("--tls-client-auth: needs");
    expect(error([...ORCH, ...pair, "--tls-client-auth"])).toBe(
      "--tls-client-auth: needs --tls-ca (the CA that signs client certificates)",
    );
    expect(error([...ORCH, ...pair], { DKV_TLS_CLIENT_AUTH: "yes" })).toBe(
      "DKV_TLS_CLIENT_AUTH: must be true or false (got 'yes')",
    );
    expect(error([...ORCH, "--tls-client-auth=true"])).toBe("--tls-client-auth: takes no value");
    expect(helpText()).toContain("--tls-cert FILE");
  });

  test("member addresses are host:port only", () => {
    for (const bad of ["a/b:80", "user@a:80", "a:80#x", "a:80/x"]) {
      expect(error([...ORCH, "--advertise", bad])).toStartWith("--advertise: must be host:port");
      expect(error(["--role", "node", "--join", bad])).toStartWith("--join: must be host:port");
    }
    expect(config([...ORCH, "--advertise", "[::1]:7000"]).advertise).toBe("[::1]:7000");
    // Without --advertise the bind address is advertised: IPv6 in brackets, junk refused.
    expect(config([...ORCH, "--host", "::1"]).advertise).toBe("[::1]:7000");
    expect(error([...ORCH, "--host", "a/b", "--insecure"])).toBe(
      "--host: 'a/b' cannot be advertised to peers as host:port; give --advertise HOST:PORT",
    );
    expect(config([...ORCH, "--host", "a/b", "--advertise", "a:7000", "--insecure"]).advertise)
      .toBe("a:7000");
  });

  test("DKV_JOIN applies, split on commas", () => {
    expect(config(["--role", "node"], { DKV_JOIN: "a:1, b:2" }).join).toEqual(["a:1", "b:2"]);
  });

  test("--join wins over DKV_JOIN (the lists are not merged)", () => {
    expect(config(JOINER, { DKV_JOIN: "a:1,b:2" }).join).toEqual(["127.0.0.1:8081"]);
  });

  test("DKV_PROBE_INTERVAL_MS applies", () => {
    expect(config(JOINER, { DKV_PROBE_INTERVAL_MS: "400" }).swim).toEqual({
      ...SWIM_LAN,
      probeIntervalMs: 400,
    });
  });

  test("--probe-interval-ms wins over DKV_PROBE_INTERVAL_MS", () => {
    const env = { DKV_PROBE_INTERVAL_MS: "400" };
    expect(config([...JOINER, "--probe-interval-ms", "700"], env).swim.probeIntervalMs).toBe(700);
  });

  test("every gossip setting can come from the environment", () => {
    const c = config(JOINER, {
      DKV_PROBE_INTERVAL_MS: "500",
      DKV_PROBE_TIMEOUT_MS: "250",
      DKV_INDIRECT_CHECKS: "2",
      DKV_SUSPICION_MULT: "5",
      DKV_SUSPICION_MAX_MULT: "8",
      DKV_PUSH_PULL_INTERVAL_MS: "15000",
    });
    expect(c.swim).toEqual({
      ...SWIM_LAN,
      probeIntervalMs: 500,
      probeTimeoutMs: 250,
      indirectChecks: 2,
      suspicionMult: 5,
      suspicionMaxMult: 8,
      pushPullIntervalMs: 15_000,
    });
  });

  test("environment variables of the removed flags are ignored", () => {
    const c = config(ORCH, {
      DKV_HEALTH_INTERVAL: "1s",
      DKV_PROBE_TIMEOUT: "nope",
      DKV_DOWN_AFTER: "3s",
    });
    expect(c.timers).toEqual(PRESETS.lan);
    expect(c.swim).toEqual(SWIM_LAN);
  });

  test("every setting can come from the environment, dashes as underscores", () => {
    const c = config([], {
      DKV_ROLE: "node",
      DKV_ORCHESTRATOR: "10.0.0.1:7000",
      DKV_PORT: "8090",
      DKV_NODE_ID: "env-node",
      DKV_REPLICATION_FACTOR: "2",
      DKV_MAX_VALUE_BYTES: "4096",
      DKV_DEAD_AFTER: "45s",
      DKV_LOG_LEVEL: "warn",
    });
    expect(c).toMatchObject({
      role: "node",
      orchestrator: "10.0.0.1:7000",
      port: 8090,
      nodeId: "env-node",
      replicationFactor: 2,
      valueBytesMax: 4096,
      logLevel: "warn",
    });
    expect(c.timers.deadAfterMs).toBe(45_000);
  });

  test("an empty environment value counts as unset", () => {
    expect(config(ORCH, { DKV_PORT: "" }).port).toBe(7000);
    expect(error(["--port", "7000"], { DKV_ROLE: "" })).toStartWith("--role:");
  });

  test("unrelated environment variables are ignored", () => {
    expect(config(ORCH, { PORT: "1", DKV: "x", dkv_port: "2" }).port).toBe(7000);
  });

  const bad: readonly [env: Env, names: string][] = [
    [{ DKV_PORT: "abc" }, "DKV_PORT"],
    [{ DKV_PORT: "70000" }, "DKV_PORT"],
    [{ DKV_DEAD_AFTER: "30" }, "DKV_DEAD_AFTER"],
    [{ DKV_PRESET: "wan" }, "DKV_PRESET"],
    [{ DKV_REPLICATION_FACTOR: "0" }, "DKV_REPLICATION_FACTOR"],
    [{ DKV_JOIN: "nope" }, "DKV_JOIN"],
    [{ DKV_JOIN: "," }, "DKV_JOIN"],
    [{ DKV_PROBE_INTERVAL_MS: "5" }, "DKV_PROBE_INTERVAL_MS"],
    [{ DKV_PROBE_INTERVAL_MS: "200ms" }, "DKV_PROBE_INTERVAL_MS"],
    [{ DKV_PROBE_TIMEOUT_MS: "0" }, "DKV_PROBE_TIMEOUT_MS"],
    [{ DKV_INDIRECT_CHECKS: "99" }, "DKV_INDIRECT_CHECKS"],
  ];
  for (const [env, name] of bad) {
    test(`a bad ${name} is an error naming ${name}`, () => {
      const msg = error(ORCH, env);
      expect(msg).toStartWith(`${name}:`);
      expect(msg).toContain(`'${Object.values(env)[0]}'`);
    });
  }
});

describe("errors name the flag", () => {
  const cases: readonly [name: string, argv: string[], flag: string][] = [
    ["unknown flag", [...ORCH, "--bogus"], "--bogus"],
    ["unknown flag with =value", [...ORCH, "--bogus=1"], "--bogus"],
    ["unknown short flag", [...ORCH, "-x"], "-x"],
    ["missing --role with other flags", ["--port", "7000"], "--role"],
    ["bad --role", ["--role", "router"], "--role"],
    ["gateway without --orchestrator or --join", ["--role", "gateway"], "--orchestrator"],
    ["bad --role case", ["--role", "Node"], "--role"],
    ["node without --orchestrator or --join", ["--role", "node"], "--orchestrator"],
    ["flag without its value", [...ORCH, "--port"], "--port"],
    ["--port 0", [...ORCH, "--port", "0"], "--port"],
    ["--port 65536", [...ORCH, "--port", "65536"], "--port"],
    ["--port abc", [...ORCH, "--port", "abc"], "--port"],
    ["--port 80.5", [...ORCH, "--port", "80.5"], "--port"],
    ["--port empty", [...ORCH, "--port="], "--port"],
    [
      "--orchestrator without port",
      ["--role", "node", "--orchestrator", "localhost"],
      "--orchestrator",
    ],
    ["--orchestrator empty port", ["--role", "node", "--orchestrator", "h:"], "--orchestrator"],
    [
      "--orchestrator without host",
      ["--role", "node", "--orchestrator", ":7000"],
      "--orchestrator",
    ],
    ["--orchestrator port 0", ["--role", "node", "--orchestrator", "h:0"], "--orchestrator"],
    [
      "--orchestrator port 99999",
      ["--role", "node", "--orchestrator", "h:99999"],
      "--orchestrator",
    ],
    [
      "--orchestrator with a scheme",
      ["--role", "node", "--orchestrator", "http://h:1"],
      "--orchestrator",
    ],
    [
      "--orchestrator with a space",
      ["--role", "node", "--orchestrator", "a b:1"],
      "--orchestrator",
    ],
    ["--advertise not host:port", [...NODE, "--advertise", "node1"], "--advertise"],
    ["--node-id empty", [...NODE, "--node-id="], "--node-id"],
    ["--node-id too long", [...NODE, "--node-id", "x".repeat(257)], "--node-id"],
    ["--host empty", [...ORCH, "--host="], "--host"],
    ["--dead-after without unit", [...ORCH, "--dead-after", "30"], "--dead-after"],
    ["--dead-after unknown unit", [...ORCH, "--dead-after", "30w"], "--dead-after"],
    ["--dead-after zero", [...ORCH, "--dead-after", "0s"], "--dead-after"],
    ["--hint-interval rounds to zero", [...ORCH, "--hint-interval", "0.1ms"], "--hint-interval"],
    ["--request-timeout negative", [...ORCH, "--request-timeout=-1s"], "--request-timeout"],
    ["--join not host:port", ["--role", "node", "--join", "x"], "--join"],
    [
      "--probe-interval-ms with a unit",
      [...ORCH, "--probe-interval-ms", "1s"],
      "--probe-interval-ms",
    ],
    ["--probe-timeout-ms = interval", [...ORCH, "--probe-timeout-ms", "200"], "--probe-timeout-ms"],
    ["--indirect-checks 17", [...ORCH, "--indirect-checks", "17"], "--indirect-checks"],
    ["--suspicion-mult 0", [...ORCH, "--suspicion-mult", "0"], "--suspicion-mult"],
    ["--suspicion-max-mult 0", [...ORCH, "--suspicion-max-mult", "0"], "--suspicion-max-mult"],
    [
      "--push-pull-interval-ms 99",
      [...ORCH, "--push-pull-interval-ms", "99"],
      "--push-pull-interval-ms",
    ],
    ["--health-interval removed", [...ORCH, "--health-interval", "1s"], "--health-interval"],
    ["--probe-timeout removed", [...ORCH, "--probe-timeout", "1s"], "--probe-timeout"],
    ["--down-after removed", [...ORCH, "--down-after", "1s"], "--down-after"],
    ["--view-stale not above push interval", [...ORCH, "--view-stale", "2s"], "--view-stale"],
    ["--preset bogus", [...ORCH, "--preset", "bogus"], "--preset"],
    ["--replication-factor 0", [...ORCH, "--replication-factor", "0"], "--replication-factor"],
    ["--replication-factor 16", [...ORCH, "--replication-factor", "16"], "--replication-factor"],
    ["--partitions 0", [...ORCH, "--partitions", "0"], "--partitions"],
    ["--partitions too many", [...ORCH, "--partitions", "65537"], "--partitions"],
    ["--max-value-bytes negative", [...ORCH, "--max-value-bytes=-1"], "--max-value-bytes"],
    ["--max-key-bytes 0", [...ORCH, "--max-key-bytes", "0"], "--max-key-bytes"],
    ["--max-members 0", [...ORCH, "--max-members", "0"], "--max-members"],
    ["--log-level loud", [...ORCH, "--log-level", "loud"], "--log-level"],
  ];
  for (const [name, argv, flag] of cases) {
    test(`${name} → error naming ${flag}`, () => {
      const msg = error(argv);
      expect(msg).toContain(flag);
      // One line, for a terminal.
      expect(msg).not.toContain("\n");
    });
  }

  test("value errors quote the bad value after the flag", () => {
    expect(error([...ORCH, "--port", "abc"])).toBe("--port: must be a whole number (got 'abc')");
    expect(error([...ORCH, "--dead-after", "30"])).toBe(
      "--dead-after: must be a positive duration with a unit, e.g. 500ms or 2s (got '30')",
    );
    expect(error([...ORCH, "--preset", "bogus"])).toBe(
      "--preset: must be lan or local (got 'bogus')",
    );
  });

  test("an unknown flag points to --help", () => {
    expect(error([...ORCH, "--bogus"])).toBe("--bogus: unknown flag (see --help)");
  });

  test("a positional argument is rejected and quoted", () => {
    const msg = error([...ORCH, "extra"]);
    expect(msg).toContain("'extra'");
  });

  test("the first problem is reported: a missing --role before anything else", () => {
    expect(error(["--port", "abc"])).toStartWith("--role:");
  });
});

describe("--help and --version", () => {
  const cases: readonly [argv: string[], env: Env, kind: "help" | "version"][] = [
    [["--help"], {}, "help"],
    [["--version"], {}, "version"],
    [[...ORCH, "--help"], {}, "help"],
    [[...NODE, "--version"], {}, "version"],
    // Help needs no valid configuration: a bad role or environment does not stop it.
    [["--help", "--role", "bogus"], {}, "help"],
    [["--help"], { DKV_PORT: "abc" }, "help"],
    [["--version", "--port", "abc"], {}, "version"],
    [["--help", "--version"], {}, "help"],
    // The short forms (issue 16, point 13).
    [["-h"], {}, "help"],
    [["-v"], {}, "version"],
    [[...NODE, "-h"], {}, "help"],
  ];
  for (const [argv, env, kind] of cases) {
    test(`${argv.join(" ")}${Object.keys(env).length ? " with bad env" : ""} → ${kind}`, () => {
      expect(parseConfig(argv, env)).toEqual({ kind });
    });
  }

  test("an unknown flag is still an error next to --help", () => {
    expect(error(["--help", "--bogus"])).toContain("--bogus");
  });

  test("the help lists --join and the gossip flags, not the removed ones", () => {
    const help = helpText();
    for (
      const flag of [
        "--join HOST:PORT[,...]",
        "--probe-interval-ms MS",
        "--probe-timeout-ms MS",
        "--indirect-checks N",
        "--suspicion-mult N",
        "--suspicion-max-mult N",
        "--push-pull-interval-ms MS",
      ]
    ) {
      expect(help).toContain(flag);
    }
    for (const flag of ["--health-interval", "--down-after", "--probe-timeout "]) {
      expect(help).not.toContain(flag);
    }
  });

  test("the help shows the short forms -h and -v", () => {
    expect(helpText()).toContain("-h, --help");
    expect(helpText()).toContain("-v, --version");
  });

  test("no flags at all (and no DKV_ROLE): the usage, not just one line (issue 16, point 13)", () => {
    expect(parseConfig([], {})).toEqual({
      kind: "usage",
      message: "--role: required (orchestrator, node or gateway)",
    });
    // Some flags but no role: the one line, as for any bad flag.
    expect(error(["--port", "8081"])).toBe("--role: required (orchestrator, node or gateway)");
    // DKV_ROLE given: a configuration, no usage.
    expect(parseConfig([], { DKV_ROLE: "orchestrator" }).kind).toBe("config");
  });

  test("--replication-factor and --partitions are not described as orchestrator only (issue 16, point 1)", () => {
    const help = helpText();
    const line = (flag: string) => help.split("\n").find((l) => l.includes(`--${flag} `)) ?? "";
    for (const flag of ["replication-factor", "partitions"]) {
      expect(line(flag)).not.toContain("orchestrator only");
      expect(line(flag)).toContain("else a node's own");
    }
  });

  test("VERSION is semver", () => {
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe("parseDurationMs", () => {
  const good: readonly [text: string, ms: number][] = [
    ["500ms", 500],
    ["2s", 2000],
    ["1m", 60_000],
    ["1h", 3_600_000],
    ["2d", 172_800_000],
    ["0ms", 0],
    ["1.5s", 1500],
    ["0.25m", 15_000],
    ["0.4ms", 0], // rounded to whole ms
    ["1.6ms", 2],
    [" 2s ", 2000], // surrounding whitespace is trimmed
    ["007s", 7000],
  ];
  for (const [text, ms] of good) {
    test(`${JSON.stringify(text)} → ${ms}`, () => {
      expect(parseDurationMs(text)).toBe(ms);
    });
  }

  const bad: readonly string[] = [
    "",
    "30",
    "s",
    "ms",
    "2 s",
    "2S",
    "2MS",
    "2sec",
    "2w",
    "-1s",
    "+1s",
    ".5s",
    "5.s",
    "1e3ms",
    "Infinity s",
    "NaNms",
    "1s2",
    "1m30s",
  ];
  for (const text of bad) {
    test(`${JSON.stringify(text)} → undefined`, () => {
      expect(parseDurationMs(text)).toBeUndefined();
    });
  }
});

describe("protected mode and the security flags", () => {
  const protect =
    "--host: 10.1.2.3 is not a loopback address, so anyone who reaches it could use " +
    "the cluster: add";
  test("a non-loopback --host needs a secret and tokens, or --insecure", () => {
    expect(error([...ORCH, "--host", "10.1.2.3"])).toBe(
      `${protect} --cluster-secret-file and --auth-token-file (docs/security.md), or --insecure ` +
        "to run unprotected",
    );
    expect(error([...ORCH, "--host", "10.1.2.3", "--cluster-secret-file", "s"])).toBe(
      `${protect} --auth-token-file (docs/security.md), or --insecure to run unprotected`,
    );
    expect(error([...ORCH, "--host", "10.1.2.3", "--auth-token-file", "t"])).toBe(
      `${protect} --cluster-secret-file (docs/security.md), or --insecure to run unprotected`,
    );
    const both = config([
      ...ORCH,
      "--host",
      "10.1.2.3",
      "--cluster-secret-file",
      "s",
      "--auth-token-file",
      "t",
    ]);
    expect(both.authTokenFile).toBe("t");
    expect(both.insecure).toBe(false);
    expect(config([...ORCH, "--host", "10.1.2.3"], { DKV_INSECURE: "true" }).insecure).toBe(true);
    expect(config([...ORCH, "--host", "10.1.2.3", "--insecure"]).insecure).toBe(true);
    expect(config(ORCH, { DKV_INSECURE: "0" }).insecure).toBe(false);
    expect(error(ORCH, { DKV_INSECURE: "yes" })).toBe(
      "DKV_INSECURE: must be true or false (got 'yes')",
    );
  });

  test("loopback addresses need nothing", () => {
    for (const host of ["127.0.0.1", "127.5.6.7", "localhost", "::1"]) {
      expect(config([...ORCH, "--host", host]).host).toBe(host);
    }
  });

  test("a wildcard --host needs --advertise (it names no address peers can dial)", () => {
    for (const host of ["0.0.0.0", "::"]) {
      expect(error([...ORCH, "--host", host, "--insecure"])).toBe(
        `--host: ${host} listens on every interface, so it is no address peers can dial; add ` +
          "--advertise HOST:PORT (an address of this machine the other members reach)",
      );
    }
    // Protected mode speaks first: it is the bigger problem.
    expect(error([...ORCH, "--host", "0.0.0.0"])).toStartWith("--host: 0.0.0.0 is not a loopback");
  });

  test("--allow-origin is repeatable and normalized; DKV_ALLOW_ORIGIN is comma-separated", () => {
    expect(
      config([...ORCH, "--allow-origin", "http://App.example:80", "--allow-origin", "https://x.io"])
        .allowOrigins,
    ).toEqual(["http://app.example", "https://x.io"]);
    expect(config(ORCH, { DKV_ALLOW_ORIGIN: "http://a:8000, http://b" }).allowOrigins).toEqual([
      "http://a:8000",
      "http://b",
    ]);
    for (
      const bad of ["app.example", "http://a/path", "http://a/", "ftp://a", "http://u@a", "null"]
    ) {
      expect(error([...ORCH, "--allow-origin", bad])).toBe(
        `--allow-origin: must be an origin: http(s)://host[:port], no path (got '${bad}')`,
      );
    }
  });

  test("--max-store-bytes, --body-read-timeout, --idle-timeout", () => {
    expect(config(ORCH).storeBytesMax).toBeUndefined();
    expect(config([...ORCH, "--max-store-bytes", "1000"]).storeBytesMax).toBe(1000);
    expect(config(ORCH, { DKV_MAX_STORE_BYTES: "5" }).storeBytesMax).toBe(5);
    expect(error([...ORCH, "--max-store-bytes", "0"])).toStartWith(
      "--max-store-bytes: must be at least 1",
    );
    const t = config([...ORCH, "--body-read-timeout", "5s", "--idle-timeout", "10s"]).timers;
    expect([t.bodyReadTimeoutMs, t.idleTimeoutMs]).toEqual([5000, 10_000]);
    expect(config(ORCH, { DKV_BODY_READ_TIMEOUT: "2s" }).timers.bodyReadTimeoutMs).toBe(2000);
    expect(error([...ORCH, "--idle-timeout", "256s"])).toBe(
      "--idle-timeout: must be at most 255s (got '256s')",
    );
    expect(error([...ORCH, "--body-read-timeout", "0s"])).toStartWith("--body-read-timeout:");
  });

  test("--data-dir, --fsync, --fsync-interval, --snapshot-log-bytes, --repair-wal, --cluster-name", () => {
    const c = config([...NODE, "--data-dir", "/tmp/d", "--fsync", "always"]);
    expect([c.dataDir, c.fsync, c.fsyncIntervalMs, c.repairWal, c.clusterName]).toEqual([
      "/tmp/d",
      "always",
      5,
      false,
      "dkv",
    ]);
    expect(config(NODE).dataDir).toBeUndefined();
    expect(config(NODE, { DKV_DATA_DIR: "/x", DKV_FSYNC: "never" })).toMatchObject({
      dataDir: "/x",
      fsync: "never",
    });
    expect(config([...NODE, "--repair-wal"]).repairWal).toBe(true);
    expect(config(NODE, { DKV_REPAIR_WAL: "1" }).repairWal).toBe(true);
    expect(config([...NODE, "--fsync-interval", "20ms"]).fsyncIntervalMs).toBe(20);
    expect(config([...NODE, "--snapshot-log-bytes", "4096"]).snapshotLogBytes).toBe(4096);
    // The orchestrator keeps its ring there (a whole-cluster power cut); a gateway nothing.
    expect(config([...ORCH, "--data-dir", "/tmp/d"]).dataDir).toBe("/tmp/d");
    expect(error(["--role", "gateway", "--orchestrator", "127.0.0.1:7000", "--data-dir", "/tmp/d"]))
      .toBe(
        "--data-dir: a gateway keeps nothing (nodes keep their data, the orchestrator its ring)",
      );
    expect(error([...NODE, "--fsync", "sometimes"])).toBe(
      "--fsync: must be always, batch or never (got 'sometimes')",
    );
    expect(error([...NODE, "--fsync-interval", "2s"])).toStartWith(
      "--fsync-interval: must be at most 1s",
    );
    expect(error([...NODE, "--snapshot-log-bytes", "100"])).toStartWith(
      "--snapshot-log-bytes: must be at least 4096",
    );
    expect(error([...NODE, "--data-dir", ""])).toStartWith("--data-dir:");
    expect(error(NODE, { DKV_REPAIR_WAL: "maybe" })).toBe(
      "DKV_REPAIR_WAL: must be true or false (got 'maybe')",
    );
  });
});

describe("--read-hedge (issue 16, point 15)", () => {
  const hedge = (...args: string[]) => config([...NODE, ...args]).readHedge;
  test("a percentile, its bounds, a fixed delay, off", () => {
    expect(hedge("--read-hedge", "p95")).toEqual({
      kind: "percentile",
      percentile: 95,
      minMs: 2,
      maxMs: 100,
    });
    expect(hedge("--read-hedge", "p99.9", "--read-hedge-min", "1ms", "--read-hedge-max", "1s"))
      .toEqual({ kind: "percentile", percentile: 99.9, minMs: 1, maxMs: 1000 });
    expect(hedge("--read-hedge", "20ms")).toEqual({ kind: "fixed", delayMs: 20 });
    expect(hedge("--read-hedge", "off")).toEqual({ kind: "off" });
    expect(config(NODE, { DKV_READ_HEDGE: "off" }).readHedge).toEqual({ kind: "off" });
  });

  test("bad values name the flag", () => {
    expect(error([...NODE, "--read-hedge", "p100"])).toMatch(/^--read-hedge: must be a percentile/);
    expect(error([...NODE, "--read-hedge", "p5"])).toMatch(/^--read-hedge: must be a percentile/);
    expect(error([...NODE, "--read-hedge", "fast"])).toMatch(/got 'fast'/);
    expect(error([...NODE, "--read-hedge", "2m"])).toMatch(/^--read-hedge: /);
    expect(error([...NODE, "--read-hedge-max", "0ms"])).toMatch(/^--read-hedge-max: /);
    expect(error([...NODE, "--read-hedge-min", "200ms"])).toMatch(
      /^--read-hedge-min: 200ms is more than --read-hedge-max \(100ms\)/,
    );
  });
});
