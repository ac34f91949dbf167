/**
 * Hedged reads (Cassandra's speculative retry): a read that has not had its answers after a short
 * delay asks one more replica, and the first good answers win. The delay follows observed peer
 * read latency (a percentile over the last reads), bounded below (so that ordinary jitter does not
 * double the traffic) and above (so that the hedge still comes well before --request-timeout).
 * Pure: latencies come in as numbers, no clock or timers here.
 */

/** `--read-hedge`: off, a fixed delay, or a percentile of observed peer read latency. */
export type ReadHedgePolicy =
  | { readonly kind: "off" }
  | { readonly kind: "fixed"; readonly delayMs: number }
  | {
    readonly kind: "percentile";
    /** 50 ≤ p < 100: e.g. 99 hedges about one read in a hundred when nothing is wrong. */
    readonly percentile: number;
    /** Bounds of the derived delay (--read-hedge-min, --read-hedge-max). */
    readonly minMs: number;
    readonly maxMs: number;
  };

/** Latency samples kept (the newest); the percentile is recomputed every RECOMPUTE_EVERY new ones. */
export const LATENCY_SAMPLES_MAX = 1024;
const RECOMPUTE_EVERY = 128;
/** Fewer samples than this: no percentile yet (the hedge waits the upper bound). */
export const LATENCY_SAMPLES_MIN = 32;

/** The last LATENCY_SAMPLES_MAX latencies (ms) and a cached percentile of them. */
export class LatencyWindow {
  readonly #samples = new Float64Array(LATENCY_SAMPLES_MAX);
  #count = 0;
  #next = 0;
  #sinceComputed = Infinity;
  #cached: number | undefined;

  constructor(readonly percentile: number) {
    if (!(percentile >= 50 && percentile < 100)) {
      throw new Error(`percentile must be in [50, 100), got ${percentile}`);
    }
  }

  record(ms: number): void {
    this.#samples[this.#next] = ms;
    this.#next = (this.#next + 1) % LATENCY_SAMPLES_MAX;
    if (this.#count < LATENCY_SAMPLES_MAX) this.#count++;
    this.#sinceComputed++;
  }

  get count(): number {
    return this.#count;
  }

  /** The percentile of the kept samples (nearest rank), or undefined while there are too few. */
  value(): number | undefined {
    if (this.#count < LATENCY_SAMPLES_MIN) return undefined;
    if (this.#sinceComputed >= RECOMPUTE_EVERY) {
      const sorted = this.#samples.slice(0, this.#count).sort();
      const rank = Math.ceil((this.percentile / 100) * this.#count) - 1;
      this.#cached = sorted[Math.min(this.#count - 1, Math.max(0, rank))]!;
      this.#sinceComputed = 0;
    }
    return this.#cached;
  }
}

/**
 * How long a read waits for its answers before asking one more replica, or undefined for never.
 * A percentile policy waits its upper bound until enough latencies were seen. Never more than
 * half of --request-timeout: a hedge after the timeout would be no hedge.
 */
export function hedgeDelayMs(
  policy: ReadHedgePolicy,
  window: LatencyWindow | undefined,
  requestTimeoutMs: number,
): number | undefined {
  const cap = Math.max(1, Math.floor(requestTimeoutMs / 2));
  switch (policy.kind) {
    case "off":
      return undefined;
    case "fixed":
      return Math.min(policy.delayMs, cap);
    case "percentile": {
      const seen = window?.value();
      const ms = seen === undefined
        ? policy.maxMs
        : Math.min(policy.maxMs, Math.max(policy.minMs, Math.ceil(seen)));
      return Math.min(ms, cap);
    }
  }
}
