/**
 * Internal (peer-to-peer) messages under /internal/v1, as zod schemas: every body is validated
 * on receipt, by the server for requests and by the client for answers. docs/protocol.md lists
 * who sends each one and what the receiver does.
 */
import { z } from "zod";
import type { KvRecord } from "../core/record.ts";
import type { View } from "../core/view.ts";

/** A record on the wire: short field names, the version spread out. */
export const WireRecord = z.object({
  k: z.string(),
  v: z.string(),
  t: z.number().int().nonnegative(),
  c: z.number().int().nonnegative(),
  n: z.string(),
  d: z.boolean().optional(),
});
export type WireRecord = z.infer<typeof WireRecord>;

export function toWire(r: KvRecord): WireRecord {
  const w: WireRecord = {
    k: r.key,
    v: r.value,
    t: r.version.wallMs,
    c: r.version.counter,
    n: r.version.nodeId,
  };
  if (r.tombstone) w.d = true;
  return w;
}

export function fromWire(w: WireRecord): KvRecord {
  return {
    key: w.k,
    value: w.v,
    version: { wallMs: w.t, counter: w.c, nodeId: w.n },
    tombstone: w.d === true,
  };
}

/** POST /internal/v1/kv/write: store these records (merge: newest version wins). */
export const WriteRequest = z.object({ records: z.array(WireRecord).max(10_000) });
export type WriteRequest = z.infer<typeof WriteRequest>;
/** One entry per record: did the replica hold a live value for the key before this write. */
export const WriteResponse = z.object({ hadLive: z.array(z.boolean()) });
export type WriteResponse = z.infer<typeof WriteResponse>;

/** POST /internal/v1/kv/read: return what is stored for these keys (tombstones included). */
export const ReadRequest = z.object({ keys: z.array(z.string()).max(10_000) });
export type ReadRequest = z.infer<typeof ReadRequest>;
export const ReadResponse = z.object({ records: z.array(WireRecord.nullable()) });
export type ReadResponse = z.infer<typeof ReadResponse>;

export const MemberState = z.enum(["UP", "SUSPECT", "DOWN", "LEFT"]);
export const ViewMember = z.object({
  id: z.string().min(1),
  address: z.string().min(1),
  role: z.enum(["orchestrator", "node"]),
  state: MemberState,
  inRing: z.boolean(),
  incarnation: z.number().int().nonnegative(),
});

export const ViewSchema = z.object({
  instance: z.string().min(1),
  epoch: z.number().int().nonnegative(),
  replicationFactor: z.number().int().positive(),
  partitions: z.number().int().positive(),
  members: z.array(ViewMember).max(100_000),
}) satisfies z.ZodType<View>;

/** POST /internal/v1/view: the orchestrator's current view (pushed on change and periodically). */
export const ViewPush = z.object({ view: ViewSchema });
export type ViewPush = z.infer<typeof ViewPush>;

export const MemberSummarySchema = z.object({
  id: z.string().min(1),
  address: z.string().min(1),
  inRing: z.boolean(),
  incarnation: z.number().int().nonnegative(),
});

/** POST /internal/v1/register: node → orchestrator, at start and when views stop arriving. */
export const RegisterRequest = z.object({
  self: MemberSummarySchema,
  /** Members the node knew (its last view), so a restarted orchestrator rebuilds the ring whole. */
  known: z.array(MemberSummarySchema).max(100_000),
});
export type RegisterRequest = z.infer<typeof RegisterRequest>;
export const RegisterResponse = z.object({ view: ViewSchema });
export type RegisterResponse = z.infer<typeof RegisterResponse>;

/** GET /health: liveness, also the orchestrator's probe. id and incarnation identify who answered. */
export const HealthResponse = z.object({
  status: z.literal("UP"),
  id: z.string().optional(),
  role: z.enum(["orchestrator", "node"]).optional(),
  incarnation: z.number().int().nonnegative().optional(),
});
export type HealthResponse = z.infer<typeof HealthResponse>;
