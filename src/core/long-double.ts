/**
 * The x87 80-bit "long double" of x86-64 Linux, where redis-server computes INCRBYFLOAT,
 * emulated exactly with bigints so dkv's answers match redis-server's digit for digit (a JS
 * double would answer 0.1 + 0.2 as "0.30000000000000004"; Redis answers "0.3"). Three steps, as
 * Redis does them: parse each operand as glibc's strtold does (correctly rounded to 64 significant
 * bits, ties to even) with Redis's extra checks (string2ld: no leading space, nothing after the
 * number, no NaN, no overflow, no underflow to zero); add (one rounding); print as `%.17Lf` with
 * the trailing zeros and a lone "-" of "-0" taken off (ld2string, LD_STR_HUMAN).
 *
 * A finite value is (-1)^neg · m · 2^e with m < 2^64; normal values have m ≥ 2^63. Pure.
 */

export type LongDouble =
  | { readonly kind: "finite"; readonly neg: boolean; readonly m: bigint; readonly e: number }
  | { readonly kind: "inf"; readonly neg: boolean }
  | { readonly kind: "nan" };

const TWO_64 = 1n << 64n;
/** The exponent of the smallest subnormal's unit: 1 - 16383 (bias) - 63. */
const E_MIN = -16445;
/** The largest exponent of a finite value's unit: 32766 - 16383 - 63. */
const E_MAX = 16320;
/** Redis's MAX_LONG_DOUBLE_CHARS: longer texts are not floats. */
export const LONG_DOUBLE_CHARS_MAX = 5 * 1024;

const ZERO: LongDouble = { kind: "finite", neg: false, m: 0n, e: 0 };

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/**
 * num/den (both > 0) rounded to the nearest long double, ties to even; "overflow" past the
 * largest finite value, "zero" when it rounds to nothing.
 */
function fromRatio(neg: boolean, num: bigint, den: bigint): LongDouble | "overflow" | "zero" {
  let e = bitLength(num) - bitLength(den) - 64;
  const divide = (exp: number): [bigint, bigint, bigint] => {
    const n = exp < 0 ? num << BigInt(-exp) : num;
    const d = exp > 0 ? den << BigInt(exp) : den;
    return [n / d, n % d, d];
  };
  let [q, r, d] = divide(e);
  if (q >= TWO_64) [q, r, d] = divide(++e);
  if (e < E_MIN) [q, r, d] = divide(e = E_MIN);
  if (2n * r > d || (2n * r === d && (q & 1n) === 1n)) q++;
  if (q === TWO_64) {
    q >>= 1n;
    e++;
  }
  if (q === 0n) return "zero";
  if (e > E_MAX) return "overflow";
  return { kind: "finite", neg, m: q, e };
}

const C_SPACE = /^[ \t\n\v\f\r]/;
const DECIMAL = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/;
const HEX = /^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?$/;
const INF = /^([+-]?)inf(inity)?$/i;

/** An exponent's digits as a number, clamped far past any range that matters. */
function exponent(s: string | undefined): number {
  if (s === undefined) return 0;
  const n = Number(s);
  return Math.max(-1e7, Math.min(1e7, n));
}

/**
 * A text (bytes as latin1) as Redis's string2ld reads it; undefined when Redis answers "value is
 * not a valid float".
 */
export function parseLongDouble(text: string): LongDouble | undefined {
  if (text.length === 0 || text.length >= LONG_DOUBLE_CHARS_MAX) return undefined;
  // strtold must stop at the end (a NUL byte inside fails: no pattern below takes one).
  const s = text;
  if (C_SPACE.test(s)) return undefined;
  const inf = INF.exec(s);
  if (inf !== null) return { kind: "inf", neg: inf[1] === "-" };
  const hex = HEX.exec(s);
  const dec = hex === null ? DECIMAL.exec(s) : null;
  const parts = hex ?? dec;
  if (parts === null) return undefined;
  const [, sign, whole = "", frac = "", exp] = parts;
  if (whole === "" && frac === "") return undefined;
  const neg = sign === "-";
  const digits = (whole + frac).replace(/^0+/, "");
  if (digits === "") return ZERO;
  let num: bigint;
  let den = 1n;
  if (hex !== null) {
    const e2 = exponent(exp) - 4 * frac.length;
    const bits = 4 * digits.length + e2;
    if (bits > 16400) return undefined; // overflow
    if (bits < -16500) return undefined; // rounds to zero
    num = BigInt("0x" + digits);
    if (e2 >= 0) num <<= BigInt(e2);
    else den = 1n << BigInt(-e2);
  } else {
    const e10 = exponent(exp) - frac.length;
    const magnitude = digits.length + e10; // 10^(magnitude-1) ≤ value < 10^magnitude
    if (magnitude > 4934) return undefined; // past LDBL_MAX (1.19e4932)
    if (magnitude < -4952) return undefined; // below half the least subnormal: rounds to zero
    num = BigInt(digits);
    if (e10 >= 0) num *= 10n ** BigInt(e10);
    else den = 10n ** BigInt(-e10);
  }
  const x = fromRatio(neg, num, den);
  return typeof x === "string" ? undefined : x;
}

/** a + b, rounded once (an overflow is an infinity; inf - inf is NaN). */
export function addLongDouble(a: LongDouble, b: LongDouble): LongDouble {
  if (a.kind === "nan" || b.kind === "nan") return { kind: "nan" };
  if (a.kind === "inf" && b.kind === "inf") return a.neg === b.neg ? a : { kind: "nan" };
  if (a.kind === "inf") return a;
  if (b.kind === "inf") return b;
  const e = Math.min(a.e, b.e);
  const signed = (x: { neg: boolean; m: bigint; e: number }) =>
    (x.neg ? -x.m : x.m) << BigInt(x.e - e);
  const sum = signed(a) + signed(b);
  if (sum === 0n) return ZERO;
  const neg = sum < 0n;
  const mag = neg ? -sum : sum;
  const x = e >= 0 ? fromRatio(neg, mag << BigInt(e), 1n) : fromRatio(neg, mag, 1n << BigInt(-e));
  if (x === "overflow") return { kind: "inf", neg };
  if (x === "zero") return ZERO; // cannot happen: a sum of units of 2^E_MIN is exact
  return x;
}

/** `%.17Lf`, trailing zeros (and a bare ".") removed, "-0" as "0": Redis's human form. */
export function formatLongDouble(x: LongDouble & { kind: "finite" }): string {
  let text: string;
  if (x.e >= 0) text = (x.m << BigInt(x.e)).toString();
  else {
    const shift = BigInt(-x.e);
    const scaled = x.m * 10n ** 17n;
    let q = scaled >> shift;
    const r = scaled - (q << shift);
    const half = 1n << (shift - 1n);
    if (r > half || (r === half && (q & 1n) === 1n)) q++;
    const whole = q / 10n ** 17n;
    const frac = (q % 10n ** 17n).toString().padStart(17, "0").replace(/0+$/, "");
    text = frac === "" ? whole.toString() : `${whole}.${frac}`;
  }
  return x.neg && text !== "0" ? `-${text}` : text;
}
