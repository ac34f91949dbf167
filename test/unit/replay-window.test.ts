/** The replay window (src/core/replay-window.ts): per source, a counter is accepted once. */
import { describe, expect, test } from "bun:test";
import { ReplayGuard } from "../../src/core/replay-window.ts";

describe("ReplayGuard", () => {
  test("in order, out of order within the window, replays, too old", () => {
    const g = new ReplayGuard(64, 4, 1000);
    expect(g.check("s", 0, 0)).toBe("fresh");
    expect(g.check("s", 5, 0)).toBe("fresh");
    expect(g.check("s", 3, 0)).toBe("fresh");
    expect(g.check("s", 3, 0)).toBe("replayed");
    expect(g.check("s", 5, 0)).toBe("replayed");
    expect(g.check("s", 0, 0)).toBe("replayed");
    expect(g.check("s", 100, 0)).toBe("fresh");
    expect(g.check("s", 37, 0)).toBe("fresh"); // 100 − 37 = 63 < 64
    expect(g.check("s", 36, 0)).toBe("too-old");
    expect(g.check("s", 5, 0)).toBe("too-old");
  });

  test("a jump clears exactly the slots it passes (no stale bit makes a new counter a replay)", () => {
    const g = new ReplayGuard(64, 4, 1000);
    for (let c = 0; c < 64; c++) expect(g.check("s", c, 0)).toBe("fresh");
    // 64..127 reuse the same slots as 0..63: each must be new.
    for (let c = 127; c >= 64; c--) expect(g.check("s", c, 0)).toBe("fresh");
    expect(g.check("s", 10_000, 0)).toBe("fresh");
    expect(g.check("s", 9_999, 0)).toBe("fresh");
    expect(g.check("s", 9_937, 0)).toBe("fresh");
    expect(g.check("s", 9_936, 0)).toBe("too-old");
  });

  test("sources are separate", () => {
    const g = new ReplayGuard(64, 4, 1000);
    expect(g.check("a", 1, 0)).toBe("fresh");
    expect(g.check("b", 1, 0)).toBe("fresh");
    expect(g.check("a", 1, 0)).toBe("replayed");
  });

  test("bounded: a new source beyond the limit waits until one is idle", () => {
    const g = new ReplayGuard(64, 2, 1000);
    expect(g.check("a", 0, 0)).toBe("fresh");
    expect(g.check("b", 0, 500)).toBe("fresh");
    expect(g.check("c", 0, 999)).toBe("full");
    expect(g.size).toBe(2);
    // "a" idle for 1000 ms: it makes room; "b" is still known.
    expect(g.check("c", 0, 1000)).toBe("fresh");
    expect(g.check("b", 0, 1000)).toBe("replayed");
    expect(g.size).toBe(2);
  });

  test("bad parameters throw", () => {
    expect(() => new ReplayGuard(30, 1, 1)).toThrow();
    expect(() => new ReplayGuard(64, 0, 1)).toThrow();
    expect(() => new ReplayGuard(64, 1, 0)).toThrow();
  });
});
