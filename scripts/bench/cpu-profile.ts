/**
 * Summaries of a JSC sampling profile (`bun --cpu-prof`, a .cpuprofile): self and total share
 * of samples per JavaScript function. Used by profile.ts (one node under wrk) and
 * bench-rebalance.ts (BENCH_PROFILE: every node during a move).
 */
import { ROOT } from "./procs.ts";

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  /** µs between consecutive samples (the first from startTime). */
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/**
 * Self and total sample counts per function (name + file:line), from a .cpuprofile. `window`
 * keeps only samples taken between `fromEndUs` and `toEndUs` microseconds before the profile
 * ends (the workload, not the start-up or the key load before it).
 */
export function summarize(
  p: Profile,
  top: number,
  window?: { fromEndUs: number; toEndUs: number },
): string {
  const keep = new Set<number>();
  let t = p.startTime;
  p.samples.forEach((_, i) => {
    t += p.timeDeltas[i] ?? 0;
    const beforeEnd = p.endTime - t;
    if (!window || (beforeEnd <= window.fromEndUs && beforeEnd >= window.toEndUs)) keep.add(i);
  });
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: ProfileNode) => {
    const f = n.callFrame;
    const file = f.url ? f.url.replace(/^file:\/\//, "").replace(`${ROOT}/`, "") : "[native]";
    return `${f.functionName || "(anonymous)"} ${file}${f.url ? `:${f.lineNumber + 1}` : ""}`;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let counted = 0;
  for (const [i, id] of p.samples.entries()) {
    if (!keep.has(i)) continue;
    const leaf = byId.get(id)!;
    const name = leaf.callFrame.functionName;
    if (name === "(root)" || name === "(idle)" || name === "(program)") continue;
    counted++;
    self.set(label(leaf), (self.get(label(leaf)) ?? 0) + 1);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (!seen.has(l)) total.set(l, (total.get(l) ?? 0) + 1);
      seen.add(l);
    }
  }
  const pct = (n: number) => `${((100 * n) / counted).toFixed(1).padStart(5)} %`;
  const lines = [
    `${counted} samples with JavaScript on the stack`,
    "",
    "self     total    function",
  ];
  for (const [l, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`${pct(n)}  ${pct(total.get(l) ?? 0)}  ${l}`);
  }
  lines.push("", "total (inclusive), top frames", "");
  for (const [l, n] of [...total].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`${pct(n)}  ${l}`);
  }
  return lines.join("\n");
}
