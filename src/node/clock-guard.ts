/**
 * The clock-skew bound's shell. A remote version whose wall time is more than --max-clock-skew
 * ahead of this member's clock (`withinSkew` in src/core/hlc.ts) is refused before it is stored
 * or observed, so one member with a fast clock, or one forged record, cannot drag every HLC in
 * the cluster forward for good, and no tombstone is stamped further in the future than the bound.
 *
 * Who calls it: the internal write and hint routes refuse a whole request (400) carrying any such
 * record (`refuseAhead`); the coordinator observes none of them (`admits`), and anti-entropy, which
 * folds pulled records in through the coordinator's `observe`, skips those it refuses. Every refused record is counted (`refused`, shown as
 * `clockSkewRefused` in the node's status) and a warning is logged at most once per
 * WARN_INTERVAL_MS, with the number refused since the last warning.
 */
import { aheadByMs, type Version, withinSkew } from "../core/hlc.ts";
import type { KvRecord } from "../core/record.ts";
import { DkvError } from "../http/errors.ts";
import type { Logger } from "../log.ts";

/** At most one skew warning per second: a peer far ahead would otherwise flood the log. */
const WARN_INTERVAL_MS = 1000;
/** Keys in messages are cut to this many characters (keys may be up to --max-key-bytes). */
const KEY_CHARS_SHOWN = 100;

export class ClockGuard {
  /** Records refused because their version was too far ahead, since start. */
  refused = 0;
  #lastWarnAtMs = Number.NEGATIVE_INFINITY;
  #sinceWarn = 0;

  constructor(
    readonly maxSkewMs: number,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /**
   * Throw a 400 DkvError naming the first record more than the bound ahead, if any; otherwise
   * return. Call it before applying or observing anything of the request, so a refused request
   * leaves nothing behind.
   */
  refuseAhead(records: readonly KvRecord[], from: string): void {
    const nowMs = this.now();
    let first: KvRecord | undefined;
    let n = 0;
    for (const r of records) {
      if (withinSkew(r.version, nowMs, this.maxSkewMs)) continue;
      first ??= r;
      n++;
    }
    if (first === undefined) return;
    const why = this.#describe(first.key, first.version, nowMs) +
      (n > 1 ? ` (and ${n - 1} more records)` : "");
    this.#count(n, `${from}: refused ${n} records: ${why}`);
    throw new DkvError("bad_request", `${why}; nothing of this request was stored`);
  }

  /**
   * May this record, read from a peer, be stored and observed? False (counted, warned) when its
   * version is more than the bound ahead of this member's clock.
   */
  admits(r: KvRecord, from: string): boolean {
    return this.admitsVersion(r.key, r.version, from);
  }

  /** The same for a bare version (e.g. a write answer's `newer`), `key` naming it in the warning. */
  admitsVersion(key: string, v: Version, from: string): boolean {
    const nowMs = this.now();
    if (withinSkew(v, nowMs, this.maxSkewMs)) return true;
    this.#count(1, `${from}: skipped ${this.#describe(key, v, nowMs)}`);
    return false;
  }

  #describe(key: string, v: Version, nowMs: number): string {
    return `version of key ${JSON.stringify(key.slice(0, KEY_CHARS_SHOWN))} from node ` +
      `${JSON.stringify(v.nodeId)} is ${aheadByMs(v, nowMs)} ms ahead of this ` +
      `member's clock; the limit (--max-clock-skew) is ${this.maxSkewMs} ms`;
  }

  #count(n: number, message: string): void {
    this.refused += n;
    this.#sinceWarn += n;
    const nowMs = this.now();
    if (nowMs - this.#lastWarnAtMs < WARN_INTERVAL_MS) return;
    const earlier = this.#sinceWarn - n;
    this.log.warn(
      `clock skew: ${message}` +
        (earlier > 0 ? ` (${earlier} more refused since the last warning)` : ""),
    );
    this.#lastWarnAtMs = nowMs;
    this.#sinceWarn = 0;
  }
}
