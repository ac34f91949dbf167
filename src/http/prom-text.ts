/**
 * The two metric kinds counted on the request path, kept as plain numbers and written in the
 * Prometheus text format (version 0.0.4) at scrape time.
 *
 * prom-client writes everything else (metrics.ts). These two are ours because they run on every
 * request: a prom-client counter child's inc plus a histogram child's observe measured about
 * 0.6 µs a request (label validation and a label hash each call); here a series is found once
 * by its label string and then costs an array increment (docs/PERFORMANCE.md, bench:metrics).
 */

/** Escape a label value as the text format wants: backslash, double quote and newline. */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Escape HELP text: backslash and newline. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** `{a="x",b="y"}` for these names and values (in this order). */
function labelText(names: readonly string[], values: readonly string[]): string {
  return names.map((n, i) => `${n}="${escapeLabel(values[i] ?? "")}"`).join(",");
}

/** A number as the text format writes it. */
function num(v: number): string {
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return Number.isNaN(v) ? "NaN" : String(v);
}

export interface CounterSeries {
  value: number;
}

/** A counter with labels: `series(values)` once, then `s.value++` on the hot path. */
export class LabeledCounter {
  readonly #series = new Map<string, { values: readonly string[]; s: CounterSeries }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  /** The series for these label values (created at 0 on first use). */
  series(values: readonly string[]): CounterSeries {
    const key = values.join("\u0000");
    let e = this.#series.get(key);
    if (e === undefined) {
      e = { values: [...values], s: { value: 0 } };
      this.#series.set(key, e);
    }
    return e.s;
  }

  text(): string {
    let out = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} counter\n`;
    for (const { values, s } of this.#series.values()) {
      const labels = labelText(this.labelNames, values);
      out += `${this.name}${labels === "" ? "" : `{${labels}}`} ${num(s.value)}\n`;
    }
    return out;
  }
}

export interface HistogramSeries {
  /** Observations per bucket (not cumulative; the writer sums), the last is +Inf. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** A histogram with labels; `observe(series, v)` is a bucket search and three additions. */
export class LabeledHistogram {
  readonly #series = new Map<string, { values: readonly string[]; s: HistogramSeries }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    /** Upper bounds, ascending; +Inf is implied. */
    readonly buckets: readonly number[],
  ) {
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new Error(`${name}: buckets must ascend`);
    }
  }

  series(values: readonly string[]): HistogramSeries {
    const key = values.join("\u0000");
    let e = this.#series.get(key);
    if (e === undefined) {
      const s = { counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
      e = { values: [...values], s };
      this.#series.set(key, e);
    }
    return e.s;
  }

  observe(s: HistogramSeries, v: number): void {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    s.counts[i]!++;
    s.sum += v;
    s.count++;
  }

  text(): string {
    const n = this.name;
    let out = `# HELP ${n} ${escapeHelp(this.help)}\n# TYPE ${n} histogram\n`;
    for (const { values, s } of this.#series.values()) {
      const labels = labelText(this.labelNames, values);
      const sep = labels === "" ? "" : ",";
      let cumulative = 0;
      for (let i = 0; i <= this.buckets.length; i++) {
        cumulative += s.counts[i]!;
        const le = i < this.buckets.length ? num(this.buckets[i]!) : "+Inf";
        out += `${n}_bucket{${labels}${sep}le="${le}"} ${cumulative}\n`;
      }
      const braced = labels === "" ? "" : `{${labels}}`;
      out += `${n}_sum${braced} ${num(s.sum)}\n${n}_count${braced} ${s.count}\n`;
    }
    return out;
  }
}
