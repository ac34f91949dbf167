/** The real Scheduler (src/core/scheduler.ts): the runtime's clock, Math.random and timers. */
import type { Scheduler, Timer } from "../core/scheduler.ts";

type Handle = ReturnType<typeof setTimeout>;

/**
 * Longest delay the runtime's timers hold (a signed 32-bit count of ms, about 24.8 days): a
 * longer one fires after 1 ms instead (Node, Bun and Deno alike), so `--request-timeout 1000h`
 * would time every call out at once. Longer delays wait this long instead.
 */
export const TIMER_MS_MAX = 2 ** 31 - 1;
const delay = (ms: number) => Math.min(ms, TIMER_MS_MAX);

let nextId = 1;
const handles = new Map<number, { handle: Handle; interval: boolean }>();

export const realScheduler: Scheduler = {
  now: () => Date.now(),
  random: () => Math.random(),
  setTimeout(fn, ms) {
    const timerId = nextId++;
    handles.set(timerId, {
      handle: setTimeout(() => {
        handles.delete(timerId);
        fn();
      }, delay(ms)),
      interval: false,
    });
    return { timerId };
  },
  setInterval(fn, ms) {
    const timerId = nextId++;
    handles.set(timerId, { handle: setInterval(fn, delay(ms)), interval: true });
    return { timerId };
  },
  defer(fn) {
    setImmediate(fn);
  },
  clear(timer: Timer | undefined) {
    if (timer === undefined) return;
    const h = handles.get(timer.timerId);
    if (h === undefined) return;
    handles.delete(timer.timerId);
    if (h.interval) clearInterval(h.handle);
    else clearTimeout(h.handle);
  },
};
