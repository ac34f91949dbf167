/**
 * The Redis commands that read a key and write it back in one step, as conditions and mutations
 * of a conditional write (src/core/paxos.ts): the coordinator checks the condition and applies
 * the mutation to the record its Paxos round read, so each command is linearizable per key. Pure
 * and deterministic (they run in the proposal; the time comes in as `nowMs`).
 *
 * Integers are Redis's: 64-bit signed (bigint here, not the JS number of HTTP's `op=incr`, whose
 * range is ±2^53-1), written as decimal text. Floats are x87 long doubles (long-double.ts).
 * A failure's `why` is Redis's own error text (the RESP front answers `-ERR <why>`).
 */
import { addLongDouble, formatLongDouble, parseLongDouble } from "./long-double.ts";
import type { Applied } from "./paxos.ts";
import { isPresent, type KvRecord, type Value } from "./record.ts";

export const NOT_INTEGER = "value is not an integer or out of range";
export const OVERFLOW = "increment or decrement would overflow";
export const NOT_FLOAT = "value is not a valid float";
export const NAN_OR_INF = "increment would produce NaN or Infinity";

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;
const INT64 = /^-?[1-9][0-9]{0,18}$|^0$/;

/** Redis's string2ll: decimal, no sign but "-", no leading zeros, no "-0", within int64. */
export function parseInt64(text: string): bigint | undefined {
  if (!INT64.test(text)) return undefined;
  const n = BigInt(text);
  return n > INT64_MAX || n < INT64_MIN ? undefined : n;
}

/**
 * What an expiry command requires of the key's expiry (EXPIRE's NX/XX/GT/LT, PERSIST): the key
 * is present, and each flag given holds of its current expiry (none counts as infinite).
 */
export interface ExpiryCondition {
  readonly kind: "expiry";
  /** NX: no expiry yet. */
  readonly nx?: true;
  /** XX: an expiry already. */
  readonly xx?: true;
  /** GT: an expiry, earlier than this wall ms. */
  readonly gt?: number;
  /** LT: no expiry, or a later one than this wall ms. */
  readonly lt?: number;
}

export type RedisCondition = ExpiryCondition;

export type RedisMutation =
  /** SET KEEPTTL: the new value with the current record's expiry. */
  | { readonly kind: "putKeepTtl"; readonly value: Value }
  /** INCR, DECR, INCRBY, DECRBY: int64 arithmetic; the ttl is kept. */
  | { readonly kind: "incrInt64"; readonly by: bigint }
  /**
   * INCRBYFLOAT: the increment as the client wrote it (parsed here, as Redis does); `bytesMax`:
   * the longest result text (--max-value-bytes; a long double prints in up to ~4,950 bytes).
   */
  | { readonly kind: "incrFloat"; readonly by: string; readonly bytesMax: number }
  /**
   * EXPIRE family, GETEX, PERSIST: the value kept, the expiry set to `at` (null: none); an `at`
   * already past deletes the key (Redis: a non-positive EXPIRE deletes).
   */
  | { readonly kind: "expireAt"; readonly at: number | null };

export function holdsRedis(
  c: RedisCondition,
  current: KvRecord | undefined,
  nowMs: number,
): boolean {
  if (!isPresent(current, nowMs)) return false;
  const at = current.expiresAt;
  if (c.nx && at !== undefined) return false;
  if (c.xx && at === undefined) return false;
  if (c.gt !== undefined && (at === undefined || c.gt <= at)) return false;
  if (c.lt !== undefined && at !== undefined && c.lt >= at) return false;
  return true;
}

function valueText(v: Value): string {
  // Redis compares bytes; a binary value is never a number, and latin1 keeps it one.
  if (typeof v === "string") return v;
  let s = "";
  for (const b of v) s += String.fromCharCode(b);
  return s;
}

function written(value: Value, expiresAt: number | undefined): Applied {
  return expiresAt === undefined
    ? { ok: true, value, tombstone: false }
    : { ok: true, value, tombstone: false, expiresAt };
}

/** Apply `m` to `live` (the key's present record, or undefined when absent). */
export function applyRedis(m: RedisMutation, live: KvRecord | undefined, nowMs: number): Applied {
  const keep = live?.expiresAt;
  switch (m.kind) {
    case "putKeepTtl":
      return written(m.value, keep);
    case "incrInt64": {
      const old = live === undefined ? 0n : parseInt64(valueText(live.value));
      if (old === undefined) return { ok: false, why: NOT_INTEGER };
      const next = old + m.by;
      if (next > INT64_MAX || next < INT64_MIN) return { ok: false, why: OVERFLOW };
      return written(String(next), keep);
    }
    case "incrFloat": {
      const old = live === undefined
        ? parseLongDouble("0")
        : parseLongDouble(valueText(live.value));
      const by = parseLongDouble(m.by);
      if (old === undefined || by === undefined) return { ok: false, why: NOT_FLOAT };
      const next = addLongDouble(old, by);
      if (next.kind !== "finite") return { ok: false, why: NAN_OR_INF };
      const text = formatLongDouble(next);
      if (text.length > m.bytesMax) {
        return {
          ok: false,
          why: `the value would be ${text.length} bytes; the limit is ${m.bytesMax}`,
          tooLarge: true,
        };
      }
      return written(text, keep);
    }
    case "expireAt": {
      if (live === undefined) return { ok: false, why: "no such key" };
      if (m.at !== null && m.at <= nowMs) return { ok: true, value: "", tombstone: true };
      return written(live.value, m.at ?? undefined);
    }
  }
}
