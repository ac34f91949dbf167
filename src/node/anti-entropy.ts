/**
 * Anti-entropy: every interval, this node compares the digests of the partitions it shares with
 * each other live replica; for partitions that differ it compares bucket digests, then the key
 * versions of the differing buckets, and syncs exactly the keys that differ both ways (pull the
 * newer ones, push ours), in bounded batches. Exchanges are idempotent, so two replicas running
 * the same round at once only do the work twice.
 */
import { batchEnd, recordBytes } from "../core/batching.ts";
import type { Progress } from "../core/progress.ts";
import { differingBuckets, sameDigest } from "../core/digest.ts";
import { compareVersions } from "../core/hlc.ts";
import { mutations } from "../core/mutations.ts";
import type { KvRecord } from "../core/record.ts";
import type { Ring, ViewMember } from "../core/view.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { fromWire, type PeerClient, toWire, type WireVersion } from "../transport/index.ts";
import type { Store } from "./store.ts";

export interface AntiEntropyStats {
  rounds: number;
  lastRoundAtMs: number | null;
  lastRoundMs: number | null;
  keysPulled: number;
  keysPushed: number;
}

/** One partition's answers in a fill round (each member asked answers once at most). */
interface Tally {
  /** Who has nothing more for us: holds it with a copy equal to ours. */
  merged: string[];
  /** Who holds nothing of it and owns nothing of it (see fill). */
  empty: string[];
  /** Who answered with no record of it at all. */
  noCopyIds: Set<string>;
  /** Who answered, who of them holds it, who has a copy equal to ours (held or not). */
  answeredIds: Set<string>;
  holderIds: Set<string>;
  equalIds: Set<string>;
}

/**
 * Every previous owner of a partition answered, none holds it whole, and each has a copy equal to
 * ours: each is receiving it itself. Nodes started at once with --join only can form a first ring
 * of two in which each names the other as the partition's previous owner; each then waits for the
 * other for good (about one three-node start in six, once issue 12 made a new owner wait for
 * enough previous owners). If moreover every node of the view is alive and has a copy equal to ours
 * (everyNodeEqual), nobody has anything this copy lacks, and it is complete. Any node down, or with
 * another copy, keeps it waiting (a previous owner back from a power cut may hold writes only it and
 * a node still away took: sim seed 658).
 */
function waitingOnEachOther(
  previous: readonly string[],
  self: string,
  x: Tally,
): boolean {
  const others = previous.filter((id) => id !== self);
  return others.length > 0 &&
    others.every((id) => x.answeredIds.has(id) && !x.holderIds.has(id) && x.equalIds.has(id));
}

export class AntiEntropy {
  #running = false;
  /** The running round's figures, for its progress line. */
  #round = { startedAtMs: 0, partitionsTotal: 0, partitionsDone: 0, keysAtStart: 0, bytes: 0 };
  readonly stats: AntiEntropyStats = {
    rounds: 0,
    lastRoundAtMs: null,
    lastRoundMs: null,
    keysPulled: 0,
    keysPushed: 0,
  };

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly peers: PeerClient,
    private readonly log: Logger,
    private readonly ring: () => Ring | undefined,
    /**
     * Called for a partition found in sync with peer `from` that holds it (or brought in sync);
     * without `from`: nobody holds anything of it.
     */
    private readonly onSynced: (partition: number, from?: string) => void,
    /**
     * Fold a version pulled from a peer into the clock; false (counted, warned) when it is more
     * than --max-clock-skew ahead, and then the record is not stored either.
     */
    private readonly observe: (r: KvRecord, from: string) => boolean,
    private readonly now: () => number,
  ) {}

  /** One round against every live co-replica. Skipped if the previous round still runs. */
  async round(): Promise<void> {
    const ring = this.ring();
    if (this.#running || ring === undefined || mutations.noRepair) return;
    this.#running = true;
    const startMs = this.now();
    try {
      const self = this.config.nodeId;
      const shared = new Map<string, number[]>();
      for (let p = 0; p < ring.table.length; p++) {
        const owners = ring.table[p]!;
        if (!owners.includes(self)) continue;
        for (const id of owners) {
          if (id === self || !ring.isAlive(id)) continue;
          let list = shared.get(id);
          if (list === undefined) shared.set(id, list = []);
          list.push(p);
        }
      }
      this.#round = {
        startedAtMs: startMs,
        partitionsTotal: [...shared.values()].reduce((n, parts) => n + parts.length, 0),
        partitionsDone: 0,
        keysAtStart: this.stats.keysPulled + this.stats.keysPushed,
        bytes: 0,
      };
      await Promise.all(
        [...shared].map(([id, parts]) => this.#withPeer(ring.byId.get(id)!, parts)),
      );
      this.stats.rounds++;
      this.stats.lastRoundAtMs = this.now();
      this.stats.lastRoundMs = this.now() - startMs;
    } finally {
      this.#running = false;
    }
  }

  /** How far the running round is (partitions compared with a peer), or undefined. */
  progress(): Progress | undefined {
    if (!this.#running || this.#round.startedAtMs === 0) return undefined;
    const r = this.#round;
    return {
      startedAtMs: r.startedAtMs,
      partitionsDone: r.partitionsDone,
      partitionsTotal: r.partitionsTotal,
      keysDone: this.stats.keysPulled + this.stats.keysPushed - r.keysAtStart,
      bytesDone: r.bytes,
    };
  }

  /**
   * For partitions this node is still receiving (`movingIn`): ask the live co-replicas and the
   * partition's previous owners (`previousOf`) for their digests, no data. Each member that holds
   * it with a digest equal to ours, or holds nothing of it and is no owner now, is reported
   * (`onSynced`: the rebalancer counts the previous owners merged so, and completes the partition
   * at enough of them); every one of them answering and none holding it completes it (a new
   * cluster, or previous owners that already handed it over and dropped it: there is nothing more
   * to get). Otherwise it waits for the senders' streams (`rebalance/done`) or full anti-entropy
   * rounds with holders.
   */
  async fill(
    partitions: readonly number[],
    previousOf: (p: number) => readonly string[],
  ): Promise<void> {
    const ring = this.ring();
    if (ring === undefined || partitions.length === 0) return;
    const self = this.config.nodeId;
    const t = this.config.timers.requestTimeoutMs;
    const askOf = new Map<number, string[]>();
    const byPeer = new Map<string, number[]>();
    for (const p of partitions) {
      const ids = new Set<string>();
      for (const id of ring.table[p] ?? []) if (id !== self && ring.isAlive(id)) ids.add(id);
      for (const id of previousOf(p)) if (id !== self && ring.isServing(id)) ids.add(id);
      askOf.set(p, [...ids]);
      for (const id of ids) {
        let list = byPeer.get(id);
        if (list === undefined) byPeer.set(id, list = []);
        list.push(p);
      }
    }
    // Per partition: who answered, who of those hold it or have a copy equal to ours, and who has
    // nothing more for us.
    const tally = new Map<number, Tally>();
    const countFor = (p: number) => {
      let x = tally.get(p);
      if (x === undefined) {
        tally.set(
          p,
          x = {
            merged: [],
            empty: [],
            noCopyIds: new Set(),
            answeredIds: new Set(),
            holderIds: new Set(),
            equalIds: new Set(),
          },
        );
      }
      return x;
    };
    await Promise.all([...byPeer].map(async ([id, mine]) => {
      try {
        const res = await this.peers.digests(ring.byId.get(id)!.address, { partitions: mine }, t);
        mine.forEach((p, i) => {
          const d = res.digests[i];
          if (d === undefined) return;
          const held = res.held?.[i] ?? false;
          const x = countFor(p);
          x.answeredIds.add(id);
          const equal = sameDigest(this.store.partitionDigest(p), d);
          if (equal) x.equalIds.add(id);
          if (d.count === 0) x.noCopyIds.add(id);
          if (held) x.holderIds.add(id);
          // A member that holds nothing of it and is no owner now (it never held it, or handed
          // it off before its drop, to the new owners: us too) has nothing more to give: it may
          // count as merged, under the rule below. An owner that holds nothing is receiving it
          // itself (restarted empty, say): what it had may be on no one else, so it counts for
          // nothing.
          const empty = !held && !(ring.table[p]?.includes(id) ?? false);
          if (held && equal) x.merged.push(id);
          else if (empty) x.empty.push(id);
        });
      } catch (e) {
        // A LEFT member whose address refuses connections has exited, which it does only after
        // handing everything off: it holds nothing. A call that timed out proves no such thing: a
        // LEFT member still hands its data off, and one cut off from us (a one-way cut) may hold
        // commits of a quorum no one else here has (sim seed 1495: counted merged so, a newcomer
        // completed a partition from one continuing owner that had missed a CAS, and a later CAS
        // quorum of the two lost it). Any other silent member counts neither way.
        if (ring.byId.get(id)?.state !== "LEFT" || !exited(e)) return;
        for (const p of mine) {
          const x = countFor(p);
          x.answeredIds.add(id);
          x.merged.push(id);
        }
      }
    }));
    for (const p of partitions) {
      const asked = askOf.get(p)!.length;
      const x = tally.get(p);
      if (asked === 0) {
        // Nobody to ask: complete only if nobody ever held it before either.
        if (previousOf(p).length === 0) this.onSynced(p);
        continue;
      }
      if (x === undefined) continue;
      // Every owner and previous owner the view knows answered: one not asked (not alive in
      // our view) or silent may hold what no one else has, so no rule below completes the
      // partition without it, only a real merge does.
      const owners = [...(ring.table[p] ?? []), ...previousOf(p)];
      const all = x.answeredIds.size === asked &&
        owners.every((id) => id === self || x.answeredIds.has(id) || !ring.byId.has(id));
      if (
        all && x.holderIds.size === 0 &&
        [...x.answeredIds].every((id) => x.equalIds.has(id) || x.noCopyIds.has(id))
      ) {
        // Nobody holds it whole (every owner is receiving it: after a power cut of every member,
        // say), and nobody has a record we lack: complete. One with records we lack is merged
        // first (anti-entropy), or what it alone kept is lost (sim seed 658).
        this.onSynced(p);
      } else if (
        all && [...x.holderIds].some((id) => x.equalIds.has(id)) &&
        waitingOnEachOther(previousOf(p), self, x) && everyNodeEqual(ring, self, x)
      ) {
        this.log.info(
          `partition ${p}: its previous owners are all receiving it too, and every node has a ` +
            `copy equal to this one: complete`,
        );
        this.onSynced(p);
      } else {
        for (const id of x.merged) this.onSynced(p, id);
        // One that holds nothing and owns nothing has nothing more for us, but it may be no
        // source at all: a newcomer's sources are the ring without itself, which can name a
        // member that never held the partition in place of one that did (one leaving, say). It
        // counts as merged only once all answered and every holder's copy equals ours, so it
        // never stands in for a holder not merged (sim seed 230: a newcomer completed from one
        // continuing owner that had missed a CAS, counting such a member as its second source
        // while the other owner, holding the CAS, was cut off; a CAS quorum of the two lost it).
        if (all && [...x.holderIds].every((id) => x.equalIds.has(id))) {
          for (const id of x.empty) this.onSynced(p, id);
        }
      }
    }
  }

  async #withPeer(peer: ViewMember, partitions: number[]): Promise<void> {
    const t = this.config.timers.requestTimeoutMs;
    try {
      const { digests, held } = await this.peers.digests(peer.address, { partitions }, t);
      for (let i = 0; i < partitions.length; i++) {
        const p = partitions[i]!;
        const theirs = digests[i];
        this.#round.partitionsDone++;
        if (theirs === undefined) continue;
        // In sync with a member that holds the partition: complete here too. (Equal to one that
        // is itself still receiving it proves nothing.)
        const holds = held?.[i] ?? true;
        if (sameDigest(this.store.partitionDigest(p), theirs)) {
          if (holds) this.onSynced(p, peer.id);
          continue;
        }
        await this.#syncPartition(peer, p, holds);
      }
    } catch (e) {
      this.log.debug(`anti-entropy with ${peer.id} stopped: ${(e as Error).message}`);
    }
  }

  /**
   * Bring one partition in sync with one peer: bucket digests, then the key versions of the
   * differing buckets page by page (in key order, at most --anti-entropy-keys per page), pulling
   * the keys where the peer is newer and pushing those where we are, in bounded batches.
   */
  async #syncPartition(peer: ViewMember, p: number, holds: boolean): Promise<void> {
    const t = this.config.timers.requestTimeoutMs;
    const { buckets } = await this.peers.buckets(peer.address, p, t);
    const differ = differingBuckets(this.store.bucketDigests(p), buckets);
    if (differ.length === 0) {
      if (holds) this.onSynced(p, peer.id);
      return;
    }
    const mine = this.store.bucketRecords(p, new Set(differ)).sort(byKey);
    let at = 0; // next of `mine` not yet compared
    let after: string | undefined;
    let pulled = 0, pushed = 0;
    for (;;) {
      const res = await this.peers.versions(peer.address, {
        partition: p,
        buckets: differ,
        limit: this.config.antiEntropyKeysMax,
        ...(after === undefined ? {} : { after }),
      }, t);
      // This page covers keys up to its last entry, or everything when it is the last page.
      const pageEnd = res.truncated ? res.entries[res.entries.length - 1]?.k : undefined;
      const theirs = new Map<string, WireVersion>(res.entries.map((e) => [e.k, e]));
      const pull: WireVersion[] = [];
      for (const e of res.entries) {
        const local = this.store.get(e.k);
        if (local === undefined || compareVersions(versionOf(e), local.version) > 0) pull.push(e);
      }
      const push: KvRecord[] = [];
      for (; at < mine.length && (pageEnd === undefined || mine[at]!.key <= pageEnd); at++) {
        const r = mine[at]!;
        const e = theirs.get(r.key);
        if (e === undefined || compareVersions(r.version, versionOf(e)) > 0) push.push(r);
      }
      await this.#pull(peer, pull);
      await this.#push(peer, push);
      pulled += pull.length;
      pushed += push.length;
      if (pageEnd === undefined) break;
      after = pageEnd;
    }
    if (pulled + pushed > 0) {
      this.log.debug(`anti-entropy p${p} with ${peer.id}: pulled ${pulled}, pushed ${pushed}`);
    }
    if (holds) this.onSynced(p, peer.id);
  }

  /** Read these keys from the peer in batches bounded by keys and (known) value bytes. */
  async #pull(peer: ViewMember, wanted: readonly WireVersion[]): Promise<void> {
    const t = this.config.timers.requestTimeoutMs * 5;
    for (let i = 0; i < wanted.length;) {
      let bytes = 0, end = i;
      while (end < wanted.length && end - i < this.config.batchKeysMax) {
        const size = wanted[end]!.s + wanted[end]!.k.length + 64;
        if (end > i && bytes + size > this.config.batchBytesMax) break;
        bytes += size;
        end++;
      }
      const got = await this.peers.read(peer.address, {
        to: peer.id,
        keys: wanted.slice(i, end).map((e) => e.k),
      }, t);
      for (const w of got.records) {
        if (w === null) continue;
        const r = fromWire(w);
        if (!this.observe(r, `anti-entropy from ${peer.id}`)) continue; // neither stored nor observed
        this.store.apply(r);
        this.stats.keysPulled++;
        this.#round.bytes += recordBytes(r);
      }
      i = end;
    }
  }

  async #push(peer: ViewMember, records: readonly KvRecord[]): Promise<void> {
    const limits = { keysMax: this.config.batchKeysMax, bytesMax: this.config.batchBytesMax };
    const t = this.config.timers.requestTimeoutMs * 5;
    for (let i = 0; i < records.length;) {
      const end = batchEnd(records, i, limits);
      await this.peers.write(peer.address, {
        to: peer.id,
        records: records.slice(i, end).map(toWire),
      }, t);
      this.stats.keysPushed += end - i;
      for (let k = i; k < end; k++) this.#round.bytes += recordBytes(records[k]!);
      i = end;
    }
  }
}

function versionOf(e: WireVersion) {
  return { wallMs: e.t, counter: e.c, nodeId: e.n };
}

function byKey(a: KvRecord, b: KvRecord): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Every node of the view is alive, was asked about the partition, and has a copy equal to ours. */
function everyNodeEqual(ring: Ring, self: string, x: Tally): boolean {
  for (const m of ring.view.members) {
    if (m.role !== "node" || m.id === self || m.state === "LEFT") continue;
    if (!ring.isAlive(m.id) || !x.equalIds.has(m.id)) return false;
  }
  return true;
}

/** A failed call that says nobody serves the address any more (not a timeout or a reset). */
export function exited(e: unknown): boolean {
  return e instanceof Error && e.message.startsWith("connection refused");
}
