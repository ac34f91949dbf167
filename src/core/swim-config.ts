/**
 * SWIM timing and limits, with the formulas that derive the rest from cluster size n (members
 * not DOWN or LEFT, ourselves included). Units are in the names.
 *
 *   probe period        = probeIntervalMs · (health + 1)      (Lifeguard local health)
 *   probe timeout       = probeTimeoutMs  · (health + 1)
 *   suspicion min       = suspicionMult · max(1, log10(n)) · probeIntervalMs
 *   suspicion max       = suspicionMaxMult · suspicion min
 *   suspicion timeout   = max(min, max − (max − min) · ln(c + 1) / ln(k + 1))
 *                         c = independent confirmations so far, k = suspicionConfirmations
 *   retransmits         = retransmitMult · ceil(log10(n + 1))   per update, per member
 *   push-pull period    = pushPullIntervalMs · (1 + ceil(log2(n / pushPullScaleMembers)))
 *                         once n > pushPullScaleMembers (full tables grow with n)
 */

export interface SwimConfig {
  /** One member is probed per period; the period is this times (health + 1). */
  readonly probeIntervalMs: number;
  /** Wait this long (times health + 1) for a direct ack before asking helpers. */
  readonly probeTimeoutMs: number;
  /** Helpers asked to probe indirectly (ping-req) after a direct timeout. */
  readonly indirectChecks: number;
  /** Suspicion minimum, in probe intervals, before the log10(n) factor. */
  readonly suspicionMult: number;
  /** Suspicion maximum (no confirmations) as a multiple of the minimum. */
  readonly suspicionMaxMult: number;
  /** Independent confirmations (k) that shrink a suspicion timeout to its minimum. */
  readonly suspicionConfirmations: number;
  /** A full-table exchange with one random member, this often (scaled above 32 members). */
  readonly pushPullIntervalMs: number;
  /** Above this many members, push-pull slows down logarithmically. */
  readonly pushPullScaleMembers: number;
  /** Each update is piggybacked this many times per ceil(log10(n + 1)). */
  readonly retransmitMult: number;
  /** Updates carried by one message at most. */
  readonly piggybackMax: number;
  /** Local health score ceiling: timeouts stretch at most (localHealthMax + 1) times. */
  readonly localHealthMax: number;
  /** A gap between ticks longer than this many probe periods means we were paused. */
  readonly tickGapMult: number;
  /** Members held at most; news about further unknown members is dropped (and counted). */
  readonly membersMax: number;
  /** Indirect probes run on behalf of others at once; further ping-reqs are ignored. */
  readonly relaysMax: number;
  /** Seed addresses contacted by one join at most. */
  readonly joinSeedsMax: number;
  /**
   * News whose incarnation is more than this ahead of our clock is dropped: incarnations are
   * start times in ms (plus a few refutations), so such a record is forged or from a clock that
   * is badly wrong. Without a bound, a record at 2⁵³ − 1 could never be beaten, not even by the
   * member's own refutation (one more is not a safe integer); under the bound a refutation is
   * always possible.
   */
  readonly incarnationAheadMsMax: number;
  /**
   * A member out of the ring (LEFT, or DOWN and taken out) this long is forgotten: dropped from
   * the table, and older news of it ignored for as long again (--forget-after).
   */
  readonly forgetAfterMs: number;
}

/**
 * LAN defaults, tuned so that a crashed member is DOWN everywhere within about 2 s on loopback
 * (memberlist's LAN preset takes 5–6 s: 1 s probes, suspicion 4·log10(n) s).
 */
export const SWIM_LAN: SwimConfig = {
  // Each member probes one member every 200 ms, so with n members every member is probed about
  // once per 200 ms by somebody: a crash is first noticed within a few hundred ms.
  probeIntervalMs: 200,
  // Loopback/LAN round trips over HTTP are a few ms; 100 ms absorbs GC pauses and a busy event
  // loop, and leaves the other 100 ms of the period for the indirect round.
  probeTimeoutMs: 100,
  // Three independent paths (memberlist's default): with 10% loss per message a live member
  // fails a whole probe with p ≈ 0.19 · 0.34³ ≈ 0.8%, and suspicion still gives it time to refute.
  indirectChecks: 3,
  // Minimum suspicion 2 periods = 400 ms (n ≤ 10): reached only with k confirmations, i.e. when
  // several members failed to reach it independently; that is what makes ≤ 2 s possible.
  suspicionMult: 2,
  // Maximum 6 × min = 2.4 s (n ≤ 10): a lone accuser (maybe the slow one) waits long enough for
  // the suspect to hear of it and refute several times over.
  suspicionMaxMult: 6,
  // Lifeguard's k = 3: three other members agreeing is strong evidence.
  suspicionConfirmations: 3,
  // Full-table anti-entropy every 5 s (memberlist uses 30 s; our tables are small JSON, a
  // 50-member table is ≈ 5 KB) heals anything piggybacking missed.
  pushPullIntervalMs: 5000,
  // memberlist's threshold: beyond 32 members full tables get big, exchange them less often.
  pushPullScaleMembers: 32,
  // 6 · ceil(log10(n + 1)) transmissions per member that holds an update. memberlist uses 4,
  // but it also gossips to 3 random members every 200 ms; our updates ride only on probe
  // traffic (≈ 2 messages per member per period). Simulated: with 4, 4% of joins into 8 members
  // missed someone until the next push-pull (seconds); with 6, none in 600 joins took > 0.9 s.
  // Costs bytes only while there is news; quiet clusters send the same messages either way.
  retransmitMult: 6,
  // A record is ≈ 100 bytes of JSON; 8 keep a ping under ≈ 1 KB, one UDP-sized packet.
  piggybackMax: 8,
  // memberlist's AwarenessMaxMultiplier 8: a sick member stretches its timeouts up to 8 times.
  localHealthMax: 7,
  // Ticks come far more often than probe periods; a gap of 2 periods is a pause or starvation.
  tickGapMult: 2,
  // Bounds for the tables: far above any cluster we run, small enough to stay in memory.
  membersMax: 1024,
  relaysMax: 64,
  joinSeedsMax: 16,
  // 30 days. Not --max-clock-skew: a member whose clock is a day ahead stays a member (its
  // versions are refused, its coordinator answers 503) rather than vanishing from every table,
  // and a refutation always has 2⁵³ − now − 30 days of room, so nobody is evicted for good.
  incarnationAheadMsMax: 30 * 86_400_000,
  // A day: news of a departed member stops travelling within seconds; a day leaves it listed
  // (as LEFT or DOWN) long enough for an operator to see what happened.
  forgetAfterMs: 86_400_000,
};

/** Faster timings for tests on one machine: detection well under a second. */
export const SWIM_LOCAL: SwimConfig = {
  ...SWIM_LAN,
  // Half the LAN period: still 50 ms for loopback round trips on a busy 2-core test machine.
  probeIntervalMs: 100,
  probeTimeoutMs: 50,
  // Minimum 200 ms, maximum 4 × 200 = 800 ms for n ≤ 10: tests wait less for a crash verdict.
  suspicionMaxMult: 4,
  // Anti-entropy every second so a test's join or refutation never waits long on bad luck.
  pushPullIntervalMs: 1000,
};

/** Throws on a configuration that cannot work (a programmer or flag-parsing error). */
export function validateSwimConfig(c: SwimConfig): void {
  const positive: (keyof SwimConfig)[] = [
    "probeIntervalMs",
    "probeTimeoutMs",
    "suspicionMult",
    "suspicionMaxMult",
    "suspicionConfirmations",
    "pushPullIntervalMs",
    "pushPullScaleMembers",
    "retransmitMult",
    "piggybackMax",
    "tickGapMult",
    "membersMax",
    "joinSeedsMax",
    "incarnationAheadMsMax",
    "forgetAfterMs",
  ];
  for (const k of positive) {
    if (!(c[k] > 0)) throw new Error(`swim config: ${k} must be > 0, got ${c[k]}`);
  }
  if (c.probeTimeoutMs >= c.probeIntervalMs) {
    throw new Error("swim config: probeTimeoutMs must be below probeIntervalMs");
  }
  if (c.suspicionMaxMult < 1) throw new Error("swim config: suspicionMaxMult must be ≥ 1");
  if (c.tickGapMult < 1) throw new Error("swim config: tickGapMult must be ≥ 1");
  if (c.indirectChecks < 0 || c.localHealthMax < 0 || c.relaysMax < 0) {
    throw new Error("swim config: indirectChecks, localHealthMax, relaysMax must be ≥ 0");
  }
}

/** Suspicion timeout bounds for n live members. */
export function suspicionBoundsMs(c: SwimConfig, n: number): { minMs: number; maxMs: number } {
  const minMs = c.suspicionMult * Math.max(1, Math.log10(Math.max(1, n))) * c.probeIntervalMs;
  return { minMs, maxMs: c.suspicionMaxMult * minMs };
}

/** Lifeguard: the timeout after `confirmations` independent confirmations out of k. */
export function suspicionTimeoutMs(
  minMs: number,
  maxMs: number,
  confirmations: number,
  k: number,
): number {
  const frac = Math.log(confirmations + 1) / Math.log(k + 1);
  return Math.max(minMs, Math.floor(maxMs - frac * (maxMs - minMs)));
}

/** How many times each update is piggybacked, for n live members. */
export function retransmitLimit(c: SwimConfig, n: number): number {
  return c.retransmitMult * Math.max(1, Math.ceil(Math.log10(n + 1)));
}

/** Push-pull period for n live members. */
export function pushPullPeriodMs(c: SwimConfig, n: number): number {
  if (n <= c.pushPullScaleMembers) return c.pushPullIntervalMs;
  return c.pushPullIntervalMs * (1 + Math.ceil(Math.log2(n / c.pushPullScaleMembers)));
}
