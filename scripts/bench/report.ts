/**
 * Statistics over runs and the Markdown of docs/PERFORMANCE.md. Tables are padded the way
 * `deno fmt` pads them, so a regenerated file passes `deno fmt --check`.
 */
import type { RunResult } from "./wrk.ts";

/** Everything below this line in docs/PERFORMANCE.md is hand-written and kept on regeneration. */
export const MANUAL_MARKER =
  "<!-- Hand-written below this line: scripts/bench.ts keeps it when it regenerates the file. -->";

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function spread(xs: readonly number[]): Spread {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return { median: NaN, min: NaN, max: NaN };
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

/** All runs of one workload against one system with one client setting. */
export interface Measurement {
  readonly system: string;
  readonly workload: string;
  /** e.g. "wrk -t1 -c64" or "redis-benchmark -c64". */
  readonly client: string;
  readonly runs: readonly RunResult[];
  /** Anything a reader must know (errors seen, skipped, ...). */
  readonly note?: string;
}

export const rps = (m: Measurement) => spread(m.runs.map((r) => r.rps));
export const p50 = (m: Measurement) => spread(m.runs.map((r) => r.p50Ms));
export const p99 = (m: Measurement) => spread(m.runs.map((r) => r.p99Ms));

/** Ratio of medians, with the widest ratio the runs allow (worst dkv run / best baseline run…). */
export interface Ratio {
  readonly median: number;
  readonly low: number;
  readonly high: number;
}

export function ratio(a: Measurement | undefined, b: Measurement | undefined): Ratio | undefined {
  if (a === undefined || b === undefined || a.runs.length === 0 || b.runs.length === 0) {
    return undefined;
  }
  const x = rps(a);
  const y = rps(b);
  return { median: x.median / y.median, low: x.min / y.max, high: x.max / y.min };
}

export const fmtInt = (x: number) =>
  Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "—";
export const fmtMs = (x: number) => Number.isFinite(x) ? x.toFixed(2) : "—";
export const fmtRatio = (r: Ratio | undefined) =>
  r === undefined ? "—" : `${r.median.toFixed(2)}× (${r.low.toFixed(2)}–${r.high.toFixed(2)})`;

function fmtSpread(s: Spread, f: (x: number) => string): string {
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

/** One row per measurement: req/s, p50, p99 as "median (min–max)", then extra columns. */
export function measurementRows(
  ms: readonly Measurement[],
  extra: (m: Measurement) => string[] = () => [],
): string[][] {
  return ms.map((m) => [
    m.workload,
    m.system,
    m.client,
    String(m.runs.length),
    fmtSpread(rps(m), fmtInt),
    fmtSpread(p50(m), fmtMs),
    fmtSpread(p99(m), fmtMs),
    ...extra(m),
    m.note ?? "",
  ]);
}

export const MEASUREMENT_HEADER = [
  "workload",
  "system",
  "client",
  "runs",
  "req/s median (min–max)",
  "p50 ms",
  "p99 ms",
];

/** Display width as deno fmt (dprint) counts it: code points (the tables use no wide glyphs). */
const width = (s: string) => [...s].length;

/** A Markdown table padded like deno fmt pads it. Numeric-looking columns stay left-aligned. */
export function mdTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const cols = header.length;
  const cells = [header, ...rows].map((r) =>
    Array.from({ length: cols }, (_, i) => (r[i] ?? "").replaceAll("|", "\\|"))
  );
  const w = Array.from(
    { length: cols },
    (_, i) => Math.max(3, ...cells.map((r) => width(r[i]!))),
  );
  const line = (r: readonly string[]) =>
    `| ${r.map((c, i) => c + " ".repeat(w[i]! - width(c))).join(" | ")} |`;
  return [
    line(cells[0]!),
    `| ${w.map((n) => "-".repeat(n)).join(" | ")} |`,
    ...cells.slice(1).map(line),
  ]
    .join("\n");
}

/** Replace everything above the marker, keep what is below it (or a starter section). */
export function mergeDoc(generated: string, existing: string | undefined): string {
  const at = existing?.indexOf(MANUAL_MARKER) ?? -1;
  const manual = at >= 0
    ? existing!.slice(at + MANUAL_MARKER.length).replace(/^\n+/, "")
    : "## Where the time goes\n\n(Not profiled yet.)\n";
  return `${generated.trimEnd()}\n\n${MANUAL_MARKER}\n\n${manual}`;
}
