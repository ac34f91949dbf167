/** Hybrid logical clock: monotonic under skew, causally after what it has seen, totally ordered. */
import { describe, expect, test } from "bun:test";
import {
  aheadByMs,
  compareVersions,
  COUNTER_MAX,
  formatVersion,
  type HlcState,
  newHlc,
  observe,
  parseVersion,
  tick,
  type Version,
  withinSkew,
} from "../../src/core/hlc.ts";

/** A case of `observe`: clock state and remote (wall, counter), the local time, the state after. */
type ObserveCase = [
  name: string,
  state: [number, number],
  remote: [number, number],
  now: number,
  want: [number, number],
];

const v = (wallMs: number, counter: number, nodeId: string): Version => ({
  wallMs,
  counter,
  nodeId,
});

describe("tick", () => {
  test("a clock with fractions of a millisecond gives whole-millisecond versions (sim seed 897)", () => {
    // The wire and the store take integers only: a fractional wallMs was refused by every peer.
    const s: HlcState = { wallMs: 0, counter: 0 };
    const v = tick(s, 15815.001220703125, "n1");
    expect(v.wallMs).toBe(15815);
    expect(Number.isInteger(tick(s, 15815.9, "n1").wallMs)).toBe(true);
    observe(s, { wallMs: 100, counter: 0, nodeId: "n2" }, 20000.5);
    expect(Number.isInteger(s.wallMs)).toBe(true);
  });

  test("a fresh clock starts at zero", () => {
    expect(newHlc()).toEqual({ wallMs: 0, counter: 0 });
  });

  test("follows the wall clock when it moves forward, counter reset", () => {
    const s = newHlc();
    expect(tick(s, 1000, "a")).toEqual(v(1000, 0, "a"));
    expect(tick(s, 1005, "a")).toEqual(v(1005, 0, "a"));
    expect(s).toEqual({ wallMs: 1005, counter: 0 });
  });

  test("counter increments on equal milliseconds", () => {
    const s = newHlc();
    const seen = [1000, 1000, 1000, 1000].map((now) => tick(s, now, "a"));
    expect(seen.map((x) => x.counter)).toEqual([0, 1, 2, 3]);
    expect(seen.every((x) => x.wallMs === 1000)).toBe(true);
  });

  test("stays strictly monotonic when the wall clock goes backwards", () => {
    const s = newHlc();
    // Wall clock: forward, a big step back (NTP correction), stalls, then catches up.
    const wall = [1000, 1001, 500, 400, 999, 1001, 1001, 1002, 3000, 2000];
    let prev: Version | undefined;
    for (const now of wall) {
      const cur = tick(s, now, "a");
      expect(cur.wallMs).toBeGreaterThanOrEqual(now);
      if (prev !== undefined) expect(compareVersions(cur, prev)).toBeGreaterThan(0);
      prev = cur;
    }
    // The step back did not drag the clock's wall component back.
    expect(s.wallMs).toBe(3000);
    expect(s.counter).toBe(1);
  });

  test("step-back ticks keep the largest wall time and count up", () => {
    const s = newHlc();
    tick(s, 1000, "a");
    expect(tick(s, 10, "a")).toEqual(v(1000, 1, "a"));
    expect(tick(s, 20, "a")).toEqual(v(1000, 2, "a"));
    expect(tick(s, 1001, "a")).toEqual(v(1001, 0, "a"));
  });
});

describe("observe", () => {
  test("a remote version far in the future orders later local ticks after it", () => {
    const s = newHlc();
    tick(s, 1000, "a");
    const remote = v(9_000_000, 7, "b");
    observe(s, remote, 1001);
    const next = tick(s, 1002, "a");
    expect(compareVersions(next, remote)).toBeGreaterThan(0);
    expect(next.wallMs).toBe(9_000_000);
    expect(next.counter).toBeGreaterThan(7);
    // And it keeps ordering after it while the local wall clock lags behind.
    const later = tick(s, 1003, "a");
    expect(compareVersions(later, next)).toBeGreaterThan(0);
  });

  test("a remote version with the same wall time but a bigger counter is passed", () => {
    const s = newHlc();
    tick(s, 1000, "a"); // (1000, 0)
    const remote = v(1000, 5, "b");
    observe(s, remote, 900);
    const next = tick(s, 900, "a");
    expect(compareVersions(next, remote)).toBeGreaterThan(0);
    expect(next.wallMs).toBe(1000);
  });

  test("a remote version from the past still advances the counter (causality)", () => {
    const s = newHlc();
    tick(s, 5000, "a"); // (5000, 0)
    observe(s, v(100, 99, "b"), 4000);
    expect(s).toEqual({ wallMs: 5000, counter: 1 });
  });

  test("when the local wall clock is ahead of both, it wins with counter 0", () => {
    const s = newHlc();
    tick(s, 1000, "a");
    observe(s, v(1500, 3, "b"), 2000);
    expect(s).toEqual({ wallMs: 2000, counter: 0 });
    // The next tick at the same ms must still be after what was observed.
    expect(tick(s, 2000, "a")).toEqual(v(2000, 1, "a"));
  });

  const cases: readonly ObserveCase[] = [
    ["all equal wall", [10, 3], [10, 8], 10, [10, 9]],
    ["all equal wall, local counter larger", [10, 9], [10, 2], 5, [10, 10]],
    ["local ahead", [20, 4], [10, 8], 15, [20, 5]],
    ["remote ahead", [10, 4], [30, 8], 15, [30, 9]],
    ["now ahead", [10, 4], [30, 8], 40, [40, 0]],
  ];
  for (const [name, [sw, sc], [rw, rc], now, [ww, wc]] of cases) {
    test(`state table: ${name}`, () => {
      const s = { wallMs: sw, counter: sc };
      const remote = v(rw, rc, "r");
      observe(s, remote, now);
      expect(s).toEqual({ wallMs: ww, counter: wc });
      // Whatever the case, the next local tick orders after the remote version.
      expect(compareVersions(tick(s, now, "a"), remote)).toBeGreaterThan(0);
    });
  }
});

describe("compareVersions", () => {
  const ordered: readonly Version[] = [
    v(0, 0, ""),
    v(0, 0, "a"),
    v(1, 0, "a"),
    v(1, 0, "b"),
    v(1, 1, "a"),
    v(1, 2, "a"),
    v(2, 0, "A"), // uppercase sorts before lowercase (code unit order)
    v(2, 0, "a"),
    v(2, 0, "aa"),
    v(2, 0, "b"),
    v(1_700_000_000_000, 0, "a"),
  ];

  test("the listed versions are in strictly ascending order, pairwise", () => {
    for (let i = 0; i < ordered.length; i++) {
      for (let j = 0; j < ordered.length; j++) {
        const c = compareVersions(ordered[i]!, ordered[j]!);
        if (i < j) expect(c).toBeLessThan(0);
        else if (i > j) expect(c).toBeGreaterThan(0);
        else expect(c).toBe(0);
      }
    }
  });

  test("sorting a shuffled copy restores the order (total order)", () => {
    const shuffled = [...ordered].reverse();
    shuffled.push(shuffled.shift()!);
    expect(shuffled.sort(compareVersions)).toEqual([...ordered]);
  });

  test("nodeId breaks ties only when wall time and counter are equal", () => {
    expect(compareVersions(v(5, 1, "a"), v(5, 1, "b"))).toBeLessThan(0);
    expect(compareVersions(v(5, 1, "z"), v(5, 2, "a"))).toBeLessThan(0);
    expect(compareVersions(v(5, 9, "z"), v(6, 0, "a"))).toBeLessThan(0);
    expect(compareVersions(v(5, 1, "n"), v(5, 1, "n"))).toBe(0);
  });

  test("two nodes ticking at the same instant never produce equal versions", () => {
    const a = tick(newHlc(), 1000, "node-a");
    const b = tick(newHlc(), 1000, "node-b");
    expect(compareVersions(a, b)).not.toBe(0);
    expect(Math.sign(compareVersions(a, b))).toBe(-Math.sign(compareVersions(b, a)));
  });
});

describe("formatVersion / parseVersion", () => {
  const roundTrip: readonly Version[] = [
    v(0, 0, "a"),
    v(1_700_000_000_123, 42, "127.0.0.1:8080"),
    v(5, 0, "node@dc1"), // the id may itself contain '@'
    v(5, 1, "日本"),
    v(Number.MAX_SAFE_INTEGER, 3, "x"),
  ];
  for (const ver of roundTrip) {
    test(`round trip ${formatVersion(ver)}`, () => {
      expect(parseVersion(formatVersion(ver))).toEqual(ver);
    });
  }

  test("wall times that share their low bits each keep their own text (the text cache)", () => {
    const walls = [5, 5 + 1024, 5 + 2 ** 32, 1_700_000_000_005, 1_700_000_001_029, 2 ** 53 - 1];
    for (let round = 0; round < 3; round++) {
      for (const [i, w] of walls.entries()) {
        expect(formatVersion(v(w, i, "n"))).toBe(`${String(w)}.${i}@n`);
      }
    }
  });

  test("text form is <wallMs>.<counter>@<nodeId>", () => {
    expect(formatVersion(v(1700000000123, 4, "127.0.0.1:8080"))).toBe(
      "1700000000123.4@127.0.0.1:8080",
    );
  });

  const junk: readonly string[] = [
    "",
    "1.2",
    "1.2@",
    "@a",
    ".2@a",
    "1.@a",
    "1@a",
    "1.2.3@a",
    "-1.2@a",
    "1.-2@a",
    "1.5e3@a",
    "a.b@c",
    " 1.2@a",
    "1. 2@a",
    "0x10.2@a",
    "99999999999999999999.0@a", // beyond Number.MAX_SAFE_INTEGER
  ];
  for (const text of junk) {
    test(`rejects ${JSON.stringify(text)}`, () => {
      expect(parseVersion(text)).toBeUndefined();
    });
  }
});

describe("counter bound (the store keeps counters in 32 bits)", () => {
  // Literal, not the exported constant: these cases must also describe the code before the bound.
  const MAX = 2 ** 32 - 1;

  test("a tick at the counter's maximum moves the wall time forward by 1 ms, counter 0", () => {
    const s = { wallMs: 1000, counter: MAX };
    expect(tick(s, 1000, "a")).toEqual(v(1001, 0, "a"));
    expect(s).toEqual({ wallMs: 1001, counter: 0 });
  });

  test("a tick at the maximum with the wall clock behind still never wraps", () => {
    const s = { wallMs: 5000, counter: MAX - 1 };
    const a = tick(s, 10, "a");
    const b = tick(s, 10, "a");
    expect(a).toEqual(v(5000, MAX, "a"));
    expect(b).toEqual(v(5001, 0, "a"));
    expect(compareVersions(b, a)).toBeGreaterThan(0);
  });

  const observed: readonly ObserveCase[] = [
    ["remote at the maximum", [10, 3], [10, MAX], 5, [11, 0]],
    ["local at the maximum", [10, MAX], [10, 2], 5, [11, 0]],
    ["local ahead at the maximum", [20, MAX], [10, 8], 15, [21, 0]],
    ["remote ahead at the maximum", [10, 4], [30, MAX], 15, [31, 0]],
    ["remote counter past the maximum (never stored)", [10, 4], [30, 2 ** 53 - 1], 15, [31, 0]],
    ["now ahead of a maximum", [10, MAX], [10, MAX], 40, [40, 0]],
  ];
  for (const [name, [sw, sc], [rw, rc], now, [ww, wc]] of observed) {
    test(`observe: ${name}`, () => {
      const s = { wallMs: sw, counter: sc };
      const remote = v(rw, rc, "r");
      observe(s, remote, now);
      expect(s).toEqual({ wallMs: ww, counter: wc });
      expect(s.counter).toBeLessThanOrEqual(MAX);
      expect(compareVersions(tick(s, now, "a"), remote)).toBeGreaterThan(0);
    });
  }

  test("COUNTER_MAX is what a Uint32Array holds", () => {
    expect(COUNTER_MAX).toBe(MAX);
    expect(new Uint32Array([COUNTER_MAX])[0]).toBe(COUNTER_MAX);
  });
});

describe("skew bound", () => {
  const cases: readonly [wallMs: number, now: number, max: number, ahead: number, ok: boolean][] = [
    [1000, 1000, 0, 0, true],
    [900, 1000, 0, 0, true], // behind is never refused
    [1001, 1000, 0, 1, false],
    [61_000, 1000, 60_000, 60_000, true],
    [61_001, 1000, 60_000, 60_001, false],
    [1000 + 86_400_000, 1000, 60_000, 86_400_000, false],
  ];
  for (const [wallMs, now, max, ahead, ok] of cases) {
    test(`${wallMs} at ${now}, max ${max}: ${ahead} ms ahead, ${ok ? "within" : "refused"}`, () => {
      expect(aheadByMs(v(wallMs, 0, "r"), now)).toBe(ahead);
      expect(withinSkew(v(wallMs, 7, "r"), now, max)).toBe(ok);
    });
  }
});

describe("parseVersion bounds", () => {
  test("a node id with line breaks parses back (--node-id is free text; fuzz finding)", () => {
    expect(parseVersion("5.1@a\nb")).toEqual(v(5, 1, "a\nb"));
    expect(parseVersion(formatVersion(v(7, 0, "\n\u0000")))).toEqual(v(7, 0, "\n\u0000"));
  });
  test("a counter past COUNTER_MAX is refused", () => {
    expect(parseVersion(`5.${2 ** 32 - 1}@a`)).toEqual(v(5, 2 ** 32 - 1, "a"));
    expect(parseVersion(`5.${2 ** 32}@a`)).toBeUndefined();
    expect(parseVersion(`5.${2 ** 53 - 1}@a`)).toBeUndefined();
  });

  test("a node id of at most 256 characters", () => {
    expect(parseVersion(`5.0@${"x".repeat(256)}`)?.nodeId.length).toBe(256);
    expect(parseVersion(`5.0@${"x".repeat(257)}`)).toBeUndefined();
  });
});
