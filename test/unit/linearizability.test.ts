/** The linearizability checker (test/support/linearizability.ts) on known histories. */
import { describe, expect, test } from "bun:test";
import { checkLinearizable, type LinEntry, type LinOp } from "../support/linearizability.ts";

const op = (op: LinOp, invokeMs: number, completeMs: number, key = "k"): LinEntry => ({
  key,
  op,
  invokeMs,
  completeMs,
});
const ok = (h: LinEntry[]) => checkLinearizable(h, { timeBudgetMs: 5000 }).ok;

describe("linearizable histories pass", () => {
  test("sequential write then read", () => {
    expect(ok([op({ kind: "write", value: "1" }, 0, 1), op({ kind: "read", value: "1" }, 2, 3)]))
      .toBe(true);
  });

  test("a read overlapping a write may see either value", () => {
    const w = op({ kind: "write", value: "1" }, 0, 10);
    expect(ok([w, op({ kind: "read", value: null }, 1, 2)])).toBe(true);
    expect(ok([w, op({ kind: "read", value: "1" }, 1, 2)])).toBe(true);
  });

  test("two concurrent CAS increments from the same value: only one wins", () => {
    expect(ok([
      op({ kind: "cas", from: null, to: "1" }, 0, 10),
      op({ kind: "cas-fail", from: null, saw: "1" }, 1, 11),
      op({ kind: "read", value: "1" }, 12, 13),
    ])).toBe(true);
  });

  test("incr from several clients, answers in a consistent order", () => {
    expect(ok([
      op({ kind: "incr", by: 1, value: 2 }, 0, 10),
      op({ kind: "incr", by: 1, value: 1 }, 1, 11),
      op({ kind: "incr", by: 5, value: 7 }, 2, 12),
      op({ kind: "read", value: "7" }, 13, 14),
    ])).toBe(true);
  });

  test("an op of unknown outcome may have happened, or not", () => {
    const unknown = op({ kind: "incr", by: 1 }, 0, Infinity);
    expect(ok([unknown, op({ kind: "read", value: "1" }, 5, 6)])).toBe(true);
    expect(ok([unknown, op({ kind: "read", value: null }, 5, 6)])).toBe(true);
  });

  test("a CAS of unknown outcome that lost its race", () => {
    expect(ok([
      op({ kind: "cas", from: null, to: "a" }, 0, 5),
      op({ kind: "cas", from: null, to: "b" }, 1, Infinity),
      op({ kind: "read", value: "a" }, 6, 7),
    ])).toBe(true);
  });

  test("keys are independent", () => {
    expect(ok([
      op({ kind: "write", value: "a" }, 0, 1, "x"),
      op({ kind: "write", value: "b" }, 0, 1, "y"),
      op({ kind: "read", value: "a" }, 2, 3, "x"),
      op({ kind: "read", value: "b" }, 2, 3, "y"),
    ])).toBe(true);
  });
});

describe("non-linearizable histories fail", () => {
  test("the lost update: two read-then-write increments from 0 both 'succeed'", () => {
    // Each client read 0 and wrote 1. As plain reads and writes that is linearizable...
    const init = op({ kind: "write", value: "0" }, -2, -1);
    expect(ok([
      init,
      op({ kind: "read", value: "0" }, 0, 1),
      op({ kind: "read", value: "0" }, 0, 1),
      op({ kind: "write", value: "1" }, 2, 3),
      op({ kind: "write", value: "1" }, 2, 3),
    ])).toBe(true);
    // ...but not as the increments the clients meant: two incrs that both answered 1, or two
    // CAS 0 → 1 that both succeeded.
    expect(ok([
      init,
      op({ kind: "incr", by: 1, value: 1 }, 0, 3),
      op({ kind: "incr", by: 1, value: 1 }, 0, 3),
    ])).toBe(false);
    expect(ok([
      init,
      op({ kind: "cas", from: "0", to: "1" }, 0, 3),
      op({ kind: "cas", from: "0", to: "1" }, 0, 3),
    ])).toBe(false);
  });

  test("a stale read after a completed write", () => {
    expect(ok([
      op({ kind: "write", value: "1" }, 0, 1),
      op({ kind: "read", value: null }, 2, 3),
    ])).toBe(false);
  });

  test("incr answers that skip or repeat a value", () => {
    expect(ok([
      op({ kind: "incr", by: 1, value: 1 }, 0, 10),
      op({ kind: "incr", by: 1, value: 1 }, 1, 11),
    ])).toBe(false);
    expect(ok([
      op({ kind: "incr", by: 1, value: 1 }, 0, 1),
      op({ kind: "read", value: "1" }, 2, 3),
      op({ kind: "incr", by: 1, value: 3 }, 4, 5),
    ])).toBe(false);
  });

  test("a failed CAS that saw the value it expected", () => {
    expect(ok([
      op({ kind: "write", value: "1" }, 0, 1),
      op({ kind: "cas-fail", from: "1", saw: "1" }, 2, 3),
    ])).toBe(false);
  });

  test("reads going back in time (new then old)", () => {
    expect(ok([
      op({ kind: "write", value: "1" }, 0, 10),
      op({ kind: "write", value: "2" }, 0, 10),
      op({ kind: "read", value: "2" }, 11, 12),
      op({ kind: "read", value: "1" }, 13, 14),
    ])).toBe(false);
  });

  test("one bad key fails the history, and is named", () => {
    const v = checkLinearizable([
      op({ kind: "write", value: "a" }, 0, 1, "good"),
      op({ kind: "write", value: "1" }, 0, 1, "bad"),
      op({ kind: "read", value: null }, 2, 3, "bad"),
    ]);
    expect(v.ok).toBe(false);
    expect(v.badKeys).toEqual(["bad"]);
  });
});

describe("scale and the time bound", () => {
  /** 8 clients × n sequential incrs each, interleaved: answers 1..8n in completion order. */
  function incrHistory(n: number): LinEntry[] {
    const out: LinEntry[] = [];
    let t = 0;
    let value = 0;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 8; c++) {
        out.push({
          key: "k",
          client: c,
          op: { kind: "incr", by: 1, value: ++value },
          invokeMs: t,
          completeMs: t + 20,
        });
        t += 3;
      }
    }
    return out;
  }

  test("1600 overlapping incrs check well within the bound", () => {
    const v = checkLinearizable(incrHistory(200), { timeBudgetMs: 20_000 });
    expect(v).toMatchObject({ ok: true, timedOut: false });
  });

  test("hundreds of incrs of unknown outcome (timeouts) do not blow the search up", () => {
    const h = incrHistory(200);
    // Every 8th op timed out (answer unknown), and none of those took effect: the answered
    // values are then 1.. in order without gaps.
    let value = 0;
    const out = h.map((e, i) =>
      i % 8 === 3
        ? { ...e, op: { kind: "incr" as const, by: 1 }, completeMs: Infinity }
        : { ...e, op: { kind: "incr" as const, by: 1, value: ++value } }
    );
    expect(checkLinearizable(out, { timeBudgetMs: 20_000 })).toMatchObject({ ok: true });
  });

  test("a search past its bound says so and does not pass", () => {
    // Many overlapping writes of distinct values and a read of a value none wrote: the search
    // must try every order before it can say no; a zero budget stops it first.
    const h: LinEntry[] = [];
    for (let i = 0; i < 40; i++) h.push(op({ kind: "write", value: String(i) }, 0, 100));
    h.push(op({ kind: "read", value: "none" }, 0, 100));
    const v = checkLinearizable(h, { timeBudgetMs: 0 });
    expect(v.ok).toBe(false);
    expect(v.timedOut).toBe(true);
  });
});
