/**
 * Quorum bookkeeping: call replicas and settle once enough have answered.
 * Pure promise composition; the caller supplies the call (local apply or a peer request).
 */

export interface QuorumOutcome<T> {
  /** Successful answers so far, in arrival order. */
  readonly ok: T[];
  /** Replicas that failed or timed out, with the reason. */
  readonly failed: { target: string; reason: string }[];
  /** True when `need` answers arrived. */
  readonly reached: boolean;
  /** Targets called because the hedge fired (not because a call failed). */
  readonly hedged: number;
}

/**
 * Arms a hedge for a `fanout: "need"` gather: call `fire` once after the hedge delay (the
 * caller's timer); returns what disarms it. See src/core/read-hedge.ts.
 */
export type Hedge = (fire: () => void) => () => void;

/**
 * Start `call` on targets and resolve as soon as `need` succeeded, or, when success is no longer
 * possible, once every call in flight has settled. With `fanout: "all"` every target is called at once (writes: all N replicas get the
 * record); with `fanout: "need"` only `need` are called first and each failure starts the next
 * untried target (reads: ask R, fall back to the others).
 * Calls still running when it resolves keep going; their results are dropped.
 * `deadline`, when given, is started at the first failure (the common case never pays for it) and
 * settles the outcome early: once its promise resolves, the outcome is what answered so far (each
 * target still in flight or untried is reported as failed with `deadlineReason`).
 * `hedge`, with `fanout: "need"`, is armed once the first calls are out: each time it fires
 * before the outcome is settled, the next untried target is called too (and it is armed again
 * while untried targets remain), so a slow or stopped target does not hold the answer until it
 * fails; the first `need` good answers win. Disarmed when the outcome settles.
 */
export function gather<T>(
  targets: readonly string[],
  need: number,
  fanout: "all" | "need",
  call: (target: string) => Promise<T>,
  deadline?: () => Promise<unknown>,
  deadlineReason = "no answer in time",
  hedge?: Hedge,
): Promise<QuorumOutcome<T>> {
  const ok: T[] = [];
  const failed: { target: string; reason: string }[] = [];
  return new Promise((resolve) => {
    let next = 0;
    let inFlight = 0;
    let done = false;
    let hedged = 0;
    let disarm: (() => void) | undefined;
    const pending = new Set<string>();
    const finish = (reached: boolean) => {
      if (done) return;
      done = true;
      disarm?.();
      resolve({ ok: [...ok], failed: [...failed], reached, hedged });
    };
    let deadlineStarted = false;
    const startDeadline = () => {
      if (deadline === undefined || deadlineStarted) return;
      deadlineStarted = true;
      void deadline().then(() => {
        if (done) return;
        for (const t of [...pending, ...targets.slice(next)]) {
          failed.push({ target: t, reason: deadlineReason });
        }
        finish(ok.length >= need);
      });
    };
    const launch = () => {
      const target = targets[next++]!;
      inFlight++;
      pending.add(target);
      call(target).then(
        (v) => {
          if (done) return;
          pending.delete(target);
          inFlight--;
          ok.push(v);
          if (ok.length >= need) finish(true);
          else if (inFlight === 0) finish(false);
        },
        (e: unknown) => {
          if (done) return;
          pending.delete(target);
          inFlight--;
          startDeadline();
          failed.push({ target, reason: e instanceof Error ? e.message : String(e) });
          const possible = ok.length + inFlight + (targets.length - next) >= need;
          if (possible && fanout === "need" && next < targets.length) launch();
          // Out of targets (or out of hope): report once the calls in flight have settled, so
          // the outcome says exactly how many answered.
          else if (inFlight === 0) finish(ok.length >= need);
        },
      );
    };
    const arm = () => {
      if (hedge === undefined || done || next >= targets.length) return;
      disarm = hedge(() => {
        disarm = undefined;
        if (done || next >= targets.length) return;
        hedged++;
        launch();
        arm();
      });
    };
    if (need <= 0) return finish(true);
    if (targets.length === 0) return finish(false);
    const first = fanout === "all" ? targets.length : Math.min(need, targets.length);
    for (let i = 0; i < first; i++) launch();
    if (fanout === "need") arm();
  });
}
