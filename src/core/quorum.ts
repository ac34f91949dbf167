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
}

/**
 * Start `call` on targets and resolve as soon as `need` succeeded, or, when success is no longer
 * possible, once every call in flight has settled. With `fanout: "all"` every target is called at once (writes: all N replicas get the
 * record); with `fanout: "need"` only `need` are called first and each failure starts the next
 * untried target (reads: ask R, fall back to the others).
 * Calls still running when it resolves keep going; their results are dropped.
 * `deadline`, when given, is started at the first failure (the common case never pays for it) and
 * settles the outcome early: once its promise resolves, the outcome is what answered so far (each
 * target still in flight or untried is reported as failed with `deadlineReason`).
 */
export function gather<T>(
  targets: readonly string[],
  need: number,
  fanout: "all" | "need",
  call: (target: string) => Promise<T>,
  deadline?: () => Promise<unknown>,
  deadlineReason = "no answer in time",
): Promise<QuorumOutcome<T>> {
  const ok: T[] = [];
  const failed: { target: string; reason: string }[] = [];
  return new Promise((resolve) => {
    let next = 0;
    let inFlight = 0;
    let done = false;
    const pending = new Set<string>();
    const finish = (reached: boolean) => {
      if (done) return;
      done = true;
      resolve({ ok: [...ok], failed: [...failed], reached });
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
    if (need <= 0) return finish(true);
    if (targets.length === 0) return finish(false);
    const first = fanout === "all" ? targets.length : Math.min(need, targets.length);
    for (let i = 0; i < first; i++) launch();
  });
}
