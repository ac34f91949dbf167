/**
 * Coalesces replica calls per peer: every write (or read) a coordinator issues to the same peer
 * within one turn of the event loop travels in one internal message, and each caller gets its
 * own slice of the answer. Under load this turns many small peer round trips into a few large
 * ones; alone, a request pays no extra wait (the batch goes at the end of the current turn).
 * Batches are bounded by --batch-keys and --batch-bytes; a failed message fails its callers.
 */
import { recordBytes } from "../core/batching.ts";
import type { KvRecord } from "../core/record.ts";
import {
  type PaxosAnswer,
  type PaxosOp,
  type PeerClient,
  type WireRecord,
} from "../transport/index.ts";

export interface WriteAck {
  hadLive: boolean;
  /** Not applied: the replica's list of the key's replicas differs from the coordinator's. */
  stale: boolean;
  newer: { t: number; c: number; n: string } | null;
}

export interface ReadAck {
  /** Does the peer hold any data of the key's partition. */
  held: boolean;
  record: WireRecord | null;
}

interface Pending<I, O> {
  items: I[];
  bytes: number;
  waiters: { resolve: (o: O) => void; reject: (e: unknown) => void }[];
}

export interface BatchLimits {
  readonly keysMax: number;
  readonly bytesMax: number;
  readonly timeoutMs: number;
}

export class PeerBatcher {
  readonly #writes = new Map<string, Pending<{ r: KvRecord; s: number }, WriteAck>>();
  readonly #reads = new Map<string, Pending<{ k: string; s: number }, ReadAck>>();
  readonly #paxos = new Map<string, Pending<PaxosOp, PaxosAnswer>>();

  constructor(
    private readonly peers: PeerClient,
    private readonly limits: BatchLimits,
    private readonly defer: (fn: () => void) => void,
  ) {}

  /**
   * Write to member `to` at `address` (the receiver refuses a message meant for another id);
   * `set` is the fingerprint of the key's replica list (Ring.setHash).
   */
  write(address: string, to: string, record: KvRecord, set: number): Promise<WriteAck> {
    return this.#enqueue(
      this.#writes,
      `${to}\n${address}`,
      { r: record, s: set },
      recordBytes(record),
      (items) => this.#sendWrites(address, to, items),
    );
  }

  read(address: string, to: string, key: string, set: number): Promise<ReadAck> {
    return this.#enqueue(
      this.#reads,
      `${to}\n${address}`,
      { k: key, s: set },
      key.length + 16,
      (items) => this.#sendReads(address, to, items),
    );
  }

  /** A Paxos message (conditional writes): its own answer, or a refusal (`error`) of it alone. */
  paxos(address: string, to: string, op: PaxosOp, bytes: number): Promise<PaxosAnswer> {
    return this.#enqueue(
      this.#paxos,
      `${to}\n${address}`,
      op,
      bytes,
      async (items) => {
        const res = await this.peers.paxos(address, { to, ops: items }, this.limits.timeoutMs);
        if (res.answers.length !== items.length) {
          throw new Error(
            `${address}: answer has ${res.answers.length} answers for ${items.length} messages`,
          );
        }
        return res.answers;
      },
    );
  }

  #enqueue<I, O>(
    queues: Map<string, Pending<I, O>>,
    address: string,
    item: I,
    bytes: number,
    send: (items: I[]) => Promise<O[]>,
  ): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      let q = queues.get(address);
      if (
        q !== undefined &&
        (q.items.length >= this.limits.keysMax || q.bytes + bytes > this.limits.bytesMax)
      ) {
        this.#flush(queues, address, send);
        q = undefined;
      }
      if (q === undefined) {
        q = { items: [], bytes: 0, waiters: [] };
        queues.set(address, q);
        this.defer(() => this.#flush(queues, address, send, q));
      }
      q.items.push(item);
      q.bytes += bytes;
      q.waiters.push({ resolve, reject });
    });
  }

  #flush<I, O>(
    queues: Map<string, Pending<I, O>>,
    address: string,
    send: (items: I[]) => Promise<O[]>,
    only?: Pending<I, O>,
  ): void {
    const q = queues.get(address);
    if (q === undefined || (only !== undefined && q !== only)) return;
    queues.delete(address);
    send(q.items).then(
      (out) => q.waiters.forEach((w, i) => w.resolve(out[i]!)),
      (e) => q.waiters.forEach((w) => w.reject(e)),
    );
  }

  async #sendWrites(
    address: string,
    to: string,
    items: { r: KvRecord; s: number }[],
  ): Promise<WriteAck[]> {
    const res = await this.peers.writeRecords(
      address,
      to,
      items.map((x) => x.r),
      items.map((x) => x.s),
      this.limits.timeoutMs,
    );
    if (res.hadLive.length !== items.length) {
      throw new Error(
        `${address}: answer has ${res.hadLive.length} acks for ${items.length} records`,
      );
    }
    return res.hadLive.map((hadLive, i) => ({
      hadLive,
      stale: res.stale?.[i] ?? false,
      newer: res.newer?.[i] ?? null,
    }));
  }

  async #sendReads(
    address: string,
    to: string,
    items: { k: string; s: number }[],
  ): Promise<ReadAck[]> {
    // Each key once (the receiver refuses repeats): reads of the same key in one turn share it.
    const at = new Map<string, number>();
    const keys: string[] = [];
    const sets: number[] = [];
    for (const x of items) {
      if (at.has(x.k)) continue;
      at.set(x.k, keys.length);
      keys.push(x.k);
      sets.push(x.s);
    }
    const res = await this.peers.read(address, { to, keys, sets }, this.limits.timeoutMs);
    if (res.records.length !== keys.length) {
      throw new Error(
        `${address}: answer has ${res.records.length} records for ${keys.length} keys`,
      );
    }
    return items.map((x) => {
      const i = at.get(x.k)!;
      return { record: res.records[i] ?? null, held: res.held[i] ?? false };
    });
  }
}
