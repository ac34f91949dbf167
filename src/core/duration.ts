/** Durations on the command line: a number with a unit, e.g. `500ms`, `2s`, `1m`. */
const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Milliseconds, or undefined when the text is not `<number><ms|s|m|h|d>` or is too large to be a
 * whole number of ms exactly (a safe integer: 2^53 - 1 ms, about 285,000 years).
 */
export function parseDurationMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Math.round(Number(m[1]) * UNITS[m[2]!]!);
  return Number.isSafeInteger(ms) ? ms : undefined;
}
