/**
 * Client tokens (`--auth-token-file`): one token per line as `TOKEN ROLE`, whitespace between,
 * `#` starts a comment, blank lines ignored; ROLE is read, write or admin, each one including the
 * one before. Clients send `Authorization: Bearer TOKEN`. Parsing is pure; reading the file is
 * the caller's (src/platform/). Only SHA-256 digests of the tokens are kept: a presented token is
 * hashed and its digest compared with every stored one in constant time (no early exit, no map
 * lookup keyed by anything the client controls), so the time taken says nothing about how close
 * a guess was. Tokens never appear in messages or logs.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";

export type Role = "read" | "write" | "admin";

/** Each role includes the ones before it. */
export const ROLE_RANK: Record<Role, number> = { read: 1, write: 2, admin: 3 };

/** Shortest token accepted: 128 bits as hex (`openssl rand -hex 16`). */
export const TOKEN_CHARS_MIN = 16;
/** Longest token accepted (and longest Authorization value looked at). */
export const TOKEN_CHARS_MAX = 256;
/** Tokens in one file at most (each check compares against all of them). */
export const TOKENS_MAX = 1024;
/** Largest token file read. */
export const TOKEN_FILE_BYTES_MAX = 256 * 1024;

/** RFC 6750 b64token characters: what a bearer token may be made of. */
const TOKEN_RE = /^[A-Za-z0-9\-._~+/]+=*$/;

export type TokenFileResult =
  | { readonly ok: true; readonly tokens: ClientTokens }
  | { readonly ok: false; readonly message: string };

/** The tokens of a token file's text, or why it cannot be used (never quoting a token). */
export function parseTokenFile(text: string): TokenFileResult {
  const entries: { digest: Buffer; role: Role }[] = [];
  const seen = new Set<string>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const hash = lines[i]!.indexOf("#");
    const line = (hash < 0 ? lines[i]! : lines[i]!.slice(0, hash)).trim();
    if (line.length === 0) continue;
    const fail = (why: string): TokenFileResult => ({
      ok: false,
      message: `line ${i + 1}: ${why}`,
    });
    const parts = line.split(/\s+/);
    if (parts.length !== 2) return fail(`expected TOKEN ROLE, found ${parts.length} field(s)`);
    const [token, role] = parts as [string, string];
    if (role !== "read" && role !== "write" && role !== "admin") {
      return fail(`role must be read, write or admin (got '${role.slice(0, 20)}')`);
    }
    if (token.length < TOKEN_CHARS_MIN || token.length > TOKEN_CHARS_MAX) {
      return fail(
        `token is ${token.length} characters; it must be ${TOKEN_CHARS_MIN}-${TOKEN_CHARS_MAX} ` +
          `(make one with: openssl rand -hex 32)`,
      );
    }
    if (!TOKEN_RE.test(token)) {
      return fail("token may only use letters, digits and - . _ ~ + / (then = padding)");
    }
    const digest = sha256(token);
    const hex = digest.toString("hex");
    if (seen.has(hex)) return fail("the same token is listed twice");
    seen.add(hex);
    if (entries.length === TOKENS_MAX) return fail(`more than ${TOKENS_MAX} tokens`);
    entries.push({ digest, role });
  }
  if (entries.length === 0) return { ok: false, message: "no tokens (lines are TOKEN ROLE)" };
  return { ok: true, tokens: new ClientTokens(entries) };
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/** What a request's Authorization header is worth. */
export type TokenCheck =
  | { readonly ok: true; readonly role: Role }
  | { readonly ok: false; readonly why: "missing" | "malformed" | "unknown" };

/** Accepted Authorization headers remembered (see ClientTokens.check). */
export const VERIFIED_MAX = 1024;
const MISSING: TokenCheck = { ok: false, why: "missing" };
const MALFORMED: TokenCheck = { ok: false, why: "malformed" };
const UNKNOWN: TokenCheck = { ok: false, why: "unknown" };
const ACCEPTED: Record<Role, TokenCheck> = {
  read: { ok: true, role: "read" },
  write: { ok: true, role: "write" },
  admin: { ok: true, role: "admin" },
};

export class ClientTokens {
  readonly #entries: readonly { digest: Buffer; role: Role }[];
  readonly #verified = new Map<string, TokenCheck>();
  /** Requests refused for a missing or unknown token, or too low a role. */
  refused = 0;

  constructor(entries: readonly { digest: Buffer; role: Role }[]) {
    this.#entries = entries;
  }

  get count(): number {
    return this.#entries.length;
  }

  /** Roles present, counted (for the start-up log line; never the tokens). */
  roleCounts(): Record<Role, number> {
    const out: Record<Role, number> = { read: 0, write: 0, admin: 0 };
    for (const e of this.#entries) out[e.role]++;
    return out;
  }

  /**
   * The role of an `Authorization` header's bearer token. A header that was accepted once is
   * remembered (at most VERIFIED_MAX of them; the table is emptied when full), so a client that
   * sends the same token on every request pays one map lookup instead of a SHA-256 and the
   * constant-time comparisons. Only accepted headers are kept: an unknown token is hashed and
   * compared every time, and the lookup is by hash of the whole header, which tells nothing about
   * how much of a guess matches a token.
   */
  check(header: string | null): TokenCheck {
    if (header === null) return MISSING;
    if (header.length > TOKEN_CHARS_MAX + 16) return MALFORMED;
    const known = this.#verified.get(header);
    if (known !== undefined) return known;
    const m = /^Bearer +(\S+) *$/i.exec(header);
    if (m === null) return MALFORMED;
    const digest = sha256(m[1]!);
    let role: Role | undefined;
    for (const e of this.#entries) {
      // Every entry is compared: the time does not depend on which one (if any) matches.
      if (timingSafeEqual(digest, e.digest)) role = e.role;
    }
    if (role === undefined) return UNKNOWN;
    if (this.#verified.size >= VERIFIED_MAX) this.#verified.clear();
    this.#verified.set(header, ACCEPTED[role]);
    return ACCEPTED[role];
  }

  /** Accepted headers remembered now (tests). */
  get remembered(): number {
    return this.#verified.size;
  }
}

/** Who may make a request: anyone, members (the cluster secret's business), or a role. */
export type Access = "open" | "internal" | Role;

/**
 * The role a request needs, from its method and its decoded path (as the router sees it):
 *
 * | request                                          | needs    |
 * | ------------------------------------------------ | -------- |
 * | GET/HEAD /health, /ready                         | nothing  |
 * | anything under /internal/                        | (secret) |
 * | GET/HEAD /kv/all-data, any /cluster/status, /admin/* | admin |
 * | PUT/POST/DELETE /kv/{key}                        | write    |
 * | GET/HEAD /kv/{key}, /all-nodes, /all-nodes/{key} | read     |
 * | anything else (a 404 or 405 to come)             | read     |
 */
export function requiredAccess(method: string, path: string): Access {
  const get = method === "GET" || method === "HEAD";
  if ((path === "/health" || path === "/ready") && get) return "open";
  // The dashboard's page and the redirect to it hold no data: the page asks for a token.
  if ((path === "/ui" || path === "/") && get) return "open";
  if (path.startsWith("/internal/")) return "internal";
  if (path === "/cluster/status" || path.startsWith("/admin/") || path === "/admin") {
    return "admin";
  }
  if (path.startsWith("/kv/")) {
    if (get) return path === "/kv/all-data" ? "admin" : "read";
    if (method === "PUT" || method === "POST" || method === "DELETE") return "write";
  }
  return "read";
}
