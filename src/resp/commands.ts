/**
 * The Redis commands dkv answers, with Redis's semantics and error texts, on the same
 * Coordinator calls as the HTTP API (src/http/kv-handler.ts, list.ts), so the consistency rules
 * are the same: each connection reads and writes at its DKV.CONSISTENCY level (quorum unless
 * changed). Commands that need an atomic read-modify-write go through atomic.ts.
 */
import { Buffer } from "node:buffer";
import type { Consistency } from "../core/placement.ts";
import {
  copyRange,
  type KvRecord,
  Utf8Text,
  type Value,
  valueBytes,
  valueOf,
  valueSize,
} from "../core/record.ts";
import { globMatch, globPrefix, type RespWriter } from "../core/resp.ts";
import { utf8Into } from "../core/utf8.ts";
import type { MemberContext } from "../http/context.ts";
import { countKeys, listPage, type ListQuery } from "../http/list.ts";
import { checkKey, checkReadKey, checkValue } from "../http/validate.ts";
import { type Role, ROLE_RANK } from "../security/client-tokens.ts";
import { VERSION } from "../config.ts";
import { parseLongDouble } from "../core/long-double.ts";
import { NOT_FLOAT } from "../core/redis-ops.ts";
import * as atomic from "./atomic.ts";
import { arity, NOT_INTEGER, RespError, SYNTAX } from "./errors.ts";

/** The Redis version dkv answers as (HELLO, INFO): the command set and replies it follows. */
export const REDIS_COMPAT_VERSION = "7.2.0";

/** One connection's state. */
export interface Session {
  readonly id: number;
  readonly addr: string;
  readonly createdAtMs: number;
  resp3: boolean;
  /** The token's role once AUTH succeeded; undefined: not authenticated. */
  role: Role | undefined;
  name: string;
  libName: string;
  libVer: string;
  consistency: Consistency;
  lastCommand: string;
  /** QUIT: close after this answer. */
  closeAfterReply: boolean;
}

/** What every command sees: the member, this member's RESP front, the writer for the answer. */
export interface Env {
  readonly ctx: MemberContext;
  readonly front: FrontState;
  readonly s: Session;
  readonly w: RespWriter;
}

/** This member's RESP front, shared by its connections. */
export interface FrontState {
  readonly sessions: Map<number, Session>;
  readonly scanCursors: ScanCursors;
  readonly startedAtMs: number;
  readonly port: number;
  readonly maxConnections: number;
  readonly bufferBytes: number;
  readonly stats: RespStats;
}

export interface CommandStat {
  calls: number;
  errors: number;
  usecTotal: number;
  usecMax: number;
}

/** Per-command counters and latencies (`resp` in /cluster/status). */
export class RespStats {
  connectionsTotal = 0;
  connectionsRefused = 0;
  protocolErrors = 0;
  /** AUTH / HELLO AUTH with a token that is not in --auth-token-file. */
  authRefused = 0;
  readonly commands = new Map<string, CommandStat>();
  record(name: string, usec: number, failed: boolean): void {
    let c = this.commands.get(name);
    if (c === undefined) {
      c = { calls: 0, errors: 0, usecTotal: 0, usecMax: 0 };
      this.commands.set(name, c);
    }
    c.calls++;
    if (failed) c.errors++;
    c.usecTotal += usec;
    if (usec > c.usecMax) c.usecMax = usec;
  }
  json(open: number) {
    const commands: Record<string, unknown> = {};
    for (const [k, c] of [...this.commands].sort(([a], [b]) => (a < b ? -1 : 1))) {
      commands[k.toLowerCase()] = {
        calls: c.calls,
        errors: c.errors,
        usecPerCall: c.calls === 0 ? 0 : Math.round(c.usecTotal / c.calls),
        usecMax: Math.round(c.usecMax),
      };
    }
    return {
      connections: open,
      connectionsTotal: this.connectionsTotal,
      connectionsRefused: this.connectionsRefused,
      protocolErrors: this.protocolErrors,
      authRefused: this.authRefused,
      commands,
    };
  }
}

/**
 * SCAN cursors: Redis clients (redis-cli among them) send the cursor back as a number, and a
 * listing resumes after a key, so each cursor given out names the key to resume after. Bounded:
 * the oldest are forgotten past SCAN_CURSORS_MAX (then `ERR invalid cursor`). A cursor is valid
 * on the member that gave it.
 */
export class ScanCursors {
  #next = 1;
  readonly #after = new Map<string, string>();
  constructor(private readonly max: number) {}
  issue(afterKey: string): string {
    const id = String(this.#next++);
    this.#after.set(id, afterKey);
    if (this.#after.size > this.max) {
      this.#after.delete(this.#after.keys().next().value!);
    }
    return id;
  }
  resume(cursor: string): string | undefined {
    return this.#after.get(cursor);
  }
}

export const SCAN_CURSORS_MAX = 100_000;

/** Keys one SCAN call lists at least (before MATCH filters them): each call asks every node. */
export const SCAN_PAGE_MIN = 100;

type Access = "none" | Role;

export interface CommandSpec {
  /** Redis arity: n exact words (the name included), -n at least n. */
  readonly arity: number;
  readonly flags: readonly string[];
  /** First key, last key (-1: the last word), step; 0 0 0: no keys. */
  readonly keys: readonly [number, number, number];
  readonly access: Access;
  readonly run: (env: Env, args: Uint8Array[]) => void | Promise<void>;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/** A word as text (command names, options, numbers): latin1, never fails. */
export function word(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString("latin1");
}

export function upper(b: Uint8Array): string {
  return word(b).toUpperCase();
}

/** A key: dkv keys are UTF-8 text, not empty, at most --max-key-bytes (reads: the hard max). */
function keyOf(env: Env, b: Uint8Array, write: boolean): string {
  let key: string;
  try {
    key = utf8.decode(b);
  } catch {
    throw new RespError("ERR key is not valid UTF-8: dkv keys are UTF-8 text");
  }
  try {
    return write ? checkKey(key, env.ctx.config.keyBytesMax) : checkReadKey(key);
  } catch (e) {
    throw new RespError(`ERR ${(e as Error).message}`);
  }
}

/** A value for a write: its canonical form (a copy: the request buffer is not kept). */
function valueFor(env: Env, key: string, b: Uint8Array) {
  const v = valueOf(b);
  return checkedValue(env, key, typeof v === "string" ? v : v.slice());
}

function checkedValue(env: Env, key: string, value: Value): Value {
  try {
    checkValue(key, value, env.ctx.config.valueBytesMax);
  } catch (e) {
    throw new RespError(`ERR ${(e as Error).message}`);
  }
  return value;
}

/**
 * Buffer's native latin1 decoder called on any Uint8Array (Bun's and Deno's Buffer both take one),
 * where it reads a plain Uint8Array right; else undefined (words are then decoded from a view).
 */
const latin1Slice = (() => {
  const slice = (Buffer.prototype as unknown as {
    latin1Slice?: (this: Uint8Array, start: number, end: number) => string;
  }).latin1Slice;
  try {
    if (slice?.call(new Uint8Array([104, 105, 33, 0xe9]), 1, 4) === "i!\u00e9") return slice;
  } catch {
    // Not callable on a plain Uint8Array here.
  }
  return undefined;
})();

/** RespWriter's text encoder (src/core/utf8.ts: Buffer's native write where it is right). */
export { utf8Into };

/**
 * buf[at, at + n) as text when those bytes are ASCII (then latin1 and UTF-8 read them alike),
 * without a view of them; undefined otherwise.
 */
function asciiAt(buf: Uint8Array, at: number, n: number): string | undefined {
  if (latin1Slice === undefined) return undefined;
  const end = at + n;
  for (let i = at; i < end; i++) if (buf[i]! >= 128) return undefined;
  return latin1Slice.call(buf, at, end);
}

/** keyOf of the key at buf[at, at + n) (the request buffer's bytes, as the fast path finds them). */
export function keyAt(env: Env, buf: Uint8Array, at: number, n: number, write: boolean): string {
  const key = asciiAt(buf, at, n);
  if (key === undefined) return keyOf(env, buf.subarray(at, at + n), write);
  try {
    return write ? checkKey(key, env.ctx.config.keyBytesMax) : checkReadKey(key);
  } catch (e) {
    throw new RespError(`ERR ${(e as Error).message}`);
  }
}

/**
 * valueFor of the value at buf[at, at + n). ASCII bytes (nearly every value) are copied into
 * the value slab and given as a Utf8Text: a SET stores them without making a string or an array
 * of them.
 */
export function valueAt(
  env: Env,
  key: string,
  buf: Uint8Array,
  at: number,
  n: number,
): Value | Utf8Text {
  const end = at + n;
  for (let i = at; i < end; i++) {
    if (buf[i]! >= 128) return valueFor(env, key, buf.subarray(at, end));
  }
  if (n > env.ctx.config.valueBytesMax) return checkedValue(env, key, buf.subarray(at, end));
  if (latin1Slice === undefined || n > SLAB_BYTES / 8) {
    return new Utf8Text(buf.slice(at, end), 0, n, true, asciiText);
  }
  if (slabAt + n > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabAt = 0;
  }
  copyRange(buf, at, end, slab, slabAt);
  const text = new Utf8Text(slab, slabAt, n, true, asciiText);
  slabAt += n;
  return text;
}

/**
 * Where valueAt copies values to: filled once, front to back, then left to the values in it (a
 * record kept for long keeps its slab) and replaced by a new one. One allocation per many values
 * instead of one per value.
 */
const SLAB_BYTES = 16 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabAt = 0;

/** ASCII bytes as text. */
function asciiText(b: Uint8Array, from: number, to: number): string {
  return latin1Slice?.call(b, from, to) ?? new TextDecoder().decode(b.subarray(from, to));
}

/** A strict Redis integer (no spaces, no +, no leading zeros past "0", within int64). */
export function parseInt64(b: Uint8Array): bigint | undefined {
  const s = word(b);
  if (!/^-?(0|[1-9]\d{0,18})$/.test(s) || s === "-0") return undefined;
  const n = BigInt(s);
  if (n > 9223372036854775807n || n < -9223372036854775808n) return undefined;
  return n;
}

function intArg(b: Uint8Array): number {
  const n = parseInt64(b);
  if (n === undefined) throw new RespError(NOT_INTEGER);
  return Number(n);
}

function bulkValue(w: RespWriter, r: KvRecord | undefined): void {
  if (r === undefined) w.null();
  else w.bulk(typeof r.value === "string" ? r.value : r.value);
}

async function read(env: Env, key: string): Promise<KvRecord | undefined> {
  return await readNow(env, key);
}

/**
 * The key's record at the session's consistency (`any` reads as `one`): at once when this
 * member's store is the answer (Coordinator.readNow), else a promise of it.
 */
function readNow(env: Env, key: string): KvRecord | undefined | Promise<KvRecord | undefined> {
  const c = env.s.consistency;
  return env.ctx.coordinator.readNow(key, c === "any" ? "one" : c);
}

/**
 * `f` of `x`: at once when `x` is a value, when it resolves when it is a promise. Commands run at
 * once whenever the coordinator answers at once, so a pipeline waits only where it must.
 */
function then<T>(x: T | Promise<T>, f: (v: T) => void): void | Promise<void> {
  if (x instanceof Promise) return x.then(f);
  f(x);
}

/**
 * `f()`, a throw turned into a rejected promise: each key of a multi-key command is tried even
 * when one before it failed, as with the coordinator's promises.
 */
function settled<T>(f: () => T | Promise<T>): T | Promise<T> {
  try {
    return f();
  } catch (e) {
    return Promise.reject(e);
  }
}

/** `then` for several values (each at once, or a promise). */
function thenAll<T>(xs: (T | Promise<T>)[], f: (vs: T[]) => void): void | Promise<void> {
  for (const x of xs) if (x instanceof Promise) return Promise.all(xs).then(f);
  f(xs as T[]);
}

/**
 * The expiry of SET / SETEX / PSETEX / GETEX options: EX s, PX ms, EXAT s, PXAT ms, as wall ms.
 * Redis's checks (positive, no overflow), then --max-ttl's.
 */
function expiryAt(env: Env, cmd: string, unit: string, b: Uint8Array): number {
  const n = parseInt64(b);
  if (n === undefined) throw new RespError(NOT_INTEGER);
  if (n <= 0n) throw new RespError(`ERR invalid expire time in '${cmd.toLowerCase()}' command`);
  const now = env.ctx.sched.now();
  const ms = unit === "EX" || unit === "EXAT" ? n * 1000n : n;
  const at = unit === "EX" || unit === "PX" ? BigInt(now) + ms : ms;
  const max = env.ctx.config.ttlMsMax;
  if (at - BigInt(now) > BigInt(max)) {
    throw new RespError(
      `ERR invalid expire time in '${cmd.toLowerCase()}' command: more than --max-ttl ` +
        `(${max} ms) from now`,
    );
  }
  return Number(at);
}

function set(env: Env, args: Uint8Array[]): void | Promise<void> {
  const key = keyOf(env, args[1]!, true);
  const value = valueFor(env, key, args[2]!);
  // Redis's rules: a flag may repeat (the last EX/PX/EXAT/PXAT value wins), NX excludes XX,
  // KEEPTTL excludes a time, one time unit only.
  let condition: "NX" | "XX" | undefined;
  let get = false;
  let expiry: { unit: string; arg: Uint8Array } | "KEEPTTL" | undefined;
  for (let i = 3; i < args.length; i++) {
    const opt = upper(args[i]!);
    if ((opt === "NX" || opt === "XX") && (condition === undefined || condition === opt)) {
      condition = opt;
    } else if (opt === "GET") get = true;
    else if (opt === "KEEPTTL" && (expiry === undefined || expiry === "KEEPTTL")) {
      expiry = "KEEPTTL";
    } else if (
      isUnit(opt) && (expiry === undefined || (expiry !== "KEEPTTL" && expiry.unit === opt)) &&
      i + 1 < args.length
    ) {
      expiry = { unit: opt, arg: args[++i]! };
    } else throw new RespError(SYNTAX);
  }
  const expiresAt = expiry === undefined
    ? undefined
    : expiry === "KEEPTTL"
    ? "keep" as const
    : expiryAt(env, "set", expiry.unit, expiry.arg);
  if (condition !== undefined || get || expiresAt === "keep") {
    return conditionalSet(env, key, value, get, expiresAt, condition);
  }
  // A plain SET, with or without a ttl: one last-writer-wins write, as PUT /kv/{key}?ttl=.
  return plainSet(env, key, value, expiresAt);
}

/** SET of a checked key and value without options but a ttl: `+OK` once written. */
export function plainSet(
  env: Env,
  key: string,
  value: Value | Utf8Text,
  expiresAt?: number,
): void | Promise<void> {
  const out = env.ctx.coordinator.writeNow(key, value, false, env.s.consistency, expiresAt);
  if (out instanceof Promise) return out.then(() => env.w.simple("OK"));
  env.w.simple("OK");
}

/** GET of a checked key: its value, or a null. */
export function plainGet(env: Env, key: string): void | Promise<void> {
  const r = readNow(env, key);
  if (r instanceof Promise) return r.then((x) => bulkValue(env.w, x));
  bulkValue(env.w, r);
}

/** SET with NX, XX, GET or KEEPTTL: a conditional write (atomic.ts). */
async function conditionalSet(
  env: Env,
  key: string,
  value: string | Uint8Array,
  get: boolean,
  expiresAt: number | "keep" | undefined,
  condition: "NX" | "XX" | undefined,
): Promise<void> {
  const out = await atomic.conditionalSet(env.ctx, {
    key,
    value: valueBytes(value),
    get,
    expiresAt,
    ...(condition === undefined ? {} : { condition }),
  }, env.s.consistency);
  if (get) {
    if (out.old === undefined) env.w.null();
    else env.w.bulk(out.old);
  } else if (out.written) env.w.simple("OK");
  else env.w.null();
}

const INT64_MAX = 9223372036854775807n;

function isUnit(opt: string): boolean {
  return opt === "EX" || opt === "PX" || opt === "EXAT" || opt === "PXAT";
}

function setWithTtl(env: Env, args: Uint8Array[], unit: "EX" | "PX"): void | Promise<void> {
  const cmd = unit === "EX" ? "setex" : "psetex";
  const key = keyOf(env, args[1]!, true);
  const expiresAt = expiryAt(env, cmd, unit, args[2]!);
  const value = valueFor(env, key, args[3]!);
  return then(
    env.ctx.coordinator.writeNow(key, value, false, env.s.consistency, expiresAt),
    () => env.w.simple("OK"),
  );
}

/** GETRANGE's Redis arithmetic: negative from the end, clamped, empty when start > end. */
function range(len: number, start: number, end: number): [number, number] | undefined {
  if (start < 0 && end < 0 && start > end) return undefined;
  if (start < 0) start = Math.max(0, len + start);
  if (end < 0) end = Math.max(0, len + end);
  if (end >= len) end = len - 1;
  if (start > end || len === 0) return undefined;
  return [start, end];
}

/** The live keys under `prefix` after `after`, a page of at most `limit` (keys only). */
async function keyPage(env: Env, prefix: string, after: string | undefined, limit: number) {
  const q: ListQuery = {
    prefix,
    limit,
    after,
    keysOnly: true,
    count: false,
    watch: false,
    consistency: env.s.consistency,
    params: new URLSearchParams(),
  };
  return await listPage(env.ctx, q);
}

/** The listing prefix of a MATCH pattern: its literal start, when that is UTF-8 text. */
function prefixOf(pattern: Uint8Array | undefined): string {
  if (pattern === undefined) return "";
  try {
    return utf8.decode(globPrefix(pattern));
  } catch {
    return "";
  }
}

async function scan(env: Env, args: Uint8Array[]): Promise<void> {
  const cursor = word(args[1]!);
  let match: Uint8Array | undefined;
  let count = 10;
  let type: string | undefined;
  for (let i = 2; i < args.length; i++) {
    const opt = upper(args[i]!);
    if (i + 1 >= args.length) throw new RespError(SYNTAX);
    const v = args[++i]!;
    if (opt === "MATCH") match = v;
    else if (opt === "COUNT") {
      const n = parseInt64(v);
      if (n === undefined) throw new RespError(NOT_INTEGER);
      if (n < 1n) throw new RespError(SYNTAX);
      count = Number(n > 1_000_000n ? 1_000_000n : n);
    } else if (opt === "TYPE") type = word(v).toLowerCase();
    else throw new RespError(SYNTAX);
  }
  let after: string | undefined;
  if (cursor !== "0") {
    after = env.front.scanCursors.resume(cursor);
    if (after === undefined) throw new RespError("ERR invalid cursor");
  }
  // COUNT is a hint, as in Redis; every call asks every node, so a call lists at least
  // SCAN_PAGE_MIN keys (never more than --max-list-keys).
  const limit = Math.min(Math.max(count, SCAN_PAGE_MIN), env.ctx.config.listKeysMax);
  const prefix = prefixOf(match);
  // Other types than string: nothing to list, and the cursor ends.
  const page = type === undefined || type === "string"
    ? await keyPage(env, prefix, after, limit)
    : { items: [], next: undefined };
  const keys = page.items.map((r) => encoder.encode(r.key)).filter((k) =>
    match === undefined || globMatch(match, k)
  );
  env.w.arrayHeader(2);
  env.w.bulk(page.next === undefined ? "0" : env.front.scanCursors.issue(page.next));
  env.w.arrayHeader(keys.length);
  for (const k of keys) env.w.bulk(k);
}

async function keys(env: Env, args: Uint8Array[]): Promise<void> {
  const pattern = args[1]!;
  const max = env.ctx.config.listKeysMax;
  const prefix = prefixOf(pattern);
  const out: Uint8Array[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await keyPage(env, prefix, after, max);
    for (const r of page.items) {
      const k = encoder.encode(r.key);
      if (!globMatch(pattern, k)) continue;
      out.push(k);
      if (out.length > max) {
        throw new RespError(
          `ERR KEYS would answer more than ${max} keys (--max-list-keys); use SCAN`,
        );
      }
    }
    if (page.next === undefined) break;
    after = page.next;
  }
  env.w.arrayHeader(out.length);
  for (const k of out) env.w.bulk(k);
}

async function randomKey(env: Env): Promise<void> {
  // A random point in key order (two random characters), then the first key after it; from
  // the start when nothing is after it.
  const r = env.ctx.sched.random;
  const point = String.fromCharCode(32 + Math.floor(r() * 95), 32 + Math.floor(r() * 95));
  let page = await keyPage(env, "", point, 1);
  if (page.items.length === 0) page = await keyPage(env, "", undefined, 1);
  const first = page.items[0];
  if (first === undefined) env.w.null();
  else env.w.bulk(first.key);
}

/** The number of live keys in the whole cluster (a keys-only listing to the end). */
export async function clusterKeyCount(ctx: MemberContext, c: Consistency): Promise<number> {
  return await countKeys(ctx, {
    prefix: "",
    limit: ctx.config.listKeysMax,
    after: undefined,
    keysOnly: true,
    count: true,
    watch: false,
    consistency: c,
    params: new URLSearchParams(),
  });
}

const R = ["readonly", "fast"];
const W = ["write"];

/** The data commands; connection commands are in connection-commands.ts. */
export const DATA_COMMANDS: Record<string, CommandSpec> = {
  GET: {
    arity: 2,
    flags: R,
    keys: [1, 1, 1],
    access: "read",
    run: (env, a) => plainGet(env, keyOf(env, a[1]!, false)),
  },
  SET: { arity: -3, flags: W, keys: [1, 1, 1], access: "write", run: set },
  SETEX: {
    arity: 4,
    flags: W,
    keys: [1, 1, 1],
    access: "write",
    run: (env, a) => setWithTtl(env, a, "EX"),
  },
  PSETEX: {
    arity: 4,
    flags: W,
    keys: [1, 1, 1],
    access: "write",
    run: (env, a) => setWithTtl(env, a, "PX"),
  },
  SETNX: {
    arity: 3,
    flags: W,
    keys: [1, 1, 1],
    access: "write",
    run: async (env, a) => {
      const key = keyOf(env, a[1]!, true);
      const value = valueFor(env, key, a[2]!);
      const out = await atomic.conditionalSet(env.ctx, {
        key,
        value: valueBytes(value),
        condition: "NX",
        get: false,
        expiresAt: undefined,
      }, env.s.consistency);
      env.w.integer(out.written ? 1 : 0);
    },
  },
  GETSET: {
    arity: 3,
    flags: W,
    keys: [1, 1, 1],
    access: "write",
    run: async (env, a) => {
      const key = keyOf(env, a[1]!, true);
      const value = valueFor(env, key, a[2]!);
      const out = await atomic.conditionalSet(env.ctx, {
        key,
        value: valueBytes(value),
        get: true,
        expiresAt: undefined,
      }, env.s.consistency);
      if (out.old === undefined) env.w.null();
      else env.w.bulk(out.old);
    },
  },
  GETDEL: {
    arity: 2,
    flags: W,
    keys: [1, 1, 1],
    access: "write",
    run: async (env, a) => {
      const key = keyOf(env, a[1]!, false);
      const old = await atomic.getAndModify(env.ctx, key, { delete: true }, env.s.consistency);
      if (old === undefined) env.w.null();
      else env.w.bulk(old);
    },
  },
  GETEX: {
    arity: -2,
    flags: W,
    keys: [1, 1, 1],
    access: "write",
    run: async (env, a) => {
      const key = keyOf(env, a[1]!, false);
      // Redis's rules: an option may repeat (the last time wins), PERSIST excludes a time, one
      // time unit only; the time is checked after the options.
      let expiry: { unit: string; arg: Uint8Array } | "PERSIST" | undefined;
      for (let i = 2; i < a.length; i++) {
        const opt = upper(a[i]!);
        if (opt === "PERSIST" && (expiry === undefined || expiry === "PERSIST")) {
          expiry = "PERSIST";
        } else if (
          isUnit(opt) && (expiry === undefined || (expiry !== "PERSIST" && expiry.unit === opt)) &&
          i + 1 < a.length
        ) {
          expiry = { unit: opt, arg: a[++i]! };
        } else throw new RespError(SYNTAX);
      }
      // Without an option GETEX changes nothing: a plain read.
      if (expiry === undefined) return bulkValue(env.w, await read(env, key));
      let expiresAt: number | null;
      try {
        expiresAt = expiry === "PERSIST" ? null : expiryAt(env, "getex", expiry.unit, expiry.arg);
      } catch (e) {
        // Redis looks the key up first: a missing key answers nil, whatever the time says.
        if ((await read(env, key)) === undefined) return env.w.null();
        throw e;
      }
      const old = await atomic.getAndModify(env.ctx, key, { expiresAt }, env.s.consistency);
      if (old === undefined) env.w.null();
      else env.w.bulk(old);
    },
  },
  MGET: {
    arity: -2,
    flags: R,
    keys: [1, -1, 1],
    access: "read",
    run: (env, a) => {
      const keys = a.slice(1).map((k) => keyOf(env, k, false));
      return thenAll(keys.map((k) => settled(() => readNow(env, k))), (records) => {
        env.w.arrayHeader(records.length);
        for (const r of records) bulkValue(env.w, r);
      });
    },
  },
  MSET: {
    arity: -3,
    flags: W,
    keys: [1, -1, 2],
    access: "write",
    run: (env, a) => {
      if (a.length % 2 !== 1) throw arity("mset");
      const pairs: [string, string | Uint8Array][] = [];
      for (let i = 1; i < a.length; i += 2) {
        const key = keyOf(env, a[i]!, true);
        pairs.push([key, valueFor(env, key, a[i + 1]!)]);
      }
      // Not atomic across keys: each key is its own write (README, "Redis clients").
      return thenAll(
        pairs.map(([k, v]) =>
          settled(() => env.ctx.coordinator.writeNow(k, v, false, env.s.consistency))
        ),
        () => env.w.simple("OK"),
      );
    },
  },
  DEL: { arity: -2, flags: W, keys: [1, -1, 1], access: "write", run: del },
  UNLINK: { arity: -2, flags: W, keys: [1, -1, 1], access: "write", run: del },
  EXISTS: {
    arity: -2,
    flags: R,
    keys: [1, -1, 1],
    access: "read",
    run: (env, a) => {
      const keys = a.slice(1).map((k) => keyOf(env, k, false));
      return thenAll(
        keys.map((k) => settled(() => readNow(env, k))),
        (records) => env.w.integer(records.filter((r) => r !== undefined).length),
      );
    },
  },
  STRLEN: {
    arity: 2,
    flags: R,
    keys: [1, 1, 1],
    access: "read",
    run: (env, a) =>
      then(
        readNow(env, keyOf(env, a[1]!, false)),
        (r) => env.w.integer(r === undefined ? 0 : valueSize(r.value)),
      ),
  },
  GETRANGE: {
    arity: 4,
    flags: ["readonly"],
    keys: [1, 1, 1],
    access: "read",
    run: (env, a) => {
      const key = keyOf(env, a[1]!, false);
      const start = intArg(a[2]!);
      const end = intArg(a[3]!);
      return then(readNow(env, key), (r) => {
        const bytes = r === undefined ? new Uint8Array(0) : valueBytes(r.value);
        const span = range(bytes.length, start, end);
        env.w.bulk(span === undefined ? new Uint8Array(0) : bytes.subarray(span[0], span[1] + 1));
      });
    },
  },
  APPEND: {
    arity: 3,
    flags: W,
    keys: [1, 1, 1],
    access: "write",
    run: async (env, a) => {
      const key = keyOf(env, a[1]!, true);
      env.w.integer(
        await atomic.append(env.ctx, key, a[2]!.slice(), env.s.consistency),
      );
    },
  },
  INCR: incrSpec("INCR", () => 1n),
  DECR: incrSpec("DECR", () => -1n),
  INCRBY: incrSpec("INCRBY", (a) => parseInt64(a[2]!)),
  DECRBY: incrSpec("DECRBY", (a) => {
    const n = parseInt64(a[2]!);
    if (n === -9223372036854775808n) throw new RespError("ERR decrement would overflow");
    return n === undefined ? undefined : -n;
  }),
  INCRBYFLOAT: {
    arity: 3,
    flags: W,
    keys: [1, 1, 1],
    access: "write",
    run: async (env, a) => {
      const key = keyOf(env, a[1]!, true);
      // Checked here too, so a bad increment costs no Paxos round (Redis's words either way).
      const by = word(a[2]!);
      if (parseLongDouble(by) === undefined) throw new RespError(`ERR ${NOT_FLOAT}`);
      env.w.bulk(await atomic.increment(env.ctx, key, { float: by }, env.s.consistency));
    },
  },
  EXPIRE: expireSpec("EXPIRE", "EX"),
  PEXPIRE: expireSpec("PEXPIRE", "PX"),
  EXPIREAT: expireSpec("EXPIREAT", "EXAT"),
  PEXPIREAT: expireSpec("PEXPIREAT", "PXAT"),
  PERSIST: {
    arity: 2,
    flags: W,
    keys: [1, 1, 1],
    access: "write",
    run: async (env, a) => {
      const key = keyOf(env, a[1]!, false);
      env.w.integer(await atomic.setExpiry(env.ctx, key, null, {}, env.s.consistency));
    },
  },
  TTL: ttlSpec(1000),
  PTTL: ttlSpec(1),
  TYPE: {
    arity: 2,
    flags: R,
    keys: [1, 1, 1],
    access: "read",
    run: (env, a) =>
      then(
        readNow(env, keyOf(env, a[1]!, false)),
        (r) => env.w.simple(r === undefined ? "none" : "string"),
      ),
  },
  SCAN: { arity: -2, flags: ["readonly"], keys: [0, 0, 0], access: "read", run: scan },
  KEYS: { arity: 2, flags: ["readonly"], keys: [0, 0, 0], access: "read", run: keys },
  RANDOMKEY: {
    arity: 1,
    flags: ["readonly"],
    keys: [0, 0, 0],
    access: "read",
    run: (env) => randomKey(env),
  },
  DBSIZE: {
    arity: 1,
    flags: ["readonly"],
    keys: [0, 0, 0],
    access: "read",
    run: async (env) => {
      const n = await clusterKeyCount(env.ctx, env.s.consistency);
      env.w.integer(n);
    },
  },
};

function del(env: Env, a: Uint8Array[]): void | Promise<void> {
  const keys = a.slice(1).map((k) => keyOf(env, k, false));
  // A tombstone per key; the acking replicas say whether they held a live value (no read).
  return thenAll(
    keys.map((k) => settled(() => env.ctx.coordinator.writeNow(k, "", true, env.s.consistency))),
    (outs) => env.w.integer(outs.filter((o) => o.hadLive).length),
  );
}

function incrSpec(cmd: string, by: (a: Uint8Array[]) => bigint | undefined): CommandSpec {
  const exact = cmd === "INCR" || cmd === "DECR" ? 2 : 3;
  return {
    arity: exact,
    flags: W,
    keys: [1, 1, 1],
    access: "write",
    run: async (env, a) => {
      const key = keyOf(env, a[1]!, true);
      const n = by(a);
      if (n === undefined) throw new RespError(NOT_INTEGER);
      const out = await atomic.increment(env.ctx, key, { int: n }, env.s.consistency);
      env.w.integer(BigInt(out));
    },
  };
}

function expireSpec(cmd: string, unit: "EX" | "PX" | "EXAT" | "PXAT"): CommandSpec {
  return {
    arity: -3,
    flags: W,
    keys: [1, 1, 1],
    access: "write",
    run: async (env, a) => {
      const key = keyOf(env, a[1]!, false);
      // Redis's order: the options first (XX may go with GT or LT), then the time.
      const flags = { nx: false, xx: false, gt: false, lt: false };
      for (let i = 3; i < a.length; i++) {
        const opt = upper(a[i]!);
        if (opt === "NX") flags.nx = true;
        else if (opt === "XX") flags.xx = true;
        else if (opt === "GT") flags.gt = true;
        else if (opt === "LT") flags.lt = true;
        else throw new RespError(`ERR Unsupported option ${word(a[i]!)}`);
      }
      if (flags.nx && (flags.xx || flags.gt || flags.lt)) {
        throw new RespError("ERR NX and XX, GT or LT options at the same time are not compatible");
      }
      if (flags.gt && flags.lt) {
        throw new RespError("ERR GT and LT options at the same time are not compatible");
      }
      const n = parseInt64(a[2]!);
      if (n === undefined) throw new RespError(NOT_INTEGER);
      const invalid = new RespError(`ERR invalid expire time in '${cmd.toLowerCase()}' command`);
      const seconds = unit === "EX" || unit === "EXAT";
      if (seconds && (n > INT64_MAX / 1000n || n < -INT64_MAX / 1000n)) throw invalid;
      const now = BigInt(env.ctx.sched.now());
      const base = unit === "EX" || unit === "PX" ? now : 0n;
      const ms = seconds ? n * 1000n : n;
      if (ms > INT64_MAX - base) throw invalid;
      const at = ms + base;
      // A time already past deletes the key (as Redis); none may be further than --max-ttl.
      if (at - now > BigInt(env.ctx.config.ttlMsMax)) {
        throw new RespError(
          `ERR invalid expire time in '${cmd.toLowerCase()}' command: more than --max-ttl ` +
            `(${env.ctx.config.ttlMsMax} ms) from now`,
        );
      }
      env.w.integer(await atomic.setExpiry(env.ctx, key, Number(at), flags, env.s.consistency));
    },
  };
}

function ttlSpec(unitMs: number): CommandSpec {
  return {
    arity: 2,
    flags: R,
    keys: [1, 1, 1],
    access: "read",
    run: (env, a) =>
      then(readNow(env, keyOf(env, a[1]!, false)), (r) => {
        if (r === undefined) return env.w.integer(-2);
        if (r.expiresAt === undefined) return env.w.integer(-1);
        const left = Math.max(0, r.expiresAt - env.ctx.sched.now());
        // Redis rounds TTL to the nearest second.
        env.w.integer(unitMs === 1 ? left : Math.floor((left + 500) / 1000));
      }),
  };
}

/** Has the session the role the command needs? */
export function allowed(s: Session, access: Access, tokensOn: boolean): boolean {
  if (access === "none" || !tokensOn) return true;
  return s.role !== undefined && ROLE_RANK[s.role] >= ROLE_RANK[access];
}

export { VERSION as DKV_VERSION };
