/**
 * The Redis commands that read a key and write it back in one step (SET NX/XX/GET/KEEPTTL,
 * SETNX, GETSET, GETDEL, GETEX with an option, INCR/DECR/INCRBY/DECRBY/INCRBYFLOAT, APPEND,
 * EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT, PERSIST). Done as a read then a plain last-writer-wins
 * write they would lose updates under concurrency (two INCRs both read 5 and both write 6), so
 * they are never faked that way: each family has one function here, with the arguments already
 * parsed and checked, and each waits for the linearizable compare-and-set of the CAS issue
 * (single-decree Paxos per key, docs/architecture.md). Until it is wired in they answer
 * `-ERR <cmd> needs linearizable compare-and-set, not in this build yet`.
 */
import type { MemberContext } from "../http/context.ts";
import type { Consistency } from "../core/placement.ts";
import { RespError } from "./errors.ts";

/** What a conditional SET asks for (already validated against Redis's rules). */
export interface ConditionalSet {
  readonly key: string;
  readonly value: Uint8Array;
  /** NX: only when absent; XX: only when present. */
  readonly condition?: "NX" | "XX";
  /** GET: answer the old value. */
  readonly get: boolean;
  /** Wall ms the new value expires at; "keep": the current record's (KEEPTTL). */
  readonly expiresAt: number | "keep" | undefined;
}

function waiting(cmd: string): never {
  throw new RespError(`ERR ${cmd} needs linearizable compare-and-set, not in this build yet`);
}

/** SET with NX, XX, GET or KEEPTTL; SETNX; GETSET. Answer: see the command. */
export function conditionalSet(
  _ctx: MemberContext,
  cmd: string,
  _op: ConditionalSet,
  _consistency: Consistency,
): Promise<{ written: boolean; old: Uint8Array | undefined }> {
  return waiting(cmd);
}

/** INCR, DECR, INCRBY, DECRBY (integer `by`), INCRBYFLOAT (float `by`): the new value. */
export function increment(
  _ctx: MemberContext,
  cmd: string,
  _key: string,
  _by: { readonly int: bigint } | { readonly float: number },
  _consistency: Consistency,
): Promise<string> {
  return waiting(cmd);
}

/** APPEND: the new length. */
export function append(
  _ctx: MemberContext,
  cmd: string,
  _key: string,
  _suffix: Uint8Array,
  _consistency: Consistency,
): Promise<number> {
  return waiting(cmd);
}

/**
 * GETDEL, GETEX with EX/PX/EXAT/PXAT/PERSIST: the value (undefined when absent), with the key
 * deleted, or its expiry set (`expiresAt`: ms, or null to persist).
 */
export function getAndModify(
  _ctx: MemberContext,
  cmd: string,
  _key: string,
  _change: { readonly delete: true } | { readonly expiresAt: number | null },
  _consistency: Consistency,
): Promise<Uint8Array | undefined> {
  return waiting(cmd);
}

/**
 * EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (with NX/XX/GT/LT), PERSIST: 1 when the expiry changed,
 * else 0. `expiresAt` null: persist.
 */
export function setExpiry(
  _ctx: MemberContext,
  cmd: string,
  _key: string,
  _expiresAt: number | null,
  _condition: "NX" | "XX" | "GT" | "LT" | undefined,
  _consistency: Consistency,
): Promise<number> {
  return waiting(cmd);
}

/** Every command that waits on the CAS API (for the docs and the tests). */
export const WAITING_ON_CAS = [
  "SET NX|XX|GET|KEEPTTL",
  "SETNX",
  "GETSET",
  "GETDEL",
  "GETEX EX|PX|EXAT|PXAT|PERSIST",
  "INCR",
  "DECR",
  "INCRBY",
  "DECRBY",
  "INCRBYFLOAT",
  "APPEND",
  "EXPIRE",
  "PEXPIRE",
  "EXPIREAT",
  "PEXPIREAT",
  "PERSIST",
] as const;
