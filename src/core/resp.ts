/**
 * RESP, the Redis protocol: a pure, bounded codec (no sockets, no clocks).
 *
 * Requests (client → member), both forms Redis accepts:
 * - a multibulk: `*<n>\r\n` then n bulk strings `$<len>\r\n<bytes>\r\n` (what client libraries
 *   send; binary-safe);
 * - an inline command: one line of words split on spaces, with "double" (escapes \n \r \t \b
 *   \a \\ \" \xHH) and 'single' quotes, so `telnet` and `nc` work.
 * `parseRequest(buf, at, limits)` reads one request starting at `at`: a command (its words and
 * where the next request starts), `incomplete` (wait for more bytes; call again with the same
 * `at` once they came), or a protocol error, after which the connection is closed: the bytes
 * that follow cannot be trusted to start a request. Empty lines and `*0`/`*-1` are skipped, as
 * Redis does (a command with no words). The error texts are Redis's own. `matchPlain` is a shortcut
 * for the commonest requests (a plain GET or SET as clients send it): their words' offsets, nothing
 * allocated; whatever it does not take, parseRequest reads as it always did.
 *
 * Answers (member → client) are written by `RespWriter`, in RESP2 or RESP3 (`HELLO 3`): in
 * RESP2 a null is `$-1`, a map a flat array, a double a bulk string, a boolean an integer.
 *
 * Limits (as Redis has them, from our flags): bulk string bytes, words in a multibulk, bytes
 * in an inline line. A length past its limit is a protocol error before any byte of it is
 * buffered, so a client cannot make the member hold more than the limit per request.
 */
import { encodeUtf8Into, type Utf8Into } from "./utf8.ts";

export interface RespLimits {
  /** Largest bulk string (a key or a value, with its framing counted by the caller). */
  readonly bulkBytesMax: number;
  /** Most words in one multibulk request (Redis: 1024 * 1024). */
  readonly arrayLenMax: number;
  /** Longest inline request line (Redis: 64 KiB). */
  readonly inlineBytesMax: number;
}

export type ParseResult =
  | { readonly kind: "command"; readonly args: Uint8Array[]; readonly next: number }
  | { readonly kind: "skip"; readonly next: number }
  | { readonly kind: "incomplete" }
  | { readonly kind: "error"; readonly message: string };

const CR = 13;
const LF = 10;
const DOLLAR = 36;
const INCOMPLETE: ParseResult = { kind: "incomplete" };

function protocolError(what: string): ParseResult {
  return { kind: "error", message: `Protocol error: ${what}` };
}

/** The index of the `\r\n` ending the line that starts at `from`, -1 if not there yet. */
function lineEnd(buf: Uint8Array, from: number, limit: number): number {
  const end = Math.min(buf.length, from + limit);
  for (let i = from; i < end; i++) {
    if (buf[i] === LF) return i > from && buf[i - 1] === CR ? i - 1 : -2;
  }
  return -1;
}

/**
 * A non-negative decimal or -1 from buf[from, to), or undefined (not a number, or more than 15
 * digits: no length we accept is that long).
 */
function readInt(buf: Uint8Array, from: number, to: number): number | undefined {
  let i = from;
  let neg = false;
  if (buf[i] === 45 /* - */) {
    neg = true;
    i++;
  }
  if (i === to || to - i > 15) return undefined;
  let n = 0;
  for (; i < to; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return neg ? -n : n;
}

/** Longest header line we read (`*` or `$` and a length): far more than any valid one. */
const HEADER_BYTES_MAX = 32;

/**
 * Read one request at `at` (see the header). `buf` may be a view of the bytes received so far
 * (the caller's buffer can have spare room past them).
 */
export function parseRequest(buf: Uint8Array, at: number, limits: RespLimits): ParseResult {
  if (at >= buf.length) return INCOMPLETE;
  if (buf[at] !== 42 /* * */) return parseInline(buf, at, limits);
  const hEnd = lineEnd(buf, at, HEADER_BYTES_MAX);
  if (hEnd === -1) {
    return buf.length - at >= HEADER_BYTES_MAX
      ? protocolError("invalid multibulk length")
      : INCOMPLETE;
  }
  if (hEnd === -2) return protocolError("invalid multibulk length");
  const count = readInt(buf, at + 1, hEnd);
  if (count === undefined || count > limits.arrayLenMax) {
    return protocolError("invalid multibulk length");
  }
  let pos = hEnd + 2;
  if (count <= 0) return { kind: "skip", next: pos };
  const args: Uint8Array[] = new Array(count);
  for (let k = 0; k < count; k++) {
    if (pos >= buf.length) return INCOMPLETE;
    if (buf[pos] !== 36 /* $ */) {
      return protocolError(`expected '$', got '${printable(buf[pos]!)}'`);
    }
    const bEnd = lineEnd(buf, pos, HEADER_BYTES_MAX);
    if (bEnd === -1) {
      return buf.length - pos >= HEADER_BYTES_MAX
        ? protocolError("invalid bulk length")
        : INCOMPLETE;
    }
    if (bEnd === -2) return protocolError("invalid bulk length");
    const len = readInt(buf, pos + 1, bEnd);
    if (len === undefined || len < 0 || len > limits.bulkBytesMax) {
      return protocolError("invalid bulk length");
    }
    const start = bEnd + 2;
    if (start + len + 2 > buf.length) return INCOMPLETE;
    if (buf[start + len] !== CR || buf[start + len + 1] !== LF) {
      return protocolError("bulk string is not followed by CRLF");
    }
    args[k] = buf.subarray(start, start + len);
    pos = start + len + 2;
  }
  return { kind: "command", args, next: pos };
}

/** What `matchPlain` found: which command, and where its words are in the buffer. */
export interface PlainCommand {
  /** PLAIN_GET or PLAIN_SET. */
  op: number;
  keyAt: number;
  keyBytes: number;
  /** SET's value (0 for GET). */
  valueAt: number;
  valueBytes: number;
  /** Where the next request starts. */
  next: number;
}

export const PLAIN_GET = 1;
export const PLAIN_SET = 2;

/** A PlainCommand for matchPlain to fill (reused by its caller). */
export function emptyPlainCommand(): PlainCommand {
  return { op: 0, keyAt: 0, keyBytes: 0, valueAt: 0, valueBytes: 0, next: 0 };
}

/**
 * A plain GET or SET at `at` in the form client libraries and redis-benchmark send
 * (`*2 $3 GET $n key`, `*3 $3 SET $n key $m value`, the name in any case), located without
 * allocating anything: its words' offsets go into `out` (reused by the caller). False for
 * anything else, a request not complete yet or one parseRequest would refuse included: the
 * caller then hands it to parseRequest, which has the last word. A request both accept reads
 * the same words either way.
 */
export function matchPlain(
  buf: Uint8Array,
  at: number,
  bulkBytesMax: number,
  out: PlainCommand,
): boolean {
  // "*2\r\n$3\r\nGET\r\n" or "*3\r\n$3\r\nSET\r\n": 13 bytes.
  if (at + 13 > buf.length || buf[at] !== 42 /* * */) return false;
  const count = buf[at + 1]! - 48;
  if (
    buf[at + 2] !== CR || buf[at + 3] !== LF || buf[at + 4] !== 36 /* $ */ ||
    buf[at + 5] !== 51 /* 3 */ || buf[at + 6] !== CR || buf[at + 7] !== LF ||
    buf[at + 11] !== CR || buf[at + 12] !== LF || (buf[at + 9]! | 32) !== 101 /* e */ ||
    (buf[at + 10]! | 32) !== 116 /* t */
  ) {
    return false;
  }
  const first = buf[at + 8]! | 32;
  let op: number;
  if (first === 103 /* g */ && count === 2) op = PLAIN_GET;
  else if (first === 115 /* s */ && count === 3) op = PLAIN_SET;
  else return false;
  const keyEnd = plainBulk(buf, at + 13, bulkBytesMax);
  if (keyEnd < 0) return false;
  out.keyAt = bulkAt;
  out.keyBytes = bulkLen;
  if (op === PLAIN_SET) {
    const valueEnd = plainBulk(buf, keyEnd, bulkBytesMax);
    if (valueEnd < 0) return false;
    out.valueAt = bulkAt;
    out.valueBytes = bulkLen;
    out.next = valueEnd;
  } else {
    out.valueAt = out.valueBytes = 0;
    out.next = keyEnd;
  }
  out.op = op;
  return true;
}

/** Where plainBulk found the last bulk string's bytes (module state: no object per call). */
let bulkAt = 0;
let bulkLen = 0;

/**
 * A complete bulk string `$<len>\r\n<bytes>\r\n` at `pos` with 1 to 15 digits and len at most
 * `max`: where it ends (its bytes in bulkAt, bulkLen); -1 for anything else.
 */
function plainBulk(buf: Uint8Array, pos: number, max: number): number {
  if (buf[pos] !== 36 /* $ */) return -1;
  let i = pos + 1;
  let len = 0;
  const digitsEnd = Math.min(buf.length, i + 15);
  for (; i < digitsEnd; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) break;
    len = len * 10 + d;
  }
  if (i === pos + 1 || i + 1 >= buf.length || buf[i] !== CR || buf[i + 1] !== LF || len > max) {
    return -1;
  }
  const start = i + 2;
  const end = start + len;
  if (end + 2 > buf.length || buf[end] !== CR || buf[end + 1] !== LF) return -1;
  bulkAt = start;
  bulkLen = len;
  return end + 2;
}

function printable(b: number): string {
  return b >= 32 && b < 127 ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`;
}

const encoder = new TextEncoder();

function parseInline(buf: Uint8Array, at: number, limits: RespLimits): ParseResult {
  let nl = -1;
  const end = Math.min(buf.length, at + limits.inlineBytesMax + 1);
  for (let i = at; i < end; i++) {
    if (buf[i] === LF) {
      nl = i;
      break;
    }
  }
  if (nl === -1) {
    return buf.length - at > limits.inlineBytesMax
      ? protocolError("too big inline request")
      : INCOMPLETE;
  }
  const lineTo = nl > at && buf[nl - 1] === CR ? nl - 1 : nl;
  const words = splitArgs(buf.subarray(at, lineTo));
  if (words === undefined) return protocolError("unbalanced quotes in request");
  if (words.length === 0) return { kind: "skip", next: nl + 1 };
  if (words.length > limits.arrayLenMax) return protocolError("invalid multibulk length");
  return { kind: "command", args: words, next: nl + 1 };
}

function isSpace(b: number): boolean {
  return b === 32 || b === 9 || b === 10 || b === 13 || b === 11 || b === 12 || b === 0;
}

function hexVal(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  if (b >= 97 && b <= 102) return b - 87;
  if (b >= 65 && b <= 70) return b - 55;
  return -1;
}

const ESCAPES: Record<number, number> = { 110: LF, 114: CR, 116: 9, 98: 8, 97: 7 };

/**
 * Split an inline line as redis-cli and Redis do (sdssplitargs): words separated by spaces,
 * "double quotes" with escapes, 'single quotes' with only \' ; a closing quote must be followed
 * by a space or the end. Undefined: unbalanced quotes.
 */
export function splitArgs(line: Uint8Array): Uint8Array[] | undefined {
  const out: Uint8Array[] = [];
  let i = 0;
  const n = line.length;
  for (;;) {
    while (i < n && isSpace(line[i]!)) i++;
    if (i >= n) return out;
    const word: number[] = [];
    let inDq = false;
    let inSq = false;
    let done = false;
    while (!done) {
      if (inDq) {
        if (i >= n) return undefined;
        const c = line[i]!;
        if (
          c === 92 && i + 3 < n && line[i + 1] === 120 && hexVal(line[i + 2]!) >= 0 &&
          hexVal(line[i + 3]!) >= 0
        ) {
          word.push(hexVal(line[i + 2]!) * 16 + hexVal(line[i + 3]!));
          i += 3;
        } else if (c === 92 && i + 1 < n) {
          i++;
          word.push(ESCAPES[line[i]!] ?? line[i]!);
        } else if (c === 34) {
          if (i + 1 < n && !isSpace(line[i + 1]!)) return undefined;
          done = true;
        } else word.push(c);
      } else if (inSq) {
        if (i >= n) return undefined;
        const c = line[i]!;
        if (c === 92 && i + 1 < n && line[i + 1] === 39) {
          i++;
          word.push(39);
        } else if (c === 39) {
          if (i + 1 < n && !isSpace(line[i + 1]!)) return undefined;
          done = true;
        } else word.push(c);
      } else {
        if (i >= n) break;
        const c = line[i]!;
        if (isSpace(c)) done = true;
        else if (c === 34) inDq = true;
        else if (c === 39) inSq = true;
        else word.push(c);
      }
      if (i < n) i++;
    }
    out.push(Uint8Array.from(word));
  }
}

const OK_LINE = new TextEncoder().encode("+OK\r\n");

/** Digits of a non-negative integer in decimal. */
function decimalDigits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/**
 * Encodes answers into one growing buffer; `take()` hands the bytes written so far to the
 * socket. `resp3` switches the types RESP2 does not have.
 */
export class RespWriter {
  #buf: Uint8Array;
  #len = 0;
  resp3 = false;

  /** `utf8Into`: how text is encoded (a shell may pass one that allocates nothing). */
  constructor(initialBytes = 4096, private readonly utf8Into: Utf8Into = encodeUtf8Into) {
    this.#buf = new Uint8Array(initialBytes);
  }

  /** Bytes another writer wrote (an answer built apart, put in its place in order). */
  append(bytes: Uint8Array): void {
    this.#bytes(bytes);
  }

  get length(): number {
    return this.#len;
  }

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  #ascii(s: string): void {
    this.#room(s.length);
    const b = this.#buf;
    let l = this.#len;
    for (let i = 0; i < s.length; i++) b[l++] = s.charCodeAt(i);
    this.#len = l;
  }

  #bytes(v: Uint8Array): void {
    this.#room(v.length);
    this.#buf.set(v, this.#len);
    this.#len += v.length;
  }

  /**
   * The bytes written since the last take or reset, as a view of the writer's own buffer:
   * valid until the next write; copy what must outlive it. Then `reset()`.
   */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  reset(): void {
    this.#len = 0;
    if (this.#buf.length > 1 << 20) this.#buf = new Uint8Array(4096);
  }

  /** The bytes written since the last take (a copy: the writer's buffer is reused). */
  take(): Uint8Array {
    const out = this.#buf.slice(0, this.#len);
    this.#len = 0;
    if (this.#buf.length > 1 << 20) this.#buf = new Uint8Array(4096);
    return out;
  }

  /** `+OK`: a simple string (no CR or LF in it). */
  simple(s: string): void {
    if (s === "OK") return this.#bytes(OK_LINE);
    const safe = s.includes("\r") || s.includes("\n") ? s.replace(/[\r\n]/g, " ") : s;
    this.#ascii(`+${safe}\r\n`);
  }

  /** `-ERR ...`: the code (ERR, WRONGTYPE, NOAUTH ...) is the first word of `message`. */
  error(message: string): void {
    const line = message.replace(/[\r\n]/g, " ");
    const bytes = encoder.encode(`-${line}\r\n`);
    this.#bytes(bytes);
  }

  integer(n: number | bigint): void {
    this.#ascii(`:${n}\r\n`);
  }

  bulk(v: Uint8Array | string): void {
    if (typeof v === "string") return this.#bulkText(v);
    this.#room(3 + decimalDigits(v.length) + v.length + 2);
    this.#lengthLine(DOLLAR, v.length);
    this.#buf.set(v, this.#len);
    this.#len += v.length;
    this.#buf[this.#len++] = CR;
    this.#buf[this.#len++] = LF;
  }

  /**
   * Text as UTF-8, encoded straight into the buffer (no intermediate array): after a header
   * sized for ASCII (as many bytes as UTF-16 units), moved along when the text was not ASCII.
   */
  #bulkText(s: string): void {
    const head = 3 + decimalDigits(s.length);
    // Room for the longest case: 3 bytes per unit, a length one digit longer than s.length's.
    this.#room(head + 1 + 3 * s.length + 2);
    const b = this.#buf;
    const at = this.#len + head;
    const n = this.utf8Into(s, b, at);
    const headBytes = 3 + decimalDigits(n);
    if (headBytes !== head) b.copyWithin(this.#len + headBytes, at, at + n);
    this.#lengthLine(DOLLAR, n);
    this.#len += n;
    b[this.#len++] = CR;
    b[this.#len++] = LF;
  }

  /** `<type><n>\r\n` for a non-negative integer n, digit by digit (room already made). */
  #lengthLine(type: number, n: number): void {
    const b = this.#buf;
    let l = this.#len;
    b[l++] = type;
    const end = l + decimalDigits(n);
    for (let i = end - 1; i >= l; i--) {
      b[i] = 48 + (n % 10);
      n = Math.floor(n / 10);
    }
    b[end] = CR;
    b[end + 1] = LF;
    this.#len = end + 2;
  }

  null(): void {
    this.#ascii(this.resp3 ? "_\r\n" : "$-1\r\n");
  }

  /** A null array (RESP2 `*-1`), as Redis answers some commands. */
  nullArray(): void {
    this.#ascii(this.resp3 ? "_\r\n" : "*-1\r\n");
  }

  arrayHeader(n: number): void {
    this.#ascii(`*${n}\r\n`);
  }

  /** RESP3 map of n pairs; RESP2: a flat array of 2n. */
  mapHeader(n: number): void {
    this.#ascii(this.resp3 ? `%${n}\r\n` : `*${2 * n}\r\n`);
  }

  /** RESP3 set; RESP2: an array. */
  setHeader(n: number): void {
    this.#ascii(this.resp3 ? `~${n}\r\n` : `*${n}\r\n`);
  }

  /** RESP3 double; RESP2: a bulk string with the same text. */
  double(text: string): void {
    if (this.resp3) this.#ascii(`,${text}\r\n`);
    else this.bulk(text);
  }

  /** RESP3 verbatim text (`=`, txt); RESP2: a bulk string. */
  verbatim(text: string): void {
    if (!this.resp3) return this.bulk(text);
    const bytes = encoder.encode(text);
    this.#ascii(`=${bytes.length + 4}\r\ntxt:`);
    this.#bytes(bytes);
    this.#ascii("\r\n");
  }
}

/**
 * Redis's glob (stringmatchlen): `*`, `?`, `[abc]`, `[^a-z]`, `\x`; bytes compared as bytes.
 * Iterative with one backtrack point for `*`, so a pattern cannot take exponential time.
 */
export function globMatch(pattern: Uint8Array, s: Uint8Array): boolean {
  let p = 0;
  let i = 0;
  let starP = -1;
  let starI = 0;
  while (i < s.length) {
    if (p < pattern.length) {
      const c = pattern[p]!;
      if (c === 42 /* * */) {
        while (p < pattern.length && pattern[p] === 42) p++;
        if (p === pattern.length) return true;
        starP = p;
        starI = i;
        continue;
      }
      const step = matchOne(pattern, p, s[i]!);
      if (step > 0) {
        p += step;
        i++;
        continue;
      }
    }
    if (starP < 0) return false;
    p = starP;
    i = ++starI;
  }
  while (p < pattern.length && pattern[p] === 42) p++;
  return p === pattern.length;
}

/**
 * Whether pattern element at p matches byte b: the element's length if so, else 0 (an
 * unterminated `[` matches as a class up to the end, as Redis does).
 */
function matchOne(pattern: Uint8Array, p: number, b: number): number {
  const c = pattern[p]!;
  if (c === 63 /* ? */) return 1;
  if (c === 92 /* \ */ && p + 1 < pattern.length) return pattern[p + 1] === b ? 2 : 0;
  if (c !== 91 /* [ */) return c === b ? 1 : 0;
  let q = p + 1;
  const not = pattern[q] === 94; /* ^ */
  if (not) q++;
  let match = false;
  for (; q < pattern.length && pattern[q] !== 93 /* ] */; q++) {
    if (pattern[q] === 92 && q + 1 < pattern.length) {
      q++;
      if (pattern[q] === b) match = true;
    } else if (q + 2 < pattern.length && pattern[q + 1] === 45 /* - */ && pattern[q + 2] !== 93) {
      let lo = pattern[q]!;
      let hi = pattern[q + 2]!;
      if (lo > hi) [lo, hi] = [hi, lo];
      if (b >= lo && b <= hi) match = true;
      q += 2;
    } else if (pattern[q] === b) match = true;
  }
  const len = (q < pattern.length ? q + 1 : q) - p;
  return match !== not ? len : 0;
}

/** The literal start of a glob (before its first `*`, `?`, `[` or `\`): a listing prefix. */
export function globPrefix(pattern: Uint8Array): Uint8Array {
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === 42 || c === 63 || c === 91 || c === 92) break;
    i++;
  }
  return pattern.subarray(0, i);
}
