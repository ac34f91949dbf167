/**
 * The in-memory store of one node, one slot table per partition, so a partition can be
 * streamed, digested or dropped whole. Writes merge by version (newest wins, ties broken on
 * content, as `merge` in src/core/record.ts), so applying the same record twice, or two records
 * in either order, ends in the same state. Every change updates the partition's anti-entropy
 * digest incrementally.
 *
 * Compact: a record is not an object here, nor its key or value a string. Each partition is a
 * SlotTable (src/core/slot-table.ts): keys and values as bytes in one byte arena, versions and
 * flags in typed-array columns, node ids interned, keys found through a hash table of slot
 * numbers. Records are materialized only when read.
 */
import {
  bucketOfSlot,
  type Digest,
  DigestTable,
  recordHashFrom,
  recordPartHash,
} from "../core/digest.ts";
import { isBoundedVersion, type Version } from "../core/hlc.ts";
import { partitionOf } from "../core/placement.ts";
import { KeyIndex } from "../core/key-index.ts";
import { SlotTable } from "../core/slot-table.ts";
import { encodeMoveFrameFrom } from "../core/move-frame.ts";
import { valueUnits } from "../core/batching.ts";
import { compareExpiry, compareValues, type KvRecord, utf8Of, type Value } from "../core/record.ts";
import { DkvError } from "../http/errors.ts";
import { Buffer } from "node:buffer";

const utf8Len = (s: string) => (s.length === 0 ? 0 : Buffer.byteLength(s, "utf8"));
/** A value's bytes (text measured without encoding it). */
const valueLen = (v: Value) => (typeof v === "string" ? utf8Len(v) : v.length);
/** A record's value size; from the bytes a text record arrived as, without making its text. */
const recordValueLen = (r: KvRecord) => r.tombstone ? 0 : utf8Of(r)?.length ?? valueLen(r.value);

/**
 * Node ids are few: each is stored once and referred to by number (a Uint16Array column). A
 * record with one more distinct id is refused before anything is written (a 400 on the wire).
 */
export const NODE_IDS_MAX = 65_535;

/**
 * Slots of one partition's table to stream, in order: a move reads them batch by batch, each
 * batch encoded straight from the table when it goes (so the latest state of each slot then).
 */
export interface MoveSource {
  readonly table: SlotTable;
  readonly slots: Int32Array;
}

/**
 * A partition's writes since it was watched (`Store.watch`): the slots a move's catch-up pass
 * must send again. Noted on every write that changes what is stored; a write that loses the
 * merge changes nothing and is not noted.
 */
export interface MoveWatch {
  readonly partition: number;
  /** The partition's table the slots are of (a new one after a drop or a resize). */
  table: SlotTable;
  slots: Set<number>;
  /** Every slot of `table` is to be sent (the table was rebuilt by a resize). */
  all: boolean;
}

export class Store {
  #partitions: SlotTable[] = [];
  /** Watches of partitions being handed off (few: one per partition moving out). */
  #watches: MoveWatch[] = [];
  /** UTF-8 bytes of keys and values stored, per partition (tombstones count their key). */
  #partitionBytes: number[] = [];
  #bytes = 0;
  /** Writes refused because they would take the store past `bytesMax`. */
  fullRefused = 0;
  /**
   * The last collection's cutoff: a tombstone written, or a record expired, before it is dead.
   * Such a record arriving for a key the store does not hold is not stored (it would be collected
   * at once): otherwise anti-entropy between a member that collected it and one that has not yet
   * would hand it back and forth.
   */
  #deadBeforeMs = -Infinity;
  #digests: DigestTable = new DigestTable(0);
  readonly #nodeIds: string[] = [];
  /** recordPartHash of each node id, by number. */
  readonly #nodeHashes: number[] = [];
  /**
   * Every stored key in order, for prefix listings: built on the first listing this member
   * serves (a member that never lists pays nothing for it), kept up to date from then on.
   */
  #keyIndex: KeyIndex | undefined;
  readonly #nodeIndex = new Map<string, number>();
  /**
   * --data-dir's hooks: called with every record that changed what is stored, and every
   * partition dropped whole (tombstone collection is not reported: a collected tombstone that
   * comes back after a restart is collected again).
   */
  persist?: {
    stored(r: KvRecord): void;
    dropped(partition: number, partitionCount: number): void;
  };

  /**
   * `bytesMax` (--max-store-bytes): `admitBytes` refuses records that would take the stored keys
   * and values past it. `apply` itself never refuses for size: data the cluster already accepted
   * (moves, anti-entropy, hints) is always taken in, so the store may pass the bound by that.
   */
  constructor(
    partitionCount: number,
    readonly bytesMax = Infinity,
    /** The member's clock (wall ms): when a ttl has run out. */
    readonly now: () => number = Date.now,
  ) {
    this.resize(partitionCount);
  }

  /** UTF-8 bytes of the keys and values stored (tombstones count their key). */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Throw (a 507 DkvError) if applying all of `records` would take the store past `bytesMax`;
   * changes nothing. Tombstones, and records that do not make the store grow, always pass, so a
   * full store can still be emptied.
   */
  admitBytes(records: readonly KvRecord[]): void {
    if (this.bytesMax === Infinity) return;
    let growth = 0;
    for (const r of records) {
      if (r.tombstone) continue;
      const p = this.partitionOf(r.key);
      const s = this.#partitions[p]!;
      const slot = s.find(r.key, recordPartHash(r.key));
      growth += slot === -1
        ? utf8Len(r.key) + recordValueLen(r)
        : recordValueLen(r) - s.valueLen[slot]!;
    }
    if (growth <= 0 || this.#bytes + growth <= this.bytesMax) return;
    this.fullRefused++;
    throw new DkvError(
      "store_full",
      `store full: ${this.#bytes} of ${this.bytesMax} bytes used (--max-store-bytes), and this ` +
        `write needs ${growth} more; delete keys or raise the limit`,
    );
  }

  get partitionCount(): number {
    return this.#partitions.length;
  }

  /** Re-bucket for a new partition count (only when the first view arrives). */
  resize(partitionCount: number): void {
    if (partitionCount === this.#partitions.length) return;
    this.#epoch++;
    const all = this.#partitions.flatMap((_, p) => this.partitionRecords(p));
    this.#partitions = Array.from({ length: partitionCount }, () => new SlotTable());
    this.#keyIndex = undefined;
    this.#partitionBytes = new Array<number>(partitionCount).fill(0);
    this.#bytes = 0;
    this.#digests = new DigestTable(partitionCount);
    const persist = this.persist;
    this.persist = undefined; // the same records, re-bucketed: nothing to log
    for (const r of all) this.apply(r);
    this.persist = persist;
    for (const w of this.#watches) {
      w.table = this.#partitions[w.partition] ?? new SlotTable();
      w.slots.clear();
      w.all = true;
    }
  }

  partitionOf(key: string): number {
    return partitionOf(key, this.#partitions.length);
  }

  /** The node id `apply` saw last, and its number: a run of writes mostly comes from one id. */
  #lastNodeId = "";
  #lastNode = -1;

  /** The number of a node id, interning it; a 400 DkvError when the table is full. */
  #nodeNumber(nodeId: string): number {
    if (nodeId === this.#lastNodeId) return this.#lastNode;
    let n = this.#nodeIndex.get(nodeId);
    if (n === undefined) {
      if (this.#nodeIds.length >= NODE_IDS_MAX) throw tooManyNodeIds(nodeId);
      n = this.#nodeIds.length;
      this.#nodeIds.push(nodeId);
      this.#nodeHashes.push(recordPartHash(nodeId));
      this.#nodeIndex.set(nodeId, n);
    }
    this.#lastNodeId = nodeId;
    this.#lastNode = n;
    return n;
  }

  /**
   * Throw (a 400 DkvError) if applying all of `records` would need more distinct node ids than
   * the store can hold; changes nothing. Lets a batch be refused whole before any of it is applied.
   */
  admit(records: readonly KvRecord[]): void {
    for (const r of records) checkVersion(r);
    let fresh: Set<string> | undefined;
    for (const r of records) {
      const id = r.version.nodeId;
      if (this.#nodeIndex.has(id) || fresh?.has(id)) continue;
      (fresh ??= new Set()).add(id);
      if (this.#nodeIds.length + fresh.size > NODE_IDS_MAX) throw tooManyNodeIds(id);
    }
  }

  /**
   * Merge a record in. Returns whether a live value was stored for the key before (a value whose
   * ttl ran out is not live).
   */
  apply(incoming: KvRecord, p = this.partitionOf(incoming.key)): boolean {
    const s = this.#partitions[p]!;
    const v = incoming.version;
    // Before anything is allocated or written: a refused record leaves the store as it was.
    checkVersion(incoming);
    this.#last = incoming;
    this.#lastKept = undefined;
    this.#lastEpoch = ++this.#epoch;
    const node = this.#nodeNumber(v.nodeId);
    const keyHash = recordPartHash(incoming.key);
    const slot = s.find(incoming.key, keyHash);
    const next = recordHashFrom(
      keyHash,
      v.wallMs,
      v.counter,
      this.#nodeHashes[node]!,
      incoming.tombstone,
    );
    if (slot === -1) {
      if (this.#isDead(incoming)) return false;
      const keyBytes = utf8Len(incoming.key);
      const valueBytes = recordValueLen(incoming);
      const at = s.add(incoming.key, keyHash, keyBytes, valueBytes);
      this.#grow(p, keyBytes + valueBytes);
      this.#write(s, at, incoming, node, p);
      if (this.#watches.length > 0) this.#noteWrite(p, s, at);
      this.#keyIndex?.insert(incoming.key);
      this.#digests.updateHashes(p, incoming.key, undefined, next);
      this.persist?.stored(incoming);
      return false;
    }
    const hadLive = !s.isTombstone(slot) &&
      (s.expires === undefined || s.present(slot, this.now()));
    const order = this.#compare(s, slot, incoming);
    if (order <= 0) {
      // The stored record stays; a newer one is what versionOtherThan will be asked for.
      if (order < 0) this.#lastKept = this.#versionAt(s, slot);
      return hadLive;
    }
    const prev = recordHashFrom(
      keyHash,
      s.wallMs[slot]!,
      s.counter[slot]!,
      this.#nodeHashes[s.node[slot]!]!,
      s.isTombstone(slot),
    );
    this.#write(s, slot, incoming, node, p);
    if (this.#watches.length > 0) this.#noteWrite(p, s, slot);
    this.#digests.updateHashes(p, incoming.key, prev, next);
    this.persist?.stored(incoming);
    return hadLive;
  }

  #noteWrite(p: number, s: SlotTable, slot: number): void {
    for (const w of this.#watches) {
      if (w.partition === p && w.table === s && !w.all) w.slots.add(slot);
    }
  }

  /**
   * Note from now on which slots of `partition` are written (a move's catch-up passes send them);
   * `unwatch` when done.
   */
  watch(partition: number): MoveWatch {
    const w: MoveWatch = {
      partition,
      table: this.#partitions[partition] ?? new SlotTable(),
      slots: new Set(),
      all: false,
    };
    this.#watches.push(w);
    return w;
  }

  unwatch(w: MoveWatch): void {
    this.#watches = this.#watches.filter((x) => x !== w);
  }

  /**
   * The slots written since the watch started, or since the last call (in slot order), and
   * start noting afresh. Empty: nothing stored in the partition changed meanwhile.
   */
  takeWatched(w: MoveWatch): MoveSource {
    const table = w.table;
    const slots = w.all ? table.heldSlots() : Int32Array.from(w.slots).sort();
    w.slots = new Set();
    w.all = false;
    return { table, slots };
  }

  /** Every slot the partition holds now, in slot order (the first pass of a move). */
  moveSource(partition: number): MoveSource {
    const table = this.#partitions[partition] ?? new SlotTable();
    return { table, slots: table.heldSlots() };
  }

  /**
   * The end (exclusive) of the batch of `src.slots` starting at `start` within `limits`, and its
   * bytes: as `batchEnd` and `recordBytes` (src/core/batching.ts) count the records those slots
   * hold, from the columns.
   */
  moveBatch(
    src: MoveSource,
    start: number,
    limits: { readonly keysMax: number; readonly bytesMax: number },
  ): { end: number; bytes: number } {
    const { table, slots } = src;
    const ids = this.#nodeIds;
    let end = start;
    let bytes = 0;
    while (end < slots.length) {
      const slot = slots[end]!;
      // A slot collected since the list was taken is left out of the frame: it counts nothing.
      const size = table.held(slot)
        ? table.recordUnits(slot) + ids[table.node[slot]!]!.length + 48
        : 0;
      if (end > start && (end - start >= limits.keysMax || bytes + size > limits.bytesMax)) break;
      bytes += size;
      end++;
    }
    return { end, bytes };
  }

  /**
   * The move frame (for member `to`) of the records `src.slots[start, end)` hold now, straight
   * from the arena (src/core/move-frame.ts, `encodeMoveFrameFrom`), and how many it carries.
   */
  encodeMove(
    src: MoveSource,
    start: number,
    end: number,
    to: string,
  ): { frame: Uint8Array; count: number } {
    return encodeMoveFrameFrom(to, src.table, src.slots, start, end, this.#nodeIds);
  }

  /** The records `src.slots[start, end)` hold now, as records (for a target without frames). */
  moveRecords(src: MoveSource, start: number, end: number): KvRecord[] {
    const s = src.table;
    const out: KvRecord[] = [];
    for (let i = start; i < end; i++) {
      const slot = src.slots[i]!;
      if (s.held(slot)) out.push(this.#record(s, s.key(slot), slot));
    }
    return out;
  }

  /**
   * Make room in `partition` for `keys` more keys and `bytes` more key and value bytes at once (a
   * move frame about to be applied): see SlotTable.reserve.
   */
  reserve(partition: number, keys: number, bytes: number): void {
    this.#partitions[partition]?.reserve(keys, bytes);
  }

  /** A tombstone or expired record the last collection would have removed. */
  #isDead(r: KvRecord): boolean {
    const cutoff = this.#deadBeforeMs;
    if (cutoff === -Infinity) return false;
    return r.tombstone ? r.version.wallMs < cutoff : (r.expiresAt ?? Infinity) < cutoff;
  }

  /** Order of `incoming` against the stored slot, as `merge` decides: > 0 means it replaces it. */
  #compare(s: SlotTable, slot: number, incoming: KvRecord): number {
    const v = incoming.version;
    if (v.wallMs !== s.wallMs[slot]) return v.wallMs - s.wallMs[slot]!;
    if (v.counter !== s.counter[slot]) return v.counter - s.counter[slot]!;
    const node = this.#nodeIds[s.node[slot]!]!;
    if (v.nodeId !== node) return v.nodeId < node ? -1 : 1;
    const tomb = s.isTombstone(slot);
    if (incoming.tombstone !== tomb) return incoming.tombstone ? 1 : -1;
    return compareValues(incoming.value, s.value(slot)) ||
      compareExpiry(incoming.expiresAt, s.expiresAt(slot));
  }

  #grow(p: number, delta: number): void {
    this.#partitionBytes[p]! += delta;
    this.#bytes += delta;
  }

  #write(s: SlotTable, slot: number, r: KvRecord, node: number, p: number): void {
    const utf8 = r.tombstone ? undefined : utf8Of(r);
    const value = utf8 ?? (r.tombstone ? "" : r.value);
    const bytes = utf8?.length ?? valueLen(value as Value);
    this.#grow(p, bytes - s.valueLen[slot]!);
    s.setValue(slot, value, bytes);
    if (r.expiresAt !== undefined) (s.expires ??= new Map()).set(slot, r.expiresAt);
    else s.expires?.delete(slot);
    s.wallMs[slot] = r.version.wallMs;
    s.counter[slot] = r.version.counter;
    s.node[slot] = node;
    s.setTombstone(slot, r.tombstone);
  }

  #record(s: SlotTable, key: string, slot: number): KvRecord {
    const r = {
      key,
      value: s.value(slot),
      version: {
        wallMs: s.wallMs[slot]!,
        counter: s.counter[slot]!,
        nodeId: this.#nodeIds[s.node[slot]!]!,
      },
      tombstone: s.isTombstone(slot),
    };
    const x = s.expires?.get(slot);
    return x === undefined ? r : { ...r, expiresAt: x };
  }

  /**
   * What is stored for a key, tombstones included (a fresh object each call). `partition` may be
   * passed when the caller already hashed the key.
   */
  get(key: string, partition = this.partitionOf(key)): KvRecord | undefined {
    const s = this.#partitions[partition]!;
    const slot = s.find(key, recordPartHash(key));
    return slot === -1 ? undefined : this.#record(s, key, slot);
  }

  /**
   * After `apply(record)`: the version stored for its key when that is not `record` itself
   * (a newer one won the merge), else undefined (the record, or nothing, is stored). As `get`
   * then `sameRecord`, without making the record.
   */
  versionOtherThan(
    record: KvRecord,
    partition = this.partitionOf(record.key),
  ): Version | undefined {
    // Right after its apply (nothing changed the store since): what that apply found.
    if (record === this.#last && this.#lastEpoch === this.#epoch) return this.#lastKept;
    const s = this.#partitions[partition]!;
    const slot = s.find(record.key, recordPartHash(record.key));
    if (slot === -1 || this.#compare(s, slot, record) === 0) return undefined;
    return this.#versionAt(s, slot);
  }

  #versionAt(s: SlotTable, slot: number): Version {
    return {
      wallMs: s.wallMs[slot]!,
      counter: s.counter[slot]!,
      nodeId: this.#nodeIds[s.node[slot]!]!,
    };
  }

  /**
   * The last record applied, and the newer version it found stored (undefined: it was stored, or
   * an equal record was), valid while #epoch is #lastEpoch: every change of the store moves #epoch.
   */
  #last: KvRecord | undefined;
  #lastKept: Version | undefined;
  #lastEpoch = 0;
  #epoch = 0;

  /** Live records (tombstones and records whose ttl ran out excluded). */
  *live(): Iterable<KvRecord> {
    const nowMs = this.now();
    for (const s of this.#partitions) {
      for (const slot of s.slots()) {
        if (s.present(slot, nowMs)) yield this.#record(s, s.key(slot), slot);
      }
    }
  }

  /** Records of one partition, tombstones included (a snapshot: safe to write while iterating). */
  partitionRecords(partition: number): KvRecord[] {
    const s = this.#partitions[partition];
    if (s === undefined) return [];
    const out: KvRecord[] = [];
    for (const slot of s.slots()) out.push(this.#record(s, s.key(slot), slot));
    return out;
  }

  /** Records of one partition whose key falls in one of `buckets`. */
  bucketRecords(partition: number, buckets: ReadonlySet<number>): KvRecord[] {
    const s = this.#partitions[partition];
    if (s === undefined) return [];
    const out: KvRecord[] = [];
    // The bucket from the key's bytes: only the records asked for make a key string.
    for (const slot of s.heldSlots()) {
      if (buckets.has(bucketOfSlot(s, slot))) out.push(this.#record(s, s.key(slot), slot));
    }
    return out;
  }

  /** UTF-8 bytes of keys and values stored in a partition (tombstones count their key). */
  partitionBytes(partition: number): number {
    return this.#partitionBytes[partition] ?? 0;
  }

  partitionSize(partition: number): number {
    return this.#partitions[partition]?.count ?? 0;
  }

  /** Forget a partition whole (it moved to its new owners). Returns how many records went. */
  dropPartition(partition: number): number {
    const s = this.#partitions[partition];
    if (s === undefined) return 0;
    this.#epoch++;
    const n = s.count;
    if (this.#keyIndex !== undefined) {
      for (const slot of s.slots()) this.#keyIndex.remove(s.key(slot));
    }
    const fresh = new SlotTable();
    this.#partitions[partition] = fresh;
    for (const w of this.#watches) {
      // What the dropped table held is gone: nothing of it to send; what comes next is noted.
      if (w.partition === partition) {
        w.table = fresh;
        w.slots.clear();
        w.all = false;
      }
    }
    this.#grow(partition, -this.#partitionBytes[partition]!);
    this.#digests.clearPartition(partition);
    this.persist?.dropped(partition, this.#partitions.length);
    return n;
  }

  /**
   * Remove tombstones whose delete happened before `cutoffMs`, and records whose ttl ran out
   * before it (the same grace: by then every replica has the write, so none brings an older
   * value back). Returns how many.
   */
  collectTombstones(cutoffMs: number): number {
    this.#deadBeforeMs = Math.max(this.#deadBeforeMs, cutoffMs);
    this.#epoch++;
    let n = 0;
    for (let p = 0; p < this.#partitions.length; p++) {
      const s = this.#partitions[p]!;
      const expires = s.expires;
      const collect = (slot: number) => {
        const key = s.key(slot);
        const h = recordHashFrom(
          s.keyHash[slot]!,
          s.wallMs[slot]!,
          s.counter[slot]!,
          this.#nodeHashes[s.node[slot]!]!,
          s.isTombstone(slot),
        );
        this.#digests.updateHashes(p, key, h, undefined);
        this.#grow(p, -s.keyBytes(slot) - s.valueLen[slot]!);
        this.#keyIndex?.remove(key);
        s.remove(slot);
        n++;
      };
      for (const slot of s.slots()) {
        if (s.isTombstone(slot) && s.wallMs[slot]! < cutoffMs) collect(slot);
        else if (expires !== undefined && (expires.get(slot) ?? Infinity) < cutoffMs) {
          collect(slot);
        }
      }
    }
    return n;
  }

  /**
   * Records (tombstones and expired ones included: the caller merges replicas' answers) whose
   * key starts with `prefix` and comes after `after`, in key order, of every partition: at most
   * `limit`, and no more than `unitsMax` UTF-16 units of keys and values (at least one record).
   * `more`: stopped before the end. `keysOnly`: values left out ("").
   */
  list(
    prefix: string,
    after: string | undefined,
    limit: number,
    unitsMax: number,
    keysOnly: boolean,
  ): { records: KvRecord[]; more: boolean } {
    this.#keyIndex ??= KeyIndex.of(
      this.#partitions.flatMap((s) => Array.from(s.slots(), (slot) => s.key(slot))),
    );
    const records: KvRecord[] = [];
    let units = 0;
    for (const key of this.#keyIndex.from(prefix, after)) {
      const p = this.partitionOf(key);
      const s = this.#partitions[p]!;
      const slot = s.find(key, recordPartHash(key));
      let r = this.#record(s, key, slot);
      if (keysOnly) r = { ...r, value: "" };
      const size = key.length + (keysOnly ? 0 : valueUnits(r.value));
      if (records.length === limit || (records.length > 0 && units + size > unitsMax)) {
        return { records, more: true };
      }
      units += size;
      records.push(r);
    }
    return { records, more: false };
  }

  partitionDigest(partition: number): Digest {
    return this.#digests.partitionDigest(partition);
  }

  bucketDigests(partition: number): Digest[] {
    return this.#digests.bucketDigests(partition);
  }

  /** Number of keys stored, tombstones included. */
  get size(): number {
    let n = 0;
    for (const s of this.#partitions) n += s.count;
    return n;
  }

  /** Live keys and tombstones, counted separately (a record whose ttl ran out is neither). */
  counts(): { live: number; tombstones: number } {
    let live = 0, tombstones = 0;
    const nowMs = this.now();
    for (const s of this.#partitions) {
      const c = s.counts(nowMs);
      live += c.live;
      tombstones += c.tombstones;
    }
    return { live, tombstones };
  }
}

/** The columns hold a version only within the HLC's bounds (a counter in 32 bits). */
function checkVersion(r: KvRecord): void {
  if (!isBoundedVersion(r.version)) {
    throw new DkvError("bad_request", `version of key '${r.key.slice(0, 64)}' out of bounds`);
  }
}

function tooManyNodeIds(nodeId: string): DkvError {
  return new DkvError(
    "bad_request",
    `too many distinct node ids: this store holds at most ${NODE_IDS_MAX}; refused a record ` +
      `from node '${nodeId.slice(0, 64)}'`,
  );
}
