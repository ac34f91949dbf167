/**
 * Deterministic simulation of many Swim instances in one process: an in-memory network with a
 * manual clock advanced in small steps, a seeded PRNG, and injected faults (message drops,
 * random delays, crashes, pauses). Not a test file itself (no `.test.` in the name).
 *
 * Every random choice (network and every member's rng) comes from one seed, so a seed replays a
 * run exactly: `SEED=1234 bun test test/sim`.
 */
import {
  type Outbound,
  Swim,
  type SwimConfig,
  type SwimMember,
  type SwimMsg,
} from "../../src/core/swim.ts";
import type { MemberState, Role } from "../../src/core/membership.ts";
import { type Rng, rng as seeded } from "../unit/seeded.ts";

export interface Faults {
  /** Probability that any one message is lost. */
  dropRate: number;
  /** Each message is delivered after a uniform random delay in [min, max]. */
  delayMinMs: number;
  delayMaxMs: number;
}

export const NO_FAULTS: Faults = { dropRate: 0, delayMinMs: 1, delayMaxMs: 5 };

export interface SimNode {
  readonly id: string;
  readonly address: string;
  readonly swim: Swim;
  crashed: boolean;
  /** Paused (SIGSTOP): neither ticks nor handles until then. */
  pausedUntilMs: number | undefined;
  /** While paused, incoming messages wait here (a socket buffer) or, if false, are lost. */
  keepInput: boolean;
  readonly held: SwimMsg[];
}

/** One change in one member's view: `observer` now holds `member`. */
export interface Observation {
  readonly atMs: number;
  readonly observer: string;
  readonly member: SwimMember;
}

interface InFlight {
  readonly atMs: number;
  readonly order: number;
  readonly to: string;
  readonly msg: SwimMsg;
}

/** Messages held for a paused member at most (a kernel socket buffer is bounded too). */
const HELD_MAX = 10_000;

export class SwimSim {
  nowMs = 0;
  readonly rng: Rng;
  readonly nodes = new Map<string, SimNode>();
  readonly history: Observation[] = [];
  delivered = 0;
  dropped = 0;
  readonly #byAddress = new Map<string, SimNode>();
  readonly #heap: InFlight[] = [];
  #order = 0;

  constructor(
    readonly seed: number,
    readonly config: SwimConfig,
    public faults: Faults = NO_FAULTS,
    readonly stepMs = 10,
  ) {
    this.rng = seeded(seed);
  }

  static addressOf(id: string, generation = 0): string {
    return `10.0.${generation}.${id}:7946`;
  }

  /**
   * Start a member. With `seeds` it joins through them (push-pull); without, it starts alone.
   * `generation` gives a restarted member a new address and a higher incarnation.
   */
  add(
    id: string,
    opts: { seeds?: string[]; role?: Role; generation?: number; inRing?: boolean } = {},
  ): SimNode {
    const generation = opts.generation ?? 0;
    const address = SwimSim.addressOf(id, generation);
    const self: SwimMember = {
      id,
      address,
      role: opts.role ?? "node",
      // Like the real nodes: the start time, so a restart always has a higher incarnation.
      incarnation: this.nowMs + generation,
      state: "UP",
      inRing: opts.inRing ?? true,
    };
    const memberRng = seeded(this.rng.int(2 ** 32));
    const node: SimNode = {
      id,
      address,
      swim: new Swim(self, this.config, memberRng.next),
      crashed: false,
      pausedUntilMs: undefined,
      keepInput: true,
      held: [],
    };
    const old = this.nodes.get(id);
    if (old !== undefined) this.#byAddress.delete(old.address);
    this.nodes.set(id, node);
    this.#byAddress.set(address, node);
    this.#record(node);
    if (opts.seeds !== undefined) this.#send(node.swim.join(opts.seeds));
    return node;
  }

  node(id: string): SimNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no member ${id}`);
    return n;
  }

  /** Members that run (not crashed), paused ones included. */
  live(): SimNode[] {
    return [...this.nodes.values()].filter((n) => !n.crashed);
  }

  crash(id: string): void {
    const n = this.node(id);
    n.crashed = true;
    n.held.length = 0;
  }

  /**
   * Stop a member for `forMs`, then let it run on with its clock jumped. With `keepInput` what
   * arrives meanwhile is handled on resume (SIGSTOP with a socket buffer); without, it is lost
   * (the senders' HTTP requests time out).
   */
  pause(id: string, forMs: number, keepInput = true): void {
    const n = this.node(id);
    n.pausedUntilMs = this.nowMs + forMs;
    n.keepInput = keepInput;
  }

  /** Advance the clock one step: deliver due messages, then tick every running member. */
  step(): void {
    this.nowMs += this.stepMs;
    while (this.#heap.length > 0 && this.#heap[0]!.atMs <= this.nowMs) this.#deliver(this.#pop());
    for (const n of this.rng.shuffle([...this.nodes.values()])) {
      if (n.crashed) continue;
      if (n.pausedUntilMs !== undefined) {
        if (this.nowMs < n.pausedUntilMs) continue;
        this.#resume(n);
        continue;
      }
      this.#send(n.swim.tick(this.nowMs));
      this.#record(n);
    }
  }

  /** Run for `ms`, calling `check` after every step. */
  run(ms: number, check?: () => void): void {
    const end = this.nowMs + ms;
    while (this.nowMs < end) {
      this.step();
      check?.();
    }
  }

  /** Run until `pred` holds; returns the time it took, or throws after `maxMs`. */
  runUntil(pred: () => boolean, maxMs: number, what: string, check?: () => void): number {
    const start = this.nowMs;
    while (!pred()) {
      if (this.nowMs - start >= maxMs) {
        throw new Error(`${what}: not reached within ${maxMs} ms (seed ${this.seed})`);
      }
      this.step();
      check?.();
    }
    return this.nowMs - start;
  }

  /** State of `subject` in the view of `observer`. */
  stateOf(observer: string, subject: string): MemberState | undefined {
    return this.node(observer).swim.member(subject)?.state;
  }

  /** True when every running, unpaused member holds exactly the same table. */
  converged(): boolean {
    const [first, ...others] = this.live().filter((n) => n.pausedUntilMs === undefined);
    if (first === undefined) return true;
    const ref = first.swim.members();
    return others.every((n) =>
      n.swim.size === ref.length && ref.every((r) => sameRecord(n.swim.member(r.id), r))
    );
  }

  /** True when every running member (other than `subject`) sees `subject` in `state`. */
  allSee(subject: string, state: MemberState): boolean {
    return this.live().every((n) => n.id === subject || this.stateOf(n.id, subject) === state);
  }

  /** First time `observer` saw `subject` in `state` at or after `sinceMs`. */
  firstSeen(
    observer: string,
    subject: string,
    state: MemberState,
    sinceMs = 0,
  ): number | undefined {
    for (const o of this.history) {
      if (o.atMs < sinceMs || o.observer !== observer) continue;
      if (o.member.id === subject && o.member.state === state) return o.atMs;
    }
    return undefined;
  }

  /** Observations of any member other than those in `except` being DOWN, by anyone. */
  falseDowns(except: ReadonlySet<string>): Observation[] {
    return this.history.filter((o) => o.member.state === "DOWN" && !except.has(o.member.id));
  }

  /** Total bytes sent by every member (JSON length estimate). */
  bytesSent(): number {
    let b = 0;
    for (const n of this.nodes.values()) b += n.swim.stats.bytesSent;
    return b;
  }

  #resume(n: SimNode): void {
    n.pausedUntilMs = undefined;
    const held = n.held.splice(0);
    // After SIGCONT either the timer or the buffered input may run first: try both orders.
    const tickFirst = this.rng.next() < 0.5;
    if (tickFirst) this.#send(n.swim.tick(this.nowMs));
    for (const msg of held) this.#send(n.swim.handle(msg, this.nowMs));
    if (!tickFirst) this.#send(n.swim.tick(this.nowMs));
    this.#record(n);
  }

  #deliver(m: InFlight): void {
    const n = this.#byAddress.get(m.to);
    if (n === undefined || n.crashed) {
      this.dropped++;
      return;
    }
    if (n.pausedUntilMs !== undefined) {
      if (n.keepInput && n.held.length < HELD_MAX) n.held.push(m.msg);
      else this.dropped++;
      return;
    }
    this.delivered++;
    this.#send(n.swim.handle(m.msg, this.nowMs));
    this.#record(n);
  }

  #send(outs: readonly Outbound[]): void {
    const f = this.faults;
    for (const o of outs) {
      if (f.dropRate > 0 && this.rng.next() < f.dropRate) {
        this.dropped++;
        continue;
      }
      const delay = f.delayMinMs + this.rng.int(f.delayMaxMs - f.delayMinMs + 1);
      this.#push({ atMs: this.nowMs + delay, order: this.#order++, to: o.to, msg: o.msg });
    }
  }

  #record(n: SimNode): void {
    for (const member of n.swim.drainChanges()) {
      this.history.push({ atMs: this.nowMs, observer: n.id, member });
    }
  }

  // A binary min-heap on (atMs, order): deterministic delivery order.
  #less(a: InFlight, b: InFlight): boolean {
    return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order);
  }

  #push(x: InFlight): void {
    const h = this.#heap;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): InFlight {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

const sameRecord = (a: SwimMember | undefined, b: SwimMember): boolean =>
  a !== undefined && a.incarnation === b.incarnation && a.state === b.state &&
  a.inRing === b.inRing && a.address === b.address && a.role === b.role;

/** Ids "1".."n" (short, so addresses read like 10.0.0.7:7946). */
export const ids = (n: number, from = 1): string[] =>
  Array.from({ length: n }, (_, i) => String(from + i));

/**
 * A cluster of n members formed the way real nodes form one: member 1 starts alone, the others
 * join through it at staggered times. Runs until every member holds the same full table.
 */
export function formCluster(
  seed: number,
  config: SwimConfig,
  n: number,
  faults: Faults = NO_FAULTS,
  maxMs = 30_000,
): { sim: SwimSim; formedMs: number } {
  const sim = new SwimSim(seed, config, faults);
  const [first, ...rest] = ids(n);
  sim.add(first!);
  for (const id of rest) {
    sim.step();
    sim.add(id, { seeds: [SwimSim.addressOf(first!)] });
  }
  const formedMs = sim.runUntil(
    () => sim.live().every((m) => m.swim.size === n) && sim.converged(),
    maxMs,
    `cluster of ${n} formed`,
  );
  return { sim, formedMs };
}

/** Seeds for a test: SEED=… replays one; otherwise a fixed list. */
export function seeds(defaults: readonly number[]): readonly number[] {
  const env = process.env.SEED;
  return env === undefined || env === "" ? defaults : [Number(env)];
}

/** Run `fn` for a seed; a failure names the seed so it can be replayed with SEED=…. */
export function withSeed<T>(seed: number, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`[seed ${seed}] replay with SEED=${seed}: ${msg}`, { cause: e });
  }
}
