/**
 * Internal (peer-to-peer) messages under /internal/v1, as zod schemas: every body is validated
 * on receipt, by the server for requests and by the client for answers. docs/protocol.md lists
 * who sends each one and what the receiver does.
 */
import { z } from "zod";
import { ADDRESS_CHARS_MAX, isHostPort } from "../core/address.ts";
import { COUNTER_MAX, NODE_ID_CHARS_MAX, WALL_MS_MAX } from "../core/hlc.ts";
import type { MemberLimits } from "../core/agreed-settings.ts";
import { type KvRecord, type Value, valueOf } from "../core/record.ts";
import { isWellFormed } from "../core/utf8.ts";
import { DkvError } from "../http/errors.ts";
import { Buffer } from "node:buffer";
import type { SwimMsg } from "../core/swim.ts";
import { RECENT_COMMITS } from "../core/paxos.ts";

/**
 * A version's fields on the wire, bounded as src/core/hlc.ts says: wall ms a safe non-negative
 * integer, counter at most COUNTER_MAX (what the store holds), node id 1..256 characters. A
 * message with any version out of bounds is refused whole (400), so it can neither wrap a
 * stored counter nor push a clock past what its peers accept.
 */
const WireVersionFields = {
  t: z.number().int().nonnegative().max(WALL_MS_MAX),
  c: z.number().int().nonnegative().max(COUNTER_MAX),
  n: z.string().min(1).max(NODE_ID_CHARS_MAX),
};

/**
 * Longest key any member may be configured to take (--max-key-bytes at most 65 536 bytes, so at
 * most as many UTF-16 units). Each member checks its own --max-key-bytes and --max-value-bytes on
 * every internal record too (internal-routes.ts), as the public API does.
 */
export const KEY_CHARS_MAX = 65_536;
/** Member ids, hint targets and senders named in messages. */
const MemberId = z.string().min(1).max(NODE_ID_CHARS_MAX);
const Key = z.string().min(1).max(KEY_CHARS_MAX);

/**
 * A record on the wire: short field names, the version spread out. `v` is the value as text when
 * its bytes are valid UTF-8, else base64 with `e: "b64"`; `x` the expiry time (wall ms), if any.
 */
export const WireRecord = z.object({
  k: Key,
  v: z.string(),
  e: z.literal("b64").optional(),
  ...WireVersionFields,
  d: z.boolean().optional(),
  x: z.number().int().nonnegative().max(WALL_MS_MAX).optional(),
});
export type WireRecord = z.infer<typeof WireRecord>;

export function toWire(r: KvRecord): WireRecord {
  const v = r.value;
  const w: WireRecord = typeof v === "string"
    ? { k: r.key, v, t: r.version.wallMs, c: r.version.counter, n: r.version.nodeId }
    : {
      k: r.key,
      v: Buffer.from(v.buffer, v.byteOffset, v.length).toString("base64"),
      e: "b64",
      t: r.version.wallMs,
      c: r.version.counter,
      n: r.version.nodeId,
    };
  if (r.tombstone) w.d = true;
  if (r.expiresAt !== undefined) w.x = r.expiresAt;
  return w;
}

/**
 * The record a wire record stands for, its value in canonical form (a text value must be
 * well-formed UTF-16, a base64 one valid base64): else a 400.
 */
export function fromWire(w: WireRecord): KvRecord {
  let value: Value = w.v;
  if (w.e === "b64") value = valueOf(decodeBase64(w.v, w.k));
  else if (!isWellFormed(w.v)) {
    throw new DkvError("bad_request", `value of key '${w.k.slice(0, 64)}' is not valid Unicode`);
  }
  const r = {
    key: w.k,
    value,
    version: { wallMs: w.t, counter: w.c, nodeId: w.n },
    tombstone: w.d === true,
  };
  return w.x === undefined ? r : { ...r, expiresAt: w.x };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict base64 (standard alphabet, padded) to bytes; anything else is a 400. */
export function decodeBase64(s: string, key: string): Uint8Array {
  if (s.length % 4 !== 0 || !BASE64.test(s)) {
    throw new DkvError("bad_request", `value of key '${key.slice(0, 64)}' is not valid base64`);
  }
  const b = Buffer.from(s, "base64");
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/**
 * The member a replica call is meant for. The receiver refuses (409) a call naming another id:
 * a member that took over an old member's address must not answer for it.
 */
const To = MemberId;

/** POST /internal/v1/kv/write: store these records (merge: newest version wins). */
export const WriteRequest = z.object({
  to: To,
  records: z.array(WireRecord).max(10_000),
  /**
   * Coordinator writes only: per record, the fingerprint of the key's replica list in the
   * coordinator's ring (Ring.setHash), or -1 for "no check". A receiver whose own list differs
   * does not apply that record and says so in `stale`. -2: a write to a previous owner of the
   * key's partition while it moves: applied only if the receiver holds the partition, else
   * `stale`.
   */
  sets: z.array(z.number().int().min(-2).max(0xffff_ffff)).max(10_000).optional(),
});
export type WriteRequest = z.infer<typeof WriteRequest>;
/** One entry per record: did the replica hold a live value for the key before this write. */
export const WriteResponse = z.object({
  hadLive: z.array(z.boolean()),
  /**
   * Per record, when the replica already held a newer version (so the write lost the merge):
   * that version. Lets a coordinator whose clock was behind re-issue the write above it.
   */
  newer: z.array(z.object(WireVersionFields).nullable()).optional(),
  /** Per record (when `sets` was sent): true if not applied because the replica lists differ. */
  stale: z.array(z.boolean()).optional(),
});
export type WriteResponse = z.infer<typeof WriteResponse>;

/** POST /internal/v1/kv/read: return what is stored for these keys (tombstones included). */
export const ReadRequest = z.object({
  to: To,
  /** Distinct keys (a repeat is a 400). */
  keys: z.array(Key).max(10_000),
  /** Coordinator reads only: per key, as in `WriteRequest.sets`; a differing list answers held: false. */
  sets: z.array(z.number().int().min(-1).max(0xffff_ffff)).max(10_000).optional(),
});
export type ReadRequest = z.infer<typeof ReadRequest>;
export const ReadResponse = z.object({
  records: z.array(WireRecord.nullable()),
  /**
   * Per key: does the replica hold the key's partition: it has data of it, or owns it and is not
   * still receiving it. False once moved away or while moving in: "ask elsewhere", never "not
   * found".
   */
  held: z.array(z.boolean()),
  /**
   * True when the answer stopped early to stay within its byte budget: `records` and `held` then
   * cover only the first keys, and the caller asks again for the rest (PeerClient.read does).
   */
  partial: z.boolean().optional(),
});
export type ReadResponse = z.infer<typeof ReadResponse>;

/**
 * Paxos per key (src/core/paxos.ts): prepare, propose and commit, from the coordinator of a
 * conditional write to each of the key's replicas. `set` is the key's replica-list fingerprint
 * (a replica whose ring differs refuses: `stale`). Ballots are versions.
 */
export const WireBallot = z.object({
  ...WireVersionFields,
  // A replica's floor (src/core/paxos.ts) is below every proposer's ballot: its node id is "".
  n: z.string().max(NODE_ID_CHARS_MAX),
});
export type WireBallot = z.infer<typeof WireBallot>;
const PaxosSet = z.number().int().min(0).max(0xffff_ffff);

/** A prepare's answer (PaxosAnswer adds a refusal of the op alone). */
export const PrepareResponse = z.object({
  /** Promised; else `higher` is the ballot to pass (`busy`: no room for another key's state). */
  ok: z.boolean(),
  higher: WireBallot.optional(),
  busy: z.boolean().optional(),
  /** The replica's ring places the key elsewhere (or, on propose, it does not hold it): nothing done. */
  stale: z.boolean().optional(),
  /** Does the replica hold the key's partition (as in ReadResponse.held). */
  held: z.boolean(),
  accepted: z.object({ ballot: WireBallot, record: WireRecord }).optional(),
  committed: WireBallot.optional(),
  /** Recent commits: ballot `b`, record version `v` (at most RECENT_COMMITS). */
  recent: z.array(z.object({ b: WireBallot, v: WireBallot })).max(RECENT_COMMITS).optional(),
  /** The highest ballot whose commit the replica no longer remembers. */
  forgotten: WireBallot.optional(),
  /** The replica's stored record for the key (tombstones included). */
  record: WireRecord.optional(),
});

/**
 * POST /internal/v1/paxos: Paxos messages for one replica, coalesced (every message a coordinator
 * sends to the same peer within one turn of the event loop), each answered on its own.
 * - `prepare`: promise this ballot; answer what is accepted, committed and stored;
 * - `propose`: accept this proposal if no higher ballot was promised;
 * - `commit`: store the chosen record (a normal write), forget the proposal.
 */
export const PaxosOp = z.discriminatedUnion("p", [
  z.object({
    p: z.literal("prepare"),
    key: Key,
    ballot: WireBallot,
    set: PaxosSet,
    /** Only the recent commits under ballots at or above this one are wanted (src/core/paxos.ts). */
    since: WireBallot.optional(),
  }),
  z.object({ p: z.literal("propose"), ballot: WireBallot, record: WireRecord, set: PaxosSet }),
  z.object({ p: z.literal("commit"), ballot: WireBallot, record: WireRecord, set: PaxosSet }),
]);
export type PaxosOp = z.infer<typeof PaxosOp>;
export const PaxosRequest = z.object({ to: To, ops: z.array(PaxosOp).min(1).max(10_000) });
export type PaxosRequest = z.infer<typeof PaxosRequest>;
/** One op's answer: a prepare's, a propose's or commit's (`ok`, `higher?`, `stale?`), or `error`. */
export const PaxosAnswer = PrepareResponse.extend({
  held: z.boolean().optional(),
  /** The op was refused (what a single request would have answered with `status`). */
  error: z.string().max(4096).optional(),
  status: z.number().int().optional(),
});
export type PaxosAnswer = z.infer<typeof PaxosAnswer>;
export const PaxosResponse = z.object({ answers: z.array(PaxosAnswer) });
export type PaxosResponse = z.infer<typeof PaxosResponse>;

export const MemberState = z.enum(["UP", "SUSPECT", "DOWN", "LEFT"]);

/** GET /health: liveness for clients and operators; id, role and process start identify who answered. */
export const HealthResponse = z.object({
  status: z.literal("UP"),
  id: z.string().max(NODE_ID_CHARS_MAX).optional(),
  role: z.enum(["orchestrator", "node", "gateway"]).optional(),
  incarnation: z.number().int().nonnegative().optional(),
});
export type HealthResponse = z.infer<typeof HealthResponse>;

/** POST /internal/v1/hints: hold these records for `target` (down) and deliver them later. */
export const HintRequest = z.object({
  target: MemberId,
  records: z.array(WireRecord).max(10_000),
});
export type HintRequest = z.infer<typeof HintRequest>;
export const HintResponse = z.object({ stored: z.number().int().nonnegative() });
export type HintResponse = z.infer<typeof HintResponse>;

const DigestSchema = z.object({
  sum: z.number().int().nonnegative(),
  count: z.number().int().nonnegative(),
});
const Partition = z.number().int().nonnegative();

/** POST /internal/v1/ae/digests: the digests of these partitions. */
export const DigestsRequest = z.object({ partitions: z.array(Partition).max(65_536) });
export type DigestsRequest = z.infer<typeof DigestsRequest>;
export const DigestsResponse = z.object({
  digests: z.array(DigestSchema),
  /** Per partition: does the answering member hold it (not still moving in). */
  held: z.array(z.boolean()).optional(),
});
export type DigestsResponse = z.infer<typeof DigestsResponse>;

/** POST /internal/v1/ae/buckets: the bucket digests of one partition. */
export const BucketsRequest = z.object({ partition: Partition });
export type BucketsRequest = z.infer<typeof BucketsRequest>;
export const BucketsResponse = z.object({ buckets: z.array(DigestSchema) });
export type BucketsResponse = z.infer<typeof BucketsResponse>;

/** A key's version without its value; `s` is the value's size in bytes (to size pull batches). */
export const WireVersion = WireRecord.omit({ v: true, e: true }).extend({
  s: z.number().int().nonnegative(),
});
export type WireVersion = z.infer<typeof WireVersion>;

/**
 * POST /internal/v1/ae/versions: key versions in some buckets of a partition, in key order,
 * after `after` (exclusive; paging), at most `limit`.
 */
export const VersionsRequest = z.object({
  partition: Partition,
  buckets: z.array(z.number().int().nonnegative()).max(1024),
  limit: z.number().int().positive().max(10_000_000),
  after: z.string().max(KEY_CHARS_MAX).optional(),
});
export type VersionsRequest = z.infer<typeof VersionsRequest>;
export const VersionsResponse = z.object({ entries: z.array(WireVersion), truncated: z.boolean() });
export type VersionsResponse = z.infer<typeof VersionsResponse>;

/**
 * POST /internal/v1/kv/list: every stored record (tombstones and expired ones too) whose key
 * starts with `prefix` and comes after `after`, in key order, from every partition the receiver
 * has data of (held or still moving in, as a read answers a record it does not hold); at most
 * `limit`, bounded in bytes. `keysOnly`: values left out.
 */
export const ListRequest = z.object({
  prefix: z.string().max(KEY_CHARS_MAX),
  after: Key.optional(),
  limit: z.number().int().positive().max(100_000),
  keysOnly: z.boolean().optional(),
  /**
   * Per partition (index = partition), the fingerprint of the caller's replica list for it, as
   * `ReadRequest.sets`: the receiver names in `stale` the held partitions whose list differs.
   */
  sets: z.array(z.number().int().min(-1).max(0xffff_ffff)).max(65_536).optional(),
});
export type ListRequest = z.infer<typeof ListRequest>;
export const ListResponse = z.object({
  records: z.array(WireRecord),
  /** Stopped before the end (limit or bytes): keys after the last one were not looked at. */
  more: z.boolean(),
  /** The partitions the receiver holds (see ReadResponse.held): its records of them are whole. */
  held: z.array(Partition).max(65_536),
  /** Partitions of `held` whose replica list differs from the caller's `sets`. */
  stale: z.array(Partition).max(65_536).optional(),
});
export type ListResponse = z.infer<typeof ListResponse>;

/**
 * POST /internal/v1/watch/poll: the client writes this node logged after entry `after` whose key
 * starts with `prefix` (or is `key`), waiting up to `waitMs` for one when there is none yet.
 * `after` -1: none, just the current entry number (a poller starting). `epoch`: the log the
 * number belongs to; another epoch (the node restarted) answers `gap`.
 */
export const WatchPollRequest = z.object({
  prefix: z.string().max(KEY_CHARS_MAX),
  key: Key.optional(),
  after: z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER),
  epoch: z.string().max(64).optional(),
  limit: z.number().int().positive().max(10_000),
  waitMs: z.number().int().nonnegative().max(60_000),
});
export type WatchPollRequest = z.infer<typeof WatchPollRequest>;
export const WatchPollResponse = z.object({
  epoch: z.string().max(64),
  /** The entry number to ask after next time. */
  seq: z.number().int().nonnegative(),
  records: z.array(WireRecord),
  /** Entries after `after` were dropped, or `epoch` differs: changes may have been missed here. */
  gap: z.boolean(),
});
export type WatchPollResponse = z.infer<typeof WatchPollResponse>;

/**
 * POST /internal/v1/rebalance/records: the body is a move frame (binary, src/core/move-frame.ts);
 * the answer says how many of its records were merged in (all of them, or an error).
 */
export const MoveRecordsResponse = z.object({
  applied: z.number().int().nonnegative().max(10_000),
});
export type MoveRecordsResponse = z.infer<typeof MoveRecordsResponse>;

/** POST /internal/v1/rebalance/done: the sender finished streaming a partition to the receiver. */
export const MoveDone = z.object({ partition: Partition, from: MemberId });
export type MoveDone = z.infer<typeof MoveDone>;

/** GET /internal/v1/status: one node's own figures, for /cluster/status. */
export const NodeStatus = z.object({
  id: MemberId,
  leaving: z.boolean(),
  partitionsOwned: z.number().int(),
  partitionsHeld: z.number().int(),
  /** Partitions with data here that this node does not own (moving out, or stray). */
  partitionsHeldNotOwned: z.number().int(),
  keys: z.number().int(),
  tombstones: z.number().int(),
  hintsPending: z.number().int(),
  hintsDropped: z.number().int(),
  hintsDelivered: z.number().int(),
  /** Hints dropped undelivered because they outlived half the tombstone grace. */
  hintsExpired: z.number().int(),
  movingIn: z.number().int(),
  movingOut: z.number().int(),
  readRepairs: z.number().int(),
  staleRingRetries: z.number().int(),
  previousOwnerWrites: z.number().int().optional(),
  previousOwnerMisses: z.number().int().optional(),
  /** Client requests coordinated here; of them, for a key this node is a replica of; replica calls sent. */
  routing: z.object({
    coordinated: z.number().int(),
    asReplica: z.number().int(),
    replicaCalls: z.number().int(),
  }).optional(),
  /** Replicas asked by a read hedge (issue 16): a read short of answers after the delay. */
  readsHedged: z.number().int().nonnegative().optional(),
  /** The hedge delay reads use now (ms), null when reads do not hedge. */
  readHedgeDelayMs: z.number().int().nonnegative().nullable().optional(),
  /** Remote records refused (not stored or observed): version beyond --max-clock-skew ahead. */
  clockSkewRefused: z.number().int(),
  /** UTF-8 bytes of keys and values stored; writes refused for --max-store-bytes (507). */
  storeBytes: z.number().int().optional(),
  storeFullRefused: z.number().int().optional(),
  /** Internal calls refused (and peer answers not accepted) for want of a valid signature. */
  authRefused: z.number().int(),
  /**
   * --data-dir only: the log's state. `writable` false (with `error`) after a failed write or
   * sync: writes answer 507 until a retry succeeds; reads go on, the member stays UP.
   */
  disk: z.object({
    fsync: z.enum(["always", "batch", "never"]),
    writable: z.boolean(),
    error: z.string().max(1024).nullable(),
    errors: z.number().int(),
    logBytes: z.number().int(),
    snapshotBytes: z.number().int(),
    snapshots: z.number().int(),
    snapshotErrors: z.number().int(),
    fsyncs: z.number().int(),
    entries: z.number().int(),
    largestGroup: z.number().int(),
    unlogged: z.number().int(),
  }).optional(),
  antiEntropy: z.object({
    rounds: z.number().int(),
    lastRoundAt: z.string().max(64).nullable(),
    lastRoundMs: z.number().nullable(),
    keysPulled: z.number().int(),
    keysPushed: z.number().int(),
  }),
  rebalance: z.object({
    running: z.boolean(),
    partitionsSent: z.number().int(),
    keysSent: z.number().int(),
    bytesSent: z.number().int(),
    partitionsDropped: z.number().int(),
    lastStartedAt: z.string().max(64).nullable(),
    lastFinishedAt: z.string().max(64).nullable(),
    lastDurationMs: z.number().nullable(),
    // Optional: members from before these figures answer without them.
    lastStreamedAt: z.string().max(64).nullable().optional(),
    lastStreamMs: z.number().nullable().optional(),
    lastStreamBytes: z.number().nullable().optional(),
  }),
  tombstonesCollected: z.number().int(),
  gossip: z.object({
    /** Messages and bytes (JSON length) this member sent since it started. */
    messagesSent: z.number().int(),
    bytesSent: z.number().int(),
    /** Lifeguard local health: 0 healthy … higher when this member itself seems slow. */
    localHealth: z.number().int(),
    incarnation: z.number().int(),
    dutyHolder: z.string().max(NODE_ID_CHARS_MAX).nullable(),
  }),
});
export type NodeStatus = z.infer<typeof NodeStatus>;

// --- Membership gossip (SWIM) -------------------------------------------------------------

/**
 * A member address: `host:port` only (src/core/address.ts). Peers dial `http(s)://${address}`, so a
 * path, user info or fragment would point the cluster's own calls elsewhere.
 */
export const Address = z.string().max(ADDRESS_CHARS_MAX).refine(isHostPort, {
  error: "must be host:port",
});

const SwimMemberSchema = z.object({
  id: MemberId,
  address: Address,
  role: z.enum(["orchestrator", "node", "gateway"]),
  /** Its TCP peer link's port (--peer-port); older members send none, and drop it when relaying. */
  linkPort: z.number().int().min(1).max(65535).optional(),
  incarnation: z.number().int().nonnegative(),
  state: MemberState,
  inRing: z.boolean(),
});
const GossipSchema = SwimMemberSchema.extend({ by: z.string().max(NODE_ID_CHARS_MAX) });
const Updates = z.array(GossipSchema).max(64);
const Seq = z.number().int().nonnegative();
const From = { from: MemberId, fromAddress: Address };

export const SwimMsgSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("ping"),
    ...From,
    seq: Seq,
    target: MemberId,
    updates: Updates,
  }),
  z.object({ type: z.literal("ack"), ...From, seq: Seq, updates: Updates }),
  z.object({
    type: z.literal("ping-req"),
    ...From,
    seq: Seq,
    target: MemberId,
    targetAddress: Address,
    timeoutMs: z.number().int().positive().max(60_000),
    updates: Updates,
  }),
  z.object({ type: z.literal("nack"), ...From, seq: Seq, updates: Updates }),
  z.object({
    type: z.literal("push-pull"),
    ...From,
    reply: z.boolean(),
    members: z.array(SwimMemberSchema).max(100_000),
  }),
]);

/** Cluster-wide settings, carried by every gossip message until everyone has them. */
export const ClusterSettings = z.object({
  replicationFactor: z.number().int().positive().max(15),
  partitions: z.number().int().positive().max(65_536),
  /** Who set them: an orchestrator's flags win over a node's own defaults. */
  source: z.enum(["orchestrator", "node"]),
});
export type ClusterSettings = z.infer<typeof ClusterSettings>;

/**
 * A member's own limits (src/core/agreed-settings.ts), carried by full-table exchanges: members
 * compare them when they meet. Bounds are the flags' own.
 */
export const MemberLimitsSchema = z.object({
  keyBytesMax: z.number().int().positive().max(65_536),
  valueBytesMax: z.number().int().nonnegative().max(512 * 1024 * 1024),
  membersMax: z.number().int().positive().max(100_000),
});

/** POST /internal/v1/gossip: one SWIM message, one way (answers travel as their own messages). */
export const GossipEnvelope = z.object({
  msg: SwimMsgSchema,
  cluster: ClusterSettings.optional(),
  /** The sender's limits (on full-table exchanges only; older members send none). */
  limits: MemberLimitsSchema.optional(),
  /** The sender's wall clock when it sent this (ms): lets members see whose clock is off. */
  at: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
});
export type GossipEnvelope = z.infer<typeof GossipEnvelope>;
/** What a sender passes in (the state machine's own message type). */
export interface GossipOut {
  readonly msg: SwimMsg;
  readonly cluster?: ClusterSettings;
  readonly limits?: MemberLimits;
  readonly at?: number;
}
