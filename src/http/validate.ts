/** Boundary parsing for public requests: keys, values and query parameters. */
import { z } from "zod";
import type { Consistency } from "../core/placement.ts";
import { parseDurationMs } from "../core/duration.ts";
import { type Value, valueOf, valueSize } from "../core/record.ts";
import { isWellFormed, utf8AtMost, utf8Bytes } from "../core/utf8.ts";
import { readBytes } from "./body.ts";
import { DkvError } from "./errors.ts";

/**
 * The largest key any member may be configured to accept (--max-key-bytes at most). Reads and
 * deletes are checked against this, not this member's own --max-key-bytes: a limit meant for
 * writes never stops a key another member stored from being read or deleted (issue 16, point 17).
 */
export const KEY_BYTES_HARD_MAX = 65536;

/** Keys that are routes, not keys. */
export const RESERVED_KEYS = new Set(["all-data", "_batch"]);

/**
 * The key from a request path after `/kv/`: percent-decoded UTF-8; `%2F` and a literal `/` both
 * make a slash in the key. Empty, undecodable, reserved or too long keys are a 400.
 */
export function parseKey(rawPath: string, keyBytesMax: number, limit = WRITE_LIMIT): string {
  let key: string;
  try {
    key = rawPath.includes("%") ? decodeURIComponent(rawPath) : rawPath;
  } catch {
    throw new DkvError("bad_request", "key is not valid percent-encoded UTF-8");
  }
  return checkKey(key, keyBytesMax, limit);
}

/** How a key over the limit is explained: a write's own --max-key-bytes, or the read bound. */
export const WRITE_LIMIT = "(--max-key-bytes)";
export const READ_LIMIT = "(no member stores longer keys: the largest --max-key-bytes)";

/**
 * A decoded key, as every boundary takes it (public paths and internal messages alike): not
 * empty, not reserved, well-formed Unicode, at most `keyBytesMax` UTF-8 bytes; else a 400.
 */
export function checkKey(key: string, keyBytesMax: number, limit = WRITE_LIMIT): string {
  if (key.length === 0) throw new DkvError("bad_request", "key must not be empty");
  if (RESERVED_KEYS.has(key)) throw new DkvError("bad_request", `key '${key}' is reserved`);
  // Keys are stored as their UTF-8 bytes: a lone surrogate would come back as U+FFFD.
  if (!isWellFormed(key)) {
    throw new DkvError("bad_request", "key is not valid Unicode (it has a lone surrogate)");
  }
  if (!utf8AtMost(key, keyBytesMax)) {
    throw new DkvError(
      "bad_request",
      `key is ${utf8Bytes(key)} bytes; the limit is ${keyBytesMax} ${limit}`,
    );
  }
  return key;
}

/**
 * A key being read or deleted: as checkKey, against KEY_BYTES_HARD_MAX (the largest any member
 * may store) instead of this member's write limit.
 */
export function checkReadKey(key: string): string {
  return checkKey(key, KEY_BYTES_HARD_MAX, READ_LIMIT);
}

/** A value within `valueBytesMax` bytes, else a 413 naming its key. */
export function checkValue(key: string, value: Value, valueBytesMax: number): void {
  if (
    typeof value === "string" ? utf8AtMost(value, valueBytesMax) : value.length <= valueBytesMax
  ) {
    return;
  }
  throw new DkvError(
    "too_large",
    `value of key '${key.slice(0, 100)}' is ${valueSize(value)} bytes; the limit is ` +
      `${valueBytesMax} (--max-value-bytes)`,
  );
}

/** The request body as a value (any bytes, whatever the Content-Type): at most `valueBytesMax`. */
export async function readValue(req: Request, valueBytesMax: number): Promise<Value> {
  return valueOf(await readBytes(req, valueBytesMax, "value", "--max-value-bytes"));
}

/** The query parameters `/kv/{key}` accepts. */
export const KV_QUERY_PARAMS: readonly string[] = [
  "consistency",
  "raw",
  "ttl",
  "watch",
  "since",
  "op",
  "by",
];

/**
 * The query parameters of a key request, from the URL's query alone (parsing the whole URL would
 * throw on a malformed Host header, which the runtime copies into it: a 500, found by the
 * fuzzer). Any parameter not in `accepted` is a 400 naming it and the accepted ones: a typo such
 * as `?consistancy=all` must not fall back to quorum silently (issue 16, point 12).
 */
export function kvParams(
  url: string,
  accepted: readonly string[] = KV_QUERY_PARAMS,
  route = "/kv/{key}",
): URLSearchParams | undefined {
  const q = url.indexOf("?");
  if (q < 0) return undefined;
  const h = url.indexOf("#", q);
  const params = new URLSearchParams(url.slice(q + 1, h < 0 ? undefined : h));
  for (const name of params.keys()) {
    if (!accepted.includes(name)) {
      throw new DkvError(
        "bad_request",
        `unknown query parameter '${name.slice(0, 100)}'; ${route} accepts ` +
          `${accepted.join(", ")} (e.g. ?consistency=all)`,
      );
    }
  }
  return params;
}

/** `?consistency=` of a key request (see kvParams). */
export function kvQuery(url: string): string | undefined {
  return kvParams(url)?.get("consistency") ?? undefined;
}

const Flag = z.enum(["", "true", "1", "false", "0"]);

/** A boolean parameter (`?raw`, `?raw=true`, `?raw=1`; `false`/`0`); anything else is a 400. */
export function parseFlag(params: URLSearchParams | undefined, name: string): boolean {
  const v = params?.get(name);
  if (v === null || v === undefined) return false;
  const out = Flag.safeParse(v);
  if (!out.success) {
    throw new DkvError("bad_request", `${name} must be true or false (got '${v.slice(0, 40)}')`);
  }
  return out.data === "" || out.data === "true" || out.data === "1";
}

/** What `?ttl=` asks of a write: nothing (no expiry), keep the current one, or this many ms. */
export type Ttl = { readonly ms: number } | "keep" | undefined;

const TtlParam = z.string().regex(/^\d{1,15}(ms|s|m|h|d)$/);

/**
 * `?ttl=`: a whole number with a unit (ms, s, m, h, d), at least 1 ms and at most `ttlMsMax`
 * (--max-ttl), or `keep`; anything else is a 400.
 */
export function parseTtl(text: string | null | undefined, ttlMsMax: number): Ttl {
  if (text === null || text === undefined) return undefined;
  if (text === "keep") return "keep";
  const ms = TtlParam.safeParse(text).success ? parseDurationMs(text) : undefined;
  if (ms === undefined || ms < 1) {
    throw new DkvError(
      "bad_request",
      `ttl must be a whole number with a unit (ms, s, m, h, d), e.g. 30s, or keep ` +
        `(got '${text.slice(0, 40)}')`,
    );
  }
  if (ms > ttlMsMax) {
    throw new DkvError(
      "bad_request",
      `ttl ${text} is longer than the limit, ${ttlMsMax} ms (--max-ttl)`,
    );
  }
  return { ms };
}

const ConsistencyParam = z.enum(["one", "quorum", "all", "any"]);

export function parseConsistency(param: string | undefined): Consistency {
  if (param === undefined) return "quorum";
  const out = ConsistencyParam.safeParse(param);
  if (!out.success) {
    throw new DkvError(
      "bad_request",
      `consistency must be one, quorum, all or any (got '${param}')`,
    );
  }
  return out.data;
}

/**
 * The request path, still percent-encoded, cut from the URL string (cheaper than parsing it). A
 * path with a possible dot segment goes through URL parsing, which resolves `.` and `..` as
 * clients and proxies do. Only the path is parsed, under a fixed host: the runtime builds the URL
 * from the client's Host header, and a malformed one (`Host: [::1`) made the whole URL
 * unparsable, a 500 before any handler ran (found by the fuzzer).
 */
export function rawPath(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const q = url.indexOf("?", start);
  const h = url.indexOf("#", start);
  const end = q >= 0 ? q : h >= 0 ? h : url.length;
  const path = url.slice(start, end);
  if (path.includes("/.") || /%2e/i.test(path)) {
    return new URL(`http://path.invalid${path}`).pathname;
  }
  return path;
}
