/**
 * The Redis commands that read a key and write it back in one step (SET NX/XX/GET/KEEPTTL,
 * SETNX, GETSET, GETDEL, GETEX with an option, INCR/DECR/INCRBY/DECRBY/INCRBYFLOAT, APPEND,
 * EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT, PERSIST). Done as a read then a plain last-writer-wins
 * write they would lose updates under concurrency (two INCRs both read 5 and both write 6), so
 * each is one conditional write (`Coordinator.cas`: single-decree Paxos among the key's
 * replicas, docs/architecture.md): the condition is checked and the mutation applied to the
 * record the Paxos round read (src/core/redis-ops.ts), so each is linearizable per key. The old
 * value GET, GETSET and GETDEL answer is that record's.
 *
 * Paxos needs a quorum: a connection at DKV.CONSISTENCY one or any runs these at quorum (all
 * stays all).
 */
import type { MemberContext } from "../http/context.ts";
import type { Consistency } from "../core/placement.ts";
import type { Condition, Mutation } from "../core/paxos.ts";
import { type KvRecord, valueBytes, valueOf, valueSize } from "../core/record.ts";
import type { CasOutcome } from "../node/coordinator.ts";

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

function run(
  ctx: MemberContext,
  key: string,
  condition: Condition,
  mutation: Mutation,
  consistency: Consistency,
): Promise<CasOutcome> {
  return ctx.coordinator.cas(key, condition, mutation, consistency === "all" ? "all" : "quorum");
}

function bytesOf(r: KvRecord | undefined): Uint8Array | undefined {
  return r === undefined ? undefined : valueBytes(r.value);
}

/** SET with NX, XX, GET or KEEPTTL; SETNX; GETSET. Answer: see the command. */
export async function conditionalSet(
  ctx: MemberContext,
  op: ConditionalSet,
  consistency: Consistency,
): Promise<{ written: boolean; old: Uint8Array | undefined }> {
  const value = valueOf(op.value);
  const condition: Condition = op.condition === "NX"
    ? { kind: "absent" }
    : op.condition === "XX"
    ? { kind: "present" }
    : { kind: "always" };
  const mutation: Mutation = op.expiresAt === "keep"
    ? { kind: "putKeepTtl", value }
    : op.expiresAt === undefined
    ? { kind: "put", value }
    : { kind: "put", value, expiresAt: op.expiresAt };
  const out = await run(ctx, op.key, condition, mutation, consistency);
  return out.ok
    ? { written: true, old: bytesOf(out.previous) }
    : { written: false, old: bytesOf(out.current) };
}

/** INCR, DECR, INCRBY, DECRBY (integer `by`), INCRBYFLOAT (`by` as the client wrote it). */
export async function increment(
  ctx: MemberContext,
  key: string,
  by: { readonly int: bigint } | { readonly float: string },
  consistency: Consistency,
): Promise<string> {
  const mutation: Mutation = "int" in by
    ? { kind: "incrInt64", by: by.int }
    : { kind: "incrFloat", by: by.float, bytesMax: ctx.config.valueBytesMax };
  const out = await run(ctx, key, { kind: "always" }, mutation, consistency);
  // "always" holds: a failure is an error, thrown with Redis's words.
  if (!out.ok) throw new Error("increment: the condition 'always' failed");
  return out.record.value as string;
}

/** APPEND: the new length. */
export async function append(
  ctx: MemberContext,
  key: string,
  suffix: Uint8Array,
  consistency: Consistency,
): Promise<number> {
  const bytesMax = ctx.config.valueBytesMax;
  const mutation: Mutation = { kind: "append", value: valueOf(suffix), bytesMax };
  const out = await run(ctx, key, { kind: "always" }, mutation, consistency);
  if (!out.ok) throw new Error("append: the condition 'always' failed");
  return valueSize(out.record.value);
}

/**
 * GETDEL, GETEX with EX/PX/EXAT/PXAT/PERSIST: the value (undefined when absent), with the key
 * deleted, or its expiry set (`expiresAt`: ms, or null to persist; a time past deletes).
 */
export async function getAndModify(
  ctx: MemberContext,
  key: string,
  change: { readonly delete: true } | { readonly expiresAt: number | null },
  consistency: Consistency,
): Promise<Uint8Array | undefined> {
  const mutation: Mutation = "delete" in change
    ? { kind: "delete" }
    : { kind: "expireAt", at: change.expiresAt };
  const out = await run(ctx, key, { kind: "present" }, mutation, consistency);
  return out.ok ? bytesOf(out.previous) : undefined;
}

/** EXPIRE's flags (any of NX, XX, GT, LT, as Redis allows them together). */
export interface ExpiryFlags {
  readonly nx?: boolean;
  readonly xx?: boolean;
  readonly gt?: boolean;
  readonly lt?: boolean;
}

/**
 * EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (with NX/XX/GT/LT), PERSIST: 1 when the expiry changed
 * (or the key was deleted by a time already past), else 0. `expiresAt` null: persist (only a key
 * with an expiry changes).
 */
export async function setExpiry(
  ctx: MemberContext,
  key: string,
  expiresAt: number | null,
  flags: ExpiryFlags,
  consistency: Consistency,
): Promise<number> {
  const at = expiresAt ?? 0;
  const condition: Condition = {
    kind: "expiry",
    ...(flags.nx ? { nx: true } : {}),
    ...(flags.xx || expiresAt === null ? { xx: true } : {}),
    ...(flags.gt ? { gt: at } : {}),
    ...(flags.lt ? { lt: at } : {}),
  };
  const out = await run(ctx, key, condition, { kind: "expireAt", at: expiresAt }, consistency);
  return out.ok ? 1 : 0;
}
