/** UTF-8 sizes of strings without encoding them (pure; no allocation). */

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
