/**
 * SWIM in simulation: many members in one process over a faulty in-memory network with a manual
 * clock. Every run is seeded; a failure names its seed, and `SEED=<n>` replays just that one.
 * Bounds are computed from the config; measured times are printed (they are virtual time, so
 * they replay exactly, but they are figures, not the contract).
 */
import { describe, expect, test } from "bun:test";
import {
  retransmitLimit,
  suspicionBoundsMs,
  SWIM_LAN,
  SWIM_LOCAL,
  type SwimConfig,
} from "../../src/core/swim.ts";
import { type Faults, formCluster, NO_FAULTS, seeds, SwimSim, withSeed } from "./swim-sim.ts";

const SEEDS = seeds([1, 2, 3]);
/**
 * Per-test limit in wall time. A run takes milliseconds to ~2 s (200 members); bun's default
 * 5 s is too tight on a loaded 2-core machine.
 */
const SIM_TIMEOUT_MS = 60_000;
/** Loopback-like jitter: every message takes 1–10 ms. */
const JITTER: Faults = { dropRate: 0, delayMinMs: 1, delayMaxMs: 10 };
const LOSSY: Faults = { ...JITTER, dropRate: 0.1 };

/**
 * Crash → DOWN at every live member, worst case. Each live member reaches the crashed one in
 * its shuffled round-robin within two passes of n − 1 probe periods (the rest of the current
 * pass and the whole next one), judges that probe one period later, and its own suspicion timer
 * then runs at most the maximum timeout (no confirmations at all). Without message loss local
 * health stays 0 (helpers nack, so a failed probe of the dead member is not our fault), so no
 * period is stretched. Plus one simulation step for the tick that notices.
 */
function detectionBoundMs(c: SwimConfig, n: number, stepMs: number): number {
  return (2 * (n - 1) + 1) * c.probeIntervalMs + suspicionBoundsMs(c, n).maxMs + stepMs;
}

/**
 * An update reaches every member: each member that holds it piggybacks it retransmitLimit(n)
 * times, at least one message per probe period, and infection-style spread needs O(log n)
 * periods (SWIM §4.1). Allow the whole retransmission window plus two periods (the first hop
 * or the join's push-pull round trip, and the last hop).
 */
function disseminationBoundMs(c: SwimConfig, n: number): number {
  return (retransmitLimit(c, n) + 2) * c.probeIntervalMs;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const log = (line: string) => console.log(`[swim-sim] ${line}`);

/** A step check that fails at once if anyone holds a member outside `except` as DOWN. */
function noFalseDown(sim: SwimSim, except: ReadonlySet<string>): () => void {
  let seen = 0;
  return () => {
    for (; seen < sim.history.length; seen++) {
      const o = sim.history[seen]!;
      if (o.member.state === "DOWN" && !except.has(o.member.id)) {
        throw new Error(`at ${o.atMs} ms ${o.observer} declared live member ${o.member.id} DOWN`);
      }
    }
  };
}

describe("(1) without faults every member converges to the same view", () => {
  for (const n of [5, 12, 20]) {
    for (const seed of SEEDS) {
      test(`${n} members join through one seed, seed ${seed}`, () =>
        withSeed(seed, () => {
          const { sim, formedMs } = formCluster(seed, SWIM_LAN, n, JITTER);
          sim.run(5000);
          expect(sim.converged()).toBe(true);
          for (const m of sim.live()) {
            expect(m.swim.size).toBe(n);
            expect(m.swim.members().every((r) => r.state === "UP" && r.inRing)).toBe(true);
          }
          // Without faults nobody was ever even suspected.
          expect(sim.history.filter((o) => o.member.state !== "UP")).toEqual([]);
          if (seed === SEEDS[0]) log(`formed: ${n} members in ${formedMs} ms (seed ${seed})`);
        }), SIM_TIMEOUT_MS);
    }
  }

  test("the local preset converges too", () =>
    withSeed(SEEDS[0]!, () => {
      const { sim } = formCluster(SEEDS[0]!, SWIM_LOCAL, 10, JITTER);
      sim.run(2000);
      expect(sim.converged()).toBe(true);
      expect(sim.live().every((m) => m.swim.size === 10)).toBe(true);
    }), SIM_TIMEOUT_MS);
});

describe("(2) a live member is never declared DOWN, even with 10% message loss", () => {
  for (const n of [5, 10, 20]) {
    for (const seed of SEEDS) {
      test(`${n} members, 30 s at 10% loss, seed ${seed}`, () =>
        withSeed(seed, () => {
          const { sim } = formCluster(seed, SWIM_LAN, n, LOSSY);
          sim.run(30_000, noFalseDown(sim, new Set()));
          const suspected = sim.history.filter((o) => o.member.state === "SUSPECT").length;
          const refutations = sim.live().reduce((k, m) => k + m.swim.stats.refutations, 0);
          // The loss did bite: members were suspected and refuted it.
          expect(refutations).toBeGreaterThan(0);
          expect(sim.dropped).toBeGreaterThan(0);
          // Once the loss stops, views converge again.
          sim.faults = JITTER;
          sim.runUntil(() => sim.converged(), SWIM_LAN.pushPullIntervalMs * 2, "reconverge");
          expect(sim.live().every((m) => m.swim.members().every((r) => r.state === "UP")))
            .toBe(true);
          if (seed === SEEDS[0]) {
            log(
              `10% loss, ${n} members, 30 s: ${suspected} suspicions, ${refutations} ` +
                `refutations, 0 DOWN (seed ${seed})`,
            );
          }
        }), SIM_TIMEOUT_MS);
    }
  }
});

describe("(3) a crashed member is DOWN at every live member within the bound", () => {
  for (const n of [5, 12, 20]) {
    for (const seed of SEEDS) {
      test(`${n} members, seed ${seed}`, () =>
        withSeed(seed, () => {
          const { sim } = formCluster(seed, SWIM_LAN, n, JITTER);
          sim.run(1000);
          const victim = String(1 + sim.rng.int(n));
          const bound = detectionBoundMs(SWIM_LAN, n, sim.stepMs);
          const crashedAt = sim.nowMs;
          sim.crash(victim);
          const check = noFalseDown(sim, new Set([victim]));
          sim.runUntil(() => sim.allSee(victim, "DOWN"), bound, `${victim} DOWN`, check);
          const times = sim.live().map((m) =>
            sim.firstSeen(m.id, victim, "DOWN", crashedAt)! - crashedAt
          );
          expect(Math.max(...times)).toBeLessThanOrEqual(bound);
          log(
            `crash, ${n} members (seed ${seed}): DOWN everywhere after median ` +
              `${median(times)} ms, max ${Math.max(...times)} ms (bound ${Math.round(bound)} ms)`,
          );
        }), SIM_TIMEOUT_MS);
    }
  }
});

describe("(4) a paused member comes back UP, and nobody else was accused", () => {
  const cases: readonly [n: number, pauseMs: number, keepInput: boolean][] = [
    // 1 s: shorter than the suspicion timeout; 6 s: long enough to be declared DOWN.
    [5, 1000, true],
    [5, 6000, true],
    [10, 1000, true],
    [10, 6000, true],
    // What arrived during the pause is lost (HTTP callers time out): it must learn on its own.
    [5, 6000, false],
    [10, 6000, false],
  ];
  for (const [n, pauseMs, keepInput] of cases) {
    const input = keepInput ? "input kept" : "input lost";
    for (const seed of SEEDS) {
      test(
        `${n} members, paused ${pauseMs} ms (${input}), seed ${seed}`,
        () =>
          withSeed(seed, () => {
            const { sim } = formCluster(seed, SWIM_LAN, n, JITTER);
            sim.run(1000);
            const p = String(1 + sim.rng.int(n));
            const before = sim.node(p).swim.self.incarnation;
            const check = noFalseDown(sim, new Set([p]));
            sim.pause(p, pauseMs, keepInput);
            sim.run(pauseMs, check);
            const backMs = sim.runUntil(
              () => sim.allSee(p, "UP") && sim.converged(),
              disseminationBoundMs(SWIM_LAN, n),
              `${p} back UP everywhere`,
              check,
            );
            sim.run(3000, check); // and it stays that way
            const node = sim.node(p);
            expect(sim.allSee(p, "UP")).toBe(true);
            expect(node.swim.members().every((m) => m.state === "UP")).toBe(true);
            expect(node.swim.stats.pausesDetected).toBeGreaterThanOrEqual(1);
            expect(node.swim.stats.suspicionsRaised).toBe(0); // it accused nobody
            const declaredDown = sim.history.some((o) =>
              o.member.id === p && o.member.state === "DOWN"
            );
            if (pauseMs > suspicionBoundsMs(SWIM_LAN, n).maxMs) {
              expect(declaredDown).toBe(true); // the long pause really was judged…
              expect(node.swim.self.incarnation).toBeGreaterThan(before); // …and refuted
            }
            if (seed === SEEDS[0]) {
              log(
                `pause ${pauseMs} ms (${input}), ${n} members: UP everywhere ${backMs} ms ` +
                  `after resume (declared DOWN meanwhile: ${declaredDown})`,
              );
            }
          }),
        SIM_TIMEOUT_MS,
      );
    }
  }
});

describe("(5) a join through one member reaches everyone within the bound", () => {
  for (const n of [5, 12, 20]) {
    for (const seed of SEEDS) {
      test(`${n} members + 1, seed ${seed}`, () =>
        withSeed(seed, () => {
          const { sim } = formCluster(seed, SWIM_LAN, n, JITTER);
          sim.run(1000);
          const seedMember = String(1 + sim.rng.int(n));
          const bound = disseminationBoundMs(SWIM_LAN, n + 1);
          sim.add("new", { seeds: [SwimSim.addressOf(seedMember)] });
          const ms = sim.runUntil(
            () => sim.allSee("new", "UP") && sim.node("new").swim.size === n + 1,
            bound,
            "join visible everywhere",
          );
          expect(ms).toBeLessThanOrEqual(bound);
          log(
            `join, ${n} members (seed ${seed}): visible everywhere after ${ms} ms ` +
              `(bound ${bound} ms)`,
          );
        }), SIM_TIMEOUT_MS);
    }
  }

  test("a lost join message is retried", () =>
    withSeed(SEEDS[0]!, () => {
      const { sim } = formCluster(SEEDS[0]!, SWIM_LAN, 5, JITTER);
      sim.faults = { ...JITTER, dropRate: 1 };
      sim.add("new", { seeds: [SwimSim.addressOf("1")] });
      const lost = sim.dropped;
      expect(lost).toBeGreaterThan(0);
      sim.faults = JITTER;
      sim.runUntil(
        () => sim.allSee("new", "UP") && sim.node("new").swim.size === 6,
        SWIM_LAN.probeIntervalMs + disseminationBoundMs(SWIM_LAN, 6),
        "join after a retry",
      );
      expect(sim.converged()).toBe(true);
    }), SIM_TIMEOUT_MS);
});

describe("(6) the orchestrator duty", () => {
  for (const seed of SEEDS) {
    test(
      `two members take a DOWN member out of the ring at once: harmless, seed ${seed}`,
      () =>
        withSeed(seed, () => {
          const { sim } = formCluster(seed, SWIM_LAN, 8, JITTER);
          sim.crash("8");
          sim.runUntil(() => sim.allSee("8", "DOWN"), detectionBoundMs(SWIM_LAN, 8, 10), "DOWN");
          const inc = sim.node("1").swim.member("8")!.incarnation;
          // The rightful duty holder and one with a stale idea of it, in the same instant.
          expect(sim.live().every((m) => m.swim.dutyHolder() === "1")).toBe(true);
          expect(sim.node("1").swim.markOutOfRing("8", sim.nowMs)).toBe(true);
          expect(sim.node("5").swim.markOutOfRing("8", sim.nowMs)).toBe(true);
          sim.runUntil(
            () => sim.live().every((m) => m.swim.member("8")?.inRing === false) && sim.converged(),
            disseminationBoundMs(SWIM_LAN, 8),
            "out of the ring everywhere",
          );
          for (const m of sim.live()) {
            expect(m.swim.member("8")).toMatchObject({ state: "DOWN", incarnation: inc });
            expect(m.swim.markOutOfRing("8", sim.nowMs)).toBe(false); // idempotent
          }
          // The member restarts (new address, higher incarnation): UP and in the ring again.
          sim.add("8", { seeds: [SwimSim.addressOf("3")], generation: 1 });
          sim.runUntil(
            () => sim.allSee("8", "UP") && sim.converged(),
            disseminationBoundMs(SWIM_LAN, 8),
            "restarted member back",
          );
          const back = sim.node("2").swim.member("8")!;
          expect(back.inRing).toBe(true);
          expect(back.incarnation).toBeGreaterThan(inc);
          expect(back.address).toBe(SwimSim.addressOf("8", 1));
        }),
      SIM_TIMEOUT_MS,
    );
  }

  test(
    "the duty moves to the lowest live node while the orchestrator is down, and back",
    () =>
      withSeed(SEEDS[0]!, () => {
        const sim = new SwimSim(SEEDS[0]!, SWIM_LAN, JITTER);
        sim.add("o", { role: "orchestrator" });
        for (const id of ["3", "1", "2", "4", "5"]) {
          sim.add(id, { seeds: [SwimSim.addressOf("o")] });
        }
        const all = (holder: string) => sim.live().every((m) => m.swim.dutyHolder() === holder);
        sim.runUntil(() => sim.converged() && sim.node("1").swim.size === 6, 5000, "formed");
        expect(all("o")).toBe(true);
        sim.crash("o");
        sim.runUntil(() => all("1"), detectionBoundMs(SWIM_LAN, 6, 10), "duty taken over");
        sim.add("o", { role: "orchestrator", seeds: [SwimSim.addressOf("4")], generation: 1 });
        sim.runUntil(() => all("o"), disseminationBoundMs(SWIM_LAN, 6), "duty handed back");
        expect(sim.converged()).toBe(true);
      }),
    SIM_TIMEOUT_MS,
  );
});

describe("figures (printed; asserted only to have converged)", () => {
  for (const n of [50, 200]) {
    test(`${n} members: formation, one join, one crash`, () =>
      withSeed(SEEDS[0]!, () => {
        const period = SWIM_LAN.probeIntervalMs;
        const { sim, formedMs } = formCluster(SEEDS[0]!, SWIM_LAN, n, JITTER, 60_000);
        sim.run(3000);
        sim.add("new", { seeds: [SwimSim.addressOf("1")] });
        const joinMs = sim.runUntil(
          () => sim.allSee("new", "UP") && sim.node("new").swim.size === n + 1,
          10_000,
          "join",
        );
        sim.run(1000);
        const crashedAt = sim.nowMs;
        sim.crash("2");
        const downMs = sim.runUntil(() => sim.allSee("2", "DOWN"), 20_000, "crash DOWN");
        expect(sim.falseDowns(new Set(["2"]))).toEqual([]);
        expect(sim.nowMs - crashedAt).toBe(downMs);
        log(
          `${n} members: all joined through one seed (10 ms apart) → identical views after ` +
            `${formedMs} ms = ${(formedMs / period).toFixed(1)} rounds; one more join visible ` +
            `everywhere after ${joinMs} ms = ${(joinMs / period).toFixed(1)} rounds; ` +
            `crash → DOWN everywhere after ${downMs} ms = ${(downMs / period).toFixed(1)} rounds`,
        );
      }), SIM_TIMEOUT_MS);
  }

  for (const n of [5, 50]) {
    test(`gossip bandwidth at ${n} members`, () =>
      withSeed(SEEDS[0]!, () => {
        const { sim } = formCluster(SEEDS[0]!, SWIM_LAN, n, JITTER);
        sim.run(10_000); // let the formation's gossip die down
        const byType = () => {
          const t: Record<string, number> = {};
          for (const m of sim.live()) {
            for (const [k, v] of Object.entries(m.swim.stats.byType)) t[k] = (t[k] ?? 0) + v.bytes;
          }
          return t;
        };
        const bytes0 = sim.bytesSent();
        const types0 = byType();
        const windowMs = 30_000;
        sim.run(windowMs);
        expect(sim.converged()).toBe(true);
        const perMemberPerS = (b: number) => b / n / (windowMs / 1000);
        const total = perMemberPerS(sim.bytesSent() - bytes0);
        expect(total).toBeGreaterThan(0);
        const types1 = byType();
        const parts = Object.keys(types1)
          .map((k) => `${k} ${perMemberPerS(types1[k]! - (types0[k] ?? 0)).toFixed(0)}`)
          .join(", ");
        log(
          `bandwidth, ${n} members, steady state: ${total.toFixed(0)} B/s per member ` +
            `(${parts})`,
        );
      }), SIM_TIMEOUT_MS);
  }
});

test("the harness replays a seed exactly", () => {
  const run = () => {
    const { sim } = formCluster(42, SWIM_LAN, 6, LOSSY);
    sim.crash("3");
    sim.run(3000);
    return JSON.stringify(sim.history);
  };
  expect(run()).toBe(run());
  expect(NO_FAULTS.dropRate).toBe(0);
});
