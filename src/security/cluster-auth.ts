/**
 * Signing and checking internal calls with the cluster secret (HMAC-SHA256), both ways.
 *
 * A request carries `x-dkv-auth: v2 <sender> <ts> <nonce> <mac>`:
 *   sender  the signer's member id, percent-encoded (encodeURIComponent);
 *   ts      the signer's wall clock, ms since the epoch;
 *   nonce   `<16 hex digits>.<counter>`: a random source drawn per (process, destination) and a
 *           counter counting up from 0 (src/core/replay-window.ts);
 *   mac     base64url HMAC-SHA256(first secret, "dkv-auth-v2 req\n" METHOD "\n" target "\n" ts
 *           "\n" nonce "\n" sender "\n" ‖ body), target = path and query as sent. The text before
 *           the body has a fixed number of newline-ended fields, none holding a newline, so the
 *           message cannot be read two ways; the body is hashed once, inside the HMAC.
 * The receiver checks, in this order, before it parses anything of the body: the header's form,
 * |its clock − ts| ≤ the window (--max-clock-skew), the MAC against each secret it holds (in
 * constant time), then that the nonce was not seen before. An answer to a signed request carries
 * `x-dkv-auth: v2 <responder> <nonce> <mac>` with mac = HMAC-SHA256("dkv-auth-v2 res\n" status
 * "\n" METHOD "\n" target "\n" nonce "\n" responder "\n" ‖ answer body): it names the
 * request's own nonce, so an old answer cannot be passed off as the answer to a new request, and
 * the caller needs no nonce cache of its own.
 *
 * (v1, before 2026-11-26, MACed SHA-256(body) instead of the body: one more hash per message.
 * A v1 header is refused with a message saying so.)
 *
 * Each secret is keyed once. Under Bun the keyed native hasher is copied per message
 * (Bun.CryptoHasher: ~0.35 µs per MAC of a small message); elsewhere (Deno) node:crypto's
 * createHmac with an imported KeyObject (~0.55 µs). Web Crypto's promise would cost ~30 µs.
 */
import { createHmac, createSecretKey } from "node:crypto";
import { ReplayGuard } from "../core/replay-window.ts";

export const AUTH_HEADER = "x-dkv-auth";

/** Counters a replay window spans per source (8 KiB of bitmap each). */
const REPLAY_WINDOW = 65_536;
/** Nonce sources a receiver tracks at once (≤ 8 MiB of bitmaps). */
const REPLAY_SOURCES_MAX = 1024;
/** Destinations a signer keeps a nonce counter for; a new one gets a fresh random source. */
const SIGN_SOURCES_MAX = 4096;
/** Longest x-dkv-auth header read. */
const HEADER_CHARS_MAX = 2048;
/** Refusals are logged at most this often (the count in between is in the next line). */
const LOG_EVERY_MS = 1000;

const NONCE_RE = /^([0-9a-f]{16})\.(\d{1,15})$/;
const TS_RE = /^\d{1,16}$/;
const MAC_CHARS = 43;
const MAC_RE = /^[A-Za-z0-9_-]{43}$/;
const EMPTY = new Uint8Array(0);
const OLD_SCHEME = `signed with the v1 scheme of an older dkv; run the same dkv version on every ` +
  `member`;

export interface ClusterAuthOptions {
  /** This member's id: the sender of its requests and the responder of its answers. */
  readonly selfId: string;
  /** Requests signed further than this from our clock (either way) are refused. */
  readonly windowMs: number;
  readonly now: () => number;
  /** Uniform in [0, 1): draws the nonce sources (uniqueness, not secrecy, is what matters). */
  readonly random: () => number;
  /** Where the rate-limited refusal lines go. */
  readonly warn: (msg: string) => void;
}

/** What a request's header claims; trusted only once `verifyRequest` accepted it. */
export interface RequestClaim {
  readonly sender: string;
  readonly senderEnc: string;
  readonly ts: number;
  readonly nonce: string;
  readonly source: string;
  readonly counter: number;
  /** The MAC as sent: 43 base64url characters (checked by form here, by value in verifyRequest). */
  readonly mac: string;
}

interface SignSource {
  readonly prefix: string;
  counter: number;
}

export class ClusterAuth {
  /** Requests refused and answers not accepted, since start. */
  refused = 0;
  readonly #macs: readonly MacFn[];
  readonly #selfEnc: string;
  readonly #replay: ReplayGuard;
  readonly #sources = new Map<string, SignSource>();
  #lastLogMs = Number.NEGATIVE_INFINITY;
  #unlogged = 0;

  constructor(secrets: readonly Uint8Array[], readonly opts: ClusterAuthOptions) {
    if (secrets.length === 0) throw new Error("ClusterAuth: no secret");
    this.#macs = secrets.map(keyedMac);
    this.#selfEnc = encodeURIComponent(opts.selfId);
    // A source is forgotten only when nothing it signed can pass the time check any more.
    this.#replay = new ReplayGuard(REPLAY_WINDOW, REPLAY_SOURCES_MAX, 2 * opts.windowMs + 1000);
  }

  /** Secrets held (the first signs). */
  get keyCount(): number {
    return this.#macs.length;
  }

  /** The header for a request to `address`, and its nonce (to check the answer with). */
  signRequest(
    address: string,
    method: string,
    target: string,
    body: Uint8Array = EMPTY,
  ): { header: string; nonce: string } {
    const nonce = this.#nextNonce(address);
    const ts = Math.floor(this.opts.now());
    const canon = `dkv-auth-v2 req\n${method}\n${target}\n${ts}\n${nonce}\n${this.#selfEnc}\n`;
    const mac = this.#macs[0]!(canon, body);
    return { header: `v2 ${this.#selfEnc} ${ts} ${nonce} ${mac}`, nonce };
  }

  /**
   * The checks that need no body: the header's form and the time window. Returns the claim, or
   * why the request is refused.
   */
  readClaim(header: string | null): RequestClaim | string {
    if (header === null) {
      return `no ${AUTH_HEADER} header (this member requires the cluster secret)`;
    }
    if (header.length > HEADER_CHARS_MAX) return `${AUTH_HEADER} header too long`;
    const parts = header.split(" ");
    if (parts[0] === "v1") return OLD_SCHEME;
    if (parts.length !== 5 || parts[0] !== "v2") return `malformed ${AUTH_HEADER} header`;
    const [, senderEnc, tsText, nonce, macText] = parts as [string, string, string, string, string];
    const n = NONCE_RE.exec(nonce);
    if (!TS_RE.test(tsText) || n === null || !MAC_RE.test(macText)) {
      return `malformed ${AUTH_HEADER} header`;
    }
    let sender = senderEnc;
    if (senderEnc.includes("%")) {
      try {
        sender = decodeURIComponent(senderEnc);
      } catch {
        return `malformed ${AUTH_HEADER} header`;
      }
    }
    if (sender.length === 0 || sender.length > 256) return `malformed ${AUTH_HEADER} header`;
    const ts = Number(tsText);
    const offMs = Math.round(ts - this.opts.now());
    if (Math.abs(offMs) > this.opts.windowMs) {
      return `signed ${Math.abs(offMs)} ms ${offMs < 0 ? "behind" : "ahead of"} this member's ` +
        `clock; the window is ±${this.opts.windowMs} ms (--max-clock-skew)`;
    }
    return {
      sender,
      senderEnc,
      ts,
      nonce,
      // Per sender: two members drawing the same prefix still never collide.
      source: `${senderEnc} ${n[1]!}`,
      counter: Number(n[2]),
      mac: macText,
    };
  }

  /** Check the MAC over the body, then the nonce. Undefined: accepted; else why not. */
  verifyRequest(
    claim: RequestClaim,
    method: string,
    target: string,
    body: Uint8Array,
  ): string | undefined {
    const canon =
      `dkv-auth-v2 req\n${method}\n${target}\n${claim.ts}\n${claim.nonce}\n${claim.senderEnc}\n`;
    if (!this.#matches(canon, body, claim.mac)) {
      return "bad signature (another cluster secret, or the request was altered)";
    }
    // Only now, so that nobody without the secret can mark nonces as used.
    const verdict = this.#replay.check(claim.source, claim.counter, this.opts.now());
    switch (verdict) {
      case "fresh":
        return undefined;
      case "replayed":
        return `replayed request (nonce ${claim.nonce} was seen before)`;
      case "too-old":
        return `nonce ${claim.nonce} is too far behind the sender's newest; refused as a replay`;
      case "full":
        return "too many signing sources at once; try again later";
    }
  }

  /** The header for our answer to a verified request (a string body is hashed as UTF-8). */
  signAnswer(
    status: number,
    method: string,
    target: string,
    nonce: string,
    body: Uint8Array | string,
  ): string {
    const canon = `dkv-auth-v2 res\n${status}\n${method}\n${target}\n${nonce}\n${this.#selfEnc}\n`;
    const mac = this.#macs[0]!(canon, body);
    return `v2 ${this.#selfEnc} ${nonce} ${mac}`;
  }

  /** Check an answer to our request signed with `nonce`. Undefined: genuine; else why not. */
  verifyAnswer(
    status: number,
    method: string,
    target: string,
    nonce: string,
    header: string | null,
    body: Uint8Array,
  ): string | undefined {
    if (header === null) return `answer without ${AUTH_HEADER}`;
    const parts = header.length > HEADER_CHARS_MAX ? [] : header.split(" ");
    if (parts[0] === "v1") return `answer ${OLD_SCHEME}`;
    if (parts.length !== 4 || parts[0] !== "v2" || !MAC_RE.test(parts[3]!)) {
      return `answer with a malformed ${AUTH_HEADER}`;
    }
    if (parts[2] !== nonce) return "answer signed for another request";
    const canon = `dkv-auth-v2 res\n${status}\n${method}\n${target}\n${nonce}\n${parts[1]}\n`;
    if (!this.#matches(canon, body, parts[3]!)) {
      return "answer with a bad signature";
    }
    return undefined;
  }

  /** Count a refusal and log it, at most once a second (with how many were not logged). */
  noteRefused(what: string): void {
    this.refused++;
    const nowMs = this.opts.now();
    if (nowMs - this.#lastLogMs < LOG_EVERY_MS) {
      this.#unlogged++;
      return;
    }
    const more = this.#unlogged > 0 ? ` (and ${this.#unlogged} more since the last line)` : "";
    this.#lastLogMs = nowMs;
    this.#unlogged = 0;
    this.opts.warn(`refused: ${what}${more}`);
  }

  #nextNonce(address: string): string {
    let s = this.#sources.get(address);
    if (s === undefined) {
      // Any fresh source is safe: the receiver simply tracks one more.
      if (this.#sources.size >= SIGN_SOURCES_MAX) this.#sources.clear();
      s = { prefix: this.#randomHex32() + this.#randomHex32(), counter: 0 };
      this.#sources.set(address, s);
    }
    return `${s.prefix}.${s.counter++}`;
  }

  #randomHex32(): string {
    return Math.floor(this.opts.random() * 0x1_0000_0000).toString(16).padStart(8, "0");
  }

  /**
   * Does `mac` (base64url) match under any of our secrets? Compared as text in constant time:
   * each expected MAC is encoded the one way base64url has for 32 bytes, so equal texts are equal
   * MACs, and no received byte is decoded.
   */
  #matches(canon: string, body: Uint8Array | string, mac: string): boolean {
    if (mac.length !== MAC_CHARS) return false;
    for (const macOf of this.#macs) {
      if (sameText(macOf(canon, body), mac)) return true;
    }
    return false;
  }
}

/** Equal strings of MAC_CHARS characters, in time that does not depend on where they differ. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * HMAC-SHA256 under one secret of `canon` followed by `body` (a string is hashed as UTF-8), in
 * base64url.
 */
type MacFn = (canon: string, body: Uint8Array | string) => string;

function keyedMac(secret: Uint8Array): MacFn {
  if (typeof Bun !== "undefined") {
    const keyed = new Bun.CryptoHasher("sha256", secret);
    return (canon, body) => keyed.copy().update(canon).update(body).digest("base64url");
  }
  const key = createSecretKey(secret);
  return (canon, body) => createHmac("sha256", key).update(canon).update(body).digest("base64url");
}
