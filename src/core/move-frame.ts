/**
 * The move frame: one batch of a partition's records, as the rebalancer streams them
 * (`POST /internal/v1/rebalance/records`), in a compact binary form instead of JSON. Pure codec:
 * `encodeMoveFrame` and `decodeMoveFrame`, no I/O; `encodeMoveFrameFrom` writes the same bytes
 * straight from a store's slot table (what movers send: no record made per key). Why binary: JSON cost the mover and the
 * receiver about 2 µs a record between them (stringify, parse, the zod check of every field,
 * base64 for binary values), most of a move's CPU time; this costs a few tenths.
 *
 * Layout (all integers little-endian; docs/protocol.md has the same table):
 *
 *   magic    4 bytes "DKM1"
 *   to       str16                 the member the frame is meant for
 *   ids      u16 n, then n × str16 the distinct node ids of the records' versions
 *   count    u32                   records that follow, at most MOVE_RECORDS_MAX
 *   rows     count × 31 bytes, one per record:
 *            flags u8              1 tombstone, 2 value is bytes (not UTF-8 text),
 *                                  4 expiresAt is set, 8 key is UTF-16 code units
 *            keyBytes u32, valueBytes u32, wallMs f64, counter u32,
 *            node u16 (index into ids), expiresAt f64 (0 without flag 4)
 *   data     per record in order: its key's bytes (UTF-8, or UTF-16LE with flag 8), then its
 *            value's (UTF-8 text, or the bytes with flag 2)
 *
 * str16 is a u16 count of UTF-16 code units, then the units (ids and `to` are short; this keeps
 * any string exactly). A key goes as UTF-8 unless it has a lone surrogate (no UTF-8 for it):
 * then as its UTF-16 units, so every key arrives exactly as it was stored. The data of a batch of
 * text (the common case) is one string encoded at once. Nothing may follow the last record's data.
 * The decoder checks every length against what is left, every version against the HLC's bounds
 * and that text is valid UTF-8: anything wrong is a reason string, never a partial result.
 */
import { Buffer, isAscii } from "node:buffer";
import { COUNTER_MAX, NODE_ID_CHARS_MAX, WALL_MS_MAX } from "./hlc.ts";
import { type KvRecord, type Value, valueOf } from "./record.ts";
import type { SlotTable } from "./slot-table.ts";
import { isWellFormed, utf8Bytes } from "./utf8.ts";

/** Most records in one frame (as `kv/write`'s 10 000). */
export const MOVE_RECORDS_MAX = 10_000;
/** Longest key, in UTF-16 units (as KEY_CHARS_MAX of the JSON messages). */
const KEY_UNITS_MAX = 65_536;

const MAGIC = [0x44, 0x4b, 0x4d, 0x31]; // "DKM1"
const TOMBSTONE = 1;
const BINARY = 2;
const EXPIRES = 4;
const KEY_UTF16 = 8;
const FLAGS_KNOWN = TOMBSTONE | BINARY | EXPIRES | KEY_UTF16;
/** flags, key bytes, value bytes, wallMs, counter, node, expiresAt. */
const ROW_BYTES = 1 + 4 + 4 + 8 + 4 + 2 + 8;

const encoder = new TextEncoder();
// ignoreBOM: a leading byte-order mark is part of the text, as in record.ts.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export interface MoveFrame {
  readonly to: string;
  readonly records: KvRecord[];
}

/**
 * The frame for `records` (at most MOVE_RECORDS_MAX), meant for member `to`. A text value must be
 * well-formed (canonical values are, src/core/record.ts): one that is not throws, as no UTF-8
 * carries it.
 */
export function encodeMoveFrame(to: string, records: readonly KvRecord[]): Uint8Array {
  const n = records.length;
  if (n > MOVE_RECORDS_MAX) {
    throw new Error(`a move frame holds at most ${MOVE_RECORDS_MAX} records`);
  }
  const ids = new Map<string, number>();
  // An upper bound: UTF-8 takes at most 3 bytes a UTF-16 unit.
  let max = 4 + 2 + 2 * to.length + 2 + 4 + n * ROW_BYTES;
  // All keys well-formed and all values text: the data is one string, encoded at once.
  let allText = true;
  for (const r of records) {
    const id = r.version.nodeId;
    if (!ids.has(id)) {
      ids.set(id, ids.size);
      max += 2 + 2 * id.length;
    }
    const v = wireValue(r);
    if (typeof v === "string") {
      if (!isWellFormed(v)) {
        throw new Error(`value of key '${r.key.slice(0, 64)}' is not well-formed text`);
      }
      max += 3 * v.length;
    } else {
      allText = false;
      max += v.length;
    }
    max += 3 * r.key.length;
    if (allText && !isWellFormed(r.key)) allText = false;
  }
  if (ids.size > 0xffff) throw new Error("a move frame names at most 65 535 node ids");
  const buf = new Uint8Array(max);
  const view = new DataView(buf.buffer);
  buf.set(MAGIC, 0);
  let at = writeStr16(view, 4, to);
  view.setUint16(at, ids.size, true);
  at += 2;
  for (const id of ids.keys()) at = writeStr16(view, at, id);
  view.setUint32(at, n, true);
  at += 4;
  const rowsAt = at;
  const dataAt = rowsAt + n * ROW_BYTES;
  const keyBytes = new Array<number>(n);
  const valueBytes = new Array<number>(n);
  const end = allText
    ? writeText(buf, dataAt, records, keyBytes, valueBytes)
    : writeEach(buf, view, dataAt, records, keyBytes, valueBytes);
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    const row = rowsAt + i * ROW_BYTES;
    let flags = r.tombstone ? TOMBSTONE : 0;
    if (typeof wireValue(r) !== "string") flags |= BINARY;
    if (r.expiresAt !== undefined) flags |= EXPIRES;
    if (!allText && !isWellFormed(r.key)) flags |= KEY_UTF16;
    buf[row] = flags;
    view.setUint32(row + 1, keyBytes[i]!, true);
    view.setUint32(row + 5, valueBytes[i]!, true);
    view.setFloat64(row + 9, r.version.wallMs, true);
    view.setUint32(row + 17, r.version.counter, true);
    view.setUint16(row + 21, ids.get(r.version.nodeId)!, true);
    view.setFloat64(row + 23, r.expiresAt ?? 0, true);
  }
  return buf.subarray(0, end);
}

/**
 * The frame of the held slots among `slots[from]` to `slots[to - 1]` of a partition's table
 * (`nodeIds`: the store's node ids by number), straight from the table's columns and arena: the
 * same bytes as `encodeMoveFrame` of the records those slots hold (as the store materializes
 * them, in the same order), without making a record, a key or a value. Slots no longer held are
 * left out; `count` says how many records the frame has. A stored key is always UTF-8 (the arena
 * keeps a key with a lone surrogate as its U+FFFD, and reads it back so), so flag 8 never occurs.
 */
export function encodeMoveFrameFrom(
  to: string,
  table: SlotTable,
  slots: ArrayLike<number>,
  from: number,
  end: number,
  nodeIds: readonly string[],
): { frame: Uint8Array; count: number } {
  const held = new Int32Array(Math.max(0, end - from));
  let n = 0;
  // node number → index in the frame's id table, in order of first use (as encodeMoveFrame).
  const ids = new Map<number, number>();
  let idChars = 0;
  let data = 0;
  let lastNode = -1;
  for (let i = from; i < end; i++) {
    const slot = slots[i]!;
    if (!table.held(slot)) continue;
    held[n++] = slot;
    data += table.keyBytes(slot) + table.valueLen[slot]!;
    const node = table.node[slot]!;
    if (node !== lastNode && !ids.has(node)) {
      ids.set(node, ids.size);
      idChars += nodeIds[node]!.length;
    }
    lastNode = node;
  }
  if (n > MOVE_RECORDS_MAX) {
    throw new Error(`a move frame holds at most ${MOVE_RECORDS_MAX} records`);
  }
  const rowsAt = 4 + 2 + 2 * to.length + 2 + 2 * ids.size + 2 * idChars + 4;
  const dataAt = rowsAt + n * ROW_BYTES;
  const buf = new Uint8Array(dataAt + data);
  const view = new DataView(buf.buffer);
  buf.set(MAGIC, 0);
  let at = writeStr16(view, 4, to);
  view.setUint16(at, ids.size, true);
  at += 2;
  for (const node of ids.keys()) at = writeStr16(view, at, nodeIds[node]!);
  view.setUint32(at, n, true);
  lastNode = -1;
  let lastIndex = 0;
  for (let i = 0; i < n; i++) {
    const slot = held[i]!;
    const row = rowsAt + i * ROW_BYTES;
    const valueBytes = table.valueLen[slot]!;
    const expiresAt = table.expiresAt(slot);
    let flags = table.isTombstone(slot) ? TOMBSTONE : 0;
    // An empty value is text whatever its flag (the canonical empty value).
    if (valueBytes > 0 && table.isBinary(slot)) flags |= BINARY;
    if (expiresAt !== undefined) flags |= EXPIRES;
    const node = table.node[slot]!;
    if (node !== lastNode) {
      lastNode = node;
      lastIndex = ids.get(node)!;
    }
    buf[row] = flags;
    view.setUint32(row + 1, table.keyBytes(slot), true);
    view.setUint32(row + 5, valueBytes, true);
    view.setFloat64(row + 9, table.wallMs[slot]!, true);
    view.setUint32(row + 17, table.counter[slot]!, true);
    view.setUint16(row + 21, lastIndex, true);
    view.setFloat64(row + 23, expiresAt ?? 0, true);
  }
  table.copyEntries(held, 0, n, buf, dataAt);
  return { frame: buf, count: n };
}

/** What a record's value is on the wire: a tombstone's is empty (the store keeps it so). */
function wireValue(r: KvRecord): Value {
  return r.tombstone ? "" : r.value;
}

/**
 * Every key and (text) value, in order, as one string encoded at once; the byte lengths are the
 * lengths in units when it was all ASCII, else counted. Returns where the data ends.
 */
function writeText(
  buf: Uint8Array,
  at: number,
  records: readonly KvRecord[],
  keyBytes: number[],
  valueBytes: number[],
): number {
  const parts = new Array<string>(2 * records.length);
  for (let i = 0; i < records.length; i++) {
    parts[2 * i] = records[i]!.key;
    parts[2 * i + 1] = wireValue(records[i]!) as string;
  }
  const text = parts.join("");
  const { written } = encoder.encodeInto(text, buf.subarray(at));
  const ascii = written === text.length;
  for (let i = 0; i < records.length; i++) {
    const k = parts[2 * i]!, v = parts[2 * i + 1]!;
    keyBytes[i] = ascii ? k.length : utf8Bytes(k);
    valueBytes[i] = ascii ? v.length : v.length === 0 ? 0 : utf8Bytes(v);
  }
  return at + written;
}

/** The data record by record: keys with a lone surrogate as UTF-16, binary values as bytes. */
function writeEach(
  buf: Uint8Array,
  view: DataView,
  at: number,
  records: readonly KvRecord[],
  keyBytes: number[],
  valueBytes: number[],
): number {
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const start = at;
    if (isWellFormed(r.key)) at += encoder.encodeInto(r.key, buf.subarray(at)).written;
    else at = writeUnits(view, at, r.key);
    keyBytes[i] = at - start;
    const v = wireValue(r);
    if (typeof v === "string") {
      valueBytes[i] = v.length === 0 ? 0 : encoder.encodeInto(v, buf.subarray(at)).written;
    } else {
      buf.set(v, at);
      valueBytes[i] = v.length;
    }
    at += valueBytes[i]!;
  }
  return at;
}

/** u16 count of UTF-16 units, then the units (exact for any string). */
function writeStr16(view: DataView, at: number, s: string): number {
  view.setUint16(at, s.length, true);
  return writeUnits(view, at + 2, s);
}

function writeUnits(view: DataView, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) view.setUint16(at + 2 * i, s.charCodeAt(i), true);
  return at + 2 * s.length;
}

/** Reads a frame front to back; `fail` ends the decoding with the reason. */
class Reader {
  at = 0;
  readonly view: DataView;
  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Are `n` more bytes there? */
  has(n: number): boolean {
    return this.buf.length - this.at >= n;
  }

  u16(): number {
    const v = this.view.getUint16(this.at, true);
    this.at += 2;
    return v;
  }

  u32(): number {
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  /** `n` bytes (a view on the frame, not a copy). */
  bytes(n: number): Uint8Array {
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }

  /** A str16, or undefined when the frame is too short for it. */
  str16(): string | undefined {
    if (!this.has(2)) return undefined;
    const n = this.u16();
    if (!this.has(2 * n)) return undefined;
    return this.units(n);
  }

  units(n: number): string {
    let s = "";
    for (let i = 0; i < n; i++) {
      s += String.fromCharCode(this.view.getUint16(this.at + 2 * i, true));
    }
    this.at += 2 * n;
    return s;
  }
}

/** The frame's records, or why it is malformed. */
export function decodeMoveFrame(buf: Uint8Array): MoveFrame | string {
  const r = new Reader(buf);
  if (!r.has(4) || MAGIC.some((b, i) => buf[i] !== b)) return "not a move frame (magic)";
  r.at = 4;
  const to = r.str16();
  if (to === undefined || to.length === 0 || to.length > NODE_ID_CHARS_MAX) {
    return "bad member id (to)";
  }
  if (!r.has(2)) return "truncated before the node ids";
  const idCount = r.u16();
  const ids: string[] = [];
  for (let i = 0; i < idCount; i++) {
    const id = r.str16();
    if (id === undefined || id.length === 0 || id.length > NODE_ID_CHARS_MAX) {
      return `bad node id ${i}`;
    }
    ids.push(id);
  }
  if (!r.has(4)) return "truncated before the record count";
  const count = r.u32();
  if (count > MOVE_RECORDS_MAX) return `${count} records; at most ${MOVE_RECORDS_MAX}`;
  if (!r.has(count * ROW_BYTES)) return "truncated in the record rows";
  const rows = r.at;
  r.at += count * ROW_BYTES; // the data of record 0
  const dataAt = r.at;
  // All ASCII (the common case): each key and text value is read as latin1, the cheapest decode
  // (no view of its bytes made, no UTF-8 check of its own); one native scan checks them all.
  const ascii = isAscii(buf.subarray(dataAt))
    ? Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
    : undefined;
  const records: KvRecord[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const rec = readRecord(r, rows + i * ROW_BYTES, ids, ascii);
    if (typeof rec === "string") return `record ${i}: ${rec}`;
    records[i] = rec;
  }
  if (r.at !== buf.length) return `${buf.length - r.at} bytes after the last record`;
  return { to, records };
}

/** The record of the row at `row`, its key and value read from the data at `r.at`. */
function readRecord(
  r: Reader,
  row: number,
  ids: readonly string[],
  ascii: Buffer | undefined,
): KvRecord | string {
  const v = r.view;
  const flags = r.buf[row]!;
  if ((flags & ~FLAGS_KNOWN) !== 0) return `unknown flags ${flags}`;
  const keyLen = v.getUint32(row + 1, true);
  const valueLen = v.getUint32(row + 5, true);
  const wallMs = v.getFloat64(row + 9, true) + 0; // + 0: a -0 is 0
  const counter = v.getUint32(row + 17, true);
  const node = v.getUint16(row + 21, true);
  if (!Number.isSafeInteger(wallMs) || wallMs < 0 || wallMs > WALL_MS_MAX) return "bad wallMs";
  if (counter > COUNTER_MAX) return "bad counter";
  const nodeId = ids[node];
  if (nodeId === undefined) return `node id ${node} not in the frame's table`;
  if (!r.has(keyLen)) return "truncated key";
  let key: string;
  if ((flags & KEY_UTF16) !== 0) {
    if (keyLen % 2 !== 0) return "odd UTF-16 key length";
    key = r.units(keyLen / 2);
  } else if (ascii !== undefined) {
    key = ascii.toString("latin1", r.at, r.at + keyLen);
    r.at += keyLen;
  } else {
    const k = text(r.bytes(keyLen));
    if (k === undefined) return "key is not valid UTF-8";
    key = k;
  }
  if (key.length === 0 || key.length > KEY_UNITS_MAX) return "key length out of bounds";
  if (!r.has(valueLen)) return "truncated value";
  let value: Value;
  if ((flags & BINARY) !== 0) {
    // Canonical form (record.ts): bytes that are valid UTF-8 are held as their text.
    // A copy as a plain Uint8Array (the frame may be a Buffer's view: a socket's bytes).
    value = valueOf(new Uint8Array(r.bytes(valueLen)));
  } else if (ascii !== undefined) {
    value = valueLen === 0 ? "" : ascii.toString("latin1", r.at, r.at + valueLen);
    r.at += valueLen;
  } else {
    const t = text(r.bytes(valueLen));
    if (t === undefined) return `value of key '${key.slice(0, 64)}' is not valid UTF-8`;
    value = t;
  }
  const rec: KvRecord = {
    key,
    value,
    version: { wallMs, counter, nodeId },
    tombstone: (flags & TOMBSTONE) !== 0,
  };
  if ((flags & EXPIRES) === 0) return rec;
  const expiresAt = v.getFloat64(row + 23, true);
  if (!Number.isSafeInteger(expiresAt) || expiresAt < 0) return "bad expiry";
  return { ...rec, expiresAt };
}

/** Strict UTF-8 to text, or undefined. */
function text(bytes: Uint8Array): string | undefined {
  if (bytes.length === 0) return "";
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * A replica write as the TCP peer link carries it (`kv/write` in binary, frame kind
 * `writeRecords`): the coordinator's replica-list fingerprints, then the records as a move frame.
 *
 *   sets     u32 n (0: none, else the record count), then n × f64 (each an integer in
 *            -2 .. 0xffffffff, as `WriteRequest.sets`)
 *   frame    a move frame (above): `to` and the records
 */
export interface WriteFrame extends MoveFrame {
  readonly sets?: number[];
}

export function encodeWriteFrame(
  to: string,
  records: readonly KvRecord[],
  sets: readonly number[] | undefined,
): Uint8Array {
  const frame = encodeMoveFrame(to, records);
  const n = sets === undefined ? 0 : sets.length;
  if (n !== 0 && n !== records.length) throw new Error("one set fingerprint per record, or none");
  const out = new Uint8Array(4 + 8 * n + frame.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, n, true);
  for (let i = 0; i < n; i++) v.setFloat64(4 + 8 * i, sets![i]!, true);
  out.set(frame, 4 + 8 * n);
  return out;
}

/** A write frame's parts, or why it is malformed. */
export function decodeWriteFrame(buf: Uint8Array): WriteFrame | string {
  if (buf.length < 4) return "truncated before the set count";
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = v.getUint32(0, true);
  if (n > MOVE_RECORDS_MAX) return `${n} set fingerprints; at most ${MOVE_RECORDS_MAX}`;
  if (buf.length < 4 + 8 * n) return "truncated in the set fingerprints";
  const sets: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const s = v.getFloat64(4 + 8 * i, true);
    if (!Number.isInteger(s) || s < -2 || s > 0xffff_ffff) return `bad set fingerprint ${i}`;
    sets[i] = s;
  }
  const frame = decodeMoveFrame(buf.subarray(4 + 8 * n));
  if (typeof frame === "string") return frame;
  if (n !== 0 && n !== frame.records.length) {
    return `${n} set fingerprints for ${frame.records.length} records`;
  }
  return n === 0 ? frame : { ...frame, sets };
}
