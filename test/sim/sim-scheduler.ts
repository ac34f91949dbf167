/**
 * The simulator's Scheduler (src/core/scheduler.ts): one simulated clock and one priority queue
 * of events ordered by (time, sequence number) for the whole cluster, and one `SimProc` per
 * running member (a "process") that hands it its clock, its random stream and its timers.
 *
 * Each event runs alone: its callback, then every microtask it queued (promise chains of the
 * Hono apps, the coordinator, ...) before the next event starts. Nothing in a simulated member
 * uses real timers, so the order of events, and therefore the whole run, is a function of the
 * seed. A process can be paused (its events are held until it resumes, as SIGSTOP holds a
 * process) or killed (its events are dropped; a restart is a new SimProc).
 * Not a test file itself (no `.test.` in the name).
 */
import type { Scheduler, Timer } from "../../src/core/scheduler.ts";
import { murmur3 } from "../../src/core/hash.ts";
import { type Rng, rng as seeded } from "../unit/seeded.ts";

/** A plausible wall clock to start from (2023-11-14), so versions look like real ones. */
export const SIM_EPOCH_MS = 1_700_000_000_000;

/** Events run per `run` call at most: a member stuck in a zero-delay loop is a harness bug. */
const EVENTS_MAX = 5_000_000;

interface Ev {
  atMs: number;
  seq: number;
  readonly owner: SimProc | undefined;
  readonly fn: () => void;
  cancelled: boolean;
}

function before(a: Ev, b: Ev): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

/** A binary min-heap of events. */
class EventHeap {
  readonly #a: Ev[] = [];
  get size(): number {
    return this.#a.length;
  }
  peek(): Ev | undefined {
    return this.#a[0];
  }
  push(e: Ev): void {
    const a = this.#a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): Ev | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Let every queued microtask run: one real macrotask boundary (nothing else uses timers). */
const drain = () => new Promise<void>((r) => setImmediate(r));

/** A random stream derived from the seed and a name, so adding a stream shifts no other. */
export function stream(seed: number, name: string): Rng {
  return seeded(murmur3(name, seed >>> 0));
}

export class SimWorld {
  /** Simulated time (ms since the epoch), the same for everyone; members add their skew. */
  nowMs = SIM_EPOCH_MS;
  /** Events run so far (a cost figure). */
  eventsRun = 0;
  /** Callbacks that threw (a member's bug shows up here and in the report). */
  readonly errors: string[] = [];
  readonly #heap = new EventHeap();
  #seq = 0;

  constructor(readonly seed: number) {}

  /** Milliseconds since the simulation started. */
  get elapsedMs(): number {
    return this.nowMs - SIM_EPOCH_MS;
  }

  schedule(atMs: number, owner: SimProc | undefined, fn: () => void): Ev {
    const e: Ev = {
      atMs: Math.max(atMs, this.nowMs),
      seq: this.#seq++,
      owner,
      fn,
      cancelled: false,
    };
    this.#heap.push(e);
    return e;
  }

  /** Queue an event again, now, after everything already due (a paused process resumes). */
  requeue(e: Ev): void {
    e.atMs = this.nowMs;
    e.seq = this.#seq++;
    this.#heap.push(e);
  }

  /** Run a callback at `delayMs` from now, owned by nobody (faults, the harness). */
  at(delayMs: number, fn: () => void): void {
    this.schedule(this.nowMs + delayMs, undefined, fn);
  }

  /** Run every event due up to `elapsedMs` since the start, then set the clock there. */
  async runUntil(elapsedMs: number): Promise<void> {
    const untilMs = SIM_EPOCH_MS + elapsedMs;
    let n = 0;
    for (;;) {
      const e = this.#heap.peek();
      if (e === undefined || e.atMs > untilMs) break;
      this.#heap.pop();
      if (e.cancelled) continue;
      const owner = e.owner;
      if (owner !== undefined) {
        if (owner.dead) continue;
        if (owner.paused) {
          owner.held.push(e);
          continue;
        }
      }
      this.nowMs = e.atMs;
      if (++n > EVENTS_MAX) {
        throw new Error(`more than ${EVENTS_MAX} events: a loop without delay?`);
      }
      this.eventsRun++;
      try {
        e.fn();
      } catch (err) {
        this.errors.push(`${owner?.name ?? "world"}: ${(err as Error).stack ?? err}`);
      }
      await drain();
    }
    this.nowMs = untilMs;
  }
}

/**
 * One process: a member's clock (simulated time plus its skew), its random stream and its
 * timers. Killed processes run nothing more; paused ones run their due events on resume.
 */
export class SimProc implements Scheduler {
  dead = false;
  paused = false;
  /** Events that came due while paused, in order. */
  readonly held: Ev[] = [];
  readonly #timers = new Map<number, Ev>();
  #nextTimerId = 1;

  constructor(
    readonly world: SimWorld,
    readonly name: string,
    readonly rng: Rng,
    public skewMs = 0,
  ) {}

  now(): number {
    return this.world.nowMs + this.skewMs;
  }

  random(): number {
    return this.rng.next();
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timerId = this.#nextTimerId++;
    this.#timers.set(
      timerId,
      this.world.schedule(this.world.nowMs + Math.max(0, ms), this, () => {
        this.#timers.delete(timerId);
        fn();
      }),
    );
    return { timerId };
  }

  setInterval(fn: () => void, ms: number): Timer {
    const timerId = this.#nextTimerId++;
    const period = Math.max(1, ms);
    const arm = () => {
      this.#timers.set(
        timerId,
        this.world.schedule(this.world.nowMs + period, this, () => {
          arm();
          fn();
        }),
      );
    };
    arm();
    return { timerId };
  }

  defer(fn: () => void): void {
    this.world.schedule(this.world.nowMs, this, fn);
  }

  clear(timer: Timer | undefined): void {
    if (timer === undefined) return;
    const e = this.#timers.get(timer.timerId);
    if (e === undefined) return;
    e.cancelled = true;
    this.#timers.delete(timer.timerId);
  }

  /** Run `fn` as this process after `delayMs` (a message arriving, a reply coming back). */
  deliver(delayMs: number, fn: () => void): void {
    this.world.schedule(this.world.nowMs + delayMs, this, fn);
  }

  kill(): void {
    this.dead = true;
    this.held.length = 0;
  }

  pause(): void {
    this.paused = true;
  }

  /** Run what came due meanwhile, in its order, before anything later. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held.splice(0);
    for (const e of held) if (!e.cancelled) this.world.requeue(e);
  }
}
