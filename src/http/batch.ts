/**
 * `POST /kv/_batch`: many key operations in one request. Each op is validated and answered on its
 * own (a bad op is a FAILED result, the others go on); the request as a whole fails only when
 * its body is not a batch (400) or holds more than --max-batch-ops ops (413). Ops are not atomic
 * together; ops on one key run in the order given, ops on different keys at once, so the
 * coordinator's replica calls for all of them are coalesced per peer (peer-batcher.ts).
 */
import { z } from "zod";
import type { Consistency } from "../core/placement.ts";
import { type Value, valueOf } from "../core/record.ts";
import { isWellFormed } from "../core/utf8.ts";
import { decodeBase64 } from "../transport/messages.ts";
import { parseBody } from "./body.ts";
import type { MemberContext } from "./context.ts";
import { asDkvError, DkvError, failedBody } from "./errors.ts";
import { expiryOf, recordJson } from "./kv-handler.ts";
import { checkKey, checkReadKey, checkValue, parseTtl } from "./validate.ts";

const Key = z.string();
const BatchOp = z.discriminatedUnion("op", [
  z.object({
    op: z.literal("put"),
    key: Key,
    value: z.string(),
    encoding: z.literal("base64").optional(),
    ttl: z.string().max(40).optional(),
  }).strict(),
  z.object({ op: z.literal("get"), key: Key }).strict(),
  z.object({ op: z.literal("delete"), key: Key }).strict(),
]);
type BatchOp = z.infer<typeof BatchOp>;

/** The body: `ops`, each checked on its own below (so one bad op fails only itself). */
const BatchBody = z.object({ ops: z.array(z.unknown()) }).strict();

/**
 * Largest batch body: every op at the value limit, base64 (4/3), with its key JSON-escaped (6
 * bytes a byte at most) and framing; at most 64 MiB whatever the flags say.
 */
export function batchBodyBytesMax(ctx: MemberContext): number {
  const c = ctx.config;
  const perOp = Math.ceil(c.valueBytesMax * 4 / 3) + 6 * c.keyBytesMax + 256;
  return Math.min(64 * 1024 * 1024, c.batchOpsMax * perOp);
}

type Result = Record<string, unknown>;

export async function runBatch(
  ctx: MemberContext,
  req: Request,
  consistency: Consistency,
): Promise<{ status: "SUCCESS"; results: Result[] }> {
  const body = await parseBody(req, BatchBody, batchBodyBytesMax(ctx));
  const max = ctx.config.batchOpsMax;
  if (body.ops.length > max) {
    throw new DkvError(
      "too_large",
      `the batch has ${body.ops.length} ops; the limit is ${max} (--max-batch-ops)`,
    );
  }
  if (body.ops.length === 0) throw new DkvError("bad_request", "the batch has no ops");
  // Ops on one key run in order: each waits for the one before it on that key.
  const lastOnKey = new Map<string, Promise<unknown>>();
  const results = await Promise.all(body.ops.map((raw, i) => {
    const parsed = BatchOp.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? ` at ${issue.path.join(".")}` : "";
      return failed(new DkvError("bad_request", `op ${i}${where}: ${issue?.message}`));
    }
    const op = parsed.data;
    const before = lastOnKey.get(op.key);
    const run = (before ?? Promise.resolve()).then(() => runOp(ctx, op, consistency)).catch(
      (e) => failed(e, ctx),
    );
    lastOnKey.set(op.key, run);
    return run;
  }));
  return { status: "SUCCESS", results };
}

async function runOp(ctx: MemberContext, op: BatchOp, consistency: Consistency): Promise<Result> {
  const coord = ctx.coordinator;
  if (op.op === "get") {
    const r = await coord.read(checkReadKey(op.key), consistency);
    if (r === undefined) throw new DkvError("not_found", `key '${op.key}' not found`);
    return recordJson(r);
  }
  if (op.op === "delete") {
    const out = await coord.write(checkReadKey(op.key), "", true, consistency);
    if (!out.hadLive) throw new DkvError("not_found", `key '${op.key}' not found`);
    return { status: "SUCCESS", key: op.key };
  }
  const key = checkKey(op.key, ctx.config.keyBytesMax);
  const value = opValue(op);
  checkValue(key, value, ctx.config.valueBytesMax);
  const ttl = parseTtl(op.ttl, ctx.config.ttlMsMax);
  const expiresAt = await expiryOf(ctx, key, ttl, consistency);
  const out = await coord.write(key, value, false, consistency, expiresAt);
  return recordJson(out.record);
}

/** A put's value: JSON text (well-formed), or base64 bytes with `"encoding":"base64"`. */
function opValue(op: { key: string; value: string; encoding?: "base64" }): Value {
  if (op.encoding === "base64") return valueOf(decodeBase64(op.value, op.key));
  if (!isWellFormed(op.value)) {
    throw new DkvError("bad_request", `value of key '${op.key.slice(0, 64)}' is not valid Unicode`);
  }
  return op.value;
}

function failed(caught: unknown, ctx?: MemberContext): Result {
  const e = asDkvError(caught);
  if (e instanceof DkvError) return failedBody(e.message, e.status);
  ctx?.log.error(`unhandled error in a batch op: ${(e as Error).stack ?? e}`);
  return failedBody("internal error", 500);
}
