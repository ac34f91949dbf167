/** CLI flags and environment: defaults, precedence, and one clear error per bad input. */
import { describe, expect, test } from "bun:test";
import { type Config, parseConfig, PRESETS, VERSION } from "../../src/config.ts";
import { parseDurationMs } from "../../src/core/duration.ts";

type Env = Record<string, string | undefined>;
const NODE = ["--role", "node", "--orchestrator", "127.0.0.1:7000"];
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
      membersMax: 1024,
      logLevel: "info",
      timers: PRESETS.lan,
      hintsMax: 100_000,
      hintBytesMax: 64 * 1024 * 1024,
      sloppyQuorum: true,
      batchKeysMax: 1000,
      batchBytesMax: 1024 * 1024,
      rebalanceConcurrency: 4,
      rebalanceRateBytes: 100 * 1024 * 1024,
      antiEntropyKeysMax: 10_000,
    });
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
  });

  test("an orchestrator without --orchestrator has no orchestrator field", () => {
    expect("orchestrator" in config(ORCH)).toBe(false);
  });

  test("lan preset timers are self-consistent (probe < interval, down ≥ 2 intervals)", () => {
    for (const t of Object.values(PRESETS)) {
      expect(t.probeTimeoutMs).toBeLessThan(t.healthIntervalMs);
      expect(t.downAfterMs).toBeGreaterThanOrEqual(2 * t.healthIntervalMs);
      expect(t.viewStaleMs).toBeGreaterThan(t.viewPushIntervalMs);
    }
  });
});

describe("flags", () => {
  const cases: readonly [name: string, argv: string[], want: Partial<Config>][] = [
    ["--port", [...ORCH, "--port", "7100"], { port: 7100, advertise: "127.0.0.1:7100" }],
    ["--port=", [...NODE, "--port=8181"], { port: 8181, nodeId: "127.0.0.1:8181" }],
    ["--host", [...ORCH, "--host", "10.1.2.3"], { host: "10.1.2.3", advertise: "10.1.2.3:7000" }],
    ["--host 0.0.0.0 advertises loopback", [...ORCH, "--host", "0.0.0.0"], {
      host: "0.0.0.0",
      advertise: "127.0.0.1:7000",
    }],
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
    ["--down-after", "5s", "downAfterMs", 5000],
    ["--probe-timeout", "500ms", "probeTimeoutMs", 500],
    ["--health-interval", "1500ms", "healthIntervalMs", 1500],
    ["--view-push-interval", "1s", "viewPushIntervalMs", 1000],
    ["--view-stale", "1h", "viewStaleMs", 3_600_000],
    ["--request-timeout", "2.5s", "requestTimeoutMs", 2500],
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

  test("--health-interval may grow when --down-after grows with it", () => {
    const c = config([...ORCH, "--health-interval", "2s", "--down-after", "4s"]);
    expect(c.timers.healthIntervalMs).toBe(2000);
    expect(c.timers.downAfterMs).toBe(4000);
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
    expect(error([], { DKV_ROLE: "" })).toStartWith("--role:");
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
    ["missing --role", [], "--role"],
    ["missing --role with other flags", ["--port", "7000"], "--role"],
    ["bad --role", ["--role", "gateway"], "--role"],
    ["bad --role case", ["--role", "Node"], "--role"],
    ["node without --orchestrator", ["--role", "node"], "--orchestrator"],
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
    ["--dead-after unknown unit", [...ORCH, "--dead-after", "30d"], "--dead-after"],
    ["--dead-after zero", [...ORCH, "--dead-after", "0s"], "--dead-after"],
    ["--down-after rounds to zero", [...ORCH, "--down-after", "0.1ms"], "--down-after"],
    ["--request-timeout negative", [...ORCH, "--request-timeout=-1s"], "--request-timeout"],
    ["--probe-timeout = --health-interval", [
      ...ORCH,
      "--probe-timeout",
      "1s",
      "--health-interval",
      "1s",
    ], "--probe-timeout"],
    ["--probe-timeout > --health-interval", [...ORCH, "--probe-timeout", "2s"], "--probe-timeout"],
    ["--down-after below two intervals", [...ORCH, "--down-after", "1999ms"], "--down-after"],
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
  ];
  for (const [argv, env, kind] of cases) {
    test(`${argv.join(" ")}${Object.keys(env).length ? " with bad env" : ""} → ${kind}`, () => {
      expect(parseConfig(argv, env)).toEqual({ kind });
    });
  }

  test("an unknown flag is still an error next to --help", () => {
    expect(error(["--help", "--bogus"])).toContain("--bogus");
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
    "2d",
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
