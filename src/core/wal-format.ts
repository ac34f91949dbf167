/**
 * The on-disk format of --data-dir: every byte a node writes to its log and snapshots is encoded
 * and decoded here, and nowhere else (so a new record shape changes this one file).
 *
 * A file is a header, then entries:
 *
 *     header  = magic "DKV" + kind ("L" log, "S" snapshot) + format version (u32 LE)   8 bytes
 *     entry   = length (u32 LE) + ~length (u32 LE) + CRC32C of the payload (u32 LE) + payload
 *     payload = type (u8) + fields, by type:
 *       1 record      flags (u8) wallMs (f64) counter (u32) nodeId (str16) key (str32)
 *                     [expiresAt (f64) when flag 4] value (str32, or bytes32 when flag 2)
 *                     flags: 1 tombstone, 2 the value is bytes that are not UTF-8 (binary),
 *                     4 the record expires (a ttl; wall ms)
 *       2 drop        partition (u32) of partitionCount (u32): every record of it is gone
 *       3 hint add    storedAtMs (f64) target (str16) then a record's fields as in 1
 *       4 hint remove target (str16) key (str32) wallMs (f64) counter (u32) nodeId (str16)
 *       5 state       nodeId (str16) cluster (str16) partitions (u32) incarnation (f64)
 *                     hlcWallMs (f64) hlcCounter (u32) ring members (u16) then per member
 *                     id (str16) address (str16); format 3 goes on: per ring member its
 *                     incarnation (f64, in the same order), left members (u16) then per
 *                     member id (str16) address (str16) incarnation (f64)
 *       6 end         records (f64): the last entry of a complete snapshot
 *       7 paxos put   key (str32) promised (ballot) flags (u8: 1 accepted, 2 committed,
 *                     4 forgotten) [accepted ballot, then a record's fields as in 1]
 *                     [committed ballot] [forgotten ballot]: a key's acceptor state (format 2)
 *       8 paxos drop  key (str32): the key's acceptor state was collected (format 2)
 *       9 paxos floor ballot: the acceptor's floor rose to it (format 2)
 *     ballot = wallMs (f64) counter (u32) nodeId (str16)
 *     str16 / str32 = UTF-8 length (u16 / u32 LE) + bytes; bytes32 = length (u32 LE) + bytes
 *
 * The length is stored twice (the second time inverted) so a damaged length is told apart from
 * a log that was cut short: a cut leaves a whole length pointing past the end of the file, a
 * damaged one does not match its copy. Numbers are little-endian; the format version is part of
 * the contract: bump it when any of this changes, and keep reading the old one (format 2 added
 * the Paxos entries 7-9, format 3 a state entry's ring incarnations and left members; older files
 * read as before).
 */
import type { HlcState, Version } from "./hlc.ts";
import type { PaxosChange, PaxosEntry } from "./paxos.ts";
import { type KvRecord, utf8Of, valueOf } from "./record.ts";
import { utf8Into } from "./utf8.ts";

export const FORMAT_VERSION = 3;
/** The oldest format this binary still reads. */
export const FORMAT_VERSION_MIN = 1;
export const HEADER_BYTES = 8;
/** length + inverted length + CRC32C. */
export const FRAME_BYTES = 12;
/** Largest payload: a value may be up to 512 MiB (--max-value-bytes); a longer length is damage. */
export const ENTRY_BYTES_MAX = 1024 * 1024 * 1024;

export type FileKind = "log" | "snapshot";

export type Entry =
  | { readonly type: "record"; readonly record: KvRecord }
  | { readonly type: "drop"; readonly partition: number; readonly partitionCount: number }
  | {
    readonly type: "hint-add";
    readonly target: string;
    readonly record: KvRecord;
    readonly storedAtMs: number;
  }
  | { readonly type: "hint-remove"; readonly target: string; readonly record: KvRecord }
  | { readonly type: "state"; readonly state: NodeState }
  | { readonly type: "end"; readonly records: number }
  | { readonly type: "paxos"; readonly change: PaxosChange };

/** What a node keeps about itself across restarts. */
export interface NodeState {
  readonly nodeId: string;
  readonly cluster: string;
  /** The partition count of its store (0 until it had a view). */
  readonly partitions: number;
  readonly incarnation: number;
  readonly hlc: Readonly<HlcState>;
  /**
   * The members of its last ring: whom to look for after a restart (Swim.rememberRing), with the
   * incarnation its table held each at (format 3; absent or 0: not known).
   */
  readonly ring: readonly RingMember[];
  /**
   * The members its table held as LEFT (gone gracefully, their data handed off), at the
   * incarnation they left at: after a restart they are still gone, and that news beats another
   * member's older memory of them in the ring (Swim.rememberLeft). Absent: none (or format < 3).
   */
  readonly left?: readonly LeftMember[];
}

/** A ring member as a state entry keeps it. */
export interface RingMember {
  readonly id: string;
  readonly address: string;
  readonly incarnation?: number;
}

/** A member that left gracefully, as a state entry keeps it. */
export interface LeftMember {
  readonly id: string;
  readonly address: string;
  readonly incarnation: number;
}

/**
 * Would logging `s` after `last` say nothing new (same incarnation, clock, partition count and
 * ring members)? A member logs its state only when this is false.
 */
export function sameNodeState(last: NodeState | undefined, s: NodeState): boolean {
  return last !== undefined && last.incarnation === s.incarnation &&
    last.hlc.wallMs === s.hlc.wallMs && last.hlc.counter === s.hlc.counter &&
    last.partitions === s.partitions &&
    membersText(last.ring) === membersText(s.ring) &&
    membersText(last.left ?? []) === membersText(s.left ?? []);
}

function membersText(ms: readonly RingMember[]): string {
  return ms.map((m) => `${m.id} ${m.incarnation ?? 0}`).join("\n");
}

const TYPE = { record: 1, drop: 2, "hint-add": 3, "hint-remove": 4, state: 5, end: 6 } as const;
const PAXOS_TYPE = { put: 7, drop: 8, floor: 9 } as const;
const KIND_CHAR = { log: 0x4c, snapshot: 0x53 } as const; // "L", "S"

// ---------------------------------------------------------------------------------------------
// CRC32C (Castagnoli): reflected polynomial 0x82F63B78, as iSCSI, ext4 and etcd use.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256 * 4);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  // Slice-by-4 tables: four bytes per step.
  for (let i = 0; i < 256; i++) {
    for (let s = 1; s < 4; s++) {
      const prev = t[(s - 1) * 256 + i]!;
      t[s * 256 + i] = (prev >>> 8) ^ t[prev & 0xff]!;
    }
  }
  return t;
})();

/** CRC32C of `bytes` (continuing from `crc`, the value of a previous call, if given). */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  let i = 0;
  const n = bytes.length;
  const t = CRC_TABLE;
  for (; i + 4 <= n; i += 4) {
    c ^= bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    c = t[768 + (c & 0xff)]! ^ t[512 + ((c >>> 8) & 0xff)]! ^ t[256 + ((c >>> 16) & 0xff)]! ^
      t[c >>> 24]!;
  }
  for (; i < n; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Writing.

/** Appends entries into one growing buffer; `take()` hands the bytes over and starts again. */
export class EntryWriter {
  #buf = new Uint8Array(4096);
  #view = new DataView(this.#buf.buffer);
  #at = 0;

  get byteLength(): number {
    return this.#at;
  }

  #room(n: number): void {
    if (this.#at + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.#at + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.#at));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  header(kind: FileKind): void {
    this.#room(HEADER_BYTES);
    this.#buf.set([0x44, 0x4b, 0x56, KIND_CHAR[kind]], this.#at);
    this.#view.setUint32(this.#at + 4, FORMAT_VERSION, true);
    this.#at += HEADER_BYTES;
  }

  /** Frame one entry: its payload, then length and CRC written in front of it. */
  entry(e: Entry): void {
    const start = this.#at;
    this.#room(FRAME_BYTES);
    this.#at += FRAME_BYTES;
    this.#u8(e.type === "paxos" ? PAXOS_TYPE[e.change.kind] : TYPE[e.type]);
    switch (e.type) {
      case "record":
        this.#record(e.record);
        break;
      case "drop":
        this.#u32(e.partition);
        this.#u32(e.partitionCount);
        break;
      case "hint-add":
        this.#f64(e.storedAtMs);
        this.#str(e.target, 2);
        this.#record(e.record);
        break;
      case "hint-remove":
        this.#str(e.target, 2);
        this.#str(e.record.key, 4);
        this.#f64(e.record.version.wallMs);
        this.#u32(e.record.version.counter);
        this.#str(e.record.version.nodeId, 2);
        break;
      case "state":
        this.#str(e.state.nodeId, 2);
        this.#str(e.state.cluster, 2);
        this.#u32(e.state.partitions);
        this.#f64(e.state.incarnation);
        this.#f64(e.state.hlc.wallMs);
        this.#u32(e.state.hlc.counter);
        this.#u16(Math.min(e.state.ring.length, 0xffff));
        for (const m of e.state.ring.slice(0, 0xffff)) {
          this.#str(m.id, 2);
          this.#str(m.address, 2);
        }
        for (const m of e.state.ring.slice(0, 0xffff)) this.#f64(m.incarnation ?? 0);
        this.#u16(Math.min(e.state.left?.length ?? 0, 0xffff));
        for (const m of (e.state.left ?? []).slice(0, 0xffff)) {
          this.#str(m.id, 2);
          this.#str(m.address, 2);
          this.#f64(m.incarnation);
        }
        break;
      case "end":
        this.#f64(e.records);
        break;
      case "paxos":
        this.#paxos(e.change);
        break;
    }
    const len = this.#at - start - FRAME_BYTES;
    this.#view.setUint32(start, len, true);
    this.#view.setUint32(start + 4, ~len >>> 0, true);
    this.#view.setUint32(
      start + 8,
      crc32c(this.#buf.subarray(start + FRAME_BYTES, this.#at)),
      true,
    );
  }

  /**
   * The bytes written so far (a copy-free view handed over; the writer starts empty). The view
   * stays valid until the next `take`: the writer goes on in a second buffer and writes over the
   * first after that, so a log that writes each group out before it takes the next allocates
   * nothing in the steady state. Bytes kept longer must be copied.
   */
  take(): Uint8Array {
    const out = this.#buf.subarray(0, this.#at);
    const spare = this.#spare;
    this.#spare = this.#buf.length <= 1 << 20 ? this.#buf : undefined;
    this.#buf = spare ?? new Uint8Array(4096);
    this.#view = new DataView(this.#buf.buffer);
    this.#at = 0;
    return out;
  }

  /** The buffer the last `take` handed out: the writer's next buffer after the next `take`. */
  #spare: Uint8Array<ArrayBuffer> | undefined;

  /** The record's fields, in entry type 1's layout (encodeRecord's body). */
  #record(r: KvRecord): void {
    // Text that arrived as bytes is written from them (the same bytes its string encodes to).
    const utf8 = r.tombstone ? undefined : utf8Of(r);
    const value = r.tombstone || utf8 !== undefined ? "" : r.value;
    const binary = typeof value !== "string";
    const expires = r.expiresAt !== undefined;
    this.#u8((r.tombstone ? 1 : 0) | (binary ? 2 : 0) | (expires ? 4 : 0));
    this.#f64(r.version.wallMs);
    this.#u32(r.version.counter);
    this.#str(r.version.nodeId, 2);
    this.#str(r.key, 4);
    if (expires) this.#f64(r.expiresAt!);
    if (utf8 !== undefined) {
      this.#room(4 + utf8.length);
      this.#view.setUint32(this.#at, utf8.length, true);
      utf8.copyInto(this.#buf, this.#at + 4);
      this.#at += 4 + utf8.length;
    } else if (binary) this.#bytes32(value);
    else this.#str(value, 4);
  }

  #paxos(c: PaxosChange): void {
    switch (c.kind) {
      case "put": {
        const e = c.entry;
        this.#str(c.key, 4);
        this.#ballot(e.promised);
        const flags = (e.accepted ? 1 : 0) | (e.committed ? 2 : 0) | (e.forgotten ? 4 : 0);
        this.#u8(flags);
        if (e.accepted) {
          this.#ballot(e.accepted.ballot);
          this.#record(e.accepted.record);
        }
        if (e.committed) this.#ballot(e.committed);
        if (e.forgotten) this.#ballot(e.forgotten);
        return;
      }
      case "drop":
        this.#str(c.key, 4);
        return;
      case "floor":
        this.#ballot(c.ballot);
        return;
    }
  }

  #ballot(b: Version): void {
    this.#f64(b.wallMs);
    this.#u32(b.counter);
    this.#str(b.nodeId, 2);
  }

  /** Bytes: their length (u32), then the bytes. */
  #bytes32(b: Uint8Array): void {
    this.#room(4 + b.length);
    this.#view.setUint32(this.#at, b.length, true);
    this.#buf.set(b, this.#at + 4);
    this.#at += 4 + b.length;
  }

  #u8(n: number): void {
    this.#room(1);
    this.#buf[this.#at++] = n;
  }

  #u16(n: number): void {
    this.#room(2);
    this.#view.setUint16(this.#at, n, true);
    this.#at += 2;
  }

  #u32(n: number): void {
    this.#room(4);
    this.#view.setUint32(this.#at, n, true);
    this.#at += 4;
  }

  #f64(n: number): void {
    this.#room(8);
    this.#view.setFloat64(this.#at, n, true);
    this.#at += 8;
  }

  /** A string: its UTF-8 length in `lenBytes` (2 or 4), then the bytes. */
  #str(s: string, lenBytes: 2 | 4): void {
    this.#room(lenBytes + s.length * 3);
    const written = s.length === 0 ? 0 : utf8Into(s, this.#buf, this.#at + lenBytes);
    if (lenBytes === 2) this.#view.setUint16(this.#at, written, true);
    else this.#view.setUint32(this.#at, written, true);
    this.#at += lenBytes + written;
  }
}

/** One record as the bytes of a record entry (header not included): for tests and the lead. */
export function encodeRecord(r: KvRecord): Uint8Array {
  const w = new EntryWriter();
  w.entry({ type: "record", record: r });
  return w.take();
}

/** The record in a record entry made by encodeRecord; throws FormatError if it is not one. */
export function decodeRecord(bytes: Uint8Array): KvRecord {
  const scan = scanEntries(bytes, 0);
  const e = scan.entries[0];
  if (scan.problem !== undefined || scan.entries.length !== 1 || e?.type !== "record") {
    throw new FormatError("not one record entry");
  }
  return e.record;
}

// ---------------------------------------------------------------------------------------------
// Reading.

/** A payload whose CRC matched but whose fields do not parse: written by a bug or a newer binary. */
export class FormatError extends Error {}

const decoder = new TextDecoder("utf-8", { fatal: true });

class Reader {
  at = 0;
  end = 0;
  /** The last node id read, and its bytes: records of one file mostly share a few node ids. */
  #lastId = "";
  #lastIdAt = -1;
  #lastIdLen = -1;
  readonly #view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  /** Read the payload in [from, end). */
  payload(from: number, end: number): this {
    this.at = from;
    this.end = end;
    return this;
  }
  /** A short string (a node id): the last one again when its bytes are the same. */
  id(): string {
    this.#need(2);
    const n = this.#view.getUint16(this.at, true);
    const from = this.at + 2;
    this.#need(2 + n);
    const b = this.bytes;
    let same = n === this.#lastIdLen;
    for (let i = 0; same && i < n; i++) same = b[from + i] === b[this.#lastIdAt + i];
    if (!same) {
      this.#lastId = n === 0 ? "" : decodeText(b, from, from + n);
      this.#lastIdAt = from;
      this.#lastIdLen = n;
    }
    this.at = from + n;
    return this.#lastId;
  }
  #need(n: number): void {
    if (this.at + n > this.end) throw new FormatError("entry ends inside a field");
  }
  u8(): number {
    this.#need(1);
    return this.bytes[this.at++]!;
  }
  u16(): number {
    this.#need(2);
    const n = this.#view.getUint16(this.at, true);
    this.at += 2;
    return n;
  }
  u32(): number {
    this.#need(4);
    const n = this.#view.getUint32(this.at, true);
    this.at += 4;
    return n;
  }
  f64(): number {
    this.#need(8);
    const n = this.#view.getFloat64(this.at, true);
    this.at += 8;
    return n;
  }
  /** Bytes with a u32 length, copied out (the file's buffer is not kept alive by a value). */
  bytes32(): Uint8Array {
    const n = this.u32();
    this.#need(n);
    const b = this.bytes.slice(this.at, this.at + n);
    this.at += n;
    return b;
  }
  str(lenBytes: 2 | 4): string {
    this.#need(lenBytes);
    const n = lenBytes === 2
      ? this.#view.getUint16(this.at, true)
      : this.#view.getUint32(this.at, true);
    this.at += lenBytes;
    this.#need(n);
    const s = n === 0 ? "" : decodeText(this.bytes, this.at, this.at + n);
    this.at += n;
    return s;
  }
}

/** UTF-8 text; plain ASCII (most keys, short values) without the decoder's call overhead. */
function decodeText(b: Uint8Array, from: number, to: number): string {
  if (to - from <= 256) {
    let ascii = true;
    for (let i = from; i < to; i++) {
      if (b[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, b.subarray(from, to) as unknown as number[]);
  }
  try {
    return decoder.decode(b.subarray(from, to));
  } catch {
    throw new FormatError("text that is not UTF-8");
  }
}

function readRecord(r: Reader): KvRecord {
  const flags = r.u8();
  if (flags > 7) throw new FormatError(`record flags ${flags}`);
  const wallMs = r.f64();
  const counter = r.u32();
  const nodeId = r.id();
  const key = r.str(4);
  const expiresAt = (flags & 4) !== 0 ? r.f64() : undefined;
  // Binary values are kept in canonical form (record.ts): bytes that do decode are text.
  const value = (flags & 2) !== 0 ? valueOf(r.bytes32()) : r.str(4);
  const out = { key, value, version: { wallMs, counter, nodeId }, tombstone: (flags & 1) !== 0 };
  return expiresAt === undefined ? out : { ...out, expiresAt };
}

function readBallot(r: Reader): Version {
  const wallMs = r.f64();
  const counter = r.u32();
  return { wallMs, counter, nodeId: r.id() };
}

function readPaxosPut(r: Reader): PaxosChange {
  const key = r.str(4);
  const promised = readBallot(r);
  const flags = r.u8();
  if (flags > 7) throw new FormatError(`paxos flags ${flags}`);
  let entry: PaxosEntry = { promised };
  if ((flags & 1) !== 0) {
    const ballot = readBallot(r);
    entry = { ...entry, accepted: { ballot, record: readRecord(r) } };
  }
  if ((flags & 2) !== 0) entry = { ...entry, committed: readBallot(r) };
  if ((flags & 4) !== 0) entry = { ...entry, forgotten: readBallot(r) };
  return { kind: "put", key, entry };
}

function readPayload(reader: Reader, from: number, end: number): Entry {
  const r = reader.payload(from, end);
  const type = r.u8();
  let e: Entry;
  switch (type) {
    case TYPE.record:
      e = { type: "record", record: readRecord(r) };
      break;
    case TYPE.drop:
      e = { type: "drop", partition: r.u32(), partitionCount: r.u32() };
      break;
    case TYPE["hint-add"]: {
      const storedAtMs = r.f64();
      const target = r.str(2);
      e = { type: "hint-add", storedAtMs, target, record: readRecord(r) };
      break;
    }
    case TYPE["hint-remove"]: {
      const target = r.str(2);
      const key = r.str(4);
      const wallMs = r.f64();
      const counter = r.u32();
      const nodeId = r.str(2);
      e = {
        type: "hint-remove",
        target,
        record: { key, value: "", version: { wallMs, counter, nodeId }, tombstone: false },
      };
      break;
    }
    case TYPE.state: {
      const nodeId = r.str(2);
      const cluster = r.str(2);
      const partitions = r.u32();
      const incarnation = r.f64();
      const wallMs = r.f64();
      const counter = r.u32();
      const ring: RingMember[] = [];
      for (let n = r.u16(); n > 0; n--) ring.push({ id: r.str(2), address: r.str(2) });
      const state = { nodeId, cluster, partitions, incarnation, hlc: { wallMs, counter }, ring };
      if (r.at === end) { // format 1 or 2: no incarnations, no left members
        e = { type: "state", state };
        break;
      }
      const known = ring.map((m) => ({ ...m, incarnation: r.f64() }));
      const left: LeftMember[] = [];
      for (let n = r.u16(); n > 0; n--) {
        left.push({ id: r.str(2), address: r.str(2), incarnation: r.f64() });
      }
      e = { type: "state", state: { ...state, ring: known, left } };
      break;
    }
    case TYPE.end:
      e = { type: "end", records: r.f64() };
      break;
    case PAXOS_TYPE.put:
      e = { type: "paxos", change: readPaxosPut(r) };
      break;
    case PAXOS_TYPE.drop:
      e = { type: "paxos", change: { kind: "drop", key: r.str(4) } };
      break;
    case PAXOS_TYPE.floor:
      e = { type: "paxos", change: { kind: "floor", ballot: readBallot(r) } };
      break;
    default:
      throw new FormatError(`unknown entry type ${type}`);
  }
  if (r.at !== end) throw new FormatError(`${end - r.at} bytes left over after the fields`);
  return e;
}

/** Where and why a scan stopped before the end of the file. */
export interface ScanProblem {
  /**
   * `torn`: the file ends inside an entry, or only zeros follow (a write cut short by a crash):
   * what came before is whole, and the rest can be cut off. `corrupt`: a damaged entry with
   * more data after it (or a bad header): something overwrote the file.
   */
  readonly kind: "torn" | "corrupt";
  /** Offset of the first byte not kept. */
  readonly offset: number;
  readonly reason: string;
}

export interface Scan {
  readonly entries: Entry[];
  /** Bytes from the start that are whole (header and entries): the valid prefix. */
  readonly validBytes: number;
  readonly problem?: ScanProblem;
  /** Zeros after the valid prefix, to the end of the file: space written ahead (preallocated). */
  readonly zeroTail?: number;
}

function allZero(b: Uint8Array, from: number, to = b.length): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * A frame header of zeros at `at` (or zeros to the end of a file too short for one). No entry
 * has one (its length is at least 1, and the check is the length's complement), so it is space
 * the log had not written yet: zeros written ahead (a preallocated log), or blocks a power cut
 * left unwritten.
 */
function zeroFrame(b: Uint8Array, at: number): boolean {
  return b[at] === 0 && allZero(b, at, Math.min(b.length, at + FRAME_BYTES));
}

/** A device writes whole sectors: the smallest run of bytes a power cut leaves unwritten. */
const SECTOR_BYTES = 512;

/** A frame at `at` that crosses a sector boundary where a sector of zeros starts. */
function frameRunsIntoZeros(b: Uint8Array, at: number): boolean {
  const q = Math.ceil((at + 1) / SECTOR_BYTES) * SECTOR_BYTES;
  return q < at + FRAME_BYTES && q < b.length &&
    allZero(b, q, Math.min(b.length, q + SECTOR_BYTES));
}

/** Check the 8-byte header; a problem, or undefined when it is good. */
export function checkHeader(bytes: Uint8Array, kind: FileKind): ScanProblem | undefined {
  const want = [0x44, 0x4b, 0x56, KIND_CHAR[kind]];
  if (bytes.length < HEADER_BYTES) {
    // A file created and cut before its header was whole: torn if what is there matches.
    const prefixOk = [...bytes].every((b, i) => b === 0 || b === (i < 4 ? want[i] : b));
    return prefixOk
      ? { kind: "torn", offset: 0, reason: `only ${bytes.length} bytes of the header` }
      : { kind: "corrupt", offset: 0, reason: "not a dkv file (bad header)" };
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== want[i]) {
      if (allZero(bytes, 0)) return { kind: "torn", offset: 0, reason: "zeros only" };
      return { kind: "corrupt", offset: 0, reason: `not a dkv ${kind} file (bad header)` };
    }
  }
  const version = new DataView(bytes.buffer, bytes.byteOffset, 8).getUint32(4, true);
  if (version < FORMAT_VERSION_MIN || version > FORMAT_VERSION) {
    return {
      kind: "corrupt",
      offset: 0,
      reason: `format version ${version}; this binary reads versions ${FORMAT_VERSION_MIN} to ` +
        `${FORMAT_VERSION}`,
    };
  }
  return undefined;
}

/**
 * Read a whole file's entries (header first when `from` is 0). Never throws: the first entry
 * that is not whole ends the scan, and `problem` says where and whether it is a torn tail or
 * damage in the middle. `onEntry`, when given, receives each entry instead of the list (so a
 * million records need not be held twice).
 */
export function scanFile(
  bytes: Uint8Array,
  kind: FileKind,
  onEntry?: (e: Entry) => void,
): Scan {
  // An empty log holds nothing and has nothing to cut (created, then the crash came). An empty
  // snapshot stays torn: it must never pass for a whole one that holds no keys.
  if (bytes.length === 0 && kind === "log") return { entries: [], validBytes: 0 };
  const bad = checkHeader(bytes, kind);
  if (bad !== undefined) return { entries: [], validBytes: 0, problem: bad };
  return scanEntries(bytes, HEADER_BYTES, onEntry);
}

/** Entries from `from` on (no header); see scanFile. */
export function scanEntries(
  bytes: Uint8Array,
  from: number,
  onEntry?: (e: Entry) => void,
): Scan {
  const entries: Entry[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const reader = new Reader(bytes);
  let at = from;
  const stop = (kind: "torn" | "corrupt", reason: string, end = bytes.length): Scan => {
    // Damage followed by nothing but zeros is a tail the file system extended but never filled;
    // a frame or an entry that runs into zeros ran into space not written yet (see below).
    const unwritten = allZero(bytes, at) || zeroFrame(bytes, end) ||
      frameRunsIntoZeros(bytes, at);
    const k = kind === "corrupt" && unwritten ? "torn" : kind;
    return { entries, validBytes: at, problem: { kind: k, offset: at, reason } };
  };
  while (at < bytes.length) {
    if (zeroFrame(bytes, at)) {
      // The end of what was written. Zeros to the end: space written ahead, nothing lost.
      // Data after them: blocks of later writes that a power cut left on the disk while
      // earlier ones were not. No sync covered them (a sync covers every earlier write too,
      // and that would have filled these zeros), so nothing after is acknowledged: cut off.
      if (allZero(bytes, at)) return { entries, validBytes: at, zeroTail: bytes.length - at };
      return stop("torn", "zeros where the next entry should be, then unsynced data");
    }
    if (bytes.length - at < FRAME_BYTES) return stop("torn", "the file ends inside a frame");
    const len = view.getUint32(at, true);
    const check = view.getUint32(at + 4, true);
    if ((~len >>> 0) !== check) return stop("corrupt", "damaged entry length");
    if (len === 0 || len > ENTRY_BYTES_MAX) return stop("corrupt", `entry length ${len}`);
    const end = at + FRAME_BYTES + len;
    if (end > bytes.length) return stop("torn", "the file ends inside an entry");
    const crc = view.getUint32(at + 8, true);
    if (crc32c(bytes.subarray(at + FRAME_BYTES, end)) !== crc) {
      // The last entry with a bad checksum is a write cut short; one with more after is damage,
      // unless zeros follow it: it ran into space the log had not written yet.
      return stop(end === bytes.length ? "torn" : "corrupt", "checksum mismatch", end);
    }
    let e: Entry;
    try {
      e = readPayload(reader, at + FRAME_BYTES, end);
    } catch (err) {
      return stop("corrupt", `entry does not parse: ${(err as Error).message}`);
    }
    if (onEntry) onEntry(e);
    else entries.push(e);
    at = end;
  }
  return { entries, validBytes: at };
}
