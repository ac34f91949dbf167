/**
 * A stored record and the merge rule. Replicas converge because merge is deterministic,
 * commutative and idempotent: the record with the greater version wins, whatever order
 * writes arrive in. A delete is a record too (a tombstone), so it wins over older values.
 *
 * A value is bytes. It is held in one canonical form: the string the bytes decode to when they
 * are valid UTF-8 (nearly every value: as compact as before, and JSON-ready), else the bytes
 * themselves (a Uint8Array that is never valid UTF-8). So two equal values always have the same
 * form, and comparing forms is comparing bytes for equality.
 *
 * A record may carry an absolute expiry time (`expiresAt`, wall ms, from `?ttl=`): it is part of
 * the write, replicated, merged and moved with it; from that time on the record reads as absent.
 */
import { Buffer } from "node:buffer";
import { compareVersions, type Version } from "./hlc.ts";
import { utf8Bytes } from "./utf8.ts";

/** A value's bytes: their UTF-8 text when they are valid UTF-8, else the bytes (see above). */
export type Value = string | Uint8Array;

/**
 * Text that arrived as its UTF-8 bytes (a RESP SET's value, read from the request): known to
 * be valid UTF-8, so its Value is the string they decode to, made on first use. A write made
 * with one (`textRecord`) keeps the bytes: the store and the log copy them as they are, so a
 * value that is only stored never becomes a string (making a string of every value cost about
 * a sixth of a pipelined SET's CPU: docs/PERFORMANCE.md).
 */
export class Utf8Text {
  #text: string | undefined;
  constructor(
    /** Holds the bytes at [at, at + length); that range is never written again. */
    readonly buf: Uint8Array,
    readonly at: number,
    readonly length: number,
    /** Every byte is ASCII (then the text has one unit a byte). */
    readonly ascii: boolean,
    /** buf[from, to) as text. */
    private readonly decode: (buf: Uint8Array, from: number, to: number) => string,
  ) {}
  get text(): string {
    return (this.#text ??= this.decode(this.buf, this.at, this.at + this.length));
  }
  /** Copy the bytes into `target` at `offset` (no view of them is made). */
  copyInto(target: Uint8Array, offset: number): void {
    copyRange(this.buf, this.at, this.at + this.length, target, offset);
  }
}

/** Buffer's native range copy, called on any Uint8Array (Bun's and Deno's take one). */
const bufferCopy = (Buffer.prototype as unknown as {
  copy: (this: Uint8Array, t: Uint8Array, tAt: number, from: number, to: number) => number;
}).copy;

/** dst[at...] = src[from, to), without making a view (short runs byte by byte). */
export function copyRange(
  src: Uint8Array,
  from: number,
  to: number,
  dst: Uint8Array,
  at: number,
): void {
  if (to - from <= 64) {
    for (let i = from; i < to; i++) dst[at++] = src[i]!;
  } else bufferCopy.call(src, dst, at, from, to);
}

/**
 * A record whose value is a Utf8Text: `value` is its text (made on first read). Not a plain
 * object: `{ ...r }` would lose `value` (a getter on the prototype), so code that copies a
 * record it did not make writes the fields out (as the store and the wire codecs do); toJSON
 * writes them out too.
 */
class TextRecord implements KvRecord {
  readonly tombstone = false;
  /** Set only when given (declared, so that no field is made for it otherwise). */
  declare readonly expiresAt?: number;
  constructor(
    readonly key: string,
    readonly utf8: Utf8Text,
    readonly version: Version,
    expiresAt: number | undefined,
  ) {
    if (expiresAt !== undefined) (this as { expiresAt?: number }).expiresAt = expiresAt;
  }
  get value(): string {
    return this.utf8.text;
  }
  toJSON(): KvRecord {
    return {
      key: this.key,
      value: this.value,
      version: this.version,
      tombstone: false,
      ...(this.expiresAt === undefined ? {} : { expiresAt: this.expiresAt }),
    };
  }
}

/** A live record of `value` (see Utf8Text). */
export function textRecord(
  key: string,
  value: Utf8Text,
  version: Version,
  expiresAt?: number,
): KvRecord {
  return new TextRecord(key, value, version, expiresAt);
}

/**
 * `r` for keeping long (a hint, the watch log): a text record's value as its string, so the
 * record no longer holds on to the slab its bytes were copied into (src/resp/commands.ts).
 */
export function detached(r: KvRecord): KvRecord {
  return r instanceof TextRecord ? r.toJSON() : r;
}

/** The value's bytes as they arrived, when `r` was made by textRecord. */
export function utf8Of(r: KvRecord): Utf8Text | undefined {
  return r instanceof TextRecord ? r.utf8 : undefined;
}

export interface KvRecord {
  readonly key: string;
  /** The value's bytes in canonical form (see Value); "" for a tombstone. */
  readonly value: Value;
  readonly version: Version;
  readonly tombstone: boolean;
  /** Wall ms from which the record reads as absent (a ttl); undefined: never. */
  readonly expiresAt?: number;
}

// ignoreBOM: a leading byte-order mark is part of the value, not stripped.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/** The canonical form of `bytes`: their text when valid UTF-8, else the bytes. */
export function valueOf(bytes: Uint8Array): Value {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return bytes;
  }
}

/** A value's bytes (a fresh array for text; the stored array itself for binary: do not write). */
export function valueBytes(v: Value): Uint8Array {
  return typeof v === "string" ? encoder.encode(v) : v;
}

/** A value's size in bytes. */
export function valueSize(v: Value): number {
  return typeof v === "string" ? (v.length === 0 ? 0 : utf8Bytes(v)) : v.length;
}

/**
 * A total order on values, the same on every member: text before binary; text by UTF-16 units,
 * binary by bytes then length. 0 only for equal values.
 */
export function compareValues(a: Value, b: Value): number {
  if (typeof a === "string") {
    if (typeof b !== "string") return -1;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof b === "string") return 1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The record that should be kept when `incoming` meets `current` (undefined = none stored). */
export function merge(current: KvRecord | undefined, incoming: KvRecord): KvRecord {
  if (current === undefined) return incoming;
  const byVersion = compareVersions(incoming.version, current.version);
  if (byVersion !== 0) return byVersion > 0 ? incoming : current;
  // Equal versions with different content (a node restarted with its clock behind and reissued
  // a version): break the tie on content so every replica keeps the same record.
  return compareContent(incoming, current) > 0 ? incoming : current;
}

/**
 * Tombstones win ties; then the greater value; then the later expiry (none is latest). 0 when
 * the content is the same.
 */
export function compareContent(a: KvRecord, b: KvRecord): number {
  if (a.tombstone !== b.tombstone) return a.tombstone ? 1 : -1;
  return compareValues(a.value, b.value) ||
    compareExpiry(a.expiresAt, b.expiresAt);
}

/** Expiry times in tie-break order: a later one is greater, none is greatest. */
export function compareExpiry(a: number | undefined, b: number | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return 1;
  if (b === undefined) return -1;
  return a - b;
}

/** The newest of several answers (undefined entries = replica had nothing). */
export function newest(records: readonly (KvRecord | undefined)[]): KvRecord | undefined {
  let best: KvRecord | undefined;
  for (const r of records) if (r !== undefined) best = merge(best, r);
  return best;
}

/** Not a tombstone (expiry not considered: see isPresent). */
export function isLive(r: KvRecord | undefined): r is KvRecord {
  return r !== undefined && !r.tombstone;
}

/** Has the record's ttl run out at `nowMs`? */
export function isExpired(r: KvRecord, nowMs: number): boolean {
  return r.expiresAt !== undefined && r.expiresAt <= nowMs;
}

/** What a read answers at `nowMs`: live and not expired. */
export function isPresent(r: KvRecord | undefined, nowMs: number): r is KvRecord {
  return r !== undefined && !r.tombstone && !isExpired(r, nowMs);
}

/** Same version and same content: the same write, seen twice. */
export function sameRecord(a: KvRecord, b: KvRecord): boolean {
  return compareVersions(a.version, b.version) === 0 && a.tombstone === b.tombstone &&
    compareContent(a, b) === 0;
}
