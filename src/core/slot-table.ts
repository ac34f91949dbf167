/**
 * One partition's records, held without a JavaScript object, string or Map entry per key.
 *
 * - Every key and value is bytes in one byte arena (a large Uint8Array): a record's entry is its
 *   key's UTF-8 bytes followed by its value's bytes. A value replaced by one of the same size is
 *   written over in place; otherwise the entry is written again at the end and the old one is
 *   dead space. Dead space is dropped (compaction) when the arena fills up and is copied anyway.
 * - A record's other fields are columns (typed arrays) indexed by its slot number: the key's hash,
 *   the entry's offset and sizes, the version (wall ms, counter, node number) and flags.
 * - Keys are found through an open-addressing hash table (linear probing, backward-shift
 *   deletion) of slot numbers, keyed by the key's hash (`recordPartHash`, which the anti-entropy
 *   digest needs anyway) and checked against the key's bytes in the arena.
 *
 * Strings are made only when a record is read (ASCII ones by the cheapest decode, latin1). A
 * record costs its bytes plus about 40 bytes of columns and table, where two strings and a Map
 * entry cost about 190 more: one node holding 1,000,000 keys × 100 B went from 385 to 193 bytes
 * of RSS a key (docs/PERFORMANCE.md).
 */

import { Buffer } from "node:buffer";
import { murmur3Range } from "./hash.ts";
import { Utf8Text } from "./record.ts";
import { utf8Into } from "./utf8.ts";

/** Flag bits. */
const USED = 1;
const TOMBSTONE = 2;
/** The value's bytes are not valid UTF-8 (its canonical form is bytes, not text). */
const BINARY = 4;
/** The key's, or the value's, bytes are all ASCII: read back as latin1, the cheapest decode. */
const KEY_ASCII = 8;
const VALUE_ASCII = 16;

/** Largest arena: offsets are 32-bit. */
const ARENA_MAX = 0xffff_ffff;

const encoder = new TextEncoder();
/**
 * Text values were valid UTF-8 when written, and keys are well-formed strings. ignoreBOM: a
 * leading byte-order mark is part of the value, kept.
 */
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

const EMPTY = new Uint8Array(0);
/** A non-ASCII key's bytes, while it is compared (grown as needed, never shrunk). */
let scratch = new Uint8Array(256);

export class SlotTable {
  /** slot + 1 per cell, 0 for empty; a power of two long (or 0 before the first key). */
  #table = new Int32Array(0);
  /** Keys held. */
  count = 0;
  /** Slots handed out so far (columns are valid below it). */
  #top = 0;
  readonly #free: number[] = [];

  keyHash = new Uint32Array(0);
  #off = new Uint32Array(0);
  #keyLen = new Uint32Array(0);
  valueLen = new Uint32Array(0);
  wallMs = new Float64Array(0);
  counter = new Uint32Array(0);
  node = new Uint16Array(0);
  #flags = new Uint8Array(0);

  #arena: Uint8Array = EMPTY;
  /** The arena as a Buffer, for its latin1 decode. */
  #text: Buffer = Buffer.from(EMPTY.buffer);
  #used = 0;
  #dead = 0;

  /** slot → expiry (wall ms), only for records written with a ttl: others pay nothing. */
  expires: Map<number, number> | undefined;

  /** Bytes the arena takes, live and dead (for the tests). */
  get arenaBytes(): number {
    return this.#arena.length;
  }

  /** The slot holding `key` (whose recordPartHash is `hash`), or -1. */
  find(key: string, hash: number): number {
    const t = this.#table;
    const mask = t.length - 1;
    if (mask < 0) return -1;
    for (let i = hash & mask;; i = (i + 1) & mask) {
      const e = t[i]!;
      if (e === 0) return -1;
      const slot = e - 1;
      if (this.keyHash[slot] === hash && this.#keyIs(slot, key)) return slot;
    }
  }

  /** Are the key bytes of `slot` the UTF-8 encoding of `key`? */
  #keyIs(slot: number, key: string): boolean {
    const n = this.#keyLen[slot]!;
    const at = this.#off[slot]!;
    const a = this.#arena;
    // UTF-8 never takes fewer bytes than UTF-16 units.
    if (key.length > n) return false;
    if (key.length === n) {
      let i = 0;
      for (; i < n; i++) {
        const c = key.charCodeAt(i);
        if (c >= 0x80 || c !== a[at + i]) break;
      }
      if (i === n) return true;
      // An ASCII unit that differs: the bytes differ there too.
      if (key.charCodeAt(i) < 0x80) return false;
    }
    const len = encodeScratch(key);
    if (len !== n) return false;
    for (let i = 0; i < n; i++) if (scratch[i] !== a[at + i]) return false;
    return true;
  }

  /**
   * A new slot for `key` (not held yet) with its hash and UTF-8 size, with room for a value of
   * `valueBytes`: the caller then writes the record's fields, and its value with `setValue`.
   */
  add(key: string, hash: number, keyBytes: number, valueBytes: number): number {
    let slot = this.#free.pop();
    if (slot === undefined) {
      slot = this.#top++;
      if (slot >= this.keyHash.length) this.#growColumns();
    }
    this.#reserve(keyBytes + valueBytes);
    const at = this.#used;
    writeText(this.#arena, at, key, keyBytes);
    this.#used += keyBytes + valueBytes;
    this.#off[slot] = at;
    this.#keyLen[slot] = keyBytes;
    this.valueLen[slot] = valueBytes;
    this.keyHash[slot] = hash;
    // Grown before the slot is marked used: the rehash links the used ones.
    if ((this.count + 1) * 4 > this.#table.length * 3) this.#rehash(this.#table.length * 2 || 8);
    this.#flags[slot] = key.length === keyBytes ? USED | KEY_ASCII : USED;
    this.#link(slot);
    this.count++;
    return slot;
  }

  /**
   * Room for `keys` more keys and `bytes` more arena bytes, made at once: a batch about to be
   * added (a move frame's records) then costs one growth of the columns, the table and the arena
   * instead of one every quarter. Only a hint: what the batch replaces in place needs no room,
   * and adding past it just grows again.
   */
  reserve(keys: number, bytes: number): void {
    const slots = this.#top + Math.max(0, keys - this.#free.length);
    if (slots > this.keyHash.length) this.#growColumns(slots);
    let cells = this.#table.length || 8;
    while ((this.count + keys) * 4 > cells * 3) cells *= 2;
    if (cells > this.#table.length) this.#rehash(cells);
    this.#reserve(bytes);
  }

  /** Forget `slot`'s key (it must be held). */
  remove(slot: number): void {
    this.#unlink(slot);
    this.count--;
    this.#dead += this.#keyLen[slot]! + this.valueLen[slot]!;
    this.valueLen[slot] = 0;
    this.#flags[slot] = 0;
    this.expires?.delete(slot);
    this.#free.push(slot);
    // Mostly dead after many removals: give the space back.
    if (this.#dead > 65_536 && this.#dead * 2 > this.#arena.length) this.#compactTo(this.#live());
  }

  /** Set `slot`'s value bytes: text (`bytes` its UTF-8 size; as a string, or as its bytes) or bytes. */
  setValue(slot: number, value: string | Utf8Text | Uint8Array, bytes: number): void {
    const keyLen = this.#keyLen[slot]!;
    const old = this.valueLen[slot]!;
    if (bytes !== old) {
      // Written again at the end (the key copied along); the old entry is dead.
      const need = keyLen + bytes;
      this.#reserve(need); // may move entries (and this slot's)
      const from = this.#off[slot]!;
      const at = this.#used;
      this.#arena.copyWithin(at, from, from + keyLen);
      this.#off[slot] = at;
      this.#used += need;
      this.#dead += keyLen + old;
      this.valueLen[slot] = bytes;
    }
    const at = this.#off[slot]! + keyLen;
    const flags = this.#flags[slot]! & ~(BINARY | VALUE_ASCII);
    if (typeof value === "string") {
      writeText(this.#arena, at, value, bytes);
      this.#flags[slot] = value.length === bytes ? flags | VALUE_ASCII : flags;
    } else if (value instanceof Utf8Text) {
      value.copyInto(this.#arena, at);
      this.#flags[slot] = value.ascii ? flags | VALUE_ASCII : flags;
    } else {
      this.#arena.set(value, at);
      this.#flags[slot] = flags | BINARY;
    }
  }

  isTombstone(slot: number): boolean {
    return (this.#flags[slot]! & TOMBSTONE) !== 0;
  }

  setTombstone(slot: number, tombstone: boolean): void {
    const f = this.#flags[slot]!;
    this.#flags[slot] = tombstone ? f | TOMBSTONE : f & ~TOMBSTONE;
  }

  expiresAt(slot: number): number | undefined {
    return this.expires?.get(slot);
  }

  /** Live at `nowMs`: not a tombstone, not expired. */
  present(slot: number, nowMs: number): boolean {
    if ((this.#flags[slot]! & TOMBSTONE) !== 0) return false;
    const x = this.expires?.get(slot);
    return x === undefined || x > nowMs;
  }

  /** `slot`'s key, as a string (made on each call). */
  key(slot: number): string {
    const at = this.#off[slot]!;
    const end = at + this.#keyLen[slot]!;
    return (this.#flags[slot]! & KEY_ASCII) !== 0
      ? this.#text.toString("latin1", at, end)
      : decoder.decode(this.#arena.subarray(at, end));
  }

  /** murmur3 of `slot`'s key (its UTF-8 bytes, as `murmur3` of the key hashes them) with `seed`. */
  keyMurmur3(slot: number, seed: number): number {
    const at = this.#off[slot]!;
    return murmur3Range(this.#arena, at, at + this.#keyLen[slot]!, seed);
  }

  /** `slot`'s key size in UTF-8 bytes. */
  keyBytes(slot: number): number {
    return this.#keyLen[slot]!;
  }

  /** `slot`'s value in canonical form: text, or a fresh copy of its bytes. */
  value(slot: number): string | Uint8Array {
    const n = this.valueLen[slot]!;
    if (n === 0) return ""; // no bytes are valid UTF-8: the canonical empty value is text
    const at = this.#off[slot]! + this.#keyLen[slot]!;
    const flags = this.#flags[slot]!;
    if ((flags & VALUE_ASCII) !== 0) return this.#text.toString("latin1", at, at + n);
    return (flags & BINARY) !== 0
      ? this.#arena.slice(at, at + n)
      : decoder.decode(this.#arena.subarray(at, at + n));
  }

  /** Is `slot` holding a key (not free)? */
  held(slot: number): boolean {
    return (this.#flags[slot]! & USED) !== 0;
  }

  /** Is `slot`'s value bytes rather than text (`value` gives a Uint8Array when it is not empty)? */
  isBinary(slot: number): boolean {
    return (this.#flags[slot]! & BINARY) !== 0;
  }

  /**
   * `slot`'s key and value sizes as `recordBytes` (src/core/batching.ts) counts them, without
   * making the strings: the key's UTF-16 units, plus the value's units as text or its base64
   * length as bytes.
   */
  recordUnits(slot: number): number {
    const at = this.#off[slot]!;
    const k = this.#keyLen[slot]!;
    const n = this.valueLen[slot]!;
    const flags = this.#flags[slot]!;
    const key = (flags & KEY_ASCII) !== 0 ? k : utf16Units(this.#arena, at, at + k);
    if (n === 0) return key;
    if ((flags & VALUE_ASCII) !== 0) return key + n;
    if ((flags & BINARY) !== 0) return key + Math.ceil(n / 3) * 4;
    return key + utf16Units(this.#arena, at + k, at + k + n);
  }

  /**
   * Copy the entries (key bytes, then value bytes: a move frame's data layout) of `slots[from]`
   * to `slots[to - 1]`, all held, into `dst` from `at`, in that order; returns where they end.
   * Entries next to each other in the arena (the usual case: they are written, and compacted,
   * in slot order) go in one copy.
   */
  copyEntries(
    slots: ArrayLike<number>,
    from: number,
    to: number,
    dst: Uint8Array,
    at: number,
  ): number {
    const a = this.#arena;
    let runStart = 0;
    let runEnd = 0;
    for (let i = from; i < to; i++) {
      const slot = slots[i]!;
      const start = this.#off[slot]!;
      const end = start + this.#keyLen[slot]! + this.valueLen[slot]!;
      if (start === runEnd && runEnd > runStart) {
        runEnd = end;
        continue;
      }
      at = copyRun(a, runStart, runEnd, dst, at);
      runStart = start;
      runEnd = end;
    }
    return copyRun(a, runStart, runEnd, dst, at);
  }

  /** Every held slot, in slot order, as an array (a plain loop: no generator step per slot). */
  heldSlots(): Int32Array {
    const out = new Int32Array(this.count);
    const flags = this.#flags;
    let n = 0;
    for (let slot = 0; slot < this.#top; slot++) if ((flags[slot]! & USED) !== 0) out[n++] = slot;
    return out;
  }

  /** Live records (not tombstones, not expired at `nowMs`) and tombstones held. */
  counts(nowMs: number): { live: number; tombstones: number } {
    const flags = this.#flags;
    const expires = this.expires;
    let live = 0, tombstones = 0;
    for (let slot = 0; slot < this.#top; slot++) {
      const f = flags[slot]!;
      if ((f & USED) === 0) continue;
      if ((f & TOMBSTONE) !== 0) tombstones++;
      else if (expires === undefined || (expires.get(slot) ?? Infinity) > nowMs) live++;
    }
    return { live, tombstones };
  }

  /** Every held slot, in slot order. */
  *slots(): Generator<number> {
    const flags = this.#flags;
    for (let slot = 0; slot < this.#top; slot++) if ((flags[slot]! & USED) !== 0) yield slot;
  }

  #live(): number {
    return this.#used - this.#dead;
  }

  #growColumns(min = 0): void {
    const cap = Math.max(8, min, Math.ceil(this.keyHash.length * 1.5));
    this.keyHash = grow(this.keyHash, new Uint32Array(cap));
    this.#off = grow(this.#off, new Uint32Array(cap));
    this.#keyLen = grow(this.#keyLen, new Uint32Array(cap));
    this.valueLen = grow(this.valueLen, new Uint32Array(cap));
    this.wallMs = grow(this.wallMs, new Float64Array(cap));
    this.counter = grow(this.counter, new Uint32Array(cap));
    this.node = grow(this.node, new Uint16Array(cap));
    this.#flags = grow(this.#flags, new Uint8Array(cap));
  }

  /** Room for `need` more bytes at the end of the arena (entries may move). */
  #reserve(need: number): void {
    if (this.#used + need <= this.#arena.length) return;
    const live = this.#live();
    // Grow by a quarter (at least 256 bytes): little room unused, copies amortized.
    const cap = Math.min(ARENA_MAX, Math.max(256, Math.ceil((live + need) * 1.25)));
    if (live + need > cap) throw new RangeError("partition arena past 4 GiB");
    if (this.#dead * 8 > this.#arena.length) return this.#compactTo(cap);
    const to = new Uint8Array(cap);
    to.set(this.#arena.subarray(0, this.#used));
    this.#setArena(to);
  }

  #setArena(a: Uint8Array): void {
    this.#arena = a;
    this.#text = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  }

  /** Copy the live entries, in slot order, into a fresh arena of `cap` bytes. */
  #compactTo(cap: number): void {
    const from = this.#arena;
    const to = new Uint8Array(cap);
    const flags = this.#flags;
    let at = 0;
    for (let slot = 0; slot < this.#top; slot++) {
      if ((flags[slot]! & USED) === 0) continue;
      const start = this.#off[slot]!;
      const n = this.#keyLen[slot]! + this.valueLen[slot]!;
      if (n < 64) { for (let i = 0; i < n; i++) to[at + i] = from[start + i]!; }
      else to.set(from.subarray(start, start + n), at);
      this.#off[slot] = at;
      at += n;
    }
    this.#setArena(to);
    this.#used = at;
    this.#dead = 0;
  }

  #rehash(cells: number): void {
    this.#table = new Int32Array(cells);
    for (const slot of this.slots()) this.#link(slot);
  }

  #link(slot: number): void {
    const t = this.#table;
    const mask = t.length - 1;
    let i = this.keyHash[slot]! & mask;
    while (t[i] !== 0) i = (i + 1) & mask;
    t[i] = slot + 1;
  }

  /** Take `slot` out of the table, shifting later cells of its run back (no tombstones). */
  #unlink(slot: number): void {
    const t = this.#table;
    const mask = t.length - 1;
    let i = this.keyHash[slot]! & mask;
    while (t[i] !== slot + 1) i = (i + 1) & mask;
    for (let j = (i + 1) & mask; t[j] !== 0; j = (j + 1) & mask) {
      const home = this.keyHash[t[j]! - 1]! & mask;
      // Move j back to i unless its home lies cyclically in (i, j].
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (!stays) {
        t[i] = t[j]!;
        i = j;
      }
    }
    t[i] = 0;
  }
}

function grow<T extends Float64Array | Uint32Array | Uint16Array | Uint8Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

/** Copy `a[start, end)` to `dst` at `at`; returns the end. */
function copyRun(a: Uint8Array, start: number, end: number, dst: Uint8Array, at: number): number {
  const n = end - start;
  if (n < 64) { for (let i = 0; i < n; i++) dst[at + i] = a[start + i]!; }
  else dst.set(a.subarray(start, end), at);
  return at + n;
}

/**
 * UTF-16 units of the valid UTF-8 in `a[start, end)`: one per sequence, two for a 4-byte one
 * (a character beyond the BMP is a surrogate pair).
 */
function utf16Units(a: Uint8Array, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const b = a[i]!;
    if ((b & 0xc0) !== 0x80) n += b >= 0xf0 ? 2 : 1;
  }
  return n;
}

/** Write `s` (`bytes` its UTF-8 size) at `at`. */
function writeText(a: Uint8Array, at: number, s: string, bytes: number): void {
  // A short ASCII string unit by unit; else natively, without a view of the arena (a view per
  // write, for encodeInto, was 2-3 % of a 3-node PUT profile).
  if (s.length === bytes && bytes < 16) {
    for (let i = 0; i < bytes; i++) a[at + i] = s.charCodeAt(i);
  } else if (bytes > 0) {
    utf8Into(s, a, at);
  }
}

/** Encode `s` into `scratch`; its size in bytes. */
function encodeScratch(s: string): number {
  if (scratch.length < s.length * 3) scratch = new Uint8Array(s.length * 3);
  return encoder.encodeInto(s, scratch).written;
}
