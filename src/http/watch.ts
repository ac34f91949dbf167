/**
 * Watches: `GET /kv/{key}?watch=true` and `GET /kv?prefix=P&watch=true` answer Server-Sent
 * Events, one per change: `event: put` or `event: delete`, `id:` the version, `data:` the
 * record as JSON.
 *
 * How: the member serving the watch (any member, the orchestrator too) long-polls every data
 * node serving in its ring for the client writes it logged under the watch (watch/poll,
 * src/core/change-log.ts). Every replica of a key logs each write, so a write reaches the watcher
 * while any one of its replicas answers: a killed replica costs nothing but its poller's retries.
 * Each key's last delivered version is kept, and a change is delivered only when newer: once,
 * whichever replica reported it first, in version order (delivery rounds with a barrier, #flush:
 * writes made one after another come in that order). The set of nodes polled is
 * taken from the ring again every second (a joining node gets a poller, a removed one loses
 * it): partitions moving between nodes change nothing, since moves are not client writes.
 *
 * Resuming (`Last-Event-ID`, or `?since=VERSION`): pollers start first, then every key under the
 * watch whose newest version (tombstones included) is newer than that id is delivered, by a
 * listing. The same catch-up runs when a node reports a gap (its log dropped entries).
 *
 * Bounded: at most --max-watchers per member (503); a watcher whose unread events pass
 * --watch-buffer-bytes gets `event: overflow` and is closed (it resumes with its last id). A
 * comment line every 15 s keeps idle connections open.
 */
import { compareVersions, formatVersion, parseVersion, type Version } from "../core/hlc.ts";
import { isExpired, type KvRecord } from "../core/record.ts";
import { sleep, type Timer } from "../core/scheduler.ts";
import { fromWire } from "../transport/messages.ts";
import type { MemberContext } from "./context.ts";
import { DkvError } from "./errors.ts";
import { recordJson } from "./kv-handler.ts";
import { listPage } from "./list.ts";

const HEARTBEAT_MS = 15_000;
/** A poll waits this long for a change before answering empty (then the next poll goes). */
const POLL_WAIT_MS = 5_000;
const POLL_LIMIT = 1000;
/** After a failed poll (node down), wait this long before asking it again. */
const RETRY_MS = 500;
/** The nodes polled are taken from the ring this often. */
const RESYNC_MS = 1_000;
/**
 * Changes are gathered this long before a delivery round (see #flush) starts: the same write, or
 * two consecutive ones, reach the watcher from different replicas' polls in either order.
 */
const REORDER_MS = 150;
/**
 * A delivery round waits at most this long for the clock to pass the newest version it holds (so
 * that a write started after the round began has a later version than every one it delivers).
 */
const BARRIER_WAIT_MAX_MS = 50;
/** Catch-up polls per node in one delivery round, at most (each up to POLL_LIMIT entries). */
const BARRIER_POLLS_MAX = 8;
/**
 * Keys whose last delivered version a watcher remembers, at most (the least recently changed is
 * forgotten first; a late, older report of a forgotten key could then be delivered again).
 */
const KEYS_REMEMBERED_MAX = 100_000;

const encoder = new TextEncoder();
const watching = new WeakMap<MemberContext, { n: number }>();

/** What a watch covers: every key starting with `prefix`, or the one `key`. */
export interface WatchTarget {
  readonly prefix: string;
  readonly key?: string;
}

/** The id a watcher resumes from: `?since=` or the Last-Event-ID header (undefined: none). */
export function parseSince(req: Request, since: string | null | undefined): Version | undefined {
  const text = since ?? req.headers.get("last-event-id");
  if (text === null || text === undefined || text === "") return undefined;
  const v = parseVersion(decodeId(text));
  if (v === undefined) {
    throw new DkvError(
      "bad_request",
      `since / Last-Event-ID must be a version an event carried (got '${text.slice(0, 80)}')`,
    );
  }
  return v;
}

/** An event id: the version, with the characters SSE lines cannot hold escaped. */
function encodeId(v: Version): string {
  return formatVersion(v).replace(/[%\r\n]/g, (c) => encodeURIComponent(c));
}

function decodeId(text: string): string {
  return text.replace(/%(25|0D|0A)/gi, (m) => decodeURIComponent(m));
}

/** The SSE answer of a watch; a 503 when this member serves --max-watchers already. */
export function watchResponse(
  ctx: MemberContext,
  target: WatchTarget,
  since: Version | undefined,
): Response {
  const ring = ctx.ring();
  if (ring === undefined || ring.n === 0) {
    throw new DkvError("unavailable", "no membership view with data nodes yet");
  }
  let count = watching.get(ctx);
  if (count === undefined) watching.set(ctx, count = { n: 0 });
  if (count.n >= ctx.config.watchersMax) {
    throw new DkvError(
      "unavailable",
      `this member serves ${count.n} watches already (--max-watchers ${ctx.config.watchersMax})`,
    );
  }
  count.n++;
  const counter = count;
  let watch: Watch | undefined;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      watch = new Watch(ctx, target, since, controller, () => counter.n--);
      watch.start();
    },
    cancel() {
      watch?.close();
    },
  }, { highWaterMark: ctx.config.watchBufferBytes, size: (chunk) => chunk?.byteLength ?? 0 });
  return new Response(stream, {
    status: 200,
    headers: {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    },
  });
}

interface Poller {
  readonly address: string;
  /** Resolves once the poller knows its node's current entry number (or failed to). */
  readonly ready: Promise<void>;
  /** The node's log: entries up to `after` were received; `epoch` undefined until known. */
  after: number;
  epoch: string | undefined;
}

class Watch {
  #closed = false;
  readonly #last = new Map<string, Version>();
  readonly #pollers = new Map<string, Poller>();
  #timers: Timer[] = [];
  #catchingUp: Promise<void> | undefined;
  /** Changes waiting for the next delivery round. */
  #held: KvRecord[] = [];
  #flushTimer: Timer | undefined;
  /** A delivery round is running (it arms the next timer when it ends). */
  #flushing = false;
  /** Versions at or below this were seen by the client already (resume), or predate the watch. */
  readonly #floor: Version;

  constructor(
    readonly ctx: MemberContext,
    readonly target: WatchTarget,
    readonly since: Version | undefined,
    readonly out: ReadableStreamDefaultController<Uint8Array>,
    readonly onClose: () => void,
  ) {
    this.#floor = since ??
      {
        wallMs: Math.max(0, ctx.sched.now() - ctx.config.timers.maxClockSkewMs),
        counter: 0,
        nodeId: "",
      };
  }

  start(): void {
    const s = this.ctx.sched;
    this.#send(
      `retry: 1000\n: watching ${JSON.stringify(this.target.key ?? this.target.prefix)}\n\n`,
    );
    this.#timers.push(s.setInterval(() => this.#send(": heartbeat\n\n"), HEARTBEAT_MS));
    this.#timers.push(s.setInterval(() => this.#syncPollers(), RESYNC_MS));
    this.#syncPollers();
    if (this.since !== undefined) {
      // Pollers first (they see every write from now on), then the keys changed since the id.
      const ready = [...this.#pollers.values()].map((p) => p.ready);
      void Promise.all(ready).then(() => this.#catchUp());
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) this.ctx.sched.clear(t);
    this.ctx.sched.clear(this.#flushTimer);
    this.#held = [];
    this.#pollers.clear();
    this.onClose();
  }

  /** A poller for every data node serving in the ring; none for the others. */
  #syncPollers(): void {
    const ring = this.ctx.ring();
    if (this.#closed || ring === undefined) return;
    const serving = ring.view.members.filter((m) => m.role === "node" && ring.isServing(m.id));
    const ids = new Set(serving.map((m) => m.id));
    for (const id of this.#pollers.keys()) if (!ids.has(id)) this.#pollers.delete(id);
    for (const m of serving) {
      const known = this.#pollers.get(m.id);
      if (known !== undefined && known.address === m.address) continue;
      let ready!: () => void;
      const poller: Poller = {
        address: m.address,
        ready: new Promise((r) => (ready = r)),
        after: -1,
        epoch: undefined,
      };
      this.#pollers.set(m.id, poller);
      void this.#poll(m.id, poller, ready);
    }
  }

  async #poll(id: string, me: Poller, ready: () => void): Promise<void> {
    const timeoutMs = POLL_WAIT_MS + this.ctx.config.timers.requestTimeoutMs;
    while (!this.#closed && this.#pollers.get(id) === me) {
      try {
        const epoch = me.epoch;
        const waitMs = epoch === undefined ? 0 : POLL_WAIT_MS;
        const res = await this.#pollOnce(me.address, me.after, epoch, waitMs, timeoutMs);
        if (epoch === undefined || res.epoch !== epoch) {
          // Starting, or the node restarted (its log starts again): from its current entry on.
          me.epoch = res.epoch;
          me.after = res.seq;
          ready();
          continue;
        }
        for (const w of res.records) this.#emit(fromWire(w));
        // A delivery round's own poll may have moved past this answer already.
        if (res.seq > me.after) me.after = res.seq;
        if (res.gap) void this.#catchUp();
      } catch (e) {
        ready();
        this.ctx.log.debug(`watch: poll of ${id} failed: ${(e as Error).message}`);
        await sleep(this.ctx.sched, RETRY_MS);
      }
    }
  }

  /** One watch/poll of the node at `address` for the watch's keys logged after entry `after`. */
  #pollOnce(
    address: string,
    after: number,
    epoch: string | undefined,
    waitMs: number,
    timeoutMs: number,
  ) {
    const { prefix, key } = this.target;
    return this.ctx.peers.watchPoll(address, {
      prefix,
      ...(key === undefined ? {} : { key }),
      after,
      ...(epoch === undefined ? {} : { epoch }),
      limit: POLL_LIMIT,
      waitMs,
    }, timeoutMs);
  }

  /** Deliver every key under the watch whose newest version is newer than the floor. */
  #catchUp(): Promise<void> {
    this.#catchingUp ??= this.#runCatchUp().finally(() => (this.#catchingUp = undefined));
    return this.#catchingUp;
  }

  async #runCatchUp(): Promise<void> {
    let after: string | undefined;
    while (!this.#closed) {
      try {
        const page = await listPage(this.ctx, {
          prefix: this.target.key ?? this.target.prefix,
          limit: this.ctx.config.listKeysMax,
          after,
          keysOnly: false,
          count: false,
          watch: false,
          withDead: true,
          consistency: "quorum",
          params: new URLSearchParams(),
        });
        for (const r of page.items) {
          if (this.target.key !== undefined && r.key !== this.target.key) continue;
          this.#emit(r);
        }
        if (page.next === undefined) return;
        after = page.next;
      } catch (e) {
        this.ctx.log.debug(`watch: catch-up listing failed: ${(e as Error).message}`);
        await sleep(this.ctx.sched, RETRY_MS);
      }
    }
  }

  /** Hold a change for the next delivery round. */
  #emit(r: KvRecord): void {
    if (this.#closed) return;
    this.#held.push(r);
    if (!this.#flushing) {
      this.#flushTimer ??= this.ctx.sched.setTimeout(() => void this.#flush(), REORDER_MS);
    }
  }

  /**
   * A delivery round. The changes held so far are the batch; `top` is the newest version among
   * them. Once the clock has passed `top`, every node is asked for what it logged since its
   * poller's last answer (a barrier), and then every change known with a version up to `top` is
   * delivered, in version order; newer ones wait for the next round.
   *
   * Why this keeps the order of writes made one after the other (B started after A was
   * acknowledged): A was logged by the replicas that acknowledged it before B began, so before the
   * watcher heard of B, so before this round's barrier asked them. When B is delivered (its
   * version at most `top`), A is known too, and its version is older (B's coordinator ticked its
   * clock after A's was read), so A goes first. A write that begins after the barrier started has
   * a version past `top` (the clock passed it first): it waits for a later round, whose barrier
   * comes after it. Replicas that do not answer the barrier are skipped: A is missed only if every
   * replica that logged it is unreachable (at quorum, a majority of its replicas).
   */
  async #flush(): Promise<void> {
    this.#flushTimer = undefined;
    if (this.#closed || this.#held.length === 0) return;
    this.#flushing = true;
    try {
      const batch = this.#held;
      this.#held = [];
      let top = batch[0]!.version;
      for (const r of batch) if (compareVersions(r.version, top) > 0) top = r.version;
      const waitMs = Math.min(top.wallMs + 1 - this.ctx.sched.now(), BARRIER_WAIT_MAX_MS);
      if (waitMs >= 0) await sleep(this.ctx.sched, waitMs + 1);
      await this.#barrier();
      if (this.#closed) return;
      const now: KvRecord[] = [];
      const later: KvRecord[] = [];
      for (const r of batch.concat(this.#held)) {
        (compareVersions(r.version, top) <= 0 ? now : later).push(r);
      }
      this.#held = later;
      now.sort((a, b) => compareVersions(a.version, b.version));
      for (const r of now) this.#deliver(r);
    } finally {
      this.#flushing = false;
      if (!this.#closed && this.#held.length > 0) {
        this.#flushTimer ??= this.ctx.sched.setTimeout(() => void this.#flush(), REORDER_MS);
      }
    }
  }

  /** Ask every polled node, without waiting, for what it logged past its poller's last answer. */
  async #barrier(): Promise<void> {
    const timeoutMs = this.ctx.config.timers.requestTimeoutMs;
    await Promise.all([...this.#pollers.values()].map(async (p) => {
      const epoch = p.epoch;
      // A poller still starting delivers its node's entries from its first answer on only.
      if (epoch === undefined) return;
      let after = p.after;
      for (let i = 0; i < BARRIER_POLLS_MAX && !this.#closed; i++) {
        try {
          const res = await this.#pollOnce(p.address, after, epoch, 0, timeoutMs);
          if (res.epoch !== epoch) return; // restarted: its poller starts over
          for (const w of res.records) this.#held.push(fromWire(w));
          if (res.gap) void this.#catchUp();
          if (res.seq > p.after && p.epoch === epoch) p.after = res.seq;
          if (res.records.length < POLL_LIMIT) return;
          after = res.seq;
        } catch (e) {
          // Down or slow: the other replicas of its writes answer for them.
          this.ctx.log.debug(`watch: barrier poll of ${p.address} failed: ${(e as Error).message}`);
          return;
        }
      }
    }));
  }

  /** One change, if newer than what this watcher delivered of its key. */
  #deliver(r: KvRecord): void {
    if (this.#closed) return;
    const prev = this.#last.get(r.key) ?? this.#floor;
    if (compareVersions(r.version, prev) <= 0) return;
    this.#last.delete(r.key);
    this.#last.set(r.key, r.version);
    if (this.#last.size > KEYS_REMEMBERED_MAX) {
      this.#last.delete(this.#last.keys().next().value!);
    }
    if (!r.tombstone && isExpired(r, this.ctx.sched.now())) return; // absent already
    const id = encodeId(r.version);
    const j = recordJson(r);
    const data = r.tombstone ? { key: r.key, version: j.version } : {
      key: j.key,
      value: j.value,
      ...(j.encoding ? { encoding: j.encoding } : {}),
      version: j.version,
      ...(j.expiresAt ? { expiresAt: j.expiresAt } : {}),
    };
    this.#send(
      `event: ${r.tombstone ? "delete" : "put"}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`,
    );
  }

  /** Queue text for the client; past the buffer limit, `overflow` and close. */
  #send(text: string): void {
    if (this.#closed) return;
    try {
      this.out.enqueue(encoder.encode(text));
      if ((this.out.desiredSize ?? 0) < 0) {
        this.out.enqueue(encoder.encode(
          `event: overflow\ndata: ${
            JSON.stringify({
              message: `more than ${this.ctx.config.watchBufferBytes} bytes of events unread ` +
                `(--watch-buffer-bytes): closed; resume with the last id`,
            })
          }\n\n`,
        ));
        this.out.close();
        this.close();
      }
    } catch {
      this.close(); // the client went away
    }
  }
}
