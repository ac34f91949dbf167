/** Peer-to-peer routes of a data node, under /internal/v1 (see docs/protocol.md). */
import { Hono } from "hono";
import type { z } from "zod";
import type { HintStore } from "../core/hint-store.ts";
import type { ChangeLog } from "../core/change-log.ts";
import type { Scheduler } from "../core/scheduler.ts";
import type { ClockGuard } from "../node/clock-guard.ts";
import type { Durability } from "../node/data-dir.ts";
import type { Store } from "../node/store.ts";
import { mutations } from "../core/mutations.ts";
import { type KvRecord, valueSize } from "../core/record.ts";
import { valueUnits } from "../core/batching.ts";
import { decodeMoveFrame, decodeWriteFrame } from "../core/move-frame.ts";
import {
  BucketsRequest,
  DigestsRequest,
  fromWire,
  HintRequest,
  ListRequest,
  MoveDone,
  type PaxosAnswer,
  type PaxosOp,
  PaxosRequest,
  type PaxosResponse,
  ReadRequest,
  type ReadResponse,
  toWire,
  VersionsRequest,
  WatchPollRequest,
  type WireBallot,
  type WireRecord,
  WriteRequest,
  type WriteResponse,
} from "../transport/index.ts";
import type { PaxosReplica } from "../node/paxos-replica.ts";
import { compareVersions, type Version } from "../core/hlc.ts";
import { bodyBytes, internalBodyBytesMax, parseBody } from "./body.ts";
import type { MemberContext } from "./context.ts";
import { DkvError } from "./errors.ts";
import { checkKey, checkReadKey, checkValue } from "./validate.ts";

export interface NodeInternalHooks {
  readonly hints: HintStore;
  /** Does this member hold partition p (see DataNode.holdsPartition). */
  holds(partition: number): boolean;
  /** Holds it, or is receiving it (DataNode.holdsOrReceives): takes a previous owner's write. */
  holdsOrReceives(partition: number): boolean;
  /** Is this member leaving (it then takes no hints). */
  leaving(): boolean;
  /** A sender finished streaming a partition here. */
  onMoveDone(partition: number, from: string): void;
  now(): number;
  /** Refuses records whose versions are too far ahead of this member's clock. */
  readonly clock: ClockGuard;
  /** --data-dir: refuse (507) before applying when the log cannot be written; wait before acking. */
  readonly durability?: Durability;
  /** --data-dir: why this member answers no replica read or write yet after a restart. */
  gate?(): string | undefined;
  /** Client writes this node took, for watches. */
  readonly changes: ChangeLog;
  readonly sched: Scheduler;
  /** The Paxos acceptor of this replica (conditional writes). */
  readonly paxos: PaxosReplica;
}

const ballotOf = (w: WireBallot): Version => ({ wallMs: w.t, counter: w.c, nodeId: w.n });
const wireBallot = (v: Version): WireBallot => ({ t: v.wallMs, c: v.counter, n: v.nodeId });

/**
 * The replica calls a coordinator makes most (kv/read, kv/write, paxos), on requests already
 * parsed with their zod schemas: the HTTP routes below and the TCP peer link
 * (src/http/peer-tcp-server.ts) both answer through these, with the same checks. A refusal
 * throws a DkvError.
 */
export interface ReplicaCalls {
  read(req: ReadRequest): ReadResponse;
  write(req: WriteRequest): Promise<WriteResponse>;
  paxos(req: PaxosRequest): Promise<PaxosResponse>;
}

/**
 * Every peer call a node answers, on requests already parsed (a move or write frame: its bytes),
 * for the HTTP routes and the TCP peer link alike. Gossip is the member's agent's, apart. A call
 * given bytes decodes them (copying what it keeps) before its first await: the link hands it a
 * view of its read buffer, valid only until the call returns.
 */
export interface PeerCalls extends ReplicaCalls {
  /** kv/write as a write frame (src/core/move-frame.ts): the link's binary kv/write. */
  writeFrame(bytes: Uint8Array): Promise<WriteResponse>;
  list(req: ListRequest): unknown;
  watchPoll(req: WatchPollRequest): Promise<unknown>;
  hints(req: HintRequest): Promise<unknown>;
  digests(req: DigestsRequest): unknown;
  buckets(req: BucketsRequest): unknown;
  versions(req: VersionsRequest): unknown;
  moveRecords(bytes: Uint8Array): Promise<unknown>;
  moveDone(req: MoveDone): unknown;
  status(): unknown;
}

export function nodeInternalRoutes(
  ctx: MemberContext,
  hooks: NodeInternalHooks,
): { routes: Hono; calls: PeerCalls } {
  const app = new Hono();
  const store = ctx.store;
  if (store === undefined) throw new Error("nodeInternalRoutes needs a store");
  const bodyMax = internalBodyBytesMax(ctx.config);
  const { keyBytesMax, valueBytesMax } = ctx.config;
  /**
   * Internal records obey the public limits: every key as `checkKey` (400; a tombstone's as
   * `checkReadKey`), every value within --max-value-bytes (413). Checked for the whole request before any of it is applied.
   */
  const checkRecords = (wire: readonly WireRecord[]): KvRecord[] => {
    for (const w of wire) checkRecordKey(w.k, w.d === true);
    const records = wire.map(fromWire); // a bad value (not base64, not Unicode) is a 400
    for (const r of records) checkValue(r.key, r.value, valueBytesMax);
    return records;
  };
  // A tombstone deletes a key some member stored: held to the read limit (issue 16, 17).
  const checkRecordKey = (key: string, tombstone: boolean) => {
    if (tombstone) checkReadKey(key);
    else checkKey(key, keyBytesMax);
  };
  /**
   * A leaving member keeps taking writes only for partitions it still holds (they are streamed
   * on before the drop); one for a partition already handed off would be lost when it exits.
   */
  const refuseHandedOff = (keys: readonly string[], ps: readonly number[]) => {
    if (!hooks.leaving()) return;
    const gone = ps.findIndex((p) => store.partitionSize(p) === 0);
    if (gone !== -1) {
      throw new DkvError(
        "unavailable",
        `this member is leaving and no longer holds the partition of '${keys[gone]!}'`,
      );
    }
  };
  /**
   * An answer carries records up to this many UTF-16 units of keys and values (at least one
   * record): JSON takes at most 6 bytes a unit, which the callers' answer cap (the internal body
   * limit, 7 × (value + batch) + 1 MiB) covers.
   */
  const answerUnitsMax = valueBytesMax + ctx.config.batchBytesMax;
  const needView = () => {
    if (ctx.view() === undefined) throw new DkvError("unavailable", "no membership view yet");
  };
  const checkPartition = (p: number) => {
    if (p >= store.partitionCount) {
      throw new DkvError(
        "bad_request",
        `partition ${p} out of range (0-${store.partitionCount - 1})`,
      );
    }
    return p;
  };

  /**
   * Per key, does the coordinator's list of the key's replicas (its fingerprint in `sets`; -1 =
   * no check) differ from this member's? Undefined when no fingerprints were sent.
   */
  const staleSets = (partitions: readonly number[], sets: readonly number[] | undefined) => {
    if (sets === undefined || mutations.dropRightAfterStream) return undefined;
    const ring = ctx.ring();
    if (ring === undefined) return undefined;
    let any = false;
    const out = partitions.map((p, i) => {
      const s = sets[i] ?? -1;
      // -2: a write meant for a previous owner, taken only while this member holds p.
      const differs = s === -2 ? !hooks.holdsOrReceives(p) : s !== -1 && s !== ring.setHash[p];
      any ||= differs;
      return differs;
    });
    return any ? out : undefined;
  };

  /** A replica call names the member it is meant for: refuse one meant for another. */
  const checkTo = (to: string) => {
    if (to !== ctx.selfId) {
      throw new DkvError(
        "conflict",
        `this is member ${ctx.selfId}, not ${to}: the address now belongs to another member`,
      );
    }
  };

  const gated = () => {
    const shut = hooks.gate?.();
    if (shut !== undefined) throw new DkvError("unavailable", shut);
  };

  /** kv/write on a parsed request (HTTP route and TCP peer link alike). */
  const write = (req: WriteRequest): Promise<WriteResponse> =>
    writeChecked(req.to, req.records.map((w) => w.k), () => checkRecords(req.records), req.sets);

  /**
   * kv/write as a write frame's bytes (the TCP peer link's binary kv/write): decoded (the frame
   * decoder checks every length, version and text), then the same checks as a JSON request's.
   */
  const writeFrame = (bytes: Uint8Array): Promise<WriteResponse> => {
    const frame = decodeWriteFrame(bytes);
    if (typeof frame === "string") {
      throw new DkvError("bad_request", `invalid write frame: ${frame}`);
    }
    const records = frame.records;
    return writeChecked(frame.to, records.map((r) => r.key), () => {
      for (const r of records) checkRecordKey(r.key, r.tombstone);
      for (const r of records) checkValue(r.key, r.value, valueBytesMax);
      return records;
    }, frame.sets);
  };

  /**
   * The write itself: `check` bounds every record (400/413) and gives them, after the checks
   * of the member (its id, view, restart gate, a leaving member's handed-off partitions).
   */
  const writeChecked = async (
    to: string,
    keys: readonly string[],
    check: () => KvRecord[],
    sets: readonly number[] | undefined,
  ): Promise<WriteResponse> => {
    checkTo(to);
    needView();
    gated();
    // Each key hashed once: its partition serves every check below, the merge and the look-up.
    const ps = keys.map((k) => store.partitionOf(k));
    refuseHandedOff(keys, ps);
    // Bounds first, for the whole request: a refused request (400) stores and observes nothing.
    const records = check();
    hooks.clock.refuseAhead(records, "kv/write");
    store.admit(records);
    // --max-store-bytes bounds client writes (a coordinator's, with a replica-list fingerprint):
    // a 507 for the whole request, which the coordinator reports. Moves, anti-entropy, hints and
    // read repair (no fingerprint) carry data the cluster already accepted, and always pass.
    if (sets !== undefined && store.bytesMax !== Infinity) {
      store.admitBytes(records.filter((_, i) => (sets[i] ?? -1) !== -1));
    }
    hooks.durability?.checkWritable();
    let lost = false;
    const newer: ({ t: number; c: number; n: string } | null)[] = [];
    const stale = staleSets(ps, sets);
    const hadLive = records.map((r, i) => {
      if (stale?.[i]) {
        newer.push(null);
        return false;
      }
      ctx.coordinator.observe(r);
      const had = store.apply(r, ps[i]);
      // The version kept instead of r, if any (no record made: its value would be decoded).
      const kept = store.versionOtherThan(r, ps[i]);
      if (kept !== undefined) {
        lost = true;
        newer.push({ t: kept.wallMs, c: kept.counter, n: kept.nodeId });
      } else {
        newer.push(null);
        // A coordinator's write (with a replica-list fingerprint) is a client write: logged.
        if ((sets?.[i] ?? -1) !== -1) hooks.changes.append(r, hooks.now());
      }
      return had;
    });
    const out = lost ? { hadLive, newer } : { hadLive };
    // A replica's ack counts only once its own --fsync rule is met.
    if (hooks.durability !== undefined) await hooks.durability.durable();
    return stale ? { ...out, stale } : out;
  };

  /** One Paxos op's answer; a refused op (bad key or record, ballot too far ahead) is `error`. */
  const paxosOne = (op: PaxosOp): PaxosAnswer => {
    try {
      if (op.p === "prepare") {
        checkReadKey(op.key);
        const since = op.since === undefined ? undefined : ballotOf(op.since);
        const a = hooks.paxos.prepare(op.key, ballotOf(op.ballot), op.set, since);
        const out: PaxosAnswer = { ok: a.ok, held: a.held };
        if (a.higher) out.higher = wireBallot(a.higher);
        if (a.busy) out.busy = true;
        if (a.stale) out.stale = true;
        if (a.accepted) {
          out.accepted = {
            ballot: wireBallot(a.accepted.ballot),
            record: toWire(a.accepted.record),
          };
        }
        if (a.committed) out.committed = wireBallot(a.committed);
        if (a.recent) {
          out.recent = a.recent.map((x) => ({ b: wireBallot(x.ballot), v: wireBallot(x.version) }));
        }
        if (a.forgotten) out.forgotten = wireBallot(a.forgotten);
        if (a.record) out.record = toWire(a.record);
        return out;
      }
      const [record] = checkRecords([op.record]);
      if (op.p === "commit") ctx.coordinator.observe(record!, "paxos commit");
      const a = op.p === "propose"
        ? hooks.paxos.propose(ballotOf(op.ballot), record!, op.set)
        : hooks.paxos.commit(ballotOf(op.ballot), record!, op.set);
      if (a.ok) return { ok: true };
      return a.stale ? { ok: false, stale: true } : { ok: false, higher: wireBallot(a.higher!) };
    } catch (e) {
      if (!(e instanceof DkvError)) throw e;
      return { ok: false, error: e.message, status: e.status };
    }
  };

  /** paxos on a parsed request (HTTP route and TCP peer link alike). */
  const paxos = async (req: PaxosRequest): Promise<PaxosResponse> => {
    checkTo(req.to);
    needView();
    // A member restarted from its data dir takes no part in choosing until its restart gate
    // opens, as for kv/read and kv/write: its ring may be the few members back so far, placing on
    // it keys it never held (sim seed 129: it promised and committed a counter's increment on an
    // empty key after a power cut).
    gated();
    // With --data-dir every op is answered only once durable, as kv/write: a commit writes the
    // store, and a promise or an accept the acceptor's state (a forgotten promise breaks Paxos).
    hooks.durability?.checkWritable();
    const answers = req.ops.map(paxosOne);
    if (hooks.durability !== undefined) await hooks.durability.durable();
    return { answers };
  };

  /** kv/read on a parsed request (HTTP route and TCP peer link alike). */
  const read = (req: ReadRequest): ReadResponse => {
    checkTo(req.to);
    gated();
    const seen = new Set<string>();
    for (const k of req.keys) {
      checkReadKey(k); // reads are not held to this member's write limit (issue 16, point 17)
      if (seen.has(k)) {
        throw new DkvError("bad_request", `key '${k.slice(0, 100)}' is asked for twice`);
      }
      seen.add(k);
    }
    needView();
    const ps = req.keys.map((k) => store.partitionOf(k));
    // Bounded in bytes: stop once the keys and values taken so far fill the answer's budget; the
    // caller asks again for the rest (`partial`).
    const records: (WireRecord | null)[] = [];
    let units = 0;
    for (let i = 0; i < req.keys.length; i++) {
      const r = store.get(req.keys[i]!, ps[i]);
      const size = r === undefined ? 0 : r.key.length + valueUnits(r.value);
      if (records.length > 0 && units + size > answerUnitsMax) break;
      units += size;
      records.push(r === undefined ? null : toWire(r));
    }
    const stale = staleSets(ps, req.sets);
    const held = records.map((_, i) => !stale?.[i] && hooks.holds(ps[i]!));
    return records.length < req.keys.length ? { records, held, partial: true } : { records, held };
  };

  const list = (req: ListRequest) => {
    needView();
    // Behind the restart gate this member's copy may miss what was written while it was away.
    gated();
    const { held, stale } = listCoverage(ctx, hooks.holds, req.sets);
    const out = store.list(req.prefix, req.after, req.limit, answerUnitsMax, req.keysOnly === true);
    return {
      records: out.records.map(toWire),
      more: out.more,
      held,
      ...(stale.length > 0 ? { stale } : {}),
    };
  };

  const watchPoll = async (req: WatchPollRequest) => {
    const log = hooks.changes;
    log.touch(hooks.now());
    const answer = (gap: boolean, seq: number, records: KvRecord[] = []) => ({
      epoch: log.epoch,
      seq,
      records: records.map(toWire),
      gap,
    });
    if (req.after === -1) return answer(false, log.last);
    if (req.epoch !== undefined && req.epoch !== log.epoch) return answer(true, log.last);
    let slice = log.since(req.after, req.prefix, req.key, req.limit);
    if (slice.records.length === 0 && !slice.gap && req.waitMs > 0) {
      await log.waitForMore(hooks.sched, req.waitMs);
      log.touch(hooks.now());
      slice = log.since(req.after, req.prefix, req.key, req.limit);
    }
    return answer(slice.gap, slice.seq, slice.records);
  };

  const hints = async (req: HintRequest) => {
    // A leaving member hands its hints off and then exits: one taken now could be lost.
    if (hooks.leaving()) throw new DkvError("unavailable", "this member is leaving: no hints");
    // Refused whole (400) if any record is too far ahead: no hint of it is held.
    const records = checkRecords(req.records);
    hooks.clock.refuseAhead(records, "hints");
    hooks.durability?.checkWritable();
    let stored = 0;
    for (const r of records) {
      if (hooks.hints.add(req.target, r, hooks.now())) stored++;
    }
    if (stored < req.records.length) {
      ctx.log.warn(
        `hint store full (${hooks.hints.count} hints, ${hooks.hints.bytes} bytes): refused ${
          req.records.length - stored
        }`,
      );
    }
    if (hooks.durability !== undefined) await hooks.durability.durable();
    return { stored };
  };

  const digests = (req: DigestsRequest) => {
    needView();
    const ps = req.partitions.map(checkPartition);
    return {
      digests: ps.map((p) => store.partitionDigest(p)),
      held: ps.map((p) => hooks.holds(p)),
    };
  };

  const buckets = (req: BucketsRequest) => {
    needView();
    return { buckets: store.bucketDigests(checkPartition(req.partition)) };
  };

  const versions = (req: VersionsRequest) => {
    needView();
    const after = req.after;
    const records = store.bucketRecords(checkPartition(req.partition), new Set(req.buckets))
      .filter((r) => after === undefined || r.key > after)
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    // At most `limit` entries, and no more than the answer's budget of key bytes (the sender
    // pages on with `after`, as for `limit`).
    const entries = [];
    let units = 0;
    for (const r of records) {
      if (entries.length === req.limit) break;
      const size = r.key.length + r.version.nodeId.length + 64;
      if (entries.length > 0 && units + size > answerUnitsMax) break;
      units += size;
      const { v: _v, e: _e, ...version } = toWire(r);
      entries.push({ ...version, s: valueSize(r.value) });
    }
    return { entries, truncated: records.length > entries.length };
  };

  /**
   * A batch of a moving partition's records, as a move frame: merged in as `kv/write` merges a
   * write without `sets` (the same checks in the same order, all before anything is applied);
   * the answer only counts them (a mover has no use for `hadLive` or `newer`).
   */
  const moveRecords = async (bytes: Uint8Array) => {
    const frame = decodeMoveFrame(bytes);
    if (typeof frame === "string") {
      throw new DkvError("bad_request", `invalid move frame: ${frame}`);
    }
    checkTo(frame.to);
    needView();
    gated();
    const records = frame.records;
    const ps = new Array<number>(records.length);
    for (let i = 0; i < records.length; i++) ps[i] = store.partitionOf(records[i]!.key);
    if (hooks.leaving()) refuseHandedOff(records.map((r) => r.key), ps);
    for (const r of records) checkRecordKey(r.key, r.tombstone);
    for (const r of records) checkValue(r.key, r.value, valueBytesMax);
    hooks.clock.refuseAhead(records, "rebalance/records");
    store.admit(records);
    hooks.durability?.checkWritable();
    // The clock folds in the greatest version only: later versions of this member then order
    // after every one of the batch, as when each is observed (refuseAhead checked them all).
    let greatest: KvRecord | undefined;
    for (const r of records) {
      if (greatest === undefined || compareVersions(r.version, greatest.version) > 0) greatest = r;
    }
    if (greatest !== undefined) ctx.coordinator.observe(greatest);
    reserveFor(store, records, ps);
    for (let i = 0; i < records.length; i++) store.apply(records[i]!, ps[i]);
    if (hooks.durability !== undefined) await hooks.durability.durable();
    return { applied: records.length };
  };

  const moveDone = (req: MoveDone) => {
    hooks.onMoveDone(req.partition, req.from);
    return { ok: true as const };
  };

  const status = () => ctx.status!();

  const calls: PeerCalls = {
    read,
    write,
    writeFrame,
    paxos,
    list,
    watchPoll,
    hints,
    digests,
    buckets,
    versions,
    moveRecords,
    moveDone,
    status,
  };
  const body = <T>(c: { req: { raw: Request } }, schema: z.ZodType<T>) =>
    parseBody(c.req.raw, schema, bodyMax);
  app.post("/kv/write", async (c) => c.json(await write(await body(c, WriteRequest))));
  app.post("/paxos", async (c) => c.json(await paxos(await body(c, PaxosRequest))));
  app.post("/kv/read", async (c) => c.json(read(await body(c, ReadRequest))));
  app.post("/kv/list", async (c) => c.json(list(await body(c, ListRequest))));
  app.post("/watch/poll", async (c) => c.json(await watchPoll(await body(c, WatchPollRequest))));
  app.post("/hints", async (c) => c.json(await hints(await body(c, HintRequest))));
  app.post("/ae/digests", async (c) => c.json(digests(await body(c, DigestsRequest))));
  app.post("/ae/buckets", async (c) => c.json(buckets(await body(c, BucketsRequest))));
  app.post("/ae/versions", async (c) => c.json(versions(await body(c, VersionsRequest))));
  app.post(
    "/rebalance/records",
    async (c) => c.json(await moveRecords(await bodyBytes(c.req.raw, bodyMax))),
  );
  app.post("/rebalance/done", async (c) => c.json(moveDone(await body(c, MoveDone))));
  app.get("/status", (c) => c.json(status()));

  return { routes: app, calls };
}

/**
 * A mover's frame is one partition's batch: room for its keys and values made at once (their
 * UTF-16 units, a hint: the bytes of ASCII text), not one growth every quarter as they are added.
 */
function reserveFor(store: Store, records: readonly KvRecord[], ps: readonly number[]): void {
  const p = ps[0];
  if (p === undefined) return;
  let units = 0;
  for (let i = 0; i < records.length; i++) {
    if (ps[i] !== p) return;
    const r = records[i]!;
    units += r.key.length + r.value.length;
  }
  store.reserve(p, records.length, units);
}

/**
 * What a listing answer covers: the partitions this member holds, and those of them whose
 * replica list differs from the caller's (`sets`, per partition; -1 or none: no check).
 */
function listCoverage(
  ctx: MemberContext,
  holds: (partition: number) => boolean,
  sets: readonly number[] | undefined,
): { held: number[]; stale: number[] } {
  const held: number[] = [];
  const stale: number[] = [];
  const ring = ctx.ring();
  const check = sets !== undefined && ring !== undefined && !mutations.dropRightAfterStream;
  for (let p = 0; p < (ctx.store?.partitionCount ?? 0); p++) {
    if (!holds(p)) continue;
    held.push(p);
    const s = check ? sets[p] ?? -1 : -1;
    if (s !== -1 && s !== ring!.setHash[p]) stale.push(p);
  }
  return { held, stale };
}
