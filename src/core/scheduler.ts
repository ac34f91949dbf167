/**
 * The one seam through which a member sees time, randomness and timers. Everything in a member
 * that waits, reads the clock or draws a random number goes through a Scheduler it was handed,
 * never through `Date.now`, `Math.random`, `setTimeout` or `AbortSignal.timeout` directly.
 *
 * Two implementations: the real one (src/platform/scheduler.ts: the runtime's clock and timers)
 * and the simulator's (test/sim/: a simulated clock and a seeded queue of timers, so a whole
 * cluster runs in one process and a seed replays the same history bit for bit).
 */

/** An opaque handle for a pending timer. */
export interface Timer {
  readonly timerId: number;
}

export interface Scheduler {
  /** Wall-clock time in ms since the epoch (may be skewed per member in a simulation). */
  now(): number;
  /** A uniformly distributed number in [0, 1). */
  random(): number;
  /** Run `fn` once after `ms`. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Run `fn` every `ms` until cleared. */
  setInterval(fn: () => void, ms: number): Timer;
  /** Run `fn` after the current turn of the event loop (no delay; before later timers). */
  defer(fn: () => void): void;
  /** Cancel a pending timer (a no-op when it already ran or was cleared). */
  clear(timer: Timer | undefined): void;
}

/** Resolves after `ms` of the scheduler's time. */
export function sleep(s: Scheduler, ms: number): Promise<void> {
  return new Promise((resolve) => s.setTimeout(resolve, ms));
}

/**
 * An AbortSignal that fires after `ms` of the scheduler's time, as `AbortSignal.timeout` does
 * (the abort reason is a DOMException named "TimeoutError"). The timer is cleared by `done`.
 */
export function timeoutSignal(s: Scheduler, ms: number): { signal: AbortSignal; done(): void } {
  const ctl = new AbortController();
  const t = s.setTimeout(
    () => ctl.abort(new DOMException(`timed out after ${ms}ms`, "TimeoutError")),
    ms,
  );
  return { signal: ctl.signal, done: () => s.clear(t) };
}
