/** Log lines (src/log.ts) in both formats, and progress fields (src/core/progress.ts). */
import { describe, expect, test } from "bun:test";
import { createLogger, formatLine } from "../../src/log.ts";
import { progressFields } from "../../src/core/progress.ts";

const T = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

describe("log lines", () => {
  test("text: time, level, role, member, message, then k=v (quoted when needed)", () => {
    const line = formatLine("text", {
      timeMs: T,
      level: "info",
      role: "node",
      member: "127.0.0.1:8080",
      msg: "hello",
      fields: { partitions: 12, note: "two words", ok: true, none: null },
    });
    expect(line).toBe(
      '2026-01-02T03:04:05.678Z info  node 127.0.0.1:8080: hello partitions=12 note="two words" ' +
        "ok=true none=null",
    );
  });

  test("json: one object, fields beside the five fixed keys, which they cannot overwrite", () => {
    const line = formatLine("json", {
      timeMs: T,
      level: "warn",
      role: "orchestrator",
      member: "o1",
      msg: 'a "quoted"\nmessage',
      fields: { keys: 3, msg: "not me", level: "error" },
    });
    expect(line).not.toContain("\n");
    expect(JSON.parse(line)).toEqual({
      time: "2026-01-02T03:04:05.678Z",
      level: "warn",
      role: "orchestrator",
      member: "o1",
      msg: 'a "quoted"\nmessage',
      keys: 3,
    });
  });

  test("the level filter holds in both formats", () => {
    for (const format of ["text", "json"] as const) {
      const lines: string[] = [];
      const log = createLogger({
        role: "node",
        member: "m",
        level: "warn",
        format,
        write: (l) => lines.push(l),
        now: () => T,
      });
      log.debug("d");
      log.info("i", { x: 1 });
      log.warn("w");
      log.error("e", { y: 2 });
      expect(lines.length).toBe(2);
      if (format === "json") {
        expect(lines.map((l) => JSON.parse(l).msg)).toEqual(["w", "e"]);
        expect(JSON.parse(lines[1]!).y).toBe(2);
      }
    }
  });
});

describe("progress fields", () => {
  test("a rebalance a quarter through its bytes: rates and an ETA of three times the elapsed", () => {
    const f = progressFields({
      startedAtMs: 1000,
      partitionsDone: 10,
      partitionsTotal: 40,
      keysDone: 2500,
      keysTotal: 10_000,
      bytesDone: 250_000,
      bytesTotal: 1_000_000,
    }, 11_000);
    expect(f).toEqual({
      partitions: "10/40",
      keys: "2500/10000",
      bytes: "250000/1000000",
      keysPerSec: 250,
      bytesPerSec: 25_000,
      elapsedS: 10,
      etaS: 30,
    });
  });

  test("anti-entropy: keys without a total, the ETA from partitions; nothing done: no ETA", () => {
    const base = { startedAtMs: 0, partitionsTotal: 8, keysDone: 5, bytesDone: 500 };
    const half = progressFields({ ...base, partitionsDone: 4 }, 2000);
    expect(half.keys).toBe("5");
    expect(half.bytes).toBe("500");
    expect(half.etaS).toBe(2);
    expect(progressFields({ ...base, partitionsDone: 0 }, 2000).etaS).toBeNull();
  });
});
