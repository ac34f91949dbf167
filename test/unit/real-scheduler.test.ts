/** The real scheduler (src/platform/scheduler.ts): delays beyond what runtime timers hold. */
import { afterEach, expect, test } from "bun:test";
import { realScheduler, TIMER_MS_MAX } from "../../src/platform/scheduler.ts";

const realSetTimeout = globalThis.setTimeout;
const realSetInterval = globalThis.setInterval;
afterEach(() => {
  globalThis.setTimeout = realSetTimeout;
  globalThis.setInterval = realSetInterval;
});

test("a delay over 2^31 - 1 ms is held at 2^31 - 1, not fired after 1 ms (fuzz finding)", () => {
  const asked: number[] = [];
  const spy = ((fn: () => void, ms: number) => {
    asked.push(ms);
    return realSetTimeout(fn, 0);
  }) as unknown as typeof setTimeout;
  globalThis.setTimeout = spy;
  globalThis.setInterval = spy as unknown as typeof setInterval;
  const timers = [
    realScheduler.setTimeout(() => {}, 1000 * 3_600_000),
    realScheduler.setTimeout(() => {}, 2 ** 31),
    realScheduler.setTimeout(() => {}, 2500),
    realScheduler.setInterval(() => {}, 2 ** 40),
  ];
  for (const t of timers) realScheduler.clear(t);
  expect(asked).toEqual([TIMER_MS_MAX, TIMER_MS_MAX, 2500, TIMER_MS_MAX]);
  expect(TIMER_MS_MAX).toBe(2_147_483_647);
});
