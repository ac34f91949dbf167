/** The real Scheduler (src/core/scheduler.ts): the runtime's clock, Math.random and timers. */
import type { Scheduler, Timer } from "../core/scheduler.ts";

type Handle = ReturnType<typeof setTimeout>;

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
      }, ms),
      interval: false,
    });
    return { timerId };
  },
  setInterval(fn, ms) {
    const timerId = nextId++;
    handles.set(timerId, { handle: setInterval(fn, ms), interval: true });
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
