/** UTF-8 sizes of strings without encoding them (pure; no allocation), and UTF-8 writes. */
import { Buffer } from "node:buffer";

const encoder = new TextEncoder();

/** Bytes `s` takes as UTF-8 (a lone surrogate counts 3, as TextEncoder writes U+FFFD). */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Is `s` at most `max` bytes as UTF-8? Cheap when it clearly is (3 bytes per unit at most). */
export function utf8AtMost(s: string, max: number): boolean {
  return s.length * 3 <= max || (s.length <= max && utf8Bytes(s) <= max);
}

/** String.prototype.isWellFormed (ES2024; both runtimes have it, the compiler's lib does not). */
interface WellFormed {
  isWellFormed(): boolean;
}

/** Has `s` no lone surrogates (so it is the decoding of some valid UTF-8)? */
export function isWellFormed(s: string): boolean {
  return (s as unknown as WellFormed).isWellFormed();
}

/**
 * Writes `s` as UTF-8 (a lone surrogate as U+FFFD, as TextEncoder does) into `buf` at `at`, where
 * there is room for it; returns how many bytes it wrote.
 */
export type Utf8Into = (s: string, buf: Uint8Array, at: number) => number;

/** Utf8Into through TextEncoder (a view and a result object per call). */
export const encodeUtf8Into: Utf8Into = (s, buf, at) =>
  encoder.encodeInto(s, buf.subarray(at)).written;

/**
 * Utf8Into through Buffer's native utf8Write called on the target itself (no view and no result
 * object per call), where it gives TextEncoder's bytes (checked once at load, Bun's and Deno's
 * Buffer alike); else encodeUtf8Into.
 */
export const utf8Into: Utf8Into = (() => {
  const write = (Buffer.prototype as unknown as {
    utf8Write?: (this: Uint8Array, s: string, at: number, max: number) => number;
  }).utf8Write;
  if (write === undefined) return encodeUtf8Into;
  const fast: Utf8Into = (s, buf, at) => write.call(buf, s, at, buf.length - at);
  try {
    // Multi-byte units, a pair and a lone surrogate, past the start: as TextEncoder writes them.
    const text = "a\u00e9\u20ac\u{1f600}\ud800z";
    const got = new Uint8Array(20);
    const want = encoder.encode(text);
    const n = fast(text, got, 1);
    if (n === want.length && want.every((b, i) => got[i + 1] === b)) return fast;
  } catch {
    // Not callable on a plain Uint8Array here.
  }
  return encodeUtf8Into;
})();
