/** Quorum bookkeeping, driven by hand-resolved promises (no timers). */
import { describe, expect, test } from "bun:test";
import { gather, type QuorumOutcome } from "../../src/core/quorum.ts";

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A fake replica set: every call is recorded and stays pending until the test settles it. */
class Replicas {
  readonly calls: string[] = [];
  readonly #pending = new Map<string, Deferred<string>>();

  readonly call = (target: string): Promise<string> => {
    this.calls.push(target);
    const d = deferred<string>();
    this.#pending.set(target, d);
    return d.promise;
  };

  ok(target: string, value = `v@${target}`): void {
    this.#get(target).resolve(value);
  }

  fail(target: string, reason: unknown = new Error(`${target} down`)): void {
    this.#get(target).reject(reason);
  }

  #get(target: string): Deferred<string> {
    const d = this.#pending.get(target);
    if (d === undefined) throw new Error(`test bug: ${target} was never called`);
    return d;
  }
}

/** Let every queued promise callback run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** Observe a promise without awaiting it, so a test can assert it is still pending. */
function track<T>(p: Promise<T>): { settled: () => boolean; value: () => T } {
  let done = false;
  let out: T | undefined;
  void p.then((v) => {
    done = true;
    out = v;
  });
  return {
    settled: () => done,
    value: () => {
      if (!done) throw new Error("not settled");
      return out as T;
    },
  };
}

const T3 = ["r1", "r2", "r3"] as const;
const T5 = ["r1", "r2", "r3", "r4", "r5"] as const;

describe('gather, fanout "all"', () => {
  test("calls every target at once", async () => {
    const r = new Replicas();
    const p = track(gather(T3, 2, "all", r.call));
    await flush();
    expect(r.calls).toEqual([...T3]);
    expect(p.settled()).toBe(false);
  });

  test("resolves after `need` successes while the rest are still pending", async () => {
    const r = new Replicas();
    const p = track(gather(T3, 2, "all", r.call));
    r.ok("r2");
    await flush();
    expect(p.settled()).toBe(false);
    r.ok("r1");
    await flush();
    expect(p.settled()).toBe(true);
    expect(p.value()).toEqual({ ok: ["v@r2", "v@r1"], failed: [], reached: true, hedged: 0 });
    // A late answer does not change the settled outcome.
    r.ok("r3");
    await flush();
    expect(p.value().ok).toEqual(["v@r2", "v@r1"]);
  });

  test("tolerates failures while success is still possible", async () => {
    const r = new Replicas();
    const p = track(gather(T3, 2, "all", r.call));
    r.fail("r1");
    await flush();
    expect(p.settled()).toBe(false);
    r.ok("r2");
    await flush();
    expect(p.settled()).toBe(false);
    r.ok("r3");
    await flush();
    expect(p.value()).toEqual({
      ok: ["v@r2", "v@r3"],
      failed: [{ target: "r1", reason: "r1 down" }],
      reached: true,
      hedged: 0,
    });
  });

  test("once success is impossible it resolves unreached as soon as the calls in flight settle", async () => {
    const r = new Replicas();
    const p = track(gather(T5, 3, "all", r.call));
    r.fail("r4");
    r.fail("r2");
    await flush();
    expect(p.settled()).toBe(false); // 3 still pending: 3 successes still possible
    r.fail("r5");
    await flush();
    // Success is now impossible; the outcome waits for r1 and r3 so it can say exactly how
    // many answered (the 503 message reports it).
    expect(p.settled()).toBe(false);
    r.ok("r1");
    await flush();
    expect(p.settled()).toBe(false);
    r.fail("r3");
    await flush();
    expect(p.value()).toEqual({
      ok: ["v@r1"],
      failed: ["r4", "r2", "r5", "r3"].map((t) => ({ target: t, reason: `${t} down` })),
      reached: false,
      hedged: 0,
    });
  });

  test("impossible after some successes: the tally includes the late successes", async () => {
    const r = new Replicas();
    const p = track(gather(T3, 3, "all", r.call));
    r.ok("r1");
    await flush();
    expect(p.settled()).toBe(false);
    r.fail("r3", "timeout"); // a non-Error reason is kept as text
    await flush();
    expect(p.settled()).toBe(false);
    r.ok("r2");
    await flush();
    expect(p.value()).toEqual({
      ok: ["v@r1", "v@r2"],
      failed: [{ target: "r3", reason: "timeout" }],
      reached: false,
      hedged: 0,
    });
  });

  test("every target failing resolves unreached with every reason", async () => {
    const r = new Replicas();
    const p = track(gather(T3, 1, "all", r.call));
    r.fail("r3");
    r.fail("r1");
    await flush();
    expect(p.settled()).toBe(false);
    r.fail("r2");
    await flush();
    expect(p.value()).toEqual({
      ok: [],
      failed: ["r3", "r1", "r2"].map((t) => ({ target: t, reason: `${t} down` })),
      reached: false,
      hedged: 0,
    });
  });

  test("need = all targets: resolves only when the last one answers", async () => {
    const r = new Replicas();
    const p = track(gather(T3, 3, "all", r.call));
    r.ok("r3");
    r.ok("r1");
    await flush();
    expect(p.settled()).toBe(false);
    r.ok("r2");
    await flush();
    expect(p.value().reached).toBe(true);
    expect(p.value().ok).toEqual(["v@r3", "v@r1", "v@r2"]);
  });

  test("need greater than the number of targets never reports reached", async () => {
    const r = new Replicas();
    const p = track(gather(["r1", "r2"], 3, "all", r.call));
    r.ok("r1");
    r.ok("r2");
    await flush();
    expect(p.settled()).toBe(true);
    expect(p.value()).toEqual({ ok: ["v@r1", "v@r2"], failed: [], reached: false, hedged: 0 });
  });
});

describe('gather, fanout "need"', () => {
  test("starts only `need` calls", async () => {
    const r = new Replicas();
    const p = track(gather(T5, 2, "need", r.call));
    await flush();
    expect(r.calls).toEqual(["r1", "r2"]);
    r.ok("r1");
    r.ok("r2");
    await flush();
    expect(p.value()).toEqual({ ok: ["v@r1", "v@r2"], failed: [], reached: true, hedged: 0 });
    // Success does not launch anyone else.
    expect(r.calls).toEqual(["r1", "r2"]);
  });

  test("launches the next untried target on each failure, in order", async () => {
    const r = new Replicas();
    const p = track(gather(T5, 2, "need", r.call));
    await flush();
    r.fail("r2");
    await flush();
    expect(r.calls).toEqual(["r1", "r2", "r3"]);
    r.fail("r3");
    await flush();
    expect(r.calls).toEqual(["r1", "r2", "r3", "r4"]);
    r.ok("r1");
    await flush();
    expect(p.settled()).toBe(false);
    r.ok("r4");
    await flush();
    expect(p.value()).toEqual({
      ok: ["v@r1", "v@r4"],
      failed: [
        { target: "r2", reason: "r2 down" },
        { target: "r3", reason: "r3 down" },
      ],
      reached: true,
      hedged: 0,
    });
    expect(r.calls).not.toContain("r5");
  });

  test("gives up once no untried target remains, after the call in flight settles", async () => {
    const r = new Replicas();
    const p = track(gather(T3, 2, "need", r.call));
    await flush();
    r.fail("r1");
    await flush();
    expect(r.calls).toEqual(["r1", "r2", "r3"]);
    expect(p.settled()).toBe(false);
    r.fail("r3");
    await flush();
    // One success can no longer make two, and nobody new is called; r2's answer is awaited
    // so the outcome is an exact tally.
    expect(r.calls).toEqual(["r1", "r2", "r3"]);
    expect(p.settled()).toBe(false);
    r.ok("r2");
    await flush();
    expect(p.value()).toEqual({
      ok: ["v@r2"],
      failed: [
        { target: "r1", reason: "r1 down" },
        { target: "r3", reason: "r3 down" },
      ],
      reached: false,
      hedged: 0,
    });
  });

  test("need = 1 walks the whole list until one answers", async () => {
    const r = new Replicas();
    const p = track(gather(T3, 1, "need", r.call));
    for (const t of ["r1", "r2"]) {
      await flush();
      r.fail(t);
    }
    await flush();
    expect(r.calls).toEqual(["r1", "r2", "r3"]);
    r.ok("r3", "found");
    await flush();
    expect(p.value().ok).toEqual(["found"]);
    expect(p.value().reached).toBe(true);
  });

  test("need = 1 with every target failing resolves unreached", async () => {
    const r = new Replicas();
    const p = track(gather(T3, 1, "need", r.call));
    for (const t of T3) {
      await flush();
      r.fail(t);
    }
    await flush();
    expect(p.value()).toEqual({
      ok: [],
      failed: T3.map((t) => ({ target: t, reason: `${t} down` })),
      reached: false,
      hedged: 0,
    });
  });
});

describe("gather, degenerate inputs", () => {
  const cases: readonly [
    name: string,
    targets: readonly string[],
    need: number,
    fanout: "all" | "need",
    want: QuorumOutcome<string>,
  ][] = [
    ["need 0, all", T3, 0, "all", { ok: [], failed: [], reached: true, hedged: 0 }],
    ["need 0, need", T3, 0, "need", { ok: [], failed: [], reached: true, hedged: 0 }],
    ["need -1", T3, -1, "all", { ok: [], failed: [], reached: true, hedged: 0 }],
    ["need 0 and no targets", [], 0, "all", { ok: [], failed: [], reached: true, hedged: 0 }],
    ["no targets, all", [], 1, "all", { ok: [], failed: [], reached: false, hedged: 0 }],
    ["no targets, need", [], 2, "need", { ok: [], failed: [], reached: false, hedged: 0 }],
  ];
  for (const [name, targets, need, fanout, want] of cases) {
    test(`${name}: resolves at once without calling anyone`, async () => {
      const r = new Replicas();
      const p = track(gather(targets, need, fanout, r.call));
      await flush();
      expect(p.settled()).toBe(true);
      expect(p.value()).toEqual(want);
      expect(r.calls).toEqual([]);
    });
  }
});

describe("deadline", () => {
  test("started at the first failure; settles with what answered, the rest reported", async () => {
    // a fails at once, b and c never answer: without a deadline this would hang forever.
    let started = 0;
    let fire!: () => void;
    const deadline = () => {
      started++;
      return new Promise<void>((r) => fire = r);
    };
    const call = (t: string) =>
      t === "a" ? Promise.reject(new Error("down")) : new Promise<string>(() => {});
    const p = track(gather(["a", "b", "c"], 2, "need", call, deadline, "too late"));
    await flush();
    expect(started).toBe(1);
    expect(p.settled()).toBe(false);
    fire();
    await flush();
    expect(p.value()).toEqual({
      ok: [],
      failed: [
        { target: "a", reason: "down" },
        { target: "b", reason: "too late" },
        { target: "c", reason: "too late" },
      ],
      reached: false,
      hedged: 0,
    });
  });

  test("never started when nothing fails", async () => {
    let started = 0;
    const deadline = () => {
      started++;
      return new Promise<void>(() => {});
    };
    const out = await gather(["a", "b"], 2, "all", (t) => Promise.resolve(t), deadline);
    expect(out.reached).toBe(true);
    expect(started).toBe(0);
  });
});

/** A hedge fired by hand: `fire()` stands for the hedge delay passing. */
class ManualHedge {
  armed = 0;
  disarmed = 0;
  #fire: (() => void) | undefined;
  readonly hedge = (fire: () => void) => {
    this.armed++;
    this.#fire = fire;
    return () => {
      this.disarmed++;
      this.#fire = undefined;
    };
  };
  fire(): void {
    const f = this.#fire;
    this.#fire = undefined;
    f?.();
  }
}

describe("gather with a hedge (issue 16, point 15)", () => {
  test("a stalled first target: the hedge asks the next, whose answer wins", async () => {
    const r = new Replicas();
    const h = new ManualHedge();
    const p = track(gather(T3, 1, "need", r.call, undefined, undefined, h.hedge));
    await flush();
    expect(r.calls).toEqual(["r1"]);
    h.fire();
    await flush();
    expect(r.calls).toEqual(["r1", "r2"]);
    r.ok("r2");
    await flush();
    expect(p.value()).toEqual({ ok: ["v@r2"], failed: [], reached: true, hedged: 1 });
    expect(h.disarmed).toBe(1); // re-armed after firing, disarmed when settled
  });

  test("quorum: two asked, one stalls, the hedge brings the third", async () => {
    const r = new Replicas();
    const h = new ManualHedge();
    const p = track(gather(T3, 2, "need", r.call, undefined, undefined, h.hedge));
    await flush();
    expect(r.calls).toEqual(["r1", "r2"]);
    r.ok("r2");
    await flush();
    expect(p.settled()).toBe(false);
    h.fire();
    await flush();
    expect(r.calls).toEqual(["r1", "r2", "r3"]);
    r.ok("r3");
    await flush();
    expect(p.value()).toEqual({ ok: ["v@r2", "v@r3"], failed: [], reached: true, hedged: 1 });
    // Out of targets: not armed again after the one firing.
    expect(h.armed).toBe(1);
  });

  test("answers in time: the hedge never fires, nothing extra is asked, it is disarmed", async () => {
    const r = new Replicas();
    const h = new ManualHedge();
    const p = track(gather(T3, 2, "need", r.call, undefined, undefined, h.hedge));
    await flush();
    r.ok("r1");
    r.ok("r2");
    await flush();
    expect(p.value().hedged).toBe(0);
    h.fire(); // too late: already disarmed
    await flush();
    expect(r.calls).toEqual(["r1", "r2"]);
    expect(h.disarmed).toBe(1);
  });

  test('fanout "all" is never hedged (every target is already asked)', async () => {
    const r = new Replicas();
    const h = new ManualHedge();
    void gather(T3, 2, "all", r.call, undefined, undefined, h.hedge);
    await flush();
    expect(h.armed).toBe(0);
  });
});
